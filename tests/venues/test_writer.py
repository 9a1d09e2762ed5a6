"""venues.writer: a venue written back out means what it meant (simulate --map depends on it)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from venues.loader import load_venue, venue_from_doc
from venues.model import OscEndpoint, Venue
from venues.source import parse_yaml
from venues.writer import venue_yaml

CONFIG = Path(__file__).resolve().parents[2] / "config" / "venues"


def _reload(text: str) -> Venue:
    return venue_from_doc(parse_yaml(text, "written.yaml"))


@pytest.mark.parametrize("name", ["han-river", "gwanghwamun"])
def test_a_shipped_venue_round_trips_whole(name: str) -> None:
    venue = load_venue(CONFIG / f"{name}.yaml")
    again = _reload(venue_yaml(venue))
    assert dataclasses.replace(again, source=venue.source) == venue  # devices, attrs, safe, groups...
    assert again.group_sources == venue.group_sources  # groups as selectors, not member lists


def test_moved_osc_ports_and_a_new_broker_keep_everything_else() -> None:
    venue = load_venue(CONFIG / "han-river.yaml")
    ports = iter(range(40_001, 60_000, 7))  # scattered, as a simulator's free ports are
    moved = dataclasses.replace(
        venue,
        devices=tuple(
            dataclasses.replace(d, osc=OscEndpoint("127.0.0.1", next(ports))) if d.osc else d
            for d in venue.devices
        ),
    )
    text = venue_yaml(moved, broker="mqtt://127.0.0.1:41234", header=["mapped"])
    assert text.startswith("# mapped\n")
    again = _reload(text)
    assert again.broker == "mqtt://127.0.0.1:41234"
    assert dataclasses.replace(again, source="", broker=venue.broker) == dataclasses.replace(
        moved, source=""
    )
    fountain = again.device("fountain-banpo")
    assert fountain.safe == {"flow": 0, "brightness": 0, "pump": 0} and fountain.latency_ns == 120_000_000
    assert again.device("xr-0401").attrs["area"] == "B"
    assert again.device("facade-banpo-1").attrs == {
        "id": "facade-banpo-1", "kind": "facade", "zone": "banpo", "bank": "south", "pixels": "90000",
    }
    # 1,200 headsets fold back into their three ranged entries.
    assert text.count("id: xr-") == 3


def test_a_cut_down_venue_writes_groups_it_can_no_longer_select_as_members(tmp_path: Path) -> None:
    venue = load_venue(CONFIG / "han-river.yaml")
    keep = [d for d in venue.devices if d.id != "facade-yeouido-63"]
    ids = {d.id for d in keep}
    cut = dataclasses.replace(
        venue,
        devices=tuple(keep),
        groups={g: tuple(m for m in ms if m in ids) for g, ms in venue.groups.items()},
    )
    again = _reload(venue_yaml(cut))
    # 'timed-displays' names facade-yeouido-63, gone: written as its members, same devices.
    assert again.groups == cut.groups
    assert again.group_sources["displays"] == ("facades | barges",)
