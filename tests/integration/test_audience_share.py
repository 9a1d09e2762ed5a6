"""A cue that waits for 80 % of a zone's phones, end to end: ``madang run --simulate`` with an
audience pool, real WebSocket audience clients (simulators.devices.phone, the light page's
protocol) join the zone and tap; the cue starts when, and only when, four of the five present have
tapped, and its light reaches every phone."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulators.devices.phone import AudiencePhone
from tests.integration.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

VENUE = """\
venue: stand
zones: [east, west]
devices:
  - {id: led-1, kind: facade, zone: east, sync: none, osc: {port: 9000}}
audience:
  capacity: 20
  zones: [east, west]
"""

SHOW = """\
show: Share of taps
venue: venue.yaml
cues:
  - id: bloom
    on: {audience: tap, zone: east, count: 80%, timeout: 2min}
    actions:
      - light: {targets: "kind:phone", color: "#ff2d95"}
"""


def wait_url(proc: subprocess.Popen[bytes], err: Path) -> str:
    """The audience WebSocket address ``madang run`` prints at start."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"web audience http://(\S+)/audience", err.read_text())
        if m:
            return f"ws://{m.group(1)}/audience/ws"
        assert proc.poll() is None, err.read_text()[-3000:]
        time.sleep(0.05)
    raise AssertionError("madang run printed no audience URL")


async def until(cond: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def crowd(url: str) -> list[AudiencePhone]:
    east = [AudiencePhone([f"{url}?zone=east"]) for _ in range(5)]
    west = [AudiencePhone([f"{url}?zone=west"]) for _ in range(2)]
    phones = [*east, *west]
    tasks = [asyncio.create_task(p.run()) for p in phones]
    try:
        await until(lambda: all(p.joined.is_set() for p in phones), "phones did not join")
        assert {p.zone for p in east} == {"east"} and {p.zone for p in west} == {"west"}
        await asyncio.sleep(0.3)  # their ready statuses reach the core
        for p in [*east[:3], *west]:  # 3 of east's 5 (60 %), and the other zone: not enough
            assert p.tap()
        east[0].tap()  # the same phone again: counted once
        await asyncio.sleep(1.0)
        assert not any(p.fired("bloom") for p in phones), "the cue started before 80 % had tapped"
        assert east[3].tap()  # 4 of 5: 80 %
        await until(
            lambda: all(p.fired("bloom") for p in phones), "the cue's light did not reach every phone"
        )
        return phones
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_a_cue_starts_when_80_percent_of_a_zone_present_have_tapped(tmp_path: Path) -> None:
    (tmp_path / "venue.yaml").write_text(VENUE, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(SHOW, encoding="utf-8")
    err = tmp_path / "stderr.txt"
    with err.open("w") as err_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "madang",
                "run",
                str(tmp_path / "show.yaml"),
                "--simulate",
                "--web-port",
                "0",
                "--control-port",
                "-1",
                "--no-view",
                "--exit-at-end",
                "--report",
                str(tmp_path / "r.json"),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            phones = asyncio.run(crowd(wait_url(proc, err)))
            assert proc.wait(timeout=60) == 0, err.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert all(sum(r.cue == "bloom" for r in p.cues) >= 1 for p in phones)
