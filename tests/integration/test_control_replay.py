"""End to end: playing a show again without a restart, and feedback pushed to subscribed surfaces.

A real ``madang run`` child process, a private Mosquitto, UDP endpoints standing in for displays
and an MQTT observer standing in for headsets (tests/integration/conftest.py); commands go to the
control port over UDP from 127.0.0.1 as Companion would send them.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from tests.integration import test_control
from tests.integration.conftest import DATA, WAIT_S, Controller, OscSink, wait_until
from tests.integration.test_control import Yard, _start, _stop

yard = test_control.yard  # the same fixture: three displays, a private Mosquitto, an MQTT observer

pytestmark = pytest.mark.integration

REPLAY = DATA / "yard-replay.yaml"


def _ok(body: dict[str, Any], state: str) -> dict[str, Any]:
    assert body["status"] == "ok", body
    assert body["data"]["state"] == state, body
    return body


def _state(ctl: Controller) -> dict[str, Any]:
    body = ctl.command("/state")
    assert body["status"] == "ok"
    data: dict[str, Any] = body["data"]
    return data


def test_stop_arm_go_plays_the_first_cue_again(yard: Yard, controllers: Callable[..., Controller]) -> None:
    ctl = controllers(REPLAY, yard.venue, yard.broker.url, "--report", str(yard.report))
    ctl.wait_ready()
    _ok(ctl.command("/go"), "playing")
    for s in yard.sinks:
        s.wait_for("/open")
    first = yard.obs.wait_for(lambda m: m.topic == "madang/cue" and m.body["cue"] == "open")
    _ok(ctl.command("/stop"), "stopped")
    time.sleep(0.3)  # past the GO debounce: a refusal below can only be the stopped state's
    refused = ctl.command("/go")
    assert refused["status"] == "error" and "/arm" in refused["data"]
    body = _ok(ctl.command("/arm"), "armed")
    assert body["data"]["standby"] == "open"  # the only cue had started: back to the top
    _ok(ctl.command("/go"), "playing")
    # Every display executes /open a second time (timetag ones read the new take's key), and the
    # headsets are sent the cue under a key they have not executed yet.
    for s in yard.sinks:
        s.wait_for("/open", count=2)
    again = yard.obs.wait_for(
        lambda m: m.topic == "madang/cue" and m.body["cue"] == "open", count=len(first) + 1
    )
    keys = {(m.body["show"], m.body["seq"]) for m in again}
    assert len({k[0] for k in keys}) == 2, keys  # two takes
    bundle_keys = {m.args for s in yard.sinks for m in s.messages("/madang/key")}
    assert len({k[0] for k in bundle_keys}) == 2 or not bundle_keys, bundle_keys
    assert _state(ctl)["take"] == 2
    # A second stop sends a panic op again: app devices execute it too (a key of its own).
    _ok(ctl.command("/stop"), "stopped")
    panics = yard.obs.wait_for(lambda m: m.topic == "madang/cue" and "panic" in m.body["op"], count=2)
    assert len({(m.body["cue"], m.body["seq"]) for m in panics}) == len(panics)
    _stop(ctl, yard)


def test_panic_arm_load_60_go_plays_from_60_s_with_catch_up_state(
    yard: Yard, controllers: Callable[..., Controller]
) -> None:
    ctl = controllers(REPLAY, yard.venue, yard.broker.url, "--report", str(yard.report))
    ctl.wait_ready()
    _ok(ctl.command("/go"), "playing")
    for s in yard.sinks:
        s.wait_for("/open")
    _ok(ctl.command("/panic"), "panicked")
    _ok(ctl.command("/arm"), "armed")
    loaded_at = time.time()
    body = _ok(ctl.command("/load", 60), "armed")
    assert body["data"]["standby"] == "open"
    st = _state(ctl)
    assert st["show_ns"] == 60_000_000_000 and st["state"] == "armed"
    # Catch-up state at once: displays get the last message of each address by 60 s (plain, now),
    # each headset a `state` op on its own topic with what the show has at 60 s.
    expected = {("/open", (1,)), ("/level", (0.75,))}
    for s in yard.sinks:

        def caught(s: OscSink = s) -> bool:
            fresh = [m for m in s.messages() if m.rx_ns / 1e9 >= loaded_at and m.timetag is None]
            return expected <= {(m.address, m.args) for m in fresh}

        ctl.until(caught, f"catch-up state on UDP port {s.port}")
        assert not [m for m in s.messages("/flash")], "nothing after 60 s may arrive before GO"
    states = yard.obs.wait_for(
        lambda m: (
            m.topic.startswith("madang/cue/dev/xr-")
            and "state" in m.body["op"]
            and m.rx_ns / 1e9 >= loaded_at
        ),
        count=3,
    )
    assert {m.topic for m in states} == {f"madang/cue/dev/xr-{i}" for i in (1, 2, 3)}
    for m in states:
        assert m.body["op"]["state"]["mqtt"] == {"xr/{device}/scene": {"scene": "river"}}
    time.sleep(0.6)
    assert not any(s.messages("/flash") for s in yard.sinks)  # armed: nothing plays before GO
    go_at = time.time()
    _ok(ctl.command("/go"), "playing")
    # It plays on from 60 s: /flash (at 61 s) about a second after GO, not a minute.
    for s in yard.sinks:
        flash = s.wait_for("/flash")[0]
        assert flash.rx_ns / 1e9 < go_at + 30, "played from the top instead of from 60 s"
    assert not any(m.address == "/open" and m.rx_ns / 1e9 >= go_at for s in yard.sinks for m in s.messages())
    _stop(ctl, yard)


class Surface:
    """A second control surface (a Companion) on its own UDP socket."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.got: list[tuple[str, tuple[Any, ...]]] = []

    def send(self, address: str, *args: Any) -> None:
        b = OscMessageBuilder(address)
        for a in args:
            b.add_arg(a)
        self.sock.sendto(b.build().dgram, ("127.0.0.1", self.port))

    def receive(self, timeout: float = 0.05) -> None:
        self.sock.settimeout(timeout)
        try:
            while True:
                data, _ = self.sock.recvfrom(65536)
                m = OscMessage(data)
                self.got.append((m.address, tuple(m.params)))
        except (TimeoutError, BlockingIOError):
            return

    def wait_for(self, address: str, value: Any) -> None:
        def seen() -> bool:
            self.receive()
            return (address, (value,)) in self.got

        wait_until(seen, WAIT_S, f"{address} {value!r} pushed to the surface")

    def updates(self, address: str) -> list[Any]:
        self.receive()
        return [args[0] for a, args in self.got if a == address]


