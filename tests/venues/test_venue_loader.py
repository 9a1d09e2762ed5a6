"""venues.loader and venues.schema: the venue file, shipped venues, and every positioned refusal.

(Named test_venue_loader.py, not test_loader.py: tests/cues may hold a test_loader.py and the
test directories are not packages.)
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from venues.errors import Finding, Mark, SourceError, SourceErrors
from venues.loader import MAX_DEVICES, expand_ids, find_venue, load_venue, venue_from_doc
from venues.model import Sync
from venues.schema import venue_json_schema
from venues.selector import resolve
from venues.source import parse_yaml

CONFIG = Path(__file__).resolve().parents[2] / "config" / "venues"

GOOD = """\
venue: test
name: Test Venue
zones: [a, b]
safe:
  facade: {brightness: 0}
  fountain: {flow: 0}
devices:
  - id: facade-{1..3}
    kind: facade
    zone: a
    osc: {host: 127.0.0.1, port: "9100+"}
    sync: timetag
  - id: fountain
    kind: fountain
    zone: b
    osc: {port: 9200}
    sync: none
    latency: 120ms
  - id: "xr-{01..02}-{1..2}"
    kind: xr
    zone: b
    mqtt: {}
    sync: app
    interpolates: true
    attrs: {seat: "A", row: 3, vip: true}
  - id: web-1
    kind: xr
    zone: a
    ws: {}
    sync: app
groups:
  facades: "kind:facade"
  audience: ["kind:xr", fountain]
  front: "audience & zone:b"
