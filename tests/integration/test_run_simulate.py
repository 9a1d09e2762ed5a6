"""``madang run SHOW --simulate``, the command an integration engineer types: one process plays the
show against its simulated venue (a private Mosquitto started on a free loopback port, real UDP
sockets) and writes the post-show report; the options of ``madang run`` reach the runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SIM_YARD = Path(__file__).resolve().parents[1] / "data" / "sim" / "sim-yard.yaml"


def test_run_simulate_plays_the_show_and_honours_runs_options(tmp_path: Path) -> None:
    report_path = tmp_path / "out" / "report.json"  # a folder that does not exist yet, as in the README
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "madang",
            "run",
            str(SIM_YARD),
            "--simulate",
            "--go",
            "--exit-at-end",
            "--no-view",
            "--control-port",
            "-1",
            "--sync-budget",
            "2500",
            "--go-latency",
            "400",
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
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report_path.with_suffix(".html").exists()
    assert report["missed"] == 0 and report["cues_fired"] >= 5
    ctl = report["controller"]
    assert ctl["sync_budget_us"] == 2500.0  # --sync-budget reached the runtime
    assert ctl["go_delay_ms"] == 400.0  # and so did --go-latency


def test_a_report_path_that_cannot_be_written_fails_before_the_show(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a folder", encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "madang",
            "run",
            str(SIM_YARD),
            "--simulate",
            "--go",
            "--exit-at-end",
            "--no-view",
            "--report",
            str(tmp_path / "plain" / "report.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    assert "madang: cannot create the folder" in proc.stderr
    assert "plain is a file, not a folder; choose another path" in proc.stderr
    assert "sync report" not in proc.stdout  # nothing was played (no report table)
