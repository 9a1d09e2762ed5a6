"""The ``madang`` command on the top floor: ``python -m madang`` runs it, and the simulators'
benchmark is one of its ``bench`` subcommands. Child processes, as an operator types them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from madang.bench.devices import run

SHOW = Path(__file__).resolve().parents[2] / "config" / "shows" / "han-river-night-bloom.yaml"


def _madang(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "madang", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_python_dash_m_madang_lists_every_command() -> None:
    proc = _madang("--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for cmd in ("check", "plan", "schema", "run", "simulate", "demo", "bench"):
        assert cmd in proc.stdout


def test_check_of_a_shipped_show_passes_and_prints_json() -> None:
    proc = _madang("check", str(SHOW), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert isinstance(json.loads(proc.stdout), dict)


def test_bench_devices_runs_the_simulators_scheduler_bench() -> None:
    proc = _madang("bench", "devices", "vtime", "--events", "2000", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert r["bench"] == "vtime" and r["events"] == 2000 and r["events_per_s"] > 0


def test_an_unknown_simulator_bench_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="vtime, virtual or mqtt"):
        run("nope")