"""


def venue_of(text: str):  # type: ignore[no-untyped-def]
    return venue_from_doc(parse_yaml(textwrap.dedent(text), "v.yaml"))


def findings_of(text: str) -> list[Finding]:
    with pytest.raises(SourceErrors) as ei:
        venue_of(text)
    return ei.value.findings


def at(f: Finding) -> tuple[int, int]:
    assert f.mark is not None and f.mark.file == "v.yaml"
    return (f.mark.line, f.mark.col)


def test_a_good_venue() -> None:
    v = venue_of(GOOD)
    assert v.id == "test" and v.name == "Test Venue" and v.zones == ("a", "b")
    assert v.broker == "mqtt://127.0.0.1:1883" and v.source == "v.yaml"
    assert [d.id for d in v.devices] == [
        "facade-1", "facade-2", "facade-3", "fountain",
        "xr-01-1", "xr-01-2", "xr-02-1", "xr-02-2", "web-1",
    ]  # fmt: skip
    f3 = v.device("facade-3")
    assert f3.osc is not None and f3.osc.port == 9102 and f3.sync is Sync.TIMETAG
    assert f3.safe == {"brightness": 0}
    fountain = v.device("fountain")
    assert fountain.latency_ns == 120_000_000 and fountain.safe == {"flow": 0}
    xr = v.device("xr-02-1")
    assert xr.mqtt is not None and xr.mqtt.base == "madang/dev/xr-02-1"
    assert xr.attrs == {"id": "xr-02-1", "kind": "xr", "zone": "b", "seat": "A", "row": "3", "vip": "true"}
    assert xr.safe == {"brightness": 0} and xr.interpolates
    assert v.device("web-1").ws is not None and v.device("web-1").transports == ("ws",)
    assert v.groups == {
        "facades": ("facade-1", "facade-2", "facade-3"),
        "audience": ("fountain", "xr-01-1", "xr-01-2", "xr-02-1", "xr-02-2", "web-1"),
        "front": ("fountain", "xr-01-1", "xr-01-2", "xr-02-1", "xr-02-2"),
    }
    assert resolve("front & row:3 & !seat:B", v) == ("xr-01-1", "xr-01-2", "xr-02-1", "xr-02-2")


@pytest.mark.parametrize("name", ["han-river", "gwanghwamun"])
def test_shipped_venues_load(name: str) -> None:
    v = load_venue(CONFIG / f"{name}.yaml")
    assert v.id == name
    ports = [d.osc.port for d in v.devices if d.osc is not None]
    assert len(ports) == len(set(ports))
    for g, ids in v.groups.items():
        assert ids, g


def test_han_river_shape() -> None:
    v = load_venue(CONFIG / "han-river.yaml")
    assert set(v.zones) == {"yeouido", "banpo", "ttukseom"}
    kinds = [d.kind for d in v.devices]
    assert kinds.count("facade") == 12 and kinds.count("barge") == 4 and kinds.count("fountain") == 1
    xr = [d for d in v.devices if d.kind == "xr"]
    assert len(xr) == 1200 and xr[0].id == "xr-0001" and xr[-1].id == "xr-1200"
    assert {d.zone for d in xr} == set(v.zones)
    assert all(d.sync is Sync.APP and d.mqtt is not None and d.interpolates for d in xr)
    fountain = v.device("fountain-banpo")
    assert fountain.sync is Sync.NONE and fountain.latency_ns == 120_000_000 and fountain.safe["flow"] == 0
    facades = [d for d in v.devices if d.kind == "facade"]
    assert {d.sync for d in facades} == {Sync.TIMETAG, Sync.ECHO, Sync.NONE}
    for g in ("facades", "barges", "fountain", "audience", "yeouido", "banpo", "ttukseom"):
        assert g in v.groups


def test_gwanghwamun_shape() -> None:
    v = load_venue(CONFIG / "gwanghwamun.yaml")
    ar = [d for d in v.devices if d.kind == "ar"]
    assert len(ar) == 600 and ar[0].id == "ar-001" and ar[-1].id == "ar-600"
    assert all(d.sync is Sync.TIMETAG for d in v.devices if d.kind == "projector")
    assert {"gate", "square", "sejong-statue"} <= set(v.zones)


def test_find_venue_by_name_and_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_venue("han-river") == CONFIG / "han-river.yaml"
    show_dir = tmp_path / "shows"
    show_dir.mkdir()
    (tmp_path / "mine.yaml").write_text(GOOD)
    assert find_venue("../mine.yaml", show_dir / "night.yaml") == show_dir / "../mine.yaml"
    assert load_venue(show_dir / "../mine.yaml").id == "test"
    with pytest.raises(SourceError) as ei:
        find_venue("han-rivr")
    assert "did you mean 'han-river'?" in ei.value.finding.hint
    assert "gwanghwamun" in ei.value.finding.hint
    monkeypatch.setenv("MADANG_CONFIG", str(tmp_path))
    (tmp_path / "venues").mkdir()
    (tmp_path / "venues" / "other.yaml").write_text(GOOD)
    assert find_venue("other") == tmp_path / "venues" / "other.yaml"
    assert load_venue("other").id == "test"


def test_load_venue_reports_a_missing_name() -> None:
    with pytest.raises(SourceErrors) as ei:
        load_venue("no-such-venue")
    assert "not found" in ei.value.findings[0].message


def test_expand_ids() -> None:
    assert expand_ids("xr-{0001..0003}") == ["xr-0001", "xr-0002", "xr-0003"]
    assert expand_ids("r{1..2}s{9..10}") == ["r1s9", "r1s10", "r2s9", "r2s10"]
    assert expand_ids("{08..10}") == ["08", "09", "10"]
    assert expand_ids("plain") == ["plain"]
    with pytest.raises(ValueError, match="runs backwards"):
        expand_ids("x{3..1}")
    with pytest.raises(ValueError, match="braces"):
        expand_ids("x{a..b}")
    with pytest.raises(ValueError, match="more than 100,000"):
        expand_ids("x{1..1000}{1..1000}")  # refused before expanding


def test_a_huge_range_is_refused_before_expanding() -> None:
    (f,) = findings_of(
        """\
        venue: t
        zones: [a]
        devices:
          - {id: "x{1..100000}y{1..100000}", kind: xr, zone: a, mqtt: {}, sync: app}
        """
    )
    assert at(f) == (4, 10)
    assert f"10,000,000,000 devices; a venue holds at most {MAX_DEVICES:,}" in f.message


def test_every_problem_is_reported_in_one_pass() -> None:
    fs = findings_of(
        """\
        venue: test
        zones: [a, b]
        safe:
          facde: {brightness: 0}
        devices:
          - id: f-{1..3}
            kind: facade
            zone: a
            osc: {port: 9000}
            sync: timetag
          - id: f-2
            kind: facade
            zone: c
            mqtt: {}
            sync: timetag
          - id: y
            kind: xr
            zone: b
            sync: app
            colour: red
          - id: z
            kind: xr
            zone: b
            osc: {port: 9000}
            sync: app
          - id: p-{1..3}
            kind: facade
            zone: a
            osc: {port: "65534+"}
            sync: echo
          - id: q
            kind: xr
            zone: b
            sync: none
        groups:
          g1: "kind:xr & zone:a"
          g2: "g3 | f-1"
          g3: "g2"
          g4: "audiance"
          g5: "colr:red"
          g6: "kind:xr &"
          f-1: "kind:xr"
        """
    )
    got = {(at(f), f.message, f.hint) for f in fs}
    expected = [
        ((4, 3), "safe state for kind 'facde', but no device has that kind", "did you mean 'facade'?"),
        ((9, 17), "3 devices from 'f-{1..3}' would share port 9000", 'write port: "9000+"'),
        ((6, 9), "device id 'f-2' is defined twice: here and at v.yaml:11:9", ""),
        ((11, 9), "device id 'f-2' is defined twice: here and at v.yaml:6:9", ""),
        ((13, 11), "unknown zone 'c'", "the venue's zones: a, b"),
        ((15, 11), "sync: timetag needs osc, but device 'f-2' has only mqtt", "add 'osc:"),
        ((20, 5), "unknown key 'colour' in device 'y'", "allowed keys here: attrs, dmx, id,"),
        ((25, 11), "sync: app needs mqtt or ws, but device 'z' has only osc", "add 'mqtt: {}'"),
        ((29, 17), "ports 65534..65536 for 3 devices run outside 1-65535", ""),
        ((31, 5), "device 'q' has no transport", "sync: none needs osc or mqtt or dmx"),
        ((36, 7), "group 'g1' selects no device ('kind:xr & zone:a')", ""),
        ((37, 3), "groups form a cycle: g2 -> g3 -> g2", "break the chain"),
        (
            (39, 8),
            "'audiance' is neither a device nor a group of the venue",
            "the groups the venue defines: f-1, g1,",
        ),
        ((40, 8), "no device has the attribute 'colr'", "the keys devices have:"),
        ((41, 17), "target ends where a name was expected", ""),
        ((42, 3), "group 'f-1' has the name of a device", "rename the group"),
    ]
    for where, message, hint in expected:
        assert any(w == where and m.startswith(message) and hint in h for w, m, h in got), (
            where,
            message,
            got,
        )
    assert len(fs) == len(expected), [str(f) for f in fs]


def test_osc_endpoint_used_twice_is_reported() -> None:
    fs = findings_of(
        """\
        venue: t
        zones: [a]
        devices:
          - {id: a, kind: f, zone: a, osc: {port: 9000}, sync: timetag}
          - {id: b, kind: f, zone: a, osc: {port: "8999+"}, sync: timetag}
          - {id: "c{1..2}", kind: f, zone: a, osc: {port: "8999+"}, sync: timetag}
        """
    )
    msgs = sorted(str(f) for f in fs)
    assert any("v.yaml:6:51: OSC 127.0.0.1:8999 of 'c1' is already used by 'b'" in m for m in msgs), msgs
    assert any("OSC 127.0.0.1:9000 of 'c2' is already used by 'a'" in m for m in msgs), msgs


@pytest.mark.parametrize(
    ("snippet", "where", "message"),
    [
        (
            "venue: t\nzones: a\ndevices:\n  - {id: a, kind: f, zone: a, mqtt: {}, sync: app}\n",
            (2, 8),
            "'zones': got the text 'a', expected a list",
        ),
        ("venue: t\nzones: [a]\ndevices: []\n", (3, 10), "'devices': got a list, expected at least 1 item"),
        ("venue: t\nzones: [a]\n", (1, 1), "the venue is missing 'devices'"),
        ("- a\n", (1, 1), "a venue file is a mapping"),
        (
            "venue: t\nzones: [a]\ndevices:\n  - {id: a, kind: f, zone: a, mqtt: {}, sync: apps}\n",
            (4, 47),
            "'sync' of device 'a': got the text 'apps', expected app, timetag, echo or none",
        ),
        (
            "venue: t\nzones: [a]\ndevices:\n  - {id: a, kind: f, zone: a, osc: {port: '80'}, sync: echo}\n",
            (4, 43),
            "'80' is not a port",
        ),
        (
            "venue: t\nzones: [a]\ndevices:\n"
            "  - {id: a, kind: f, zone: a, mqtt: {}, sync: none, latency: -1}\n",
            (4, 62),
            "'latency' of device 'a': got -1: a duration cannot be negative",
        ),
        (
            "venue: t\nzones: [a, a]\ndevices:\n  - {id: a, kind: f, zone: a, mqtt: {}, sync: app}\n",
            (2, 12),
            "zone 'a' is listed twice",
        ),
        (
            "venue: t\nzones: [a]\nbroker: localhost\ndevices:\n"
            "  - {id: a, kind: f, zone: a, mqtt: {}, sync: app}\n",
            (3, 9),
            "'localhost' is not a broker address",
        ),
        (
            "venue: t\nzones: [a]\ndevices:\n  - {id: 'x{1..}', kind: f, zone: a, mqtt: {}, sync: app}\n",
            (4, 10),
            "bad device id 'x{1..}': braces in an id must hold a range",
        ),
        (
            "venue: t\nzones: [a]\ndevices:\n  - {id: a, kind: f, zone: a, mqtt: {base: 'x/#'}, sync: app}\n",
            (4, 44),
            "'x/#' is not a topic root",
        ),
    ],
)
def test_single_problems(snippet: str, where: tuple[int, int], message: str) -> None:
    fs = findings_of(snippet)
    assert [(at(f), f.message.startswith(message)) for f in fs] == [(where, True)], [str(f) for f in fs]


def test_a_bad_device_does_not_hide_the_others() -> None:
    fs = findings_of(
        "venue: t\nzones: [a]\ndevices:\n"
        "  - {id: a, kind: f, zone: a, mqtt: {}, sync: nope}\n"
        "  - {id: b, kind: f, zone: q, mqtt: {}, sync: app}\n"
    )
    assert sorted(at(f) for f in fs) == [(4, 47), (5, 28)]


def test_json_schema_has_descriptions() -> None:
    schema = venue_json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["additionalProperties"] is False
    device = schema["$defs"]["DeviceSpec"]
    assert device["additionalProperties"] is False
    for name, prop in device["properties"].items():
        assert prop.get("description"), name
    assert {"venue", "zones", "devices"} <= set(schema["required"])


def test_marks_are_file_positions() -> None:
    f = findings_of("venue: t\nzones: [a]\ndevices:\n  - {id: a, kind: f, zone: b, mqtt: {}, sync: app}\n")[0]
    assert f.mark == Mark("v.yaml", 4, 28)
