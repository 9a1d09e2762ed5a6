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


VENUE = SHOW.parents[1] / "venues" / "han-river.yaml"


def test_check_of_a_venue_file_checks_the_venue_alone() -> None:
    proc = _madang("check", str(VENUE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""  # no finding: a venue is not read as a show
    assert proc.stdout.strip() == (
        "han-river.yaml: ok: venue han-river, 1,217 devices (12 facade, 4 barge, 1 fountain, 1,200 xr) "
        "in 3 zones, 11 groups"
    )
    data = json.loads(_madang("check", "--json", str(VENUE)).stdout)
    assert data["kind"] == "venue" and data["ok"] is True and data["findings"] == []
    assert data["venue"]["devices"] == 1217 and data["venue"]["groups"]["audience"] == 1200


def test_check_of_a_broken_venue_file_gives_every_error_at_its_place(tmp_path: Path) -> None:
    bad = tmp_path / "river.yaml"
    bad.write_text(VENUE.read_text(encoding="utf-8").replace("zone: ttukseom", "zone: tukseom"), "utf-8")
    proc = _madang("check", str(bad))
    assert proc.returncode == 1
    errors = proc.stderr.strip().splitlines()
    assert errors == [  # the facades' entry, the headsets' entry, and that zone's group now empty
        f"{bad}:46:11: unknown zone 'tukseom' (did you mean 'ttukseom'?)",
        f"{bad}:91:11: unknown zone 'tukseom' (did you mean 'ttukseom'?)",
        f"{bad}:106:13: group 'ttukseom' selects no device ('zone:ttukseom') (check the names and values)",
    ]
    assert proc.stdout.strip() == "river.yaml: venue file: 3 errors"
    data = json.loads(_madang("check", "--json", str(bad)).stdout)
    assert data["kind"] == "venue" and data["errors"] == 3 and data["venue"] is None
    assert [f["line"] for f in data["findings"]] == [46, 91, 106]


def test_check_of_a_venue_with_venue_option_says_what_to_do() -> None:
    proc = _madang("check", str(VENUE), "--venue", str(VENUE))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "is a venue file" in proc.stderr and f"madang check {VENUE}" in proc.stderr


def test_file_kind_tells_venues_from_shows_by_their_keys(tmp_path: Path) -> None:
    from cues.check import file_kind

    assert file_kind(VENUE) == "venue" and file_kind(SHOW) == "show"
    flow = tmp_path / "v.yaml"
    flow.write_text('{venue: v, zones: [z], devices: [{id: a, kind: k, zone: z, sync: none, mqtt: {}}]}\n')
    assert file_kind(flow) == "venue"
    stub = tmp_path / "s.yaml"
    stub.write_text("venue: han-river\n")  # a show that names its venue and nothing else yet
    assert file_kind(stub) == "show"
    assert file_kind(tmp_path / "missing.yaml") == "show"  # the show check says "file not found"


def test_plan_piped_renders_whole_rows_at_a_fixed_width() -> None:
    proc = _madang("plan", str(SHOW))  # stdout is a pipe here, as in `madang plan SHOW | less`
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 160
    header = next(line for line in lines if "time" in line and "cue" in line)
    for column in ("time", "cue", "go", "what", "targets"):
        assert f" {column} " in header, header  # no column squeezed away
    row = next(line for line in lines if "fade brightness current->0.3" in line)
    assert "00:00.000" in row and "displays (16)" in row  # its time, what and targets on one line


def test_simulate_map_writes_a_venue_the_shipped_show_checks_against(tmp_path: Path) -> None:
    """`simulate --map` used to drop attrs and safe states: the shipped show failed `check`."""
    import dataclasses

    from cues.check import check_show
    from madang.rehearsal import _write_mapped
    from venues.loader import load_venue
    from venues.model import OscEndpoint

    venue = load_venue(VENUE)
    ports = iter(range(47_000, 48_000, 3))
    simulated = dataclasses.replace(
        venue,
        devices=tuple(
            dataclasses.replace(d, osc=OscEndpoint("127.0.0.1", next(ports))) if d.osc else d
            for d in venue.devices
        ),
    )
    mapped = tmp_path / "mapped.yaml"
    _write_mapped(simulated, mapped, "mqtt://127.0.0.1:41999")
    report = check_show(SHOW, venue_path=mapped)
    assert report.ok, [str(f) for f in report.findings]
    again = load_venue(mapped)
    assert again.broker == "mqtt://127.0.0.1:41999"
    assert [d.safe for d in again.devices] == [d.safe for d in venue.devices]
    assert [d.attrs for d in again.devices] == [d.attrs for d in venue.devices]
    assert again.groups == venue.groups
