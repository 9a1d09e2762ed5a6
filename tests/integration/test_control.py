"""End to end: the OSC control port of a running ``madang run`` (controller/control.py).

Commands go over UDP from 127.0.0.1 as Companion or QLab would send them; what the devices
receive is observed on real UDP endpoints and a private Mosquitto. The show
(tests/data/yard-control.yaml) waits for GO at every cue, so nothing happens unless a command
says so.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulators.broker import MosquittoBroker
from tests.integration.conftest import DATA, Controller, MqttObserver, OscSink, wait_until, write_venue

pytestmark = pytest.mark.integration

SHOW = DATA / "yard-control.yaml"
QUIET_S = 0.6  # how long "nothing happened" is watched for


@dataclass
class Yard:
    t: OscSink
    n: OscSink
    x: OscSink
    obs: MqttObserver
    venue: Path
    broker: MosquittoBroker
    report: Path

    @property
    def sinks(self) -> tuple[OscSink, OscSink, OscSink]:
        return (self.t, self.n, self.x)

    def addresses(self) -> set[str]:
        return {m.address for s in self.sinks for m in s.messages()}


@pytest.fixture
def yard(tmp_path: Path, fresh_mosquitto: MosquittoBroker, osc_sink: Callable[[], OscSink]) -> Iterator[Yard]:
    t, n, x = osc_sink(), osc_sink(), osc_sink()
    obs = MqttObserver(fresh_mosquitto.port)
    try:
        yield Yard(
            t,
            n,
            x,
            obs,
            write_venue(tmp_path, t=t.port, n=n.port, x=x.port),
            fresh_mosquitto,
            tmp_path / "report.json",
        )
    finally:
        obs.close()


def _start(yard: Yard, controllers: Callable[..., Controller], *extra: str) -> Controller:
    return controllers(SHOW, yard.venue, yard.broker.url, "--report", str(yard.report), *extra)


def _stop(ctl: Controller, yard: Yard) -> dict[str, object]:
    """SIGTERM, a clean exit, and the post-show report."""
    ctl.signal(signal.SIGTERM)
    rc = ctl.wait()
    assert rc == 0, ctl.stderr[-4000:]
    assert "Traceback" not in ctl.stderr, ctl.stderr[-4000:]
    report: dict[str, object] = json.loads(yard.report.read_text(encoding="utf-8"))
    return report


def _brightness_counts(yard: Yard) -> list[int]:
    """How many /brightness messages each sink holds now: the safe state must come after these."""
    return [len(s.messages("/brightness")) for s in yard.sinks]


def _safe_state_everywhere(yard: Yard, before: list[int]) -> None:
    """Every OSC device's last /brightness is 0.0, app devices got a panic op, the lamp its level 0.

    ``before`` is what ``_brightness_counts`` read just before the stop or panic command: a fade
    that starts ``from: 0`` also sends a plain 0.0, so only what arrives after the command counts.
    """
    for s, n in zip(yard.sinks, before, strict=True):
        # A plain message (no timetag: the safe state is sent and applied now), brightness 0.

        def safe(s: OscSink = s, n: int = n) -> bool:
            return any(m.args == (0.0,) and m.timetag is None for m in s.messages("/brightness")[n:])

        wait_until(safe, what=f"the safe state on UDP port {s.port}")
    for s in yard.sinks:
        last = s.messages("/brightness")[-1]
        assert last.args == (0.0,), (s.port, s.messages("/brightness")[-3:])
    panic = yard.obs.wait_for(lambda m: m.topic == "madang/cue" and "panic" in m.body["op"])
    assert panic[0].body["op"] == {"panic": {}}
    yard.obs.wait_for(lambda m: m.topic == "madang/dev/lamp-1/param/level" and m.body["value"] == 0)


def test_go_debounce_go_cue_pause_resume_stop_and_malformed(
    yard: Yard, controllers: Callable[..., Controller]
) -> None:
    ctl = _start(yard, controllers)
    ctl.wait_ready()
    state = ctl.command("/state")
    assert state["status"] == "ok" and state["data"]["state"] == "armed"
    assert state["data"]["standby"] == "one"

    # GO twice within the debounce window: one accepted, one refused as a double-tap.
    ctl.send("/go")
    ctl.send("/go")
    replies = [ctl.reply(), ctl.reply()]
    assert [a for a, _ in replies] == ["/reply/go", "/reply/go"]
    assert sorted(b["status"] for _, b in replies) == ["error", "ok"]
    refused = next(b for _, b in replies if b["status"] == "error")
    assert "double-tap" in refused["data"]
    for s in yard.sinks:
        s.wait_for("/one")
    time.sleep(QUIET_S)
    for s in yard.sinks:
        assert len(s.messages("/one")) == 1
        assert not s.messages("/two"), "the refused GO started the next cue"

    # Malformed packets on the control port: counted, dropped, the show carries on.
    junk = [
        b"garbage",  # not a multiple of 4 bytes
        b"\xff" * 64,  # neither a message nor a bundle
        b"/go\x00,i\x00\x00",  # the int its type tags promise is missing
        b"#bundle\x00" + b"\x00" * 7 + b"\x01" + b"\x00\x00\x01\x00",  # element runs past the end
    ]
    for j in junk:
        ctl.send_raw(j)
    assert ctl.command("/state")["status"] == "ok"

    # GO a named cue: it starts now; the cue on the playhead before it (two) is skipped.
    body = ctl.command("/go/long")
    assert body["status"] == "ok" and body["data"]["cue"] == "long"
    for s in yard.sinks:
        s.wait_for("/long/a")
    # Pause before /long/b (1.5 s into the cue) and hold well past it: nothing more arrives.
    paused_at = time.time()
    body = ctl.command("/pause")
    assert body["status"] == "ok" and body["data"]["state"] == "paused"
    time.sleep(2.0)
    assert "/long/b" not in yard.addresses()
    assert not [
        m
        for m in yard.obs.cues()
        if m.body["cue"] == "long"
        and "mqtt" in m.body["op"]
        and m.body["op"]["mqtt"]["payload"] == {"scene": "long-b"}
    ]
    body = ctl.command("/resume")
    assert body["status"] == "ok" and body["data"]["state"] == "playing"
    for s in yard.sinks:
        s.wait_for("/long/b")
    # Re-anchored at resume: /long/b comes after the pause plus what was left. (The sink never
    # answers a ping, so it has no clock model: it is played on receipt, its bundle timetagged
    # "immediately", never with an instant guessed without a model.)
    flash_b = yard.t.messages("/long/b")[0]
    assert flash_b.timetag == 0 and flash_b.rx_ns / 1e9 > paused_at + 2.0
    long_b = yard.obs.wait_for(
        lambda m: (
            m.topic == "madang/cue" and m.body["op"].get("mqtt", {}).get("payload") == {"scene": "long-b"}
        )
    )
    assert long_b[0].body["at"] / 1e9 > paused_at + 2.0
    assert not any(s.messages("/two") for s in yard.sinks)

    before = _brightness_counts(yard)
    body = ctl.command("/stop")
    assert body["status"] == "ok" and body["data"]["state"] == "stopped"
    _safe_state_everywhere(yard, before)
    report = _stop(ctl, yard)
    control = report["control"]
    assert isinstance(control, dict)
    assert control["malformed"] == len(junk)
    assert control["denied"] == 0
    assert control["rejected"] == 1  # the double-tap


def test_panic_sends_every_device_to_its_safe_state(
    yard: Yard, controllers: Callable[..., Controller]
) -> None:
    ctl = _start(yard, controllers)
    ctl.wait_ready()
    assert ctl.command("/go/long")["status"] == "ok"
    for s in yard.sinks:
        s.wait_for("/long/a")
    # Panic in the middle of the lamp's streamed fade (a value every 20 ms, each sent at its
    # instant): no value may follow the safe state.
    lamp = "madang/dev/lamp-1/param/level"
    yard.obs.wait_for(lambda m: m.topic == lamp and 0 < m.body["value"] < 1, count=3)
    before = _brightness_counts(yard)
    body = ctl.command("/panic")
    assert body["status"] == "ok" and body["data"]["state"] == "panicked"
    _safe_state_everywhere(yard, before)
    time.sleep(QUIET_S)
    assert yard.obs.messages(lamp)[-1].body == {"param": "level", "value": 0}
    assert "/long/b" not in yard.addresses()
    time.sleep(0.3)  # past the debounce window, so a refusal can only be the panicked state's
    body = ctl.command("/go")
    assert body["status"] == "error"
    assert ctl.command("/state")["data"]["state"] == "panicked"
    _stop(ctl, yard)


def test_seek_sends_catch_up_state_and_plays_on(yard: Yard, controllers: Callable[..., Controller]) -> None:
    ctl = _start(yard, controllers)
    ctl.wait_ready()
    assert ctl.command("/go")["status"] == "ok"
    # Cue one fades every display's brightness 0 -> 0.5 over 200 ms; wait for its last frame.
    for s in yard.sinks:

        def faded(s: OscSink = s) -> bool:
            return any(m.args == (0.5,) for m in s.messages("/brightness"))

        ctl.until(faded, "the fade's end")
    seek_sent = time.time()
    body = ctl.command("/seek", 1.0)  # inside cue "long" (0.2 s .. 1.7 s on the nominal timeline)
    assert body["status"] == "ok" and body["data"]["state"] == "playing"
    assert body["data"]["cue"] == "long"
    # App devices: one `state` op each on their own topic, what they should show at 1.0 s.
    states = yard.obs.wait_for(lambda m: m.topic.startswith("madang/cue/dev/") and "state" in m.body["op"], 3)
    assert {m.topic for m in states} == {f"madang/cue/dev/xr-{i}" for i in (1, 2, 3)}
    for m in states:
        assert m.body["op"]["state"]["mqtt"] == {"xr/{device}/scene": {"scene": "one"}}
    # OSC devices: the last value of each parameter and of each address, as plain messages.
    expected = {("/brightness", (0.5,)), ("/one", (1,)), ("/two", (2,)), ("/long/a", (1,))}
    for s in yard.sinks:

        def caught(s: OscSink = s) -> set[tuple[str, tuple[object, ...]]]:
            return {
                (m.address, m.args) for m in s.messages() if m.rx_ns / 1e9 >= seek_sent and m.timetag is None
            }

        ctl.until(lambda: len(caught()) >= len(expected), f"catch-up state on UDP port {s.port}")
        # Every address the nominal timeline has sent by 1.0 s, with its last arguments.
        assert caught() == expected
    # And the show plays on from 1.0 s: /long/b (at 1.5 s) follows.
    for s in yard.sinks:
        s.wait_for("/long/b")
    flash_b = yard.t.messages("/long/b")[0]
    assert flash_b.timetag == 0 and flash_b.rx_ns / 1e9 > seek_sent  # on receipt: no clock model
    _stop(ctl, yard)


def test_command_from_a_source_not_allowed_is_refused(
    yard: Yard, controllers: Callable[..., Controller]
) -> None:
    ctl = _start(yard, controllers, "--control-allow", "10.0.0.0/8")
    ctl.until(lambda: "armed" in yard.obs.states(), "the controller to arm")
    for address in ("/go", "/panic", "/state"):
        ctl.send(address)
    with pytest.raises(TimeoutError):
        ctl.reply(timeout=QUIET_S)  # no reply at all to a source that is not allowed
    time.sleep(QUIET_S)
    assert not yard.addresses(), "a refused command reached the devices"
    assert not yard.obs.cues()
    assert yard.obs.states()[-1] == "armed"
    report = _stop(ctl, yard)
    control = report["control"]
    assert isinstance(control, dict)
    assert control["denied"] == 3 and control["accepted"] == 0
