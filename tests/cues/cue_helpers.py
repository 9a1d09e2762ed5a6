"""Helpers for the show-file tests: a small venue built in Python, a show writer, a checker."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from cues.check import CheckReport, check_loaded
from cues.loader import load_show
from venues.model import Device, MqttEndpoint, OscEndpoint, Sync, Venue


def make_venue(headsets: int = 10) -> Venue:
    """A small Han-River-like venue: facades and a fountain on OSC, barges on both, headsets on MQTT."""
    devices: list[Device] = []

    def osc_dev(i: str, kind: str, zone: str, port: int, sync: Sync = Sync.TIMETAG) -> Device:
        return Device(
            id=i,
            kind=kind,
            zone=zone,
            sync=sync,
            osc=OscEndpoint("127.0.0.1", port),
            attrs={"id": i, "kind": kind, "zone": zone, "layer": "1"},
            interpolates=kind == "facade",
        )

    for n in (1, 2, 3):
        devices.append(osc_dev(f"facade-yeouido-{n}", "facade", "yeouido", 9000 + n))
    for n in (1, 2):
        devices.append(osc_dev(f"facade-banpo-{n}", "facade", "banpo", 9010 + n))
    devices.append(osc_dev("fountain-banpo", "fountain", "banpo", 9020, Sync.NONE))
    for n in (1, 2):
        i = f"barge-{n}"
        devices.append(
            Device(
                id=i,
                kind="barge",
                zone="banpo",
                sync=Sync.ECHO,
                osc=OscEndpoint("127.0.0.1", 9030 + n),
                mqtt=MqttEndpoint(f"madang/dev/{i}"),
                attrs={"id": i, "kind": "barge", "zone": "banpo", "hull": f"H{n}"},
            )
        )
    for n in range(1, headsets + 1):
        i = f"hmd-{n:03d}"
        zone = "yeouido" if n % 2 else "banpo"
        devices.append(
            Device(
                id=i,
                kind="headset",
                zone=zone,
                sync=Sync.APP,
                mqtt=MqttEndpoint(f"madang/dev/{i}"),
                attrs={"id": i, "kind": "headset", "zone": zone, "seat": f"S{n}"},
            )
        )
    ids = [d.id for d in devices]
    groups = {
        "facades": tuple(i for i in ids if i.startswith("facade-")),
        "barges": tuple(i for i in ids if i.startswith("barge-")),
        "fountain": ("fountain-banpo",),
        "audience": tuple(i for i in ids if i.startswith("hmd-")),
    }
    return Venue(
        id="test-river",
        name="Test River",
        zones=("yeouido", "banpo"),
        broker="127.0.0.1:1883",
        devices=tuple(devices),
        groups=groups,
        source="test-river.yaml",
    )


@pytest.fixture
def venue() -> Venue:
    return make_venue()


HEADER = """\
show: Test Show
venue: test-river
tempo: {bpm: 120, meter: 4/4}
fps: 30
"""


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """Write files under tmp_path: ``write("show.yaml", text)``; text is dedented."""

    def _write(name: str, text: str | bytes) -> Path:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(textwrap.dedent(text), encoding="utf-8")
        return p

    return _write


@pytest.fixture
def check(write: Callable[..., Path], venue: Venue) -> Callable[..., CheckReport]:
    """Check a show given as text (cues part; the header is added unless ``header=False``)."""

    def _check(
        text: str, *, header: bool = True, name: str = "show.yaml", v: Venue | None = None
    ) -> CheckReport:
        body = textwrap.dedent(text)
        path = write(name, (HEADER + body) if header else body)
        return check_loaded(load_show(path), v or venue)

    return _check
