"""``madang bench sync-tick``: the sync service's CPU per ping, driven as the core drives it."""

from __future__ import annotations

import json
import subprocess
import sys


def test_sync_tick_bench_answers_the_pings_it_sends_and_reports_json() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "madang",
            "bench",
            "sync-tick",
            "--devices",
            "50",
            "--seconds",
            "4",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert r["devices"] == 50 and r["seconds"] == 4
    # Each device's join burst alone is 30 pings over 3 s; every ping but the last few in flight
    # comes back as a pong, and some models went out to the app devices.
    assert r["pings"] >= 50 * 30
    assert r["pings"] - 50 <= r["pongs"] <= r["pings"]
    assert r["model_sends"] > 0
    assert r["cpu_us_per_ping"] > 0
