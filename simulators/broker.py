"""A private Mosquitto broker for tests, rehearsals and fault injection.

Theory of operation
-------------------
:class:`MosquittoBroker` finds the ``mosquitto`` executable (``PATH``, then ``/usr/sbin`` and
``/usr/local/sbin``, where Debian and Homebrew put it), writes a configuration into its own
temporary directory, and runs it as a child process listening on ``127.0.0.1`` only, on a port
the kernel picked as free. :meth:`MosquittoBroker.start` returns once the broker answers on its
port, so a client may connect at once (the probe is an MQTT CONNECT answered by a CONNACK, so
another program holding the port is not mistaken for the broker); if the broker dies or never
listens, :class:`BrokerStartError` carries the tail of the broker's log.

:meth:`MosquittoBroker.restart` stops the broker and starts a new one on the *same port*, as a
real broker restart would look to clients. The server side of connections closed by the broker
lingers in ``TIME_WAIT``; Mosquitto sets ``SO_REUSEADDR`` on its listening socket, so it can bind
again at once (``tests/simulators/test_broker.py`` checks this with a client connected). A short
bounded retry covers the rare case where the bind still fails.

The broker never outlives the process that started it (:mod:`simulators.children`): it runs in
a session of its own (a Ctrl-C in the terminal is for ``madang``, which stops the show first and
the broker after), with a parent-death signal on Linux (a ``kill -9`` of the parent kills it), and
a broker still running at interpreter exit is stopped then.

The broker is configured for tests, not for production: no persistence (a restart loses
sessions and retained messages, like a crashed broker without a database), anonymous access,
``TCP_NODELAY`` on its sockets, and generous queues so a burst from thousands of simulated
devices is not dropped by the broker itself.

``MosquittoBroker(config=FILE, port=PORT)`` runs a configuration of someone else's instead, for
example the one ``madang broker-config`` writes for a venue (credentials, ACL, a TLS listener
with ``tls=True``): the broker only adds its log file (and, as root, the current user). Its probe
then takes any CONNACK (a refusal of the anonymous probe too) as the broker answering, over TLS
when asked.

This module speaks to the broker only as a process and a TCP port; it never imports
:mod:`controller` (an import-linter contract).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from simulators.children import die_with_parent, parent_death_signal_supported, stop_at_exit
from venues.errors import MadangError

__all__ = ["BrokerNotFound", "BrokerStartError", "MosquittoBroker", "find_mosquitto"]

log = logging.getLogger(__name__)

_SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin", "/usr/local/opt/mosquitto/sbin")
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0
_REBIND_RETRY_S = 2.0  # how long a broker that exits at once (port busy) is retried
_LOG_TAIL_LINES = 20


@dataclass
class BrokerNotFound(MadangError, FileNotFoundError):
    """The ``mosquitto`` executable is not installed (or not where we looked)."""

    searched: tuple[str, ...]

    def __post_init__(self) -> None:
        Exception.__init__(self, self.searched)

    def __str__(self) -> str:
        where = ", ".join(self.searched)
        return (
            f"mosquitto not found (looked on PATH and in {where}); install it: "
            "`sudo apt-get install mosquitto` on Debian/Ubuntu, `brew install mosquitto` on macOS"
        )


@dataclass
class BrokerStartError(MadangError, RuntimeError):
    """Mosquitto did not come up listening on its port."""

    port: int
    reason: str
    log_tail: str = ""

    def __post_init__(self) -> None:
        Exception.__init__(self, self.port, self.reason)

    def __str__(self) -> str:
        tail = f"\nlast lines of the broker log:\n{self.log_tail}" if self.log_tail else ""
        return (
            f"mosquitto on 127.0.0.1:{self.port} did not start: {self.reason}; "
            f"check that the port is free and the mosquitto install works (`mosquitto -h`){tail}"
        )


def find_mosquitto() -> str:
    """The path of the ``mosquitto`` executable; raises :class:`BrokerNotFound`."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for directory in _SEARCH_DIRS:
        candidate = os.path.join(directory, "mosquitto")
        if os.access(candidate, os.X_OK):
            return candidate
    raise BrokerNotFound(("PATH", *_SEARCH_DIRS))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# MQTT 3.1.1 CONNECT (clean session, keepalive 10 s, empty client id) and DISCONNECT, by hand:
