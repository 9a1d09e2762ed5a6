"""The estimator benchmark returns its figures, and its batch is more accurate than the naive one."""

from __future__ import annotations

from madang.bench.estimator import run


def test_bench_reports_its_figures_on_a_small_batch() -> None:
    r = run(devices=300, samples=32, repeats=2, reference_subset=20, measure_compile=False)
    for key in ("ms_per_batch", "reference_ms_per_batch", "cpu_ms_per_batch", "speedup"):
        assert isinstance(r[key], float) and r[key] > 0
    assert (r["devices"], r["samples"], r["reference_subset"]) == (300, 32, 20)
    assert "compile_s" not in r
    assert r["offset_err_p99_us"] < r["naive_median_err_p99_us"]
    assert r["uncertainty_covers"] >= 0.99
