"""A TCP relay that a test can cut and heal: the link between a leaf broker and its hub.

Theory of operation
-------------------
A Mosquitto bridge is one TCP connection the leaf opens to the hub. To drop that link (as a
failed switch or a pulled fibre would) without stopping either broker, the leaf is pointed at
this relay instead of the hub: the relay listens on a loopback port, and for each connection it
accepts it opens one to the upstream port and copies bytes both ways.

:meth:`Relay.cut` closes every relayed connection (both sides see the peer close: the bridge
notices at once and starts its reconnect timer) and, until :meth:`Relay.heal`, closes each new
connection as soon as it is accepted, so reconnect attempts fail the way they would against a
broken link. Cutting with a close, not by silently dropping packets, is deliberate: the point is
what the brokers and devices do *after* the link is gone (session replay, late joins), not how
long a keepalive takes to notice.

The relay runs in a child process of its own (``python -m simulators.relay``), so the bytes it
copies cost no time under the test's (or the controller's) interpreter lock; it is started and
commanded by :class:`Relay`: it prints its port, then reads ``cut`` / ``heal`` lines on stdin and
answers ``ok`` once done. It dies with its parent like every child here
(:mod:`simulators.children`): parent-death signal, and end-of-file on stdin. ``TCP_NODELAY`` is set
on both of its sockets: a relay that batched small cue packets would add Nagle's 40 ms.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from types import TracebackType

from simulators.children import die_with_parent, stop_at_exit

__all__ = ["Relay", "RelayError"]

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024
_STOP_TIMEOUT_S = 5.0
_ANSWER_TIMEOUT_S = 10.0


class RelayError(RuntimeError):
    """The relay process did not start or did not answer a command."""


class Relay:
    """A cuttable TCP relay from a loopback port to ``127.0.0.1:upstream_port``, in a child process.

    :meth:`start` returns once it listens (:attr:`port`); :meth:`cut` and :meth:`heal` return
    once the relay has done it; :meth:`stop` is idempotent. Use it as a context manager.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._proc: subprocess.Popen[str] | None = None
        self._port: int | None = None
        self._unregister: Callable[[], None] | None = None
        self.cut_now = False

    @property
    def port(self) -> int:
        """The port the relay listens on (assigned by :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("Relay.port is assigned by start(); call start() first")
        return self._port

    @property
    def pid(self) -> int | None:
        """The relay's process id while it runs."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    def start(self) -> Relay:
        """Start the relay process and wait until it listens; returns ``self``."""
        if self.pid is not None:
            return self
        # The parent-death signal follows the thread that forks (simulators.children): from any
        # other thread than the main one the relay relies on its stdin watchdog alone.
        pact = os.getpid() if threading.current_thread() is threading.main_thread() else 0
        proc = subprocess.Popen(
            [sys.executable, "-m", "simulators.relay", str(pact), str(self.upstream_port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._proc = proc
        self._unregister = stop_at_exit(self.stop)
        line = self._answer()
        try:
            self._port = int(line)
        except ValueError as exc:
            self.stop()
            raise RelayError(
                f"the relay to port {self.upstream_port} did not start (it said {line!r})"
            ) from exc
        return self

    def cut(self) -> None:
        """Close every relayed connection and refuse new ones until :meth:`heal`."""
        self._command("cut")
        self.cut_now = True

    def heal(self) -> None:
        """Relay new connections again."""
        self._command("heal")
        self.cut_now = False

    def stop(self) -> None:
        """Stop the relay process (its connections close). Idempotent."""
        if self._unregister is not None:
            self._unregister()
            self._unregister = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()  # end-of-file: the relay exits
        try:
            proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_STOP_TIMEOUT_S)
        if proc.stdout is not None:
            proc.stdout.close()

    def _command(self, word: str) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise RelayError(f"the relay to port {self.upstream_port} is not running; start() it first")
        try:
            proc.stdin.write(word + "\n")
            proc.stdin.flush()
        except OSError as exc:
            raise RelayError(f"the relay to port {self.upstream_port} is gone ({exc})") from exc
        answer = self._answer()
        if answer != "ok":
            raise RelayError(f"the relay to port {self.upstream_port} answered {answer!r} to {word!r}")

    def _answer(self) -> str:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(_ANSWER_TIMEOUT_S):
                raise RelayError(
                    f"the relay to port {self.upstream_port} did not answer in {_ANSWER_TIMEOUT_S} s"
                )
        finally:
            sel.close()
        return proc.stdout.readline().strip()

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Relay(port={self._port}, upstream={self.upstream_port}, pid={self.pid})"


# -- the child process ----------------------------------------------------------------------


def _nodelay(s: socket.socket) -> None:
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)


class _Pump:
    """The relay's event loop: one selector over the listener, stdin and every socket pair."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.sel = selectors.DefaultSelector()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.peer: dict[socket.socket, socket.socket] = {}
        self.pending: dict[socket.socket, bytearray] = {}  # bytes not yet written to this socket
        self.cut = False
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.sel.register(sys.stdin, selectors.EVENT_READ, "control")

    def run(self) -> None:
        print(self.listener.getsockname()[1], flush=True)
        while True:
            for key, events in self.sel.select():
                what = key.data
                if what == "accept":
                    self._accept()
                elif what == "control":
                    line = sys.stdin.readline()
                    if not line:
                        return  # the parent is gone or stopped us
                    self._control(line.strip())
                else:
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if events & selectors.EVENT_WRITE:
                        self._flush(sock)
                    if events & selectors.EVENT_READ and sock in self.peer:
                        self._read(sock)

    def _control(self, word: str) -> None:
        if word == "cut":
            self.cut = True
            for sock in list(self.peer):
                self._close(sock)
        elif word == "heal":
            self.cut = False
        else:
            print(f"unknown command {word!r}; expected cut or heal", flush=True)
            return
        print("ok", flush=True)

    def _accept(self) -> None:
        try:
            down, _ = self.listener.accept()
        except OSError:
            return
        if self.cut:
            down.close()
            return
        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            up.connect(self.upstream)  # loopback: answers (or refuses) at once
        except OSError:
            up.close()
            down.close()
            return
        for s in (down, up):
            _nodelay(s)
            self.pending[s] = bytearray()
            self.sel.register(s, selectors.EVENT_READ, "data")
        self.peer[down] = up
        self.peer[up] = down

    def _read(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(sock)
            return
        other = self.peer[sock]
        buf = self.pending[other]
        if not buf:
            try:
                sent = other.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(sock)
                return
            data = data[sent:]
        if data:
            buf += data
            self.sel.modify(other, selectors.EVENT_READ | selectors.EVENT_WRITE, "data")

    def _flush(self, sock: socket.socket) -> None:
        buf = self.pending.get(sock)
        if buf is None:
            return
        try:
            sent = sock.send(buf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(sock)
            return
        del buf[:sent]
        if not buf:
            self.sel.modify(sock, selectors.EVENT_READ, "data")

    def _close(self, sock: socket.socket) -> None:
        other = self.peer.pop(sock, None)
        for s in (sock, other):
            if s is None:
                continue
            self.peer.pop(s, None)
            self.pending.pop(s, None)
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(s)
            s.close()


def _main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m simulators.relay PARENT_PID|0 UPSTREAM_PORT", file=sys.stderr)
        return 2
    parent, upstream = int(argv[0]), int(argv[1])
    if parent:
        die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us, not the terminal
    _Pump(upstream).run()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
