# ruff: noqa: E501  (the venue texts are data whose columns the expected findings name)
"""The DMX patch of venue files: good blocks build endpoints, bad ones get file:line:col findings."""

from __future__ import annotations

import textwrap

import pytest

from venues.errors import SourceErrors
from venues.loader import venue_from_doc
from venues.model import DmxChannel, Venue
from venues.source import parse_yaml

HEAD = """\
venue: v
zones: [z]
dmx: {rate: 40, keepalive: 800ms}
devices:
"""


def _load(devices: str) -> Venue:
    return venue_from_doc(parse_yaml(HEAD + textwrap.indent(textwrap.dedent(devices), "  "), "v.yaml"))


def _errors(devices: str) -> list[str]:
    with pytest.raises(SourceErrors) as info:
        _load(devices)
    return [str(f) for f in info.value.findings]


def test_a_range_of_fixtures_is_patched_one_after_another() -> None:
    v = _load("""\
        - id: bar-{1..3}
          kind: bar
          zone: z
          sync: none
          dmx: {transport: artnet, host: 2.255.255.255, universe: 3, address: "10+", footprint: 3,
                channels: {brightness: 1, hue: {channel: 2, bits: 16}}}
        """)
    eps = [d.dmx for d in v.devices]
    assert [e.address for e in eps if e] == [10, 13, 16]
    third = eps[2]
    assert third is not None and third.port == 6454 and third.host == "2.255.255.255"
    assert third.channels == (DmxChannel("brightness", 16), DmxChannel("hue", 17, 16))
    assert v.dmx.rate_hz == 40 and v.dmx.keepalive_ns == 800_000_000


def test_sacn_defaults_to_multicast_on_its_port() -> None:
    v = _load("""\
        - {id: f, kind: f, zone: z, sync: none, dmx: {transport: sacn, universe: 7, address: 1, footprint: 1,
           channels: {flow: 1}}}
        """)
    ep = v.devices[0].dmx
    assert ep is not None and ep.host is None and ep.port == 5568 and ep.priority == 100 and ep.sync


@pytest.mark.parametrize(
    ("devices", "expected"),
    [
        (
            """\
            - {id: f, kind: f, zone: z, sync: none, dmx: {transport: sacn, universe: 0, address: 1, footprint: 1,
               channels: {flow: 1}}}
            """,
            "v.yaml:5:76: sacn universe 0 is out of range (sacn universes are 1-63999)",
        ),
        (
            """\
            - id: f
              kind: f
              zone: z
              sync: none
              dmx: {transport: sacn, universe: 1, address: 1, footprint: 2,
                    channels: {flow: {channel: 2, bits: 16}}}
            """,
            "v.yaml:10:28: 'flow' on channels 2-3 lies outside the footprint of 2 channels",
        ),
        (
            """\
            - id: b-{1..2}
              kind: b
              zone: z
              sync: none
              dmx: {transport: artnet, host: 10.0.0.9, universe: 1, address: 1, footprint: 2, channels: {x: 1}}
            """,
            "v.yaml:9:68: 2 fixtures from 'b-{1..2}' would share start channel 1",
        ),
        (
            """\
            - id: b-{1..2}
              kind: b
              zone: z
              sync: none
              dmx: {transport: artnet, universe: 1, address: "1+", footprint: 2, channels: {x: 1}}
            """,
            "v.yaml:9:10: an Art-Net fixture needs a host",
        ),
        (
            """\
            - id: b-{1..2}
              kind: b
              zone: z
              sync: none
              dmx: {transport: artnet, host: 10.0.0.9, universe: 1, address: "510+", footprint: 2,
                    channels: {x: 1}}
            """,
            "2 fixture(s) of 2 channels from channel 510 run to channel 513",
        ),
        (
            """\
            - {id: a, kind: b, zone: z, sync: none,
               dmx: {transport: artnet, host: 10.0.0.9, universe: 1, address: 1, footprint: 4, channels: {x: 1}}}
            - {id: b, kind: b, zone: z, sync: none,
               dmx: {transport: artnet, host: 10.0.0.9, universe: 1, address: 3, footprint: 2, channels: {x: 1}}}
            """,
            "v.yaml:8:69: 'b' (channels 3-4) overlaps 'a' (channels 1-4, at v.yaml:6:69) on artnet universe 1",
        ),
        (
            """\
            - {id: a, kind: b, zone: z, sync: none,
               dmx: {transport: sacn, universe: 1, address: 1, footprint: 2, channels: {x: 1, y: 1}}}
            """,
            "'y' and 'x' both use channel 1",
        ),
        (
            """\
            - {id: a, kind: b, zone: z, sync: timetag,
               dmx: {transport: sacn, universe: 1, address: 1, footprint: 1, channels: {x: 1}}}
            """,
            "sync: timetag needs osc, but device 'a' has only dmx",
        ),
    ],
)
def test_bad_patches_are_reported_where_they_are(devices: str, expected: str) -> None:
    errors = _errors(devices)
    assert any(expected in e for e in errors), errors


def test_the_shipped_venue_patches_the_barges_and_the_fountain() -> None:
    from venues.loader import load_venue

    v = load_venue("config/venues/han-river.yaml")
    patched = {d.id: d.dmx for d in v.devices if d.dmx is not None}
    assert sorted(patched) == ["barge-1", "barge-2", "barge-3", "barge-4", "fountain-banpo"]
    assert {(e.transport, e.universe) for e in patched.values()} == {("artnet", 0), ("sacn", 1)}
