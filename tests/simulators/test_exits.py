"""The simulators leave nothing behind: an unknown profile fails before any process starts; a
record is written as it goes; children die with their parent."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cues.compiler import compile_show
from simulators.children import parent_death_signal_supported
from simulators.devices.venue import SimulatorError
from simulators.harness import play_real
from simulators.record import Recorder, RecordWriter

SIM_YARD = Path(__file__).resolve().parents[1] / "data" / "sim" / "sim-yard.yaml"


def test_play_real_with_an_unknown_profile_starts_no_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe, marker = tmp_path / "mosquitto", tmp_path / "started"
    probe.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n", encoding="utf-8")
    probe.chmod(probe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    timeline, venue = compile_show(SIM_YARD)
    with pytest.raises(SimulatorError, match=r"no network profile 'nonsense'.*choose one of: perfect, lan"):
        asyncio.run(play_real(timeline, venue, profile="nonsense", control_port=None))
    assert not marker.exists()


def test_a_record_is_written_as_it_goes_in_whole_lines(tmp_path: Path) -> None:
    rec = Recorder()
    path = tmp_path / "record.jsonl"
    writer = RecordWriter(rec, path)
    rec.record(rec.register("disp-1"), "osc", "", -1, "/scene", 10, 11, [1])
    rec.record(rec.register("xr-1"), "cue", "open", 3, "scene", 20, 21, {"scene": "lobby"})
    assert writer.flush() == 2
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]  # readable now
    assert [(r["device_id"], r["what"], r["seq"], r["value"]) for r in rows] == [
        ("disp-1", "osc", -1, [1]),
        ("xr-1", "cue", 3, {"scene": "lobby"}),
    ]
    assert writer.flush() == 0
    rec.record(rec.register("xr-1"), "cue", "river", 4, "scene", 30, 31, object())  # not JSON: str()
    writer.close()
    writer.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 == writer.lines and json.loads(lines[2])["key"] == "river"


@pytest.mark.skipif(not parent_death_signal_supported(), reason="prctl(PR_SET_PDEATHSIG) is Linux only")
def test_a_child_given_die_with_parent_dies_when_its_parent_is_killed(tmp_path: Path) -> None:
    # parent: a Python process that starts `sleep` with die_with_parent, prints its pid, then waits.
    code = (
        "import functools, os, subprocess, sys, time\n"
        "from simulators.children import die_with_parent\n"
        "p = subprocess.Popen(['sleep', '300'], preexec_fn=functools.partial(die_with_parent, os.getpid()))\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=repo)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 30
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child), "the child outlived its parent's kill -9"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_broker_still_running_when_python_exits_is_stopped(tmp_path: Path) -> None:
    code = (
        "from simulators.broker import MosquittoBroker\n"
        "b = MosquittoBroker().start()\n"
        "print(b.pid, flush=True)\n"  # and exit without stopping it
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=repo,
            env=env,
            timeout=120,
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        if "mosquitto not found" in exc.stderr:
            pytest.skip("mosquitto is not installed")
        raise
    pid = int(proc.stdout)
    deadline = time.monotonic() + 30
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid), "the broker outlived the interpreter that started it"
