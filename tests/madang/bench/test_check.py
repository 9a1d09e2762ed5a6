"""The check benchmark runs and reports its figures (the speed itself is not asserted)."""

from __future__ import annotations

from madang.bench.check import bench_check


def test_bench_check_small() -> None:
    got = bench_check(20, repeat=1)
    assert got["ok"] is True, got["errors"]
    assert got["cues"] == 20
    assert isinstance(got["actions"], int) and got["actions"] > 40
    assert isinstance(got["check_ms"], float) and got["check_ms"] > 0
    assert isinstance(got["cpu_ms"], float) and got["cpu_ms"] > 0
    assert isinstance(got["loadavg_1m"], float)
