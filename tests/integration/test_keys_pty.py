"""The live view's keys, end to end: the real ``madang run SHOW --simulate`` in a pseudo-terminal
(its controlling terminal, as in a shell), driven by key presses; every transition is read back
from the transport state on the OSC control port (``/state``), as Companion would see it.

Finding 1 of the operator's-night issue: the live view read no key (Space, g and Enter did
nothing) and the terminal echoed what was typed into the view.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from tests.integration.conftest import REPO, free_udp_port, wait_until

pytestmark = pytest.mark.integration

SIM_YARD = Path(__file__).resolve().parents[1] / "data" / "sim" / "sim-yard.yaml"
START_S = 120.0  # compiling, warming the sync kernels and starting a broker on a loaded machine
RETRY_S = 1.0  # a GO that a guard refused (a sync gate before every device is synced) is pressed again


class Terminal:
    """A pseudo-terminal whose output is read all the time (a full one would block the child)."""

    def __init__(self, rows: int = 50, cols: int = 160) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.cooked = termios.tcgetattr(self.slave)
        self._out = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the last holder of the other side has gone
                return
            if not data:
                return
            with self._lock:
                self._out += data

    def text(self) -> str:
        with self._lock:
            raw = bytes(self._out)
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode("utf-8", "replace"))

    def press(self, data: bytes) -> None:
        os.write(self.master, data)

    def lflag(self) -> int:
        return int(termios.tcgetattr(self.master)[3])  # the pty's modes, as its child set them

    def close(self) -> None:
        os.close(self.master)
        self._reader.join(timeout=5)


class ControlClient:
    """Asks ``/state`` on the control port, as an OSC surface would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)

    def state(self) -> str | None:
        self.sock.sendto(OscMessageBuilder("/state").build().dgram, ("127.0.0.1", self.port))
        try:
            data, _ = self.sock.recvfrom(65536)
        except TimeoutError:
            return None
        body = json.loads(OscMessage(data).params[0])
        state: str = body["data"]["state"]
        return state

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def show_in_a_terminal() -> Iterator[tuple[subprocess.Popen[bytes], Terminal, ControlClient]]:
    term = Terminal()
    port = free_udp_port()

    def controlling_terminal() -> None:  # runs in the child, after setsid: stdin's pty becomes its tty
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "madang", "run", str(SIM_YARD), "--simulate", "--control-port", str(port)],
        stdin=term.slave,
        stdout=term.slave,
        stderr=term.slave,
        cwd=REPO,
        env={**os.environ, "TERM": "xterm-256color", "PATH": os.environ.get("PATH", "") + ":/usr/sbin"},
        start_new_session=True,
        preexec_fn=controlling_terminal,  # the pty becomes its controlling terminal, as in a shell
    )
    os.close(term.slave)
    ctl = ControlClient(port)
    try:
        yield proc, term, ctl
    finally:
        ctl.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        term.close()


def _press_until(
    proc: subprocess.Popen[bytes], term: Terminal, ctl: ControlClient, key: bytes, state: str
) -> None:
    """Press ``key`` until ``/state`` says ``state`` (pressed again only after a refusal)."""
    deadline = time.monotonic() + START_S
    while True:
        assert proc.poll() is None, f"madang exited ({proc.returncode}):\n{term.text()[-4000:]}"
        term.press(key)
        until = time.monotonic() + RETRY_S
        while time.monotonic() < until:
            if ctl.state() == state:
                return
            time.sleep(0.05)
        if time.monotonic() > deadline:
            raise AssertionError(f"{key!r} never led to {state}; screen:\n{term.text()[-4000:]}")


def test_space_esc_a_space_then_ctrl_c_drive_the_show(
    show_in_a_terminal: tuple[subprocess.Popen[bytes], Terminal, ControlClient],
) -> None:
    proc, term, ctl = show_in_a_terminal
    wait_until(lambda: proc.poll() is not None or ctl.state() == "armed", START_S, "the control port: armed")
    assert proc.poll() is None, term.text()[-4000:]
    wait_until(lambda: "ARMED" in term.text(), START_S, "the live view")

    _press_until(proc, term, ctl, b" ", "playing")  # Space: GO
    # The view reads keys: the terminal neither echoes them nor turns them into signals.
    lflag = term.lflag()
    assert not lflag & termios.ECHO and not lflag & termios.ICANON and not lflag & termios.ISIG
    # The key hints (waited for: a loaded machine may show a frame half drawn).
    wait_until(lambda: "Space GO · Esc panic" in term.text(), START_S, "the key hints")
    _press_until(proc, term, ctl, b"\x1b", "panicked")  # Esc: panic (once nothing follows it)
    _press_until(proc, term, ctl, b"a", "armed")  # A: arm
    _press_until(proc, term, ctl, b" ", "playing")  # Space again: the show plays again

    term.press(b"\x03")  # Ctrl-C: the show ends the clean way
    assert proc.wait(timeout=120) == 0, term.text()[-4000:]
    # The reader may still be draining the last frame and the report.
    wait_until(lambda: "sync report" in term.text(), 30, "the report after the show")
    screen = term.text()
    assert "Traceback" not in screen, screen[-4000:]
    for line in ("key Space", "key Esc", "key a", "-> panicked", "-> armed", "ending the show"):
        assert line in screen, (line, screen[-4000:])
    lflag = term.lflag()
    assert lflag & termios.ECHO and lflag & termios.ICANON and lflag & termios.ISIG  # given back
    assert termios.tcgetattr(term.master)[3] == term.cooked[3]
