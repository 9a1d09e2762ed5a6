"""WebSocket devices end to end: ``madang run --simulate`` on a venue of WebXR clients (the
simulators' ``WsApp``, speaking docs/protocol.md over the controller's WebSocket server) and MQTT
headsets side by side. Every device must sync, fire every cue once, in step; the WebXR clients'
connections must be counted by the hub; a crash of one (its connection dropped) must reach the
controller as its last will."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cues.compiler import compile_show
from simulators.devices.venue import SimulatedVenue
from simulators.harness import play_real
from simulators.harness.real import show_reached

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

VENUE = """\
venue: web-yard
zones: [north, south]
devices:
  - {id: "web-{01..12}", kind: xr, zone: north, sync: app, ws: {}, interpolates: true}
  - {id: "mq-{01..04}", kind: xr, zone: south, sync: app, mqtt: {}, interpolates: true}
"""

SHOW = """\
show: Web yard
venue: venue.yaml
cues:
  - id: scene
    actions:
      - mqtt: {targets: "kind:xr", topic: "xr/{device}/scene", payload: {scene: lotus}}
  - id: glow
    go: auto-continue
    pre_wait: 1s
    actions:
      - fade: {targets: "kind:xr", param: brightness, from: 0, to: 1, over: 1s}
      - at: 2s
        mqtt: {targets: "zone:north", topic: "xr/{device}/scene", payload: {scene: river}}
"""


def _files(tmp_path: Path) -> Path:
    (tmp_path / "venue.yaml").write_text(VENUE, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(SHOW, encoding="utf-8")
    return tmp_path / "show.yaml"


def test_run_simulate_plays_websocket_devices_in_sync(tmp_path: Path) -> None:
    """With ``--device-secrets`` (the secrets file of ``madang broker-config``): the controller
    asks each WebSocket device for its key and the simulated ones present theirs."""
    report_path = tmp_path / "report.json"
    show = _files(tmp_path)
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "madang",
            "broker-config",
            str(tmp_path / "venue.yaml"),
            "-o",
            str(tmp_path / "b"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "madang",
            "run",
            str(show),
            "--simulate",
            "--device-secrets",
            str(tmp_path / "b" / "secrets"),
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
        timeout=240,
        check=False,
        env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "madang: web devices /ws ws://127.0.0.1:" in proc.stderr  # the URL, printed at start
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["missed"] == 0 and report["cues_fired"] == 2
    assert report["devices"] == 16
    web = report["controller"]["web"]
    assert web["peak"] == 12 and web["slow"] == 0 and web["dropped"] == {}
    assert "WebSocket devices need their key: 12 of 12 have one" in proc.stderr
    assert web["device_keys"]["accepted"] >= 12 and sum(web["device_keys"]["refused"].values()) == 0
    # Every WebSocket device synced like the MQTT ones (a clock model, answers counted).
    rows = {r["device"]: r for r in report["telemetry"]}
    assert all(rows[f"web-{i:02d}"]["synced"] for i in range(1, 13))
    print(
        f"\nWebSocket devices: spread p99 {report['spread_p99_us']} us, "
        f"on receipt {report['baseline_spread_p99_us']} us"
    )
    assert report["spread_p99_us"] < 5_000


def test_a_websocket_device_that_crashes_is_offline_and_catches_up(tmp_path: Path) -> None:
    timeline, venue = compile_show(_files(tmp_path))

    async def crash(sim: SimulatedVenue, rt: object) -> None:
        await show_reached(rt, 500_000_000)  # type: ignore[arg-type]
        sim.reboot("web-03", after_ns=1_000_000_000)

    report, _sim, rt = asyncio.run(play_real(timeline, venue, profile="lan", faults=crash))
    assert rt.core.counters["late_joins"] >= 1  # it came back mid-show and got catch-up state
    assert rt.web is not None and rt.web.hub.stats.attached >= 13  # twelve, then web-03 again
    assert report["controller"]["web"]["peak"] == 12