@pytest.fixture
def surface() -> Iterator[Callable[[int], Surface]]:
    made: list[Surface] = []

    def make(port: int) -> Surface:
        made.append(Surface(port))
        return made[-1]

    yield make
    for s in made:
        s.sock.close()


def test_a_subscribed_surface_sees_what_another_surface_and_the_show_do(
    yard: Yard, controllers: Callable[..., Controller], surface: Callable[[int], Surface]
) -> None:
    ctl = _start(yard, controllers)
    ctl.wait_ready()
    deck = surface(ctl.control_port)
    deck.send("/updates", 1)
    deck.wait_for("/reply/updates", json.dumps({"address": "/updates", "status": "ok",
                                                "data": {"updates": 1, "renew_within_s": 60}},
                                               separators=(",", ":")))
    deck.wait_for("/update/transport", "armed")  # a new subscriber gets the state at once
    deck.wait_for("/update/playhead", "one")
    # Another surface (the test's controller client) presses GO: the deck is told.
    _ok(ctl.command("/go"), "playing")
    deck.wait_for("/update/transport", "playing")
    deck.wait_for("/update/playhead", "two")
    deck.wait_for("/update/cue", "one")
    full = [json.loads(s) for s in deck.updates("/update/state")]
    assert full[-1]["address"] == "/state" and full[-1]["data"]["state"] == "playing"
    # The /state reply, less the sync gate's counts (they change with every pong: ask /state)
    # and the controller's role (a pair's in-step counters change with every record).
    reply = _state(ctl)
    assert "sync" in reply and reply["role"]["live"] is True
    del reply["sync"], reply["role"]
    assert full[-1]["data"] == {**reply, "show_ns": full[-1]["data"]["show_ns"]}
    # Nothing is pushed to the surface that did not subscribe, beyond its replies.
    with pytest.raises(TimeoutError):
        ctl.reply(timeout=0.3)
    # The show itself: GO the last cue; it ends at once and the show stops by itself.
    time.sleep(0.3)
    _ok(ctl.command("/go/last"), "playing")
    deck.wait_for("/update/transport", "stopped")
    deck.wait_for("/update/playhead", "")
    # Arm from the other surface; then unsubscribe: nothing more arrives.
    _ok(ctl.command("/arm"), "armed")
    deck.wait_for("/update/transport", "armed")
    deck.send("/updates", 0)
    deck.wait_for("/reply/updates", json.dumps({"address": "/updates", "status": "ok",
                                                "data": {"updates": 0, "was_subscribed": True}},
                                               separators=(",", ":")))
    n = len(deck.got)
    time.sleep(0.3)
    _ok(ctl.command("/go"), "playing")
    time.sleep(0.6)
    deck.receive()
    assert [a for a, _ in deck.got[n:] if a.startswith("/update/")] == []
    report = _stop(ctl, yard)
    control = report["control"]
    assert isinstance(control, dict) and control["updates_sent"] > 0 and control["updates_dropped"] == 0
