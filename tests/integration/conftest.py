"""Harness for the end-to-end tests of ``madang run``: real endpoints, a real controller process.

Everything here observes the controller from the outside, as a venue would:

* :class:`OscSink` is a UDP server on 127.0.0.1 that records every datagram and decodes it with
  python-osc (an independent decoder, not ours);
* :class:`MqttObserver` is a paho client subscribed to ``#`` on a private Mosquitto;
* :class:`Controller` runs ``python -m madang run ...`` as a child process and talks to
  its OSC control port like Companion or QLab would.

Waiting is always "until a condition holds, or give up after a generous bound": no test asserts
how long anything took.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

DATA = Path(__file__).resolve().parent.parent / "data"
REPO = Path(__file__).resolve().parents[2]
WAIT_S = 15.0  # upper bound for anything to show up; a loaded 2-core machine can be slow


def wait_until(pred: Callable[[], Any], timeout: float = WAIT_S, what: str = "condition") -> Any:
    """Poll ``pred`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_udp_port() -> int:
    """A UDP port of 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_tcp_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---------------------------------------------------------------------------------------------
# OSC endpoints


@dataclass(frozen=True)
class Osc:
    """One OSC message as a device received it: ``timetag`` is the enclosing bundle's (Unix
    seconds, python-osc's reading) or None for a bare message."""

    rx_ns: int
    address: str
    args: tuple[Any, ...]
    timetag: float | None
    bundle: tuple[str, ...] = ()  # addresses of every message in the same bundle


def _decode(data: bytes, rx_ns: int) -> list[Osc]:
    if OscBundle.dgram_is_bundle(data):
        b = OscBundle(data)
        msgs = [m for m in b if isinstance(m, OscMessage)]
        addrs = tuple(m.address for m in msgs)
        return [Osc(rx_ns, m.address, tuple(m.params), b.timestamp, addrs) for m in msgs]
    m = OscMessage(data)
    return [Osc(rx_ns, m.address, tuple(m.params), None)]


class OscSink:
    """A UDP server on 127.0.0.1 that records and decodes everything it receives."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
        self.sock = sock
        self.sock.settimeout(0.05)
        self.port: int = sock.getsockname()[1]
        self.received: list[Osc] = []
        self.undecodable: list[bytes] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            rx = time.time_ns()
            try:
                msgs = _decode(data, rx)
            except Exception:  # noqa: BLE001  (recorded: tests assert there is none)
                with self._lock:
                    self.undecodable.append(data)
                continue
            with self._lock:
                self.received.extend(msgs)

    def messages(self, address: str | None = None, *, pings: bool = False) -> list[Osc]:
        """What arrived so far (``/madang/ping`` and the ``/madang/key`` markers left out)."""
        with self._lock:
            out = list(self.received)
        if address is not None:
            return [m for m in out if m.address == address]
        skip = () if pings else ("/madang/ping", "/madang/key")
        return [m for m in out if m.address not in skip]

    def wait_for(self, address: str, count: int = 1, timeout: float = WAIT_S) -> list[Osc]:
        """Wait until ``count`` messages with ``address`` have arrived; returns them."""
        return list(
            wait_until(
                lambda: (lambda ms: ms if len(ms) >= count else None)(self.messages(address)),
                timeout,
                f"{count} x {address} on UDP port {self.port}",
            )
        )

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def osc_sink() -> Iterator[Callable[[], OscSink]]:
    """A factory of :class:`OscSink` servers, closed after the test."""
    sinks: list[OscSink] = []

    def make() -> OscSink:
        sinks.append(OscSink())
        return sinks[-1]

    yield make
    for s in sinks:
        s.close()


# ---------------------------------------------------------------------------------------------
# MQTT


@dataclass(frozen=True)
class Mqtt:
    """One MQTT message as a subscriber received it (``body`` is the JSON, or None)."""

    rx_ns: int
    topic: str
    payload: bytes
    retain: bool

    @property
    def body(self) -> Any:
        try:
            return json.loads(self.payload)
        except ValueError:
            return None


class MqttObserver:
    """A paho client on the test's broker, subscribed to ``topic`` (``#`` by default)."""

    def __init__(self, port: int, topic: str = "#", client_id: str = "itest-observer") -> None:
        self.received: list[Mqtt] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError(f"MQTT observer could not subscribe on port {port}")

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        m = Mqtt(time.time_ns(), msg.topic, bytes(msg.payload), bool(msg.retain))
        with self._lock:
            self.received.append(m)

    def messages(self, topic: str | None = None, *, prefix: str | None = None) -> list[Mqtt]:
        with self._lock:
            out = list(self.received)
        if topic is not None:
            out = [m for m in out if m.topic == topic]
        if prefix is not None:
            out = [m for m in out if m.topic.startswith(prefix)]
        return out

    def cues(self) -> list[Mqtt]:
        """Cue messages for ``app`` devices (docs/protocol.md: ``madang/cue...``)."""
        return [m for m in self.messages() if m.topic == "madang/cue" or m.topic.startswith("madang/cue/")]

    def states(self) -> list[str]:
        """The ``state`` of every ``madang/controller/state`` message, in order."""
        return [m.body["state"] for m in self.messages("madang/controller/state")]

    def wait_for(
        self, pred: Callable[[Mqtt], bool], count: int = 1, what: str = "MQTT message"
    ) -> list[Mqtt]:
        """Wait until ``count`` messages satisfy ``pred``; returns all that do."""

        def found() -> list[Mqtt] | None:
            ms = [m for m in self.messages() if pred(m)]
            return ms if len(ms) >= count else None

        return list(wait_until(found, what=what))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def retained(port: int, topic: str, timeout: float = 5.0) -> Mqtt | None:
    """The message retained on ``topic`` (None if there is none): a fresh subscriber's view."""
    obs = MqttObserver(port, topic, client_id=f"itest-retained-{os.getpid()}-{time.monotonic_ns()}")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [m for m in obs.messages(topic) if m.retain]
            if got:
                return got[-1]
            time.sleep(0.02)
        return None
    finally:
        obs.close()


# ---------------------------------------------------------------------------------------------
# venue files


def write_venue(tmp_path: Path, *, t: int, n: int, x: int) -> Path:
    """The yard venue (tests/data/yard-venue.yaml.in) with its three OSC devices on these ports."""
    text = string.Template((DATA / "yard-venue.yaml.in").read_text(encoding="utf-8")).substitute(
        PORT_T=t, PORT_N=n, PORT_X=x
    )
    path = tmp_path / "yard-venue.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# the controller process


class Controller:
    """``madang run`` as a child process, with a client for its OSC control port."""

    def __init__(
        self,
        show: Path,
        venue: Path,
        broker_url: str,
        *extra: str,
        control_port: int | None = None,
        degrade_all: bool = True,
    ) -> None:
        """``degrade_all``: the sinks and observers of these tests never answer a ping, so every
        device is degraded (played on receipt) and the sync gate does not hold GO; the gate
        itself is tested against simulated devices that do (test_sync_gate.py)."""
        self.control_port = control_port if control_port is not None else free_udp_port()
        self.args = [
            sys.executable,
            "-m",
            "madang",
            "run",
            str(show),
            "--venue",
            str(venue),
            "--broker",
            broker_url,
            "--no-view",
            "--control-port",
            str(self.control_port),
            *(["--degrade", "all"] if degrade_all else []),
            *extra,
        ]
        # Output goes to files, not pipes: a chatty controller must never block on a full pipe.
        self._out = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._err = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.args,
            cwd=REPO,
            stdout=self._out,
            stderr=self._err,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.stdout = ""
        self.stderr = ""
        self._ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._ctl.bind(("127.0.0.1", 0))

    # -- control port ---------------------------------------------------------------------

    def send(self, address: str, *args: Any) -> None:
        """Send one control message; do not wait for the reply."""
        b = OscMessageBuilder(address)
        for a in args:
            b.add_arg(a)
        self._ctl.sendto(b.build().dgram, ("127.0.0.1", self.control_port))

    def send_raw(self, data: bytes) -> None:
        self._ctl.sendto(data, ("127.0.0.1", self.control_port))

    def reply(self, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        """The next reply on the control socket: (OSC address, decoded JSON)."""
        self._ctl.settimeout(timeout)
        data, _ = self._ctl.recvfrom(65536)
        msg = OscMessage(data)
        return msg.address, json.loads(msg.params[0])

    def command(self, address: str, *args: Any) -> dict[str, Any]:
        """Send a control message and return its decoded ``/reply`` (checked to match)."""
        self.send(address, *args)
        reply_address, body = self.reply()
        assert reply_address == "/reply" + address, (reply_address, body)
        return body

    def until(self, pred: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
        """:func:`wait_until`, failing at once (with the controller's stderr) if it exits."""

        def check() -> Any:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise AssertionError(f"controller exited ({code}) before {what}:\n{self.drain()}")
            return pred()

        return wait_until(check, timeout, what)

    def wait_ready(self) -> None:
        """Wait until the control port answers ``/state`` (the show is loaded and armed)."""

        def probe() -> bool:
            assert self.proc.poll() is None, f"controller exited early:\n{self.drain()}"
            self.send("/state")
            try:
                self.reply(timeout=0.2)
            except TimeoutError:
                return False
            return True

        wait_until(probe, timeout=60, what="the control port to answer /state")

    # -- process --------------------------------------------------------------------------

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        """Wait for the process to exit; returns its exit code (output kept in stdout/stderr)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._read()
            raise AssertionError(f"controller did not exit; stderr:\n{self.stderr[-4000:]}") from None
        self._read()
        return self.proc.returncode

    def _read(self) -> None:
        self._out.seek(0)
        self._err.seek(0)
        self.stdout, self.stderr = self._out.read(), self._err.read()

    def drain(self) -> str:
        if self.proc.poll() is not None:
            self.wait()
        return self.stderr[-4000:]

    def close(self) -> None:
        self._ctl.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
        self._err.close()


@pytest.fixture
def controllers() -> Iterator[Callable[..., Controller]]:
    """Start controllers with ``controllers(show, venue, broker_url, *args)``; killed after the test."""
    started: list[Controller] = []

    def start(show: Path, venue: Path, broker_url: str, *extra: str, **kw: Any) -> Controller:
        started.append(Controller(show, venue, broker_url, *extra, **kw))
        return started[-1]

    yield start
    for c in started:
        c.close()
