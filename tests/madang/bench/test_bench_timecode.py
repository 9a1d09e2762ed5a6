"""``madang bench timecode`` runs and reports its figures (a short run; the figures are not judged)."""

from __future__ import annotations

import pytest

from madang.bench.timecode import run


@pytest.mark.integration
def test_bench_timecode_short_run_locks_and_rides_a_dropout() -> None:
    r = run(fps="29.97df", seconds=1.5, dropout_s=0.3)
    assert r["lock_ms"] is not None and r["error_us"]["samples"] > 10
    assert r["seeks_after_dropout"] == 0 and r["relock_ms"] is not None
