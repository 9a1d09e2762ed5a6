"""Fixtures shared by every test package: a private Mosquitto broker, liblo's oscdump.

Tests never use a system broker (on 1883 or anywhere else): each session starts its own on a
free port of 127.0.0.1. When mosquitto is not installed, tests that need it are skipped with
the install command.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import NoReturn

import pytest
from hypothesis import HealthCheck, settings

from controller.osc import encode_message
from simulators.broker import BrokerNotFound, MosquittoBroker

# Two shared cores make per-example deadlines meaningless (a GC pause or another process is not a
# failure of the property). Under CI (CI=true) runs are derandomized so a red build reproduces.
settings.register_profile(
    "madang",
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("madang")


@pytest.fixture(autouse=True)
def _private_state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own ``XDG_STATE_HOME``: ``madang run`` keeps a show's journal there by
    default, and tests (of the same show, perhaps at once) must not share or leave journals."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


def missing_tool(what: str, package: str) -> NoReturn:
    """A test's outside tool is not installed: skip with the install command, but fail under CI,
    where .ci/run installs it from Debian's packages (its absence there is a broken build)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is not installed under CI (.ci/run installs Debian's {package})")
    pytest.skip(f"{what} is not installed (apt-get install {package})")


def _started(broker: MosquittoBroker) -> MosquittoBroker:
    try:
        return broker.start()
    except BrokerNotFound as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))  # CI installs mosquitto (.ci/run): its absence is a failure there
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[MosquittoBroker]:
    """A broker shared by the whole test session. Do not stop or restart it: use ``fresh_mosquitto``."""
    broker = MosquittoBroker()
    try:
        yield _started(broker)
    finally:
        broker.close()


@pytest.fixture
def fresh_mosquitto() -> Iterator[MosquittoBroker]:
    """A broker of this test's own, free to stop, kill and restart (fault tests)."""
    broker = MosquittoBroker()
    try:
        yield _started(broker)
    finally:
        broker.close()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def oscdump() -> Iterator[tuple[int, queue.Queue[str]]]:
    """liblo's ``oscdump`` listening on a free UDP port of 127.0.0.1: (port, the lines it prints).
    An independent OSC implementation to decode what Madang sends."""
    binary = shutil.which("oscdump")
    if binary is None:
        missing_tool("liblo's oscdump", "liblo-tools")
    lines: queue.Queue[str] = queue.Queue()
    port = _free_udp_port()
    proc = subprocess.Popen(
        # liblo reads a host in a server URL as a multicast group, so give the bare port; we only
        # ever send to it over 127.0.0.1.
        [binary, "-L", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    assert proc.stdout is not None
    stdout = proc.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        # oscdump prints nothing when it is ready: probe until a probe is echoed back.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            deadline = time.monotonic() + 10
            while True:
                s.sendto(encode_message("/probe", []), ("127.0.0.1", port))
                try:
                    if "/probe" in lines.get(timeout=0.05):
                        break
                except queue.Empty:
                    assert proc.poll() is None, "oscdump exited"
                    assert time.monotonic() < deadline, "oscdump never answered"
        while not lines.empty():
            lines.get_nowait()
        yield port, lines
    finally:
        proc.terminate()
        proc.wait(timeout=5)
