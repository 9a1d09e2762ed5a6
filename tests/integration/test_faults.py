"""Faults mid-show: the real controller against a simulated venue, in real and virtual time.

Real time (``@pytest.mark.integration``): :func:`simulators.harness.play_real` runs the asyncio
runtime against OSC displays on real UDP sockets of 127.0.0.1 and MQTT headsets on a private
Mosquitto that the harness starts; a fault hook crashes a headset or restarts the broker at a
show instant. The show (tests/data/sim/sim-yard.yaml) sets a scene every 2 s: open 0 s, river
2 s, bloom 4 s, moon 6 s, finale 8 s. Virtual time: the same faults, deterministic, so the
catch-up state can be checked to the cue.

Nothing here asserts how long anything took: waits are bounded, assertions are about what
every device executed.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from controller.runtime import Runtime
from cues.compiler import compile_show
from cues.timeline import Timeline
from simulators.assertions import ShowAssertionError, ShowRun
from simulators.devices.venue import SimulatedVenue
from simulators.harness import play_real, play_virtual, show_reached
from simulators.record import Fire
from venues.model import Venue

SIM_YARD = Path(__file__).resolve().parents[1] / "data" / "sim" / "sim-yard.yaml"
S = 1_000_000_000
SCENES = {"open": "lobby", "river": "river", "bloom": "bloom", "moon": "moon", "finale": "finale"}
AT = {"open": 0, "river": 2 * S, "bloom": 4 * S, "moon": 6 * S, "finale": 8 * S}


@pytest.fixture(scope="module")
def yard() -> tuple[Timeline, Venue]:
    return compile_show(SIM_YARD)


def _cues(rows: list[Fire], device: str) -> list[str]:
    """The cues a device executed (app ``cue`` rows), in order."""
    return [r.key for r in sorted(rows, key=lambda r: r.true_ns) if r.device_id == device and r.what == "cue"]


def _show_zero(rows: list[Fire]) -> int:
    """True instant of show time 0: the median instant the headsets executed the first cue."""
    return int(statistics.median(r.true_ns for r in rows if r.what == "cue" and r.key == "open"))


def _run(timeline: Timeline, venue: Venue, report: dict[str, Any], sim: SimulatedVenue) -> ShowRun:
    return ShowRun(timeline, venue, sim.records(), report, _show_zero(sim.records().rows()))


# ----------------------------------------------------------------------------------- real time


@pytest.mark.integration
def test_device_crash_misses_cues_then_rejoins_with_catch_up(yard: tuple[Timeline, Venue]) -> None:
    timeline, venue = yard
    marks: dict[str, int] = {}

    async def crash_xr2(sim: SimulatedVenue, rt: Runtime) -> None:
        await show_reached(rt, 2_600_000_000)  # after river (2 s) fired, before bloom is sent
        marks["crash"] = time.time_ns()
        sim.reboot("xr-2", after_ns=2 * S)  # back at about 4.6 s: bloom is missed

    report, sim, rt = asyncio.run(
        play_real(timeline, venue, profile="lan", seed=1, view=False, control_port=None, faults=crash_xr2)
    )
    rows = sim.records().rows()
    crash = marks["crash"]

    # The others executed every cue; xr-2 every cue but the one due while it was down.
    for d in ("xr-1", "xr-3", "xr-4", "xr-5", "xr-6"):
        assert _cues(rows, d) == list(SCENES), d
    assert _cues(rows, "xr-2") == ["open", "river", "moon", "finale"]
    assert report["missed"] == 1 and report["missed_by_device"] == {"xr-2": 1}, report

    # On rejoining it got the catch-up state for that instant (the bloom scene) before moon.
    states = [r for r in rows if r.device_id == "xr-2" and r.what == "state"]
    assert len(states) == 1, states
    st = states[0]
    moon = next(r for r in rows if r.device_id == "xr-2" and r.key == "moon" and r.what == "cue")
    assert crash < st.true_ns < moon.true_ns
    assert isinstance(st.value, dict)
    assert st.value["mqtt"] == {"xr/{device}/scene": {"scene": "bloom"}}
    assert rt.core.counters["late_joins"] == 1
    assert sim.apps["xr-2"].state == {"xr/xr-2/scene": {"scene": "finale"}}

    run = _run(timeline, venue, report, sim)
    run.assert_shows("00:05.500", "audience", "scene", {"scene": "bloom"})
    run.assert_shows("00:08.500", "audience", "scene", {"scene": "finale"})
    with pytest.raises(ShowAssertionError, match=r"6 of 6 devices failed") as err:
        run.assert_shows("00:05.500", "audience", "scene", {"scene": "moon"})  # moon is at 6 s
    assert "xr-2 shows {'scene': 'bloom'}" in str(err.value)


@pytest.mark.integration
def test_broker_restart_controller_and_headsets_reconnect(yard: tuple[Timeline, Venue]) -> None:
    timeline, venue = yard
    marks: dict[str, int] = {}

    async def restart(sim: SimulatedVenue, rt: Runtime) -> None:
        await show_reached(rt, 2_600_000_000)
        assert sim.broker is not None
        marks["pid0"] = sim.broker.pid or 0
        marks["down"] = time.time_ns()
        # MosquittoBroker.restart() blocks until the new broker listens: not on the show's loop.
        await asyncio.to_thread(sim.restart_broker)
        marks["up"] = time.time_ns()
        marks["pid1"] = sim.broker.pid or 0

    report, sim, rt = asyncio.run(
        play_real(timeline, venue, profile="lan", seed=2, view=False, control_port=None, faults=restart)
    )
    rows = sim.records().rows()
    assert marks["pid0"] != marks["pid1"], "the broker process was not restarted"

    # The controller's link reconnected, without a receive callback failing.
    assert rt.mqtt is not None
    stats = rt.mqtt.stats
    assert stats.reconnects >= 1, stats
    assert stats.callback_errors == 0, stats

    # Every headset reconnected: the controller heard from each after the restart.
    for d in sim.apps:
        seen = rt.core.health[d].last_seen_ns
        assert seen is not None and seen > marks["up"], d

    # The cues after the restart fired everywhere (headsets over MQTT, displays over OSC).
    for d in sim.apps:
        assert _cues(rows, d) == list(SCENES), d
    for d in sim.displays:
        scenes = [r.value for r in rows if r.device_id == d and r.param == "/scene" and r.what == "osc"]
        assert scenes == [1.0, 2.0, 3.0, 4.0, 5.0], (d, scenes)
    assert report["missed"] == 0, report["missed_by_device"]
    after = [r for r in rows if r.what == "cue" and r.key in ("bloom", "moon", "finale")]
    assert all(r.true_ns > marks["up"] for r in after)
    _run(timeline, venue, report, sim).assert_shows("00:08.500", "audience", "scene", {"scene": "finale"})


# -------------------------------------------------------------------------------- virtual time


def test_virtual_reboot_gets_the_state_of_the_rejoin_instant(yard: tuple[Timeline, Venue]) -> None:
    """Rejoining at 4.8 s, between bloom (4 s) and moon (6 s), the device must be told bloom:
    the catch-up is computed for the instant it rejoins, not for the engine's last poll."""
    timeline, venue = yard

    def faults(sim: SimulatedVenue) -> None:
        assert sim.vt is not None
        zero = sim.vt.now + 3 * S + 250_000_000  # settle, then the GO takes effect 250 ms later
        sim.vt.call_at(zero + 2_500_000_000, sim.reboot, "xr-2", 2_300_000_000)

    res = play_virtual(timeline, venue, profile="lan", seed=5, on_start=faults)
    rows = res.sim.records().rows()
    states = [r for r in rows if r.device_id == "xr-2" and r.what == "state"]
    assert len(states) == 1
    assert (states[0].true_ns - res.show_start_ns) // 100_000_000 == 48  # 4.8 s
    assert states[0].value == {"params": {}, "mqtt": {"xr/{device}/scene": {"scene": "bloom"}}}
    assert _cues(rows, "xr-2") == ["open", "river", "moon", "finale"]
    run = ShowRun(timeline, venue, res.sim.records(), res.report, res.show_start_ns)
    run.assert_shows("00:05", "audience", "scene", {"scene": "bloom"})
    assert res.report["missed_by_device"] == {"xr-2": 1}