# the readiness probe must prove that *a broker* answers, not merely that something listens.
_PROBE_CONNECT = bytes([0x10, 12, 0, 4, *b"MQTT", 4, 0x02, 0, 10, 0, 0])
_PROBE_DISCONNECT = bytes([0xE0, 0])
_CONNACK_ACCEPTED = bytes([0x20, 2, 0, 0])


def _answers_mqtt(port: int, *, any_connack: bool = False, tls: bool = False) -> bool:
    """Whether an MQTT broker accepts a connection on ``127.0.0.1:port`` (``any_connack``: or
    refuses it with a CONNACK, as a broker without anonymous access does), over TLS if ``tls``
    (the probe does not verify the certificate: it only asks whether the broker is up; a broker
    that asks for a client certificate refuses it at the TLS layer, which counts as answering
    with ``any_connack``)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw:
            s = raw
            if tls:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                s = context.wrap_socket(raw)
            reply = b""
            try:
                s.sendall(_PROBE_CONNECT)
                while len(reply) < len(_CONNACK_ACCEPTED):
                    chunk = s.recv(len(_CONNACK_ACCEPTED) - len(reply))
                    if not chunk:
                        return False
                    reply += chunk
                s.sendall(_PROBE_DISCONNECT)
            except ssl.SSLError:
                # The handshake went through, then the broker's TLS layer refused us (TLS 1.3
                # tells a client without a certificate only now): a broker answers there.
                return any_connack
            if any_connack:
                return reply[:2] == _CONNACK_ACCEPTED[:2]
            return reply == _CONNACK_ACCEPTED
    except OSError:
        return False


def _death_pact() -> Callable[[], None] | None:
    """The ``preexec_fn`` that has the kernel kill the broker if we die without stopping it
    (``kill -9``): prctl(2) ``PR_SET_PDEATHSIG``. Only from the main thread: the signal follows the
    thread that forked, and a broker (re)started from a worker thread (``asyncio.to_thread``) would
    die with that thread; such a broker is stopped by its owner or at exit instead."""
    if not parent_death_signal_supported() or threading.current_thread() is not threading.main_thread():
        return None
    return functools.partial(die_with_parent, os.getpid())


class MosquittoBroker:
    """A Mosquitto child process on 127.0.0.1, for tests and simulated venues.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. Clients connect to
    :attr:`url` (``mqtt://127.0.0.1:PORT``). :meth:`restart` keeps the port. :meth:`stop` is
    idempotent, and the temporary directory (configuration and log) is removed by
    :meth:`close` or on leaving the ``with`` block.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        executable: str | None = None,
        max_queued_messages: int = 100_000,
        max_inflight_messages: int = 100,
        verbose: bool = False,
        config: str | os.PathLike[str] | None = None,
        tls: bool = False,
    ) -> None:
        if config is not None and port is None:
            raise ValueError("MosquittoBroker(config=...) needs the port its listener is on (port=...)")
        self._config = None if config is None else Path(config)
        self._tls = tls
        self._executable = executable
        self._port = port
        self._max_queued = max_queued_messages
        self._max_inflight = max_inflight_messages
        self._verbose = verbose
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._unregister: Callable[[], None] | None = None
        self.host = "127.0.0.1"
        """The address the broker listens on (always loopback)."""

    # -- properties -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port; assigned on the first :meth:`start` and kept across restarts."""
        if self._port is None:
            raise RuntimeError("MosquittoBroker.port is assigned by start(); call start() first")
        return self._port

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT`` (``mqtts://`` with ``tls``), what ``--broker`` and
        :class:`controller.mqtt.MqttLink` take."""
        return f"{'mqtts' if self._tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs, else ``None``."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self.pid is not None

    @property
    def log_path(self) -> Path:
        """The broker's log file (inside the temporary directory)."""
        return Path(self._workdir()) / "mosquitto.log"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> MosquittoBroker:
        """Start the broker and wait (bounded) until it answers MQTT on its port; returns ``self``.

        Raises :class:`BrokerNotFound` when mosquitto is not installed and
        :class:`BrokerStartError` when it does not come up.
        """
        if self.running:
            return self
        executable = self._executable or find_mosquitto()
        self._executable = executable
        fixed = self._port is not None
        last: BrokerStartError | None = None
        # A port picked by us may be taken by someone else between probe and bind: try others.
        for _ in range(1 if fixed else 3):
            port = self._port if self._port is not None else _free_port()
            try:
                self._spawn(executable, port)
            except BrokerStartError as exc:
                last = exc
                if fixed:
                    raise
                continue
            self._port = port
            if self._unregister is None:
                self._unregister = stop_at_exit(self.stop)
            log.info("mosquitto started", extra={"port": port, "pid": self.pid})
            return self
        assert last is not None
        raise last

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after a grace period). Idempotent."""
        self._forget_at_exit()
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("mosquitto ignored SIGTERM; killing it", extra={"pid": proc.pid})
            proc.kill()
            proc.wait(timeout=_STOP_TIMEOUT_S)
        log.info("mosquitto stopped", extra={"port": self._port, "pid": proc.pid})

    def kill(self) -> None:
        """Kill the broker with SIGKILL, as a crash would (no clean shutdown). Idempotent."""
        self._forget_at_exit()
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait(timeout=_STOP_TIMEOUT_S)
        log.info("mosquitto killed", extra={"port": self._port, "pid": proc.pid})

    def restart(self) -> None:
        """Stop the broker and start a new one on the same port (clients see a broker restart)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the broker and remove its temporary directory."""
        self.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _forget_at_exit(self) -> None:
        if self._unregister is not None:
            self._unregister()
            self._unregister = None

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MosquittoBroker(port={self._port}, pid={self.pid})"

    # -- internals --------------------------------------------------------------------------

    def _workdir(self) -> str:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="madang-mosquitto-")
        return self._dir.name

    def _write_config(self, port: int) -> Path:
        workdir = self._workdir()
        conf = Path(workdir) / "mosquitto.conf"
        log_types = "all" if self._verbose else "error\nlog_type warning\nlog_type notice"
        # Started as root, mosquitto drops to the user "mosquitto", which cannot write our
        # temporary directory: keep the current user instead.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name}\n" if os.geteuid() == 0 else ""
        if self._config is not None:
            theirs = self._config.read_text(encoding="utf-8")
            conf.write_text(
                f"{user}{theirs}\n"
                f"log_dest file {workdir}/mosquitto.log\n"
                f"log_type {log_types}\n"
                "log_timestamp_format %Y-%m-%dT%H:%M:%S\n",
                encoding="utf-8",
            )
            return conf
        conf.write_text(
            f"{user}listener {port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "set_tcp_nodelay true\n"
            "persistence false\n"
            f"max_queued_messages {self._max_queued}\n"
            f"max_inflight_messages {self._max_inflight}\n"
            "max_keepalive 3600\n"
            f"log_dest file {workdir}/mosquitto.log\n"
            f"log_type {log_types}\n"
            "log_timestamp_format %Y-%m-%dT%H:%M:%S\n",
            encoding="utf-8",
        )
        return conf

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-_LOG_TAIL_LINES:])

    def _spawn(self, executable: str, port: int) -> None:
        conf = self._write_config(port)
        deadline = time.monotonic() + _START_TIMEOUT_S
        retry_until = time.monotonic() + _REBIND_RETRY_S
        while True:
            proc = subprocess.Popen(
                [executable, "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the terminal is for madang, not the broker
                preexec_fn=_death_pact(),  # prctl only, loaded beforehand (simulators/children.py)
            )
            self._proc = proc
            reason = self._wait_listening(proc, port, deadline)
            if reason is None:
                return
            # The process exited (usually: address in use). Retry while time remains, since a
            # port just released may need a moment; otherwise report with the log tail.
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=_STOP_TIMEOUT_S)
            self._proc = None
            if time.monotonic() + 0.1 >= min(deadline, retry_until):
                raise BrokerStartError(port, reason, self._log_tail())
            time.sleep(0.1)

    def _wait_listening(self, proc: subprocess.Popen[bytes], port: int, deadline: float) -> str | None:
        """``None`` once the broker answers MQTT; otherwise why not (process exited, or timeout)."""
        while True:
            code = proc.poll()
            if code is not None:
                return f"the process exited with status {code}"
            if _answers_mqtt(port, any_connack=self._config is not None, tls=self._tls):
                return None
            if time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                return f"not listening after {_START_TIMEOUT_S:.0f} s"
            time.sleep(0.01)
