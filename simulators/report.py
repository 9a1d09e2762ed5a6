"""The sync report: how closely did the devices fire together, against true time?

Pure: it reads a :class:`~simulators.record.Recorder` (what every simulated device executed, in the
simulator's true time) and answers, per cue sequence number, the spread of fire instants across
the devices that executed it. Spread is measured as each device's distance from the median
instant of its cue (so one late device shows as one outlier, not as a shifted cue), pooled over
all cues for the headline figures, and also as the range (latest minus earliest) per cue.

The *baseline* is what firing on receipt would have given: the same figures computed over the
instants at which each device first *received* each cue message (rows ``what == "rx"``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from simulators.record import STALE_TERM, Recorder

__all__ = ["FIRE_KINDS", "ZONE_BANDS_US", "spread_stats", "sync_report", "zone_spread"]

FIRE_KINDS = ("cue", "fade", "osc")
ZONE_BANDS_US = (0.0, 100.0, 250.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 20_000.0, 100_000.0)
"""Lower edges (us) of the per-zone histogram's bands; the last band is open-ended."""


def _pct(x: npt.NDArray[np.float64], q: float) -> float:
    return float(np.percentile(x, q)) if x.size else 0.0


def spread_stats(
    seq: npt.NDArray[np.int64],
    device: npt.NDArray[np.int64],
    true_ns: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.float64], dict[int, dict[str, float]]]:
    """Deviations from each cue's median (us, pooled) and per-cue figures, first fire per device."""
    if seq.size == 0:
        return np.zeros(0), {}
    order = np.lexsort((true_ns, device, seq))
    s, d, t = seq[order], device[order], true_ns[order]
    first = np.ones(s.size, dtype=bool)
    first[1:] = (s[1:] != s[:-1]) | (d[1:] != d[:-1])
    s, d, t = s[first], d[first], t[first]
    pooled: list[npt.NDArray[np.float64]] = []
    per: dict[int, dict[str, float]] = {}
    bounds = np.flatnonzero(np.r_[True, s[1:] != s[:-1], True])
    for a, b in itertools.pairwise(bounds):
        if b - a < 2:
            continue
        # Relative to the cue's first fire before going to float: epoch nanoseconds (~1.8e18)
        # as float64 are only exact to 256 ns, which would quantise every spread.
        ts = (t[a:b] - t[a]).astype(np.float64)
        dev = np.abs(ts - np.median(ts)) / 1000.0
        pooled.append(dev)
        per[int(s[a])] = {
            "median_ns": int(t[a]) + round(float(np.median(ts))),
            "devices": int(b - a),
            "p50_us": _pct(dev, 50),
            "p99_us": _pct(dev, 99),
            "max_us": float(dev.max()),
            "range_us": float((ts.max() - ts.min()) / 1000.0),
        }
    return (np.concatenate(pooled) if pooled else np.zeros(0)), per


def sync_report(
    recorder: Recorder,
    *,
    expected: Mapping[int, Iterable[str]] | None = None,
    cue_of: Mapping[int, str] | None = None,
    late_us: float = 5_000.0,
    devices: int | None = None,
) -> dict[str, Any]:
    """The report as a JSON-able dict.

    ``expected`` maps each sequence number (one action of a cue) the controller emitted to the
    device ids it targeted (those simulated); a target that never executed it counts as
    *missed*. ``cue_of`` names the cue of each sequence number, for the per-cue table and for
    ``cues_fired`` (distinct cues; ``actions_fired`` counts their actions). ``late_us``: a
    device further than this from its cue's median counts as late for that cue.
    """
    cols = recorder.columns()
    what = cols["what"]
    seq = cols["seq"]
    fire = np.isin(what, FIRE_KINDS) & (seq >= 0)
    rx = (what == "rx") & (seq >= 0)
    pooled, per = spread_stats(seq[fire], cols["device"][fire], cols["true_ns"][fire])
    base, base_per = spread_stats(seq[rx], cols["device"][rx], cols["true_ns"][rx])

    fired_pairs = set(zip(cols["seq"][fire].tolist(), cols["device"][fire].tolist(), strict=True))
    ids = recorder.device_ids
    index = {d: i for i, d in enumerate(ids)}
    missed = 0
    missed_by_device: dict[str, int] = {}
    if expected is not None:
        for sq, targets in expected.items():
            for did in targets:
                i = index.get(did)
                if i is None:
                    continue
                if (sq, i) not in fired_pairs:
                    missed += 1
                    missed_by_device[did] = missed_by_device.get(did, 0) + 1
    late_devices: set[int] = set()
    if fire.any():
        f_true = cols["true_ns"][fire]
        f_seq, f_dev, f_t = seq[fire], cols["device"][fire], (f_true - f_true.min()).astype(np.float64)
        for sq in per:
            m = f_seq == sq
            med = np.median(f_t[m])
            late_devices.update(f_dev[m][np.abs(f_t[m] - med) / 1000.0 > late_us].tolist())
    on_receipt = _on_receipt(
        seq[fire],
        cols["device"][fire],
        cols["true_ns"][fire],
        seq[rx],
        cols["device"][rx],
        cols["true_ns"][rx],
    )
    cues = []
    t_first = min((p["median_ns"] for p in per.values()), default=0)
    for sq in sorted(per):
        row: dict[str, Any] = {"seq": sq, "cue": (cue_of or {}).get(sq, ""), **per[sq]}
        row["t_s"] = (row.pop("median_ns") - t_first) / 1e9  # when it fired, from the first cue
        row["on_receipt"] = on_receipt.get(sq, 0)
        if sq in base_per:
            row["baseline_p99_us"] = base_per[sq]["p99_us"]
            row["baseline_range_us"] = base_per[sq]["range_us"]
        cues.append(row)
    # A cue fires through one or more actions (a message, a fade...), each with its own sequence
    # number: count both. Without names, each action stands for its own cue.
    names = cue_of or {}
    cue_ids = {names.get(sq) or f"#{sq}" for sq in per}
    return {
        "devices": devices if devices is not None else len(ids),
        "cues_fired": len(cue_ids),
        "actions_fired": len(per),
        "fires": int(fire.sum()),
        "missed": missed,
        "late_devices": len(late_devices),
        "spread_p50_us": _pct(pooled, 50),
        "spread_p99_us": _pct(pooled, 99),
        "spread_max_us": float(pooled.max()) if pooled.size else 0.0,
        "baseline_spread_p50_us": _pct(base, 50),
        "baseline_spread_p99_us": _pct(base, 99),
        "baseline_spread_max_us": float(base.max()) if base.size else 0.0,
        "on_receipt": sum(on_receipt.values()),
        # Controller terms (docs/protocol.md): commands devices dropped as a replaced controller's,
        # and executions under a lower term than one the same device had executed before (0).
        "stale_term": int((what == STALE_TERM).sum()),
        "term_regressions": len(recorder.term_regressions()),
        "missed_by_device": dict(sorted(missed_by_device.items())[:50]),
        "cues": cues,
    }


