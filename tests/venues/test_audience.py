"""The venue's audience pool (venues.loader, venues.model.AudiencePool): slots, zones, the seat
map, and every refusal at its line and column."""

from __future__ import annotations

import textwrap

import pytest

from venues.errors import SourceErrors
from venues.loader import venue_from_doc
from venues.model import Sync, Venue
from venues.schema import venue_json_schema
from venues.source import parse_yaml
from venues.writer import venue_yaml

GOOD = """\
venue: stand
zones: [east, west, far]
devices:
  - {id: led-1, kind: facade, zone: east, sync: none, osc: {port: 9000}}
audience:
  capacity: 5
  zones: [east, west]
  seats:
    - {section: E, zone: east, rows: 3, seats: 4, origin: [0, 0], row_step: [0, 2], seat_step: [0.5, 0]}
    - {section: W-upper, zone: west, rows: 1, seats: 2, origin: [10, 5]}
groups:
  crowd: "kind:phone"
  west-crowd: "kind:phone & zone:west"
"""


def venue_of(text: str) -> Venue:
    return venue_from_doc(parse_yaml(textwrap.dedent(text), "v.yaml"))


def errors_of(text: str) -> list[str]:
    with pytest.raises(SourceErrors) as ei:
        venue_of(text)
    return [str(f) for f in ei.value.findings]


def test_the_pool_is_slots_split_among_its_zones() -> None:
    v = venue_of(GOOD)
    pool = v.audience
    assert pool is not None
    assert pool.slots == {"east": ("aud-00001", "aud-00002", "aud-00003"), "west": ("aud-00004", "aud-00005")}
    slots = [d for d in v.devices if d.pooled]
    assert [d.id for d in v.devices[-5:]] == [d.id for d in slots]
    d = v.device("aud-00004")
    assert (d.kind, d.zone, d.sync, d.interpolates) == ("phone", "west", Sync.APP, True)
    assert d.ws is not None and d.ws.path == "/audience/ws" and d.mqtt is None
    assert d.topic_root == "madang/dev/aud-00004"
    assert v.groups["west-crowd"] == ("aud-00004", "aud-00005")  # groups select slots like devices


def test_seats_map_to_positions_and_zones() -> None:
    pool = venue_of(GOOD).audience
    assert pool is not None
    seat = pool.seat("e-3-2")
    assert seat is not None
    assert (seat.label, seat.zone, seat.x, seat.y) == ("E-3-2", "east", 0.5, 4.0)
    assert pool.seat("W-upper-1-2") is not None and pool.seat("W-upper 1 2") is not None
    assert pool.seat("E-4-1") is None and pool.seat("E-1-5") is None and pool.seat("Z-1-1") is None
    assert pool.seat("nonsense") is None
    assert pool.bounds == (0.0, 0.0, 11.0, 5.0)


def test_refusals_are_positioned() -> None:
    bad = GOOD.replace("zones: [east, west]\n", "zones: [east, wets]\n").replace(
        "{section: W-upper, zone: west", "{section: e, zone: far"
    )
    found = errors_of(bad)
    assert "v.yaml:7:17: unknown zone 'wets' for the audience (did you mean 'west'?)" in found
    assert any(
        f.startswith("v.yaml:10:17: section 'e' is listed twice (first at v.yaml:9:17)") for f in found
    )
    assert any(
        f.startswith("v.yaml:10:26: section 'e' is in zone 'far', not an audience zone") for f in found
    )


def test_capacity_prefix_and_ids_are_checked() -> None:
    assert any(
        "a capacity of 1 cannot be split among 2 zones" in f
        for f in errors_of(GOOD.replace("capacity: 5", "capacity: 1"))
    )
    clash = GOOD.replace("id: led-1", "id: aud-00002")
    assert any("audience slot 'aud-00002' has the id of a device of the venue" in f for f in errors_of(clash))
    assert any(
        "'a b' is not a slot id prefix" in f
        for f in errors_of(GOOD.replace("  capacity: 5\n", "  capacity: 5\n  prefix: a b\n"))
    )
    shape = errors_of(GOOD.replace("rows: 3", "rows: 0"))
    assert shape and shape[0].startswith("v.yaml:9:")


def test_the_schema_and_the_writer_know_the_pool() -> None:
    assert "audience" in venue_json_schema()["properties"]
    v = venue_of(GOOD)
    text = venue_yaml(v)
    again = venue_of(text)
    assert again.audience == v.audience
    assert [d.id for d in again.devices] == [d.id for d in v.devices]
