"""Child processes that die with their parent: the private Mosquitto and the headset process.

Theory of operation
-------------------
A rehearsal starts children (a Mosquitto broker, a process of simulated headsets). Whatever
happens to the ``madang`` process that started them, a clean exit, an exception, a signal, a
``kill -9`` or an out-of-memory kill, none of them may be left running. Three mechanisms, each
covering what the others cannot:

1. **Orderly stop.** On every exit that runs Python code (the end, SIGINT, SIGTERM, an
   exception), the owner stops its children in ``finally`` blocks, and
   :func:`stop_at_exit` registers a last-resort ``atexit`` stop.
2. **Parent-death signal** (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, see prctl(2)). When the
   parent dies *in any way*, ``kill -9`` included, the kernel sends the child SIGKILL.
   :func:`die_with_parent` sets it in a child about to ``exec`` (``preexec_fn``: the broker, which
   cannot run our code) or in a Python child at its start (the headset process). The signal is
   tied to the *thread* that forked the child, so start children from a thread that lives as long
   as they should (the main thread: the event loop's). The race where the parent dies between
   ``fork`` and ``prctl`` is closed by checking ``getppid()`` afterwards.
3. **A watchdog pipe**, for children that run our code and on systems without ``prctl``
   (macOS): the headset process blocks on its pipe to the parent and exits when it reads
   end-of-file, which the kernel delivers when the parent dies.

Children also leave the terminal's signals to their parent: the broker runs in a session of its
own, and the headset process ignores SIGINT and SIGTERM (its parent stops it, with its records), so
a Ctrl-C reaches only ``madang``, which stops the show and then its children in order.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["die_with_parent", "parent_death_signal_supported", "stop_at_exit"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return fn


# Loaded once, in the parent: a preexec_fn must not load libraries between fork and exec.
_PRCTL = _load_prctl()


def parent_death_signal_supported() -> bool:
    """Whether this system can kill a child when its parent dies (Linux)."""
    return _PRCTL is not None


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send this process ``sig`` when the thread that created it ends.

    Call it in the child: as ``preexec_fn=functools.partial(die_with_parent, os.getpid())``, or
    first thing in a Python child with the parent's pid. When the parent is already gone (it died
    before this call), the child kills itself at once. A no-op where ``prctl`` is not available.
    """
    if _PRCTL is None:
        return
    _PRCTL(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


def stop_at_exit(stop: Callable[[], None]) -> Callable[[], None]:
    """Register ``stop`` to run at interpreter exit; returns a function that unregisters it.

    For the exits that skip ``finally`` blocks of a coroutine that never resumed; ``stop`` must be
    idempotent. Errors are logged, never raised (the interpreter is exiting).
    """

    running = False

    def guarded() -> None:
        nonlocal running
        running = True  # from now on, stop() may not unregister us: we are being called
        try:
            stop()
        except Exception:  # logged: nothing else can be done at exit
            log.exception("stopping a child process at exit failed")

    def unregister() -> None:
        if not running:
            atexit.unregister(guarded)

    atexit.register(guarded)
    return unregister
