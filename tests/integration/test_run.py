"""End to end: ``madang run`` as a real process, against real UDP endpoints and a real Mosquitto.

What each device receives is decoded with python-osc and paho (independent of Madang's own codec)
and checked against docs/protocol.md.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulators.broker import BrokerNotFound, MosquittoBroker
from tests.integration.conftest import (
    DATA,
    REPO,
    Controller,
    MqttObserver,
    OscSink,
    free_tcp_port,
    free_udp_port,
    retained,
    wait_until,
    write_venue,
)

pytestmark = pytest.mark.integration

SHOW = DATA / "yard-show.yaml"
CONTROL_SHOW = DATA / "yard-control.yaml"
SHOW_ID = "yard-show"

STATE = "madang/controller/state"


def _no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr[-4000:]


# ---------------------------------------------------------------------------------------------
# 1. the whole short show, --go --exit-at-end; disp-x has nothing listening (a dead endpoint)


@dataclass
class YardRun:
    rc: int
    stderr: str
    t: OscSink  # disp-t: sync timetag
    n: OscSink  # disp-n: sync none, latency 20 ms
    dead_port: int  # disp-x: nothing listens
    obs: MqttObserver
    offline: object  # the retained controller state after the run (a fresh subscriber's view)


@pytest.fixture(scope="module")
def yard_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YardRun]:
    try:
        broker = MosquittoBroker().start()
    except BrokerNotFound as exc:
        pytest.skip(str(exc))
    t, n = OscSink(), OscSink()
    dead = free_udp_port()
    venue = write_venue(tmp_path_factory.mktemp("yard"), t=t.port, n=n.port, x=dead)
    obs = MqttObserver(broker.port)
    ctl = Controller(SHOW, venue, broker.url, "--go", "--exit-at-end")
    try:
        rc = ctl.wait(timeout=60)
        # Both displays must have had the last cue; the MQTT state must have gone offline.
        t.wait_for("/flash")
        n.wait_for("/flash")
        state = retained(broker.port, STATE)
        yield YardRun(rc, ctl.stderr, t, n, dead, obs, state.body if state else None)
    finally:
        ctl.close()
        obs.close()
        t.close()
        n.close()
        broker.close()


def test_run_exits_zero_without_traceback(yard_run: YardRun) -> None:
    assert yard_run.rc == 0, yard_run.stderr[-4000:]
    _no_traceback(yard_run.stderr)


def test_every_osc_message_arrives_with_its_arguments(yard_run: YardRun) -> None:
    for sink in (yard_run.t, yard_run.n):
        assert not sink.undecodable
        got = [(m.address, m.args) for m in sink.messages()]
        assert got == [("/scene/start", (7, 0.5, "intro")), ("/flash", (1, "white"))], got


def test_timetag_device_without_a_clock_model_gets_keyed_bundles_on_receipt(yard_run: YardRun) -> None:
    msgs = yard_run.t.messages()
    assert all(m.timetag is not None for m in msgs), "a timetag device got a bare message"
    for m in msgs:
        # docs/protocol.md: the bundle begins with /madang/key ,sii show seq term
        assert m.bundle == ("/madang/key", m.address)
    keys = yard_run.t.messages("/madang/key")
    assert [k.args[0] for k in keys] == [SHOW_ID, SHOW_ID]
    assert [k.args[2] for k in keys] == [1, 1]  # the term of a controller started on its own
    assert keys[0].args[1] < keys[1].args[1]  # seq increases along the show
    # The sink never answers a ping: with no clock model, it is never sent an instant guessed
    # from the controller's clock (issue 10, finding 3), but the OSC 1.0 "immediately" timetag
    # (python-osc reads it as 0), at the cue's instant less its latency (none here) ...
    open_at = _cue(yard_run.obs, "open")[0].body["at"] / 1e9
    bloom_at = _cue(yard_run.obs, "bloom")[0].body["at"] / 1e9
    start, flash = msgs
    assert start.timetag == 0 and flash.timetag == 0
    # ... so it arrives once its instant has come, not ahead of it.
    assert start.rx_ns / 1e9 >= open_at - 1e-3 and flash.rx_ns / 1e9 >= bloom_at - 1e-3


def test_on_receipt_device_gets_plain_messages(yard_run: YardRun) -> None:
    assert all(m.timetag is None for m in yard_run.n.messages(pings=True))
    # sync: none never gets pings (it cannot answer them); sync: timetag does.
    assert not yard_run.n.messages("/madang/ping")
    assert yard_run.t.messages("/madang/ping")


def _cue(obs: MqttObserver, cue: str) -> list:  # type: ignore[type-arg]
    return [m for m in obs.cues() if m.body["cue"] == cue]


def test_app_cues_go_to_the_group_topics(yard_run: YardRun) -> None:
    opened = _cue(yard_run.obs, "open")
    # Every app device: one message on madang/cue (sent once: GO is now, no lead is left).
    assert {m.topic for m in opened} == {"madang/cue"}
    body = opened[0].body
    assert body["show"] == SHOW_ID
    assert body["op"] == {
        "mqtt": {"topic": "xr/{device}/scene", "payload": {"scene": "lobby", "zone": "{zone}"}}
    }
    assert body["show_ns"] == 0
    bloom = _cue(yard_run.obs, "bloom")
    # xr-1 alone -> its device topic; xr-3 is all of zone south -> the zone topic.
    by_topic: dict[str, list[dict[str, object]]] = {}
    for m in bloom:
        by_topic.setdefault(m.topic, []).append(m.body)
    assert set(by_topic) == {"madang/cue/dev/xr-1", "madang/cue/zone/south"}
    assert by_topic["madang/cue/dev/xr-1"][0]["op"] == {
        "mqtt": {"topic": "xr/{device}/video", "payload": {"clip": "bloom.mp4"}}
    }
    assert by_topic["madang/cue/zone/south"][0]["op"] == {
        "mqtt": {"topic": "xr/{device}/video", "payload": {"clip": "far.mp4"}}
    }
    for bodies in by_topic.values():
        # Repeats inside the lead window carry the same idempotency key and instant.
        assert len({(b["show"], b["cue"], b["seq"], b["at"]) for b in bodies}) == 1
        assert bodies[0]["show_ns"] == 600_000_000
        assert bodies[0]["at"] - body["at"] == 600_000_000
    # First sent a lead (400 ms) ahead of the instant it names.
    for topic in by_topic:
        assert min(m.rx_ns for m in bloom if m.topic == topic) < by_topic[topic][0]["at"]


def test_raw_publishes_for_plain_mqtt_devices(yard_run: YardRun) -> None:
    on = yard_run.obs.messages("lamps/lamp-1/on")
    assert [m.body for m in on] == [{"level": 1}]
    assert [m.body for m in yard_run.obs.messages("lamps/all")] == [{"level": 0.25}]
    # Never as a cue message: a sync: none device does not speak the app protocol.
    assert not [m for m in yard_run.obs.cues() if "lamp" in m.topic]


def test_controller_state_is_published_and_offline_at_the_end(yard_run: YardRun) -> None:
    states = yard_run.obs.states()
    assert "playing" in states
    assert states[-1] == "offline"
    assert states.index("playing") < states.index("stopped") < len(states) - 1
    playing = next(m.body for m in yard_run.obs.messages(STATE) if m.body["state"] == "playing")
    assert playing["show"] == SHOW_ID
    # The offline state says whose it is (a standby tells a deposed controller's from the live one's).
    assert yard_run.offline is not None and yard_run.offline["state"] == "offline"
    assert yard_run.offline["term"] >= 1 and yard_run.offline["controller"]


def test_dead_endpoint_does_not_stop_the_show(yard_run: YardRun) -> None:
    # The live endpoints got everything (checked above) and the run ended normally; the dead
    # one is reported once, as a warning naming it.
    assert yard_run.rc == 0
    warnings = [ln for ln in yard_run.stderr.splitlines() if f":{yard_run.dead_port}" in ln]
    assert len(warnings) == 1 and "WARNING" in warnings[0], yard_run.stderr[-2000:]


# ---------------------------------------------------------------------------------------------
# 2. the shipped show starts, its first cue's messages arrive, and SIGTERM stops it cleanly

HAN_RIVER_SHOW = REPO / "config" / "shows" / "han-river-night-bloom.yaml"
HAN_RIVER_VENUE = REPO / "config" / "venues" / "han-river.yaml"
_PORT = re.compile(r'port: "?(\d+)(\+?)"?')


def _bind_block(olds: list[int]) -> tuple[dict[int, socket.socket], int]:
    """Bind sockets for every ``old`` port shifted by one offset (so port runs stay runs)."""
    lo, hi = min(olds), max(olds)
    for _ in range(50):
        base = free_udp_port()
        if base + (hi - lo) > 65000:
            continue
        socks: dict[int, socket.socket] = {}
        try:
            for old in olds:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks[old] = s
                s.bind(("127.0.0.1", base + old - lo))
        except OSError:
            for s in socks.values():
                s.close()
            continue
        return socks, base - lo
    raise AssertionError("no free block of UDP ports")


def _port(port: int, run: str) -> str:
    return f'port: "{port}+"' if run else f"port: {port}"


def _han_river_ports(text: str) -> list[int]:
    from venues.loader import load_venue

    del text
    venue = load_venue(HAN_RIVER_VENUE)
    return sorted({d.osc.port for d in venue.devices if d.osc is not None})


@pytest.fixture
def han_river(tmp_path: Path) -> Iterator[tuple[Path, dict[str, OscSink]]]:
    """The shipped Han River venue with every OSC device on a loopback sink of this test."""
    from venues.loader import load_venue

    if not HAN_RIVER_SHOW.exists():
        pytest.skip("the shipped show config/shows/han-river-night-bloom.yaml is not there")
    text = HAN_RIVER_VENUE.read_text(encoding="utf-8")
    socks, shift = _bind_block(_han_river_ports(text))
    path = tmp_path / "han-river.yaml"
    path.write_text(_PORT.sub(lambda m: _port(int(m.group(1)) + shift, m.group(2)), text), encoding="utf-8")
    venue = load_venue(path)
    sinks_by_port = {s.getsockname()[1]: OscSink(s) for s in socks.values()}
    sinks = {d.id: sinks_by_port[d.osc.port] for d in venue.devices if d.osc is not None}
    try:
        yield path, sinks
    finally:
        for s in sinks_by_port.values():
            s.close()


def test_shipped_show_starts_and_stops_cleanly_on_sigterm(
    han_river: tuple[Path, dict[str, OscSink]],
    fresh_mosquitto: MosquittoBroker,
    controllers: Callable[..., Controller],
) -> None:
    from cues.compiler import compile_show
    from cues.timeline import OscSend

    venue_path, sinks = han_river
    timeline, venue = compile_show(HAN_RIVER_SHOW, venue_path=venue_path)
    first = timeline.cues[0]
    # What the first cue sends at once over OSC: (device, address) pairs.
    want = {
        (d, a.op.address)
        for a in timeline.actions
        if a.cue == first.id and a.at_ns == first.body_ns and isinstance(a.op, OscSend)
        for d in a.devices
        if d in sinks
    }
    assert want, "the first cue sends no OSC message at its start"
    obs = MqttObserver(fresh_mosquitto.port)
    try:
        ctl = controllers(HAN_RIVER_SHOW, venue_path, fresh_mosquitto.url, "--go")
        ctl.until(lambda: all(sinks[d].messages(addr) for d, addr in want), "the first cue's OSC", 60)
        app_cue = obs.wait_for(lambda m: m.topic == "madang/cue" and m.body["cue"] == first.id)[0]
        assert app_cue.body["show"] == "han-river-night-bloom"
        ctl.signal(signal.SIGTERM)
        rc = ctl.wait()
        assert rc == 0, ctl.stderr[-4000:]
        _no_traceback(ctl.stderr)
        # Stop sends every device its safe state: the venue's per-kind `safe:` values over OSC ...
        for did, sink in sinks.items():
            safe = venue.device(did).safe or {"brightness": 0}
            for param, value in safe.items():
                got = sink.messages(f"/{param}")
                assert got and got[-1].args == (float(value),), (did, param, got[-3:])
        # ... a panic op to every app device (all 1,200 headsets share madang/cue) ...
        panics = [m for m in obs.cues() if "panic" in m.body["op"]]
        assert {m.topic for m in panics} == {"madang/cue"}
        # ... and the retained controller state says offline.
        state = retained(fresh_mosquitto.port, STATE)
        assert state is not None and state.body["state"] == "offline" and state.body["term"] >= 1
    finally:
        obs.close()


# ---------------------------------------------------------------------------------------------
# 3. bad input: no broker at start; SIGINT / SIGTERM


def test_broker_down_at_start_then_up(
    tmp_path: Path, osc_sink: Callable[[], OscSink], controllers: Callable[..., Controller]
) -> None:
    t, n, x = osc_sink(), osc_sink(), osc_sink()
    venue = write_venue(tmp_path, t=t.port, n=n.port, x=x.port)
    port = free_tcp_port()
    ctl = controllers(CONTROL_SHOW, venue, f"mqtt://127.0.0.1:{port}", "--go")
    # OSC plays without the broker.
    n.wait_for("/one", timeout=60)
    t.wait_for("/one")
    assert ctl.proc.poll() is None
    # The queued cue message is not retained: the observer must be subscribed before the
    # controller's retry loop reaches the new broker. Hold the controller still meanwhile.
    broker = MosquittoBroker(port=port)
    os.kill(ctl.proc.pid, signal.SIGSTOP)
    try:
        try:
            broker.start()
        except BrokerNotFound as exc:
            pytest.skip(str(exc))
        obs = MqttObserver(port)
    except BaseException:
        broker.close()
        raise
    finally:
        os.kill(ctl.proc.pid, signal.SIGCONT)
    try:
        try:
            # The cue message queued while the broker was away arrives once it is up.
            got = obs.wait_for(lambda m: m.topic == "madang/cue" and m.body["cue"] == "one")
            assert got[0].body["op"] == {"mqtt": {"topic": "xr/{device}/scene", "payload": {"scene": "one"}}}
            # And the link is live: a command now reaches the app devices too.
            ctl.wait_ready()
            assert ctl.command("/go/long")["status"] == "ok"
            obs.wait_for(lambda m: m.topic == "madang/cue" and m.body["cue"] == "long")
            ctl.signal(signal.SIGTERM)
            assert ctl.wait() == 0, ctl.stderr[-4000:]
            _no_traceback(ctl.stderr)
            state = retained(port, STATE)
            assert state is not None and state.body["state"] == "offline" and state.body["term"] >= 1
        finally:
            obs.close()
    finally:
        broker.close()


@pytest.mark.parametrize(("sig", "codes"), [(signal.SIGTERM, {0}), (signal.SIGINT, {0, 130})])
def test_signal_stops_cleanly(
    sig: signal.Signals,
    codes: set[int],
    tmp_path: Path,
    fresh_mosquitto: MosquittoBroker,
    osc_sink: Callable[[], OscSink],
    controllers: Callable[..., Controller],
) -> None:
    t, n, x = osc_sink(), osc_sink(), osc_sink()
    venue = write_venue(tmp_path, t=t.port, n=n.port, x=x.port)
    obs = MqttObserver(fresh_mosquitto.port)
    try:
        ctl = controllers(CONTROL_SHOW, venue, fresh_mosquitto.url, "--go")
        for s in (t, n, x):
            s.wait_for("/one", timeout=60)
        obs.wait_for(lambda m: m.topic == "madang/cue" and m.body["cue"] == "one")
        ctl.signal(sig)
        assert ctl.wait() in codes, ctl.stderr[-4000:]
        _no_traceback(ctl.stderr)
        for s in (t, n, x):  # safe state: brightness 0, a plain message even for timetag devices
            last = s.messages("/brightness")[-1]
            assert last.args == (0.0,) and last.timetag is None
        assert obs.wait_for(lambda m: m.topic == "madang/cue" and "panic" in m.body["op"])
        assert obs.wait_for(lambda m: m.topic == "madang/dev/lamp-1/param/level")[-1].body == {
            "param": "level",
            "value": 0,
        }
        wait_until(lambda: obs.states() and obs.states()[-1] == "offline", what="offline state")
    finally:
        obs.close()


# ---------------------------------------------------------------------------------------------
# 4. what Madang sends, through the runtime, decodes in liblo's oscdump


def test_oscdump_decodes_what_the_runtime_sends(
    tmp_path: Path,
    oscdump: tuple[int, queue.Queue[str]],
    fresh_mosquitto: MosquittoBroker,
    osc_sink: Callable[[], OscSink],
    controllers: Callable[..., Controller],
) -> None:
    port, lines = oscdump
    n, x = osc_sink(), osc_sink()
    venue = write_venue(tmp_path, t=port, n=n.port, x=x.port)  # the timetag device is oscdump
    ctl = controllers(SHOW, venue, fresh_mosquitto.url, "--go", "--exit-at-end")
    assert ctl.wait() == 0, ctl.stderr[-4000:]
    got: list[str] = []

    def flash_printed() -> bool:
        got.extend(_drain(lines))
        return any("/flash" in ln for ln in got)

    wait_until(flash_printed, what="oscdump to print /flash")
    rows = [ln.split(" ") for ln in got if "/probe" not in ln and "/madang/ping" not in ln]
    # oscdump prints "<timetag> <address> <types> <args...>"; bundle elements share the timetag.
    by_addr = {r[1]: r for r in rows}
    assert by_addr["/scene/start"][2:4] == ["ifs", "7"]
    assert math.isclose(float(by_addr["/scene/start"][4]), 0.5)
    assert by_addr["/scene/start"][5] == '"intro"'
    assert by_addr["/flash"][2:] == ["is", "1", '"white"']
    assert by_addr["/madang/key"][2:4] == ["sii", json.dumps(SHOW_ID)]
    assert by_addr["/madang/key"][5] == "1"  # the term
    stamp = by_addr["/flash"][0]
    assert re.fullmatch(r"[0-9a-f]{8}\.[0-9a-f]{8}", stamp)
    secs = int(stamp[:8], 16) - 2_208_988_800 + int(stamp[9:], 16) / 2**32
    flash_at = next(m for m in n.messages("/flash"))
    # The instant liblo read is the cue's: within the run, a little after the on-receipt copy
    # (which is sent 20 ms early by the venue's latency).
    assert abs(secs - flash_at.rx_ns / 1e9) < 1.0


def _drain(q: queue.Queue[str]) -> list[str]:
    out: list[str] = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out
