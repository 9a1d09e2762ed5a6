"""The sync report (simulators/report.py): spreads, misses, late devices and the on-receipt
baseline, from a hand-written Recorder with literal instants (no simulation, no clock)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.record import Recorder
from simulators.report import spread_stats, sync_report

US = 1_000
T0 = 1_763_683_200_000_000_000


def _rec(fires: Sequence[tuple[str, str, int, int]], rx: Sequence[tuple[str, int, int]] = ()) -> Recorder:
    """fires: (device, what, seq, offset_us); rx: (device, seq, offset_us)."""
    r = Recorder()
    for d in ("a", "b", "c", "d", "e"):
        r.register(d)
    for dev, what, seq, off in fires:
        r.record(r.register(dev), what, f"cue{seq}", seq, "p", T0 + off * US, T0 + off * US, None)
    for dev, seq, off in rx:
        r.record(r.register(dev), "rx", f"cue{seq}", seq, "", T0 + off * US, T0 + off * US)
    return r


def test_spread_is_distance_from_each_cues_median() -> None:
    rec = _rec(
        [
            ("a", "cue", 1, 0),
            ("b", "cue", 1, 100),
            ("c", "cue", 1, 200),
            ("d", "cue", 1, 1_000),  # one late device: an outlier, not a shifted cue
            ("a", "osc", 2, 50),
            ("b", "osc", 2, 50),
        ]
    )
    rep = sync_report(rec, cue_of={1: "bloom", 2: "flash"})
    one = next(c for c in rep["cues"] if c["seq"] == 1)
    # median of 0, 100, 200, 1000 is 150: deviations 150, 50, 50, 850
    assert one["devices"] == 4 and one["cue"] == "bloom"
    assert one["max_us"] == pytest.approx(850)
    assert one["range_us"] == pytest.approx(1_000)
    assert one["p50_us"] == pytest.approx(100)
    two = next(c for c in rep["cues"] if c["seq"] == 2)
    assert two["cue"] == "flash" and two["max_us"] == 0 and two["range_us"] == 0
    assert rep["cues_fired"] == 2 and rep["fires"] == 6
    assert rep["spread_max_us"] == pytest.approx(850)
    # pooled over both cues: 150, 50, 50, 850, 0, 0
    assert rep["spread_p50_us"] == pytest.approx(50)
    assert [c["seq"] for c in rep["cues"]] == [1, 2]


def test_only_the_first_execution_per_device_counts() -> None:
    rec = _rec([("a", "cue", 1, 0), ("b", "cue", 1, 10), ("b", "cue", 1, 90_000), ("a", "cue", 1, 70_000)])
    _, per = spread_stats(*_cols(rec))
    assert per[1]["devices"] == 2
    assert per[1]["range_us"] == pytest.approx(10)


def test_cue_on_one_device_has_no_spread_and_receipts_and_unkeyed_rows_are_not_fires() -> None:
    rec = _rec([("a", "cue", 1, 0), ("a", "state", 2, 0), ("b", "state", 2, 500), ("a", "osc", -1, 0)])
    rec.record(rec.register("b"), "osc", "", -1, "/brightness", T0 + 900 * US, T0, 0.5)
    rep = sync_report(rec)
    assert rep["cues_fired"] == 0 and rep["cues"] == []
    assert rep["fires"] == 1  # "state" is not a timed fire; seq -1 rows have no key
    assert rep["spread_p99_us"] == 0.0 and rep["spread_max_us"] == 0.0


def test_missed_counts_expected_targets_that_never_fired() -> None:
    rec = _rec([("a", "cue", 1, 0), ("b", "cue", 1, 5), ("a", "cue", 2, 0)])
    rep = sync_report(rec, expected={1: ["a", "b", "c"], 2: ["a", "b", "ghost"]})
    # c missed 1; b missed 2; "ghost" is not simulated (never registered), so not counted
    assert rep["missed"] == 2
    assert rep["missed_by_device"] == {"b": 1, "c": 1}
    assert sync_report(rec, expected={1: ["a", "b"]})["missed"] == 0


def test_late_devices_are_those_far_from_their_cues_median() -> None:
    rec = _rec(
        [
            *[("a", "cue", 1, 0), ("b", "cue", 1, 10), ("c", "cue", 1, 20), ("d", "cue", 1, 9_000)],
            *[("a", "cue", 2, 0), ("b", "cue", 2, 6_000), ("c", "cue", 2, 0)],
        ]
    )
    assert sync_report(rec)["late_devices"] == 2  # d on cue 1, b on cue 2 (default 5 ms)
    assert sync_report(rec, late_us=7_000)["late_devices"] == 1
    assert sync_report(rec, late_us=20_000)["late_devices"] == 0


def test_baseline_comes_from_receipts() -> None:
    rec = _rec(
        [("a", "cue", 1, 1_000), ("b", "cue", 1, 1_002), ("c", "cue", 1, 1_001)],
        rx=[("a", 1, 0), ("b", 1, 400), ("c", 1, 100), ("a", 1, 900)],  # a's repeat is ignored
    )
    rep = sync_report(rec)
    row = rep["cues"][0]
    assert row["baseline_range_us"] == pytest.approx(400)
    assert rep["baseline_spread_max_us"] == pytest.approx(300)  # median 100: 100, 300, 0
    assert rep["spread_max_us"] < rep["baseline_spread_max_us"]


def test_devices_defaults_to_the_registered_ones_and_the_report_is_json() -> None:
    rec = _rec([("a", "cue", 1, 0), ("b", "cue", 1, 3)])
    rep = sync_report(rec, expected={1: ["a", "b"]}, cue_of={1: "go"})
    assert rep["devices"] == 5
    assert sync_report(rec, devices=1217)["devices"] == 1217
    assert json.loads(json.dumps(rep)) == rep


def test_empty_recorder() -> None:
    rep = sync_report(Recorder(), expected={1: ["a"]})
    assert rep["cues_fired"] == 0 and rep["missed"] == 0 and rep["devices"] == 0
    assert rep["spread_p50_us"] == rep["baseline_spread_p99_us"] == 0.0


def _cols(rec: Recorder) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    c = rec.columns()
    fire = np.isin(c["what"], ("cue", "fade", "osc")) & (c["seq"] >= 0)
    return c["seq"][fire], c["device"][fire], c["true_ns"][fire]


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 7), st.integers(0, 10**9)), min_size=1, max_size=60
    ),
    st.integers(-(10**12), 10**12),
)
def test_spread_is_shift_invariant_and_bounded_by_the_range(
    rows: list[tuple[int, int, int]], shift: int
) -> None:
    seq = np.array([r[0] for r in rows], dtype=np.int64)
    dev = np.array([r[1] for r in rows], dtype=np.int64)
    t = np.array([T0 + r[2] for r in rows], dtype=np.int64)
    pooled, per = spread_stats(seq, dev, t)
    pooled2, per2 = spread_stats(seq, dev, t + shift)
    assert per.keys() == per2.keys()
    for k in per:
        assert per[k]["devices"] == per2[k]["devices"] >= 2
        assert per[k]["range_us"] == pytest.approx(per2[k]["range_us"], abs=1e-3)
        assert 0 <= per[k]["p50_us"] <= per[k]["p99_us"] <= per[k]["max_us"] <= per[k]["range_us"] + 1e-6
    assert np.allclose(np.sort(pooled), np.sort(pooled2), atol=1e-3)
    # Every (seq, device) pair counted once, only for cues with two or more devices.
    devices_of: dict[int, set[int]] = {}
    for s, d, _ in rows:
        devices_of.setdefault(s, set()).add(d)
    assert {s for s, ds in devices_of.items() if len(ds) >= 2} == set(per)
    assert all(per[s]["devices"] == len(devices_of[s]) for s in per)
    assert pooled.size == sum(v["devices"] for v in per.values())


def test_cues_fired_counts_cues_and_actions_fired_counts_their_actions() -> None:
    # One cue ("bloom") fired through two actions (a message and a fade), another through one.
    rec = _rec([("a", "cue", 1, 0), ("b", "cue", 1, 5), ("a", "fade", 2, 0), ("b", "fade", 2, 9),
                ("a", "osc", 3, 0), ("b", "osc", 3, 2)])
    rep = sync_report(rec, cue_of={1: "bloom", 2: "bloom", 3: "flash"})
    assert rep["cues_fired"] == 2 and rep["actions_fired"] == 3
    assert sync_report(rec)["cues_fired"] == 3  # without names each action stands for its own cue
