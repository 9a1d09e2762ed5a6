"""``madang bench console`` (madang/bench/console.py) at a small size, without the browser: the
command runs and its JSON has every figure. Its figures at 1,200 devices, with Chromium, are in
docs/benchmarks.md; here only the behaviour is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_bench_console_reports_sizes_and_costs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "madang", "bench", "console", "--devices", "200", "--cues", "5",
         "--no-browser", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["devices"] == 200 and out["browser"] is None
    # The grid is one character per device and per column, plus its envelope.
    assert 400 < out["bytes"]["grid"] < 500
    assert out["bytes"]["welcome"] > out["bytes"]["grid"]  # the device list goes once, at sign-in
    assert 0 < out["update_us"]["p50"] <= out["update_us"]["p99"]
    rt = out["runtime_us"]  # the real runtime's round, on the shipped Han River venue
    assert rt["devices"] > 1000 and 0 < rt["state"]["p50"] <= rt["state"]["p99"]