def _virtual_broker_restart(timeline: Timeline, venue: Venue) -> Any:
    """The broker dies at 2.5 s; headsets reconnect 1 to 1.5 s later, some after bloom (4 s) was
    sent (3.6 s, its lead ahead) and so never received it. By then each had sent its 5 s
    heartbeat (``alive``): the controller last saw them alive, not ready."""

    def faults(sim: SimulatedVenue) -> None:
        assert sim.vt is not None
        zero = sim.vt.now + 3 * S + 250_000_000
        sim.vt.call_at(zero + 2_500_000_000, sim.restart_broker, S)

    return play_virtual(timeline, venue, profile="wifi", seed=6, on_start=faults)


def test_virtual_broker_restart_later_cues_fire(yard: tuple[Timeline, Venue]) -> None:
    timeline, venue = yard
    res = _virtual_broker_restart(timeline, venue)
    rows = res.sim.records().rows()
    for d in res.sim.apps:
        got = _cues(rows, d)
        assert [c for c in got if c != "bloom"] == ["open", "river", "moon", "finale"], (d, got)
    for d in res.sim.displays:  # OSC does not go through the broker
        scenes = [r.value for r in rows if r.device_id == d and r.param == "/scene"]
        assert scenes == [1.0, 2.0, 3.0, 4.0, 5.0], (d, scenes)
    assert set(res.report["missed_by_device"]) <= set(res.sim.apps)
    ShowRun(timeline, venue, res.sim.records(), res.report, res.show_start_ns).assert_shows(
        "00:08.5", "audience", "scene", {"scene": "finale"}
    )


def test_virtual_broker_restart_reconnected_headsets_catch_up(yard: tuple[Timeline, Venue]) -> None:
    timeline, venue = yard
    # Some headsets reconnect inside bloom's lead window (bloom went out on the group topic
    # before they resubscribed): the catch-up resends it to each of them on its own topic.
    res = _virtual_broker_restart(timeline, venue)
    assert res.core.counters["resent_ahead"] > 0
    run = ShowRun(timeline, venue, res.sim.records(), res.report, res.show_start_ns)
    run.assert_shows("00:05", "audience", "scene", {"scene": "bloom"})
