"""The whole venue in virtual time, driven by a minimal controller written against protocol.md."""

from __future__ import annotations

import json

from pythonosc.osc_message import OscMessage

from simulators.devices import SimulatedVenue
from simulators.devices._wire import encode_osc
from simulators.record import EXECUTIONS
from tests.simulators._helpers import bundle, key, msg, small_venue, timed
from venues.model import Sync

S = 1_000_000_000
MS = 1_000_000


class MiniController:
    """Just enough of a controller: perfect clock models (it reads the simulator's clocks, which a
    real controller would estimate from pings), timed bundles and app cues."""

    def __init__(self, sim: SimulatedVenue) -> None:
        self.sim = sim
        self.c = sim.controller
        self.messages: list[tuple[str, dict[str, object], int]] = []
        self.pongs: list[tuple[str, list[object], int]] = []
        self.c.on_message = lambda t, p, n: self.messages.append((t, json.loads(p), n))
        self.c.on_datagram = lambda s, d, n: self.pongs.append((s, OscMessage(d).params, n))
        self.c.subscribe("madang/dev/+/status")
        self.c.subscribe("madang/dev/+/fired")
        self.c.subscribe("madang/dev/+/pong")

    def send_models(self) -> None:
        for did in self.sim.apps:
            clock = self.sim.clocks[did]
            t = self.c.now
            model = {"epoch": t, "offset_ns": clock.local(t) - t, "drift_ppb": clock.drift_ppt // 1000}
            self.c.publish(f"madang/dev/{did}/clock", json.dumps(model).encode(), retain=True)

    def cue(self, seq: int, at: int) -> None:
        op = {"mqtt": {"topic": "xr/{device}/scene", "payload": {"scene": f"s{seq}"}}}
        body = {"show": "night", "cue": f"c{seq}", "seq": seq, "at": at, "show_ns": 0, "op": op}
        for _ in range(3):  # repeated inside the lead window, as the controller does
            self.c.publish("madang/cue", json.dumps(body).encode())
        for did, d in self.sim.displays.items():
            local = self.sim.clocks[did].local(at)
            b = bundle(timed(local), key("night", seq), msg("/scene", (f"s{seq}", "s")))
            if d.sync is not Sync.TIMETAG:
                b = msg("/scene", (f"s{seq}", "s"))
            self.c.send_osc(did, b)
            self.c.send_osc(did, b)


def run_show(seed: int, profile: str = "wifi") -> SimulatedVenue:
    sim = SimulatedVenue(small_venue(6, 40), mode="virtual", profile=profile, seed=seed)
    ctl = MiniController(sim)
    sim.start()
    t0 = sim.now
    sim.run_until(t0 + S)
    ctl.send_models()
    sim.run_until(t0 + 2 * S)
    for i in range(5):
        sim.vt.call_at(t0 + (3 + i) * S, ctl.cue, i, t0 + (4 + i) * S)  # type: ignore[union-attr]
    sim.run_until(t0 + 15 * S)
    return sim


def fingerprint(sim: SimulatedVenue) -> list[tuple[object, ...]]:
    return [(r.device_id, r.what, r.key, r.seq, r.param, r.true_ns, r.local_ns) for r in sim.records()]


def test_same_seed_gives_identical_records() -> None:
    a, b = fingerprint(run_show(3)), fingerprint(run_show(3))
    assert a == b and len(a) > 100
    assert fingerprint(run_show(4)) != a


def test_app_and_timetag_devices_fire_together_despite_wifi() -> None:
    sim = run_show(1)
    rec = sim.records()
    for seq in range(5):
        rows = [r for r in rec if r.seq == seq and r.what in ("cue", "osc")]
        synced = [r for r in rows if sim.venue.device(r.device_id).sync in (Sync.APP, Sync.TIMETAG)]
        assert len({r.device_id for r in synced}) == 40 + 4  # every synced device fired once
        spread = max(r.true_ns for r in synced) - min(r.true_ns for r in synced)
        assert spread <= 2  # perfect models: within rounding of a nanosecond or two
    # echo displays execute on receipt: they lag by their network delay
    echo = [r for r in rec if sim.venue.device(r.device_id).sync is Sync.ECHO and r.seq == -1]
    assert echo and all(r.true_ns >= sim.vt.now - 15 * S for r in echo)  # type: ignore[union-attr]


def test_pings_over_mqtt_and_osc_are_answered_in_virtual_time() -> None:
    sim = SimulatedVenue(small_venue(3, 2), mode="virtual", profile="lan", seed=0)
    ctl = MiniController(sim)
    sim.start()
    t1 = sim.now
    ctl.c.publish("madang/dev/xr-0000/ping", json.dumps({"seq": 1, "t1": t1}).encode())
    ctl.c.send_osc("led-1", encode_osc("/madang/ping", ((9, "i"), (t1, "h"))))
    sim.run_until(t1 + S)
    (pong,) = [p for t, p, _ in ctl.messages if t == "madang/dev/xr-0000/pong"]
    assert pong["seq"] == 1 and pong["t1"] == t1 and pong["t2"] == pong["t3"]
    clock = sim.clocks["xr-0000"]
    assert 0 < clock.true_of(int(pong["t2"])) - t1 < 10 * MS  # type: ignore[call-overload]
    ((src, params, _),) = ctl.pongs
    assert src == "led-1" and params[:2] == [9, t1]


def test_crash_publishes_the_will_and_reboot_rejoins() -> None:
    sim = SimulatedVenue(small_venue(1, 3), mode="virtual", profile="wifi", seed=2)
    ctl = MiniController(sim)
    sim.start()
    t0 = sim.now
    sim.run_until(t0 + S)
    sim.reboot("xr-0001", 3 * S, step_ns=250 * MS)
    sim.run_until(t0 + 2 * S)
    states = [p["state"] for t, p, _ in ctl.messages if t == "madang/dev/xr-0001/status"]
    assert states == ["ready", "offline"]
    sim.run_until(t0 + 6 * S)
    states = [p["state"] for t, p, _ in ctl.messages if t == "madang/dev/xr-0001/status"]
    assert states[-1] == "ready"
    assert sim.clocks["xr-0001"].steps[-1][1] == 250 * MS


def test_zone_partition_silences_that_zone_only() -> None:
    sim = SimulatedVenue(small_venue(4, 0), mode="virtual", profile="lan", seed=0)
    ctl = MiniController(sim)
    sim.start()
    t0 = sim.now
    cut = sim.partition_zone("north", t0, 10 * S)
    assert cut == ["led-1", "led-3"]
    for did in sim.displays:
        ctl.c.send_osc(did, msg("/x", (1, "i")))
    sim.run_until(t0 + S)
    assert {r.device_id for r in sim.records().rows(EXECUTIONS)} == {"led-0", "led-2"}


def test_broker_restart_reconnects_every_app_device() -> None:
    sim = SimulatedVenue(small_venue(0, 10), mode="virtual", profile="wifi", seed=5)
    MiniController(sim)
    sim.start()
    t0 = sim.now
    sim.run_until(t0 + S)
    assert sim.net is not None
    sim.restart_broker(down_ns=S)
    restart = sim.now
    sim.run_until(restart + S // 2)
    assert all(not sim.net._clients[did].connected for did in sim.apps)  # down for at least 1 s
    sim.run_until(restart + 3 * S)
    for did in sim.apps:
        status = json.loads(sim.net.retained(f"madang/dev/{did}/status") or b"{}")
        assert status["state"] == "ready"
        assert status["local"] >= sim.clocks[did].local(restart + S)  # announced again after the restart
