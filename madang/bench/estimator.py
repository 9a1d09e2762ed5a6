"""Benchmark: the batch clock estimator, Numba kernel versus its pure-Python reference.

Builds seeded Wi-Fi-like ping samples (:data:`controller.sync.synthetic.WIFI`) for ``devices``
devices x ``samples`` pings, marks every device dirty and times :func:`estimate_batch` over all
of them (after :func:`warm`), best and median of ``repeats``. The pure-Python reference
(:func:`estimate_one_reference`) is timed on a subset of devices and scaled to the whole batch
(``reference_subset``). Also reports the accuracy of this batch against the simulated truth,
next to the naive median of offsets, and the kernel's compile time: cold (a fresh Numba cache
directory, in a child process) and cached (a second child process loading from that cache),
both including the interpreter and NumPy/Numba import. Prints JSON with
``python3 -m madang.bench.estimator`` (or ``madang bench estimator --json``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from controller.sync.estimator import (
    EstimateArrays,
    estimate_batch,
    estimate_one_reference,
    naive_offset_ns,
    warm,
)
from controller.sync.samples import PingSamples
from controller.sync.synthetic import WIFI, simulate_pings

__all__ = ["run"]

_CHILD = (
    "import time; t = time.perf_counter(); "
    "from controller.sync.estimator import warm; warm(); "
    "print(time.perf_counter() - t)"
)


def _child_warm_s(cache_dir: str) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True, timeout=600
    )
    return float(out.stdout.strip().splitlines()[-1])


def _compile_times() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="madang-numba-") as d:
        cold = _child_warm_s(d)
        cached = _child_warm_s(d)
    return {"compile_s": round(cold, 3), "compile_cached_s": round(cached, 3)}


def run(
    devices: int = 10_000,
    samples: int = 64,
    repeats: int = 5,
    *,
    reference_subset: int = 200,
    seed: int = 1,
    measure_compile: bool = True,
) -> dict[str, Any]:
    """Time one estimate of ``devices`` devices x ``samples`` samples; returns the figures."""
    rng = np.random.default_rng(seed)
    sp = simulate_pings(rng, devices, samples, WIFI)
    ps = PingSamples(devices, samples)
    ps.add_many(
        np.repeat(np.arange(devices), samples), sp.t1.ravel(), sp.t2.ravel(), sp.t3.ravel(), sp.t4.ravel()
    )
    t0 = time.perf_counter()
    warm()
    warm_s = time.perf_counter() - t0
    out = EstimateArrays(devices)
    epoch = np.full(devices, sp.epoch_ns, dtype=np.int64)
    dirty = np.ones(devices, dtype=np.bool_)
    args = (
        ps.t1, ps.t2, ps.t3, ps.t4, ps.count, ps.head, dirty, epoch,
        out.offset_ns, out.drift_ppb, out.drift_sigma_ppb, out.uncertainty_ns,
        out.delay_p50_ns, out.delay_p99_ns, out.min_delay_ns, out.n_samples,
    )  # fmt: skip
    times = []
    cpu = []
    for _ in range(max(1, repeats)):
        c0 = time.thread_time()
        t0 = time.perf_counter()
        estimate_batch(*args)
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)

    sub = min(reference_subset, devices)
    t0 = time.perf_counter()
    for d in range(sub):
        estimate_one_reference(
            sp.t1[d].tolist(), sp.t2[d].tolist(), sp.t3[d].tolist(), sp.t4[d].tolist(), sp.epoch_ns
        )
    ref_s = (time.perf_counter() - t0) * devices / max(1, sub)

    truth = sp.true_offset_at(sp.epoch_ns)
    err = np.abs(out.offset_ns - truth)
    naive = np.abs(naive_offset_ns(ps) - truth)
    result: dict[str, Any] = {
        "devices": devices,
        "samples": samples,
        "repeats": len(times),
        "ms_per_batch": round(min(times) * 1e3, 3),
        "ms_per_batch_median": round(float(np.median(times)) * 1e3, 3),
        "cpu_ms_per_batch": round(min(cpu) * 1e3, 3),  # this thread's CPU time: robust to a busy host
        "reference_ms_per_batch": round(ref_s * 1e3, 1),
        "reference_subset": sub,
        "reference_note": f"pure-Python reference timed on {sub} devices and scaled to {devices}",
        "speedup": round(ref_s / min(times), 1),
        "warm_s_in_process": round(warm_s, 3),
        "profile": "wifi-like: 2 ms floor, 5 ms mean queueing split 4:1, 5% spikes 50-200 ms",
        "offset_err_p50_us": round(float(np.percentile(err, 50)) / 1e3, 1),
        "offset_err_p99_us": round(float(np.percentile(err, 99)) / 1e3, 1),
        "naive_median_err_p99_us": round(float(np.percentile(naive, 99)) / 1e3, 1),
        "drift_err_p99_ppm": round(float(np.percentile(np.abs(out.drift_ppb - sp.drift_ppb), 99)) / 1e3, 2),
        "uncertainty_covers": round(float(np.mean(err <= out.uncertainty_ns)), 5),
    }
    if measure_compile:
        result.update(_compile_times())
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
