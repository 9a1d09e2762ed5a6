"""``madang bench sync`` (madang/bench/sync.py): headsets scaled by cloning, and a virtual run
that gives the same JSON for the same seed. Virtual time only: nothing sleeps here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cues.compiler import compile_show
from cues.timeline import Timeline
from madang.bench.sync import _scale_headsets, run
from simulators.harness import limit_headsets, play_virtual
from venues.model import Sync, Venue

S = 1_000_000_000
SIM_YARD = Path(__file__).resolve().parents[2] / "data" / "sim" / "sim-yard.yaml"


@pytest.fixture(scope="module")
def yard() -> tuple[Timeline, Venue]:
    return compile_show(SIM_YARD)


def test_scale_headsets_clones_with_their_own_ids_topics_and_groups(yard: tuple[Timeline, Venue]) -> None:
    timeline, venue = yard
    t, v = _scale_headsets(timeline, venue, 20)
    apps = [d for d in v.devices if d.sync is Sync.APP]
    assert len(apps) == 20 and len({d.id for d in v.devices}) == len(v.devices)
    clones = [d for d in apps if d.id.startswith("xr-x")]
    assert len(clones) == 14
    for c in clones:
        assert c.mqtt is not None and c.mqtt.base == f"madang/dev/{c.id}"
        assert c.attrs["id"] == c.id
        assert c.id in v.groups["audience"]
    scene = next(a for a in t.actions if a.cue == "river" and a.devices[0].startswith("xr"))
    assert set(scene.devices) == {d.id for d in apps}
    assert t.device_count == len(v.devices)
    # fewer than the venue has: the same as limit_headsets
    assert _scale_headsets(timeline, venue, 3) == limit_headsets(timeline, venue, 3)


def test_scaled_clones_are_synced_and_fire_like_the_originals(yard: tuple[Timeline, Venue]) -> None:
    t, v = _scale_headsets(*yard, 16)
    res = play_virtual(t, v, profile="lan", seed=4, duration_ns=3 * S)
    assert res.core.sync is not None
    for d in v.devices:
        if d.sync in (Sync.APP, Sync.TIMETAG, Sync.ECHO):
            assert res.core.sync.to_device(d.id, res.sim.now) is not None, d.id  # has a clock model
    river = [r for r in res.sim.records().rows(("cue",)) if r.key == "river"]
    assert len({r.device_id for r in river}) == 16
    assert res.report["missed"] == 0


def test_bench_sync_is_deterministic_per_seed() -> None:
    a = run(devices=12, profile="wifi", virtual=True, seed=5, duration_s=60)
    b = run(devices=12, profile="wifi", virtual=True, seed=5, duration_s=60)
    c = run(devices=12, profile="wifi", virtual=True, seed=6, duration_s=60)
    for k in ("devices", "cues_fired", "missed", "spread_p99_us", "baseline_spread_p99_us", "events"):
        assert k in a
    assert a["devices"] == 17 + 12 and a["synced_devices"] == a["devices"] - 2  # 'none' cannot answer
    assert 59 < a["show_s"] <= 60 and a["events"] > 0  # show time 0 is the GO plus its delay
    for r in (a, b, c):
        assert r["wall_s"] >= 0 and r["cpu_s"] >= 0 and r["rss_mb"] > 0
        del r["wall_s"], r["cpu_s"], r["rss_mb"]  # the run's cost: the only fields that may differ
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["spread_p99_us"] < a["baseline_spread_p99_us"]
    assert c != a and c["seed"] == 6
    assert {k: v for k, v in c.items() if k != "seed"} != {k: v for k, v in a.items() if k != "seed"}
