"""End to end: the control port's passcodes on a running ``madang run`` (controller/control.py).

The secrets come from files, so the port asks for ``/connect <passcode>`` (``--control-passcode
auto``). Commands go over real UDP from 127.0.0.1; what the devices receive is observed on real
UDP endpoints and a private Mosquitto (tests/data/yard-control.yaml waits for GO at every cue).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from tests.integration.conftest import Controller
from tests.integration.test_control import QUIET_S, Yard, _start, _stop, yard

pytestmark = pytest.mark.integration
__all__ = ["yard"]  # the fixture, imported for these tests

OPERATOR, VIEWER = "op-passcode-2026", "view-passcode-2026"


def _secrets(tmp_path: Path) -> list[str]:
    (tmp_path / "operator.secret").write_text(OPERATOR + "\n", encoding="utf-8")
    (tmp_path / "viewer.secret").write_text(VIEWER + "\n", encoding="utf-8")
    return [
        "--operator-token-file",
        str(tmp_path / "operator.secret"),
        "--viewer-token-file",
        str(tmp_path / "viewer.secret"),
    ]


def test_passcodes_gate_every_command_and_the_viewer_only_watches(
    yard: Yard, controllers: Callable[..., Controller], tmp_path: Path
) -> None:
    ctl = _start(yard, controllers, *_secrets(tmp_path))
    ctl.wait_ready()

    # No session: nothing drives, nothing is read.
    for address in ("/go", "/panic", "/state"):
        body = ctl.command(address)
        assert body["status"] == "denied" and "/connect" in body["data"], body
    # A wrong passcode is refused.
    assert ctl.command("/connect", "not-the-passcode")["data"] == "badpass"

    # The viewer watches but cannot drive.
    assert ctl.command("/connect", VIEWER)["data"]["role"] == "viewer"
    assert ctl.command("/state")["data"]["state"] == "armed"
    body = ctl.command("/go")
    assert body["status"] == "denied" and "view-only" in body["data"]
    time.sleep(QUIET_S)
    assert not any(s.messages("/one") for s in yard.sinks), "a viewer's GO reached the devices"

    # The operator drives.
    assert ctl.command("/connect", OPERATOR)["data"]["role"] == "operator"
    assert ctl.command("/go")["status"] == "ok"
    for s in yard.sinks:
        s.wait_for("/one")

    # Guessing from another port of the same host: refused after the allowance, even the right one.
    guesser = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    guesser.bind(("127.0.0.1", 0))
    guesser.settimeout(5)
    statuses = []
    for passcode in [f"guess-{i:04d}" for i in range(5)] + [OPERATOR]:
        b = OscMessageBuilder("/connect")
        b.add_arg(passcode)
        guesser.sendto(b.build().dgram, ("127.0.0.1", ctl.control_port))
        statuses.append(guesser.recvfrom(65536)[0])
    guesser.close()
    assert b"badpass" in statuses[4] and b"too many wrong passcodes" in statuses[5]

    report = _stop(ctl, yard)
    control = report["control"]
    assert isinstance(control, dict)
    assert control["passcode"] is True
    assert control["unauthenticated"] >= 3  # and the /state of wait_ready
    assert control["view_only"] == 1
    assert control["bad_passcode"] == 6
    assert control["passcode_blocked"] == 1


def test_loopback_without_secrets_asks_for_none(yard: Yard, controllers: Callable[..., Controller]) -> None:
    ctl = _start(yard, controllers)
    ctl.wait_ready()
    assert ctl.command("/go")["status"] == "ok"
    assert ctl.command("/connect", "anything")["data"] == {"role": "operator", "passcode": "not required"}
    report = _stop(ctl, yard)
    assert isinstance(report["control"], dict) and report["control"]["passcode"] is False
