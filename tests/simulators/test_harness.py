"""The integration harness (simulators/harness/): rehearsal subsets and
virtual-time runs of the real controller core. Virtual time only: nothing sleeps here."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from cues.compiler import compile_show
from cues.timeline import Fade, Timeline
from simulators.devices.venue import SimulatedVenue
from simulators.harness import (
    VirtualResult,
    expected_fires,
    limit_headsets,
    play_virtual,
    shipped_show,
    subset,
)
from venues.model import Sync, Venue

S = 1_000_000_000
MS = 1_000_000
SIM_YARD = Path(__file__).resolve().parents[1] / "data" / "sim" / "sim-yard.yaml"


@pytest.fixture(scope="module")
def yard() -> tuple[Timeline, Venue]:
    return compile_show(SIM_YARD)


@pytest.fixture(scope="module")
def han_river() -> tuple[Timeline, Venue]:
    return compile_show(shipped_show("han-river"))


# --------------------------------------------------------------------------------------- subsets


def test_subset_keeps_only_the_named_devices(yard: tuple[Timeline, Venue]) -> None:
    timeline, venue = yard
    t, v = subset(timeline, venue, ["xr-1", "disp-e"])
    assert [d.id for d in v.devices] == ["disp-e", "xr-1"]
    assert v.groups["audience"] == ("xr-1",) and v.groups["displays"] == ("disp-e",)
    assert t.device_count == 2
    assert all(set(a.devices) <= {"xr-1", "disp-e"} and a.devices for a in t.actions)
    # actions left with no device are dropped: the fade targets displays, which keep disp-e
    assert {a.cue for a in t.actions} == {"open", "river", "bloom", "moon", "finale"}
    t2, _ = subset(timeline, venue, ["xr-1"])
    assert all(not isinstance(a.op, Fade) for a in t2.actions)


def test_limit_headsets_takes_every_zone_in_turn(han_river: tuple[Timeline, Venue]) -> None:
    timeline, venue = han_river
    _, v = limit_headsets(timeline, venue, 7)
    xr = [d.id for d in v.devices if d.sync is Sync.APP]
    assert xr == ["xr-0001", "xr-0002", "xr-0003", "xr-0401", "xr-0402", "xr-0801", "xr-0802"]
    assert len(v.devices) == 17 + 7
    assert limit_headsets(timeline, venue, None) == (timeline, venue)
    _, all_of_them = limit_headsets(timeline, venue, 5_000)
    assert len(all_of_them.devices) == len(venue.devices)


# ---------------------------------------------------------------------------------- virtual time


def test_show_start_is_show_time_zero(yard: tuple[Timeline, Venue]) -> None:
    timeline, venue = yard
    res = play_virtual(timeline, venue, profile="lan", seed=1)
    rows = res.sim.records().rows(("cue",))
    for cue, at in (("open", 0), ("river", 2 * S), ("finale", 8 * S)):
        fired = statistics.median(r.true_ns for r in rows if r.key == cue)
        assert abs(fired - (res.show_start_ns + at)) < 2 * MS, cue
    assert res.report["missed"] == 0
    assert res.core.finished


def test_play_virtual_runs_the_whole_show_and_stops(yard: tuple[Timeline, Venue]) -> None:
    timeline, venue = yard
    res = play_virtual(timeline, venue, profile="wifi", seed=2)
    # 5 cues, each fired as two actions (one to the headsets, one to the keyed OSC displays)
    assert res.report["cues_fired"] == 5 and res.report["actions_fired"] == 10
    assert res.report["missed"] == 0
    assert res.sim.now < res.show_start_ns + timeline.duration_ns + 5 * S
    assert res.events > 0


def test_duration_cuts_the_show(yard: tuple[Timeline, Venue]) -> None:
    timeline, venue = yard
    res = play_virtual(timeline, venue, profile="lan", seed=1, duration_ns=3 * S)
    fired = {r.key for r in res.sim.records().rows(("cue",))}
    assert fired == {"open", "river"}
    assert res.sim.now < res.show_start_ns + 6 * S


def test_poll_grid_does_not_change_what_fires(yard: tuple[Timeline, Venue]) -> None:
    """A 1 ms poll grid (default) and polling at every message give the same show."""
    timeline, venue = yard
    grid = play_virtual(timeline, venue, profile="wifi", seed=9)
    exact = play_virtual(timeline, venue, profile="wifi", seed=9, poll_quantum_ns=1)

    def fired(res: VirtualResult) -> list[tuple[str, str]]:
        return sorted((r.device_id, r.key) for r in res.sim.records().rows(("cue", "osc")) if r.seq >= 0)

    assert fired(grid) == fired(exact)
    assert grid.report["missed"] == exact.report["missed"] == 0
    assert grid.report["spread_p99_us"] < grid.report["baseline_spread_p99_us"]
    assert exact.report["spread_p99_us"] < exact.report["baseline_spread_p99_us"]


def test_on_start_hook_sees_the_simulated_venue(yard: tuple[Timeline, Venue]) -> None:
    timeline, venue = yard
    seen: list[SimulatedVenue] = []
    res = play_virtual(timeline, venue, profile="lan", seed=1, duration_ns=S, on_start=seen.append)
    assert seen == [res.sim]


def test_expected_leaves_out_on_receipt_displays_and_streamed_fades(yard: tuple[Timeline, Venue]) -> None:
    timeline, venue = yard
    res = play_virtual(timeline, venue, profile="lan", seed=1, duration_ns=S)
    expected, cue_of = expected_fires(timeline, res.core)
    assert cue_of[1] == "open" and cue_of[11] == "finale"
    assert expected[1] == ["xr-1", "xr-2", "xr-3", "xr-4", "xr-5", "xr-6"]
    assert expected[2] == ["disp-t1", "disp-t2"]  # echo and none displays get plain messages
    assert 3 not in expected  # the fade: streamed to displays, no app device interpolates here
    assert 4 not in expected  # river had not been emitted within 1 s of show
