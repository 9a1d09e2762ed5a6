"""The sync gate end to end: ``madang run SHOW --simulate --impair PROFILE --go --exit-at-end``
(one process, real UDP sockets, a private Mosquitto) on a show whose first cue targets only
``sync: timetag`` screens. ``--go`` waits for READY, so the first cue is timed by settled clock
models, never by a timetag guessed without one: the screens fire within the sync budget of each
other (5 ms by default; typically a few hundred us, 2.05 ms once in CI under load), and no worse
than they would have on receipt (issue 10, finding 3: 0.12-0.83 s apart before the fix)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

GATE_YARD = Path(__file__).resolve().parents[1] / "data" / "sim" / "gate-yard.yaml"


def _run(tmp_path: Path, profile: str) -> dict[str, object]:
    report_path = tmp_path / f"{profile}.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "madang",
            "run",
            str(GATE_YARD),
            "--simulate",
            "--impair",
            profile,
            "--go",
            "--exit-at-end",
            "--no-view",
            "--control-port",
            "-1",
            "--report",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    report: dict[str, object] = json.loads(report_path.read_text(encoding="utf-8"))
    return report


@pytest.mark.parametrize("profile", ["lan", "wifi"])
def test_go_waits_for_ready_and_the_first_cue_fires_together_on_the_screens(
    tmp_path: Path, profile: str
) -> None:
    report = _run(tmp_path, profile)
    cues = report["cues"]
    assert isinstance(cues, list)
    first = next(c for c in cues if c["cue"] == "first-light")
    assert first["devices"] == 6  # every screen fired it
    # Latest minus earliest, in true time: within the gate's default budget (every screen is
    # admitted with a predicted fire error under 5 ms), the promise the gate makes.
    assert first["range_us"] <= 5_000, first
    # Never worse than on receipt: on loopback (lan) receipt is itself within a few hundred us,
    # so the comparison allows what the screens' own clock models predict for their error (the
    # figure the gate admits them on); before the fix the screens were 0.12-0.83 s apart.
    telemetry = report["telemetry"]
    assert isinstance(telemetry, list)
    screens = [r for r in telemetry if r["sync"] == "timetag"]
    assert len(screens) == 6
    slack = 2 * max(r["predicted_error_us"] for r in screens)
    assert first["range_us"] <= first["baseline_range_us"] + slack, (first, slack)
    assert report["missed"] == 0
    ctl = report["controller"]
    assert isinstance(ctl, dict)
    assert ctl["counters"]["degraded_sends"] == 0  # every screen had a settled model by GO
    assert ctl["gate_failed"] is None
    settle = report["settle"]
    assert isinstance(settle, dict) and settle["ready"] is True  # GO came when the gate was READY
    # Finding 6: with the default budget, a healthy venue is not flagged "over budget" (the
    # budget is about where cues are predicted to land, not the raw uncertainty of a noisy link).
    assert [r["device"] for r in telemetry if r["over_budget"]] == []
    assert all(r["predicted_error_us"] is not None for r in telemetry)
