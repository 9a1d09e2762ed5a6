"""The pair's link says each controller's audience address in its heartbeats (``web``), bounded:
what phones reconnect to after a takeover (docs/standby.md, "Phones and WebSocket devices")."""

from __future__ import annotations

from controller.failover import Role
from controller.peer import Heartbeat, decode, encode


def beat(web: str = "") -> Heartbeat:
    return Heartbeat(controller="a", run="r", term=2, role=Role.PRIMARY, witness=True, seq=3, sent=5, web=web)


def test_a_heartbeat_carries_the_audience_address() -> None:
    got = decode(encode(beat("ws://10.0.0.3:8080/audience/ws")))
    assert isinstance(got, Heartbeat) and got.web == "ws://10.0.0.3:8080/audience/ws"


def test_a_heartbeat_without_one_is_valid() -> None:
    got = decode(encode(beat()))
    assert isinstance(got, Heartbeat) and got.web == ""


def test_an_oversized_address_is_refused_not_raised() -> None:
    got = decode(encode(beat("ws://" + "x" * 600)))
    assert isinstance(got, str) and "not a peer message" in got