def zone_spread(recorder: Recorder, zone_of: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Per zone: each device's distance from its cue's median (the median over *every* device
    that fired the cue, so a zone that fires late as a block shows), pooled over cues, with a
    histogram over :data:`ZONE_BANDS_US`. ``zone_of`` maps device id -> zone."""
    cols = recorder.columns()
    fire = np.isin(cols["what"], FIRE_KINDS) & (cols["seq"] >= 0)
    seq, dev, t = cols["seq"][fire], cols["device"][fire], cols["true_ns"][fire]
    if seq.size == 0:
        return {}
    order = np.lexsort((t, dev, seq))
    seq, dev, t = seq[order], dev[order], t[order]
    first = np.ones(seq.size, dtype=bool)
    first[1:] = (seq[1:] != seq[:-1]) | (dev[1:] != dev[:-1])
    seq, dev, t = seq[first], dev[first], t[first]
    ids = recorder.device_ids
    zones = np.array([zone_of.get(ids[i], "") if i < len(ids) else "" for i in dev.tolist()], dtype=object)
    devs_us = np.full(seq.size, np.nan)
    bounds = np.flatnonzero(np.r_[True, seq[1:] != seq[:-1], True])
    for a, b in itertools.pairwise(bounds):
        if b - a < 2:
            continue
        ts = (t[a:b] - t[a]).astype(np.float64)
        devs_us[a:b] = np.abs(ts - np.median(ts)) / 1000.0
    edges = np.array([*ZONE_BANDS_US, np.inf])
    out: dict[str, dict[str, Any]] = {}
    for z in sorted({str(z) for z in zones.tolist()}):
        x = devs_us[(zones == z) & ~np.isnan(devs_us)]
        if x.size == 0:
            continue
        counts, _ = np.histogram(x, bins=edges)
        out[z] = {
            "devices": len(set(dev[zones == z].tolist())),
            "fires": int(x.size),
            "p50_us": _pct(x, 50),
            "p99_us": _pct(x, 99),
            "max_us": float(x.max()),
            "hist": [int(c) for c in counts],
        }
    return out


def _on_receipt(
    f_seq: npt.NDArray[np.int64],
    f_dev: npt.NDArray[np.int64],
    f_true: npt.NDArray[np.int64],
    r_seq: npt.NDArray[np.int64],
    r_dev: npt.NDArray[np.int64],
    r_true: npt.NDArray[np.int64],
) -> dict[int, int]:
    """Per cue, how many devices executed it on receipt: their first execution came no earlier
    than the message's arrival (it arrived after its instant, or the device had no clock model).
    Those fires measure the network and the fan-out, not the clock sync."""
    first_rx: dict[tuple[int, int], int] = {}
    for k, t in zip(zip(r_seq.tolist(), r_dev.tolist(), strict=True), r_true.tolist(), strict=True):
        if k not in first_rx or t < first_rx[k]:
            first_rx[k] = t
    first_fire: dict[tuple[int, int], int] = {}
    for k, t in zip(zip(f_seq.tolist(), f_dev.tolist(), strict=True), f_true.tolist(), strict=True):
        if k not in first_fire or t < first_fire[k]:
            first_fire[k] = t
    out: dict[int, int] = {}
    for k, t in first_fire.items():
        rx_t = first_rx.get(k)
        if rx_t is not None and t <= rx_t:
            out[k[0]] = out.get(k[0], 0) + 1
    return out
