"""``madang bench sync`` (madang/bench/sync.py): headsets scaled by cloning, and a virtual run
that gives the same JSON for the same seed. Virtual time only: nothing sleeps here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cues.compiler import compile_show
from cues.timeline import Timeline
from madang.bench.sync import _make_phones, _scale_headsets, phone_share, run
from simulators.harness import limit_headsets, play_virtual
from venues.model import Sync, Venue

S = 1_000_000_000
MS = 1_000_000
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


def test_phones_are_websocket_app_devices_that_keep_their_groups(yard: tuple[Timeline, Venue]) -> None:
    t, v = _make_phones(*_scale_headsets(*yard, 10), 0.5)
    apps = [d for d in v.devices if d.sync is Sync.APP]
    phones = [d for d in apps if d.id.startswith("ph-")]
    assert len(apps) == 10 and len(phones) == 5  # every other one: spread, not a block
    assert [d.id.startswith("ph-") for d in apps] == [False, True] * 5
    for p in phones:
        assert p.mqtt is None and p.ws is not None and p.attrs["id"] == p.id
        assert p.id in v.groups["audience"] and p.topic_root == f"madang/dev/{p.id}"
    scene = next(a for a in t.actions if a.cue == "river" and a.devices[0] in v.groups["audience"])
    assert set(scene.devices) == {d.id for d in apps}
    assert phone_share("wifi-crowded") == 0.5 and phone_share("wifi") == 0.0
    assert phone_share("lan", 0.25) == 0.25
    with pytest.raises(ValueError, match="from 0 to 1"):
        phone_share("wifi", 1.5)


def test_a_phone_on_the_sync_lane_fires_in_sync_with_the_headsets(yard: tuple[Timeline, Venue]) -> None:
    t, v = _make_phones(*_scale_headsets(*yard, 12), 0.5)
    res = play_virtual(
        t, v, profile="lan", seed=4, duration_ns=3 * S, sync_lane=True, sync_quantum_ns=50 * MS
    )
    phones = {d.id for d in v.devices if d.id.startswith("ph-")}
    assert len(phones) == 6 and res.core.sync is not None
    for p in phones:  # the lane carried its pings and models: a clock model of its own
        assert res.core.sync.to_device(p, res.sim.now) is not None, p
        assert res.sim.apps[p].pings == 0  # none came by the message path
    river = [r for r in res.sim.records().rows(("cue",)) if r.key == "river"]
    fired = {r.device_id: r.true_ns for r in river}
    assert phones <= set(fired) and len(fired) == 12 and res.report["missed"] == 0
    median = sorted(fired.values())[len(fired) // 2]
    assert max(abs(fired[p] - median) for p in phones) < 1 * MS  # on the instant, not on receipt


def test_mixed_audience_bench_is_deterministic_per_seed() -> None:
    a = run(devices=16, profile="wifi-crowded", virtual=True, seed=5, duration_s=30)
    b = run(devices=16, profile="wifi-crowded", virtual=True, seed=5, duration_s=30)
    assert a["phones"] == 8 and a["headsets"] == 8 and a["cues_fired"] > 0
    for r in (a, b):
        del r["wall_s"], r["cpu_s"], r["rss_mb"]
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
