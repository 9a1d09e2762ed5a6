"""The operator's plan view: rows, the terminal table and the SVG chart of a hand-built show."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from cues.plan import PlanRow, TargetNamer, describe_op, go_label, plan_rows, render_svg, render_table
from cues.timeline import (
    Action,
    CueSpan,
    Ease,
    EventTrigger,
    Fade,
    Go,
    MqttSend,
    OscSend,
    OscTyped,
    Sequence,
    Timeline,
)
from venues.model import Device, MqttEndpoint, OscEndpoint, Sync, Venue

S = 1_000_000_000
SVG = "{http://www.w3.org/2000/svg}"


def make_venue() -> Venue:
    """Han River in miniature: 12 facades in three zones, 3 barges, 1,260 headsets."""
    devices: list[Device] = []
    for i in range(1, 13):
        zone = "yeouido" if i <= 4 else "banpo" if i <= 10 else "ttukseom"
        devices.append(
            Device(f"fac-{i:02d}", "facade", zone, Sync.TIMETAG, osc=OscEndpoint("127.0.0.1", 9000 + i))
        )
    devices += [
        Device(f"barge-{i}", "barge", "banpo", Sync.ECHO, osc=OscEndpoint("127.0.0.1", 9100 + i))
        for i in range(1, 4)
    ]
    for i in range(1, 1261):
        zone = "banpo" if i <= 1200 else "yeouido"
        devices.append(
            Device(f"xr-{i:04d}", "xr", zone, Sync.APP, mqtt=MqttEndpoint(f"madang/dev/xr-{i:04d}"))
        )
    groups = {
        "facades": tuple(d.id for d in devices if d.kind == "facade"),
        "barges": tuple(d.id for d in devices if d.kind == "barge"),
        "xr-audience": tuple(d.id for d in devices if d.kind == "xr"),
    }
    return Venue(
        "han-river", "Han River", ("yeouido", "banpo", "ttukseom"), "127.0.0.1:1883", tuple(devices), groups
    )


def make_timeline(venue: Venue) -> Timeline:
    """Five cues in three sequences: GO, auto-follow with pre-wait, auto-continue, an event
    wait with a timeout, and a second GO."""
    ids = [d.id for d in venue.devices]
    facades = venue.groups["facades"]
    yeouido_facades = tuple(d.id for d in venue.devices if d.zone == "yeouido" and d.kind == "facade")
    banpo_xr = tuple(d.id for d in venue.devices if d.zone == "banpo" and d.kind == "xr")
    xr = venue.groups["xr-audience"]
    cues = (
        CueSpan("preshow", "Dusk falls", 0, Go.MANUAL, 0, 0, 8 * S, sequence=0),
        CueSpan("bloom", "Bloom", 1, Go.AUTO_FOLLOW, 8 * S, 10 * S, 16 * S, post_wait_ns=3 * S, sequence=0),
        CueSpan("ripple", "Ripple", 2, Go.AUTO_CONTINUE, 11 * S, 11 * S, 15 * S, sequence=0),
        CueSpan(
            "lotus",
            "Lotus",
            3,
            Go.AUTO_FOLLOW,
            16 * S,
            16 * S,
            36 * S,
            trigger=EventTrigger("mqtt", "xr/+/ready", count=1000, timeout_ns=30 * S, on_timeout="go"),
            sequence=1,
        ),
        CueSpan("finale", "Night", 4, Go.MANUAL, 36 * S, 36 * S, 46 * S, sequence=2),
    )
    ops: list[tuple[int, str, tuple[str, ...], OscSend | MqttSend | Fade]] = [
        (0, "preshow", facades, OscSend("/scene", ("dusk", 0.5, OscTyped("h", 7)))),
        (0, "preshow", xr, MqttSend("xr/{device}/scene", {"scene": "dusk"}, qos=1)),
        (0, "preshow", facades, Fade("brightness", 0.0, 0.4, 8 * S, Ease("in-out-sine"))),
        (10 * S, "bloom", yeouido_facades, Fade("brightness", None, 1.0, 6 * S, Ease("out-back"))),
        (10 * S, "bloom", venue.groups["barges"], OscSend("/fx", ("bloom", True))),
        (11 * S, "ripple", banpo_xr, MqttSend("xr/{device}/video", {"clip": "ripple.mp4", "seek": 0})),
        (11 * S, "ripple", banpo_xr, Fade("opacity", 0.0, 1.0, 4 * S, Ease("steps", (4, 0)))),
        (16 * S, "lotus", facades, OscSend("/scene", ("lotus",))),
        (16 * S, "lotus", banpo_xr[:64], Fade("hue", 0.2, 0.8, 20 * S, Ease("in-out-elastic"))),
        (20 * S, "lotus", ("fac-01", "fac-05"), OscSend("/strobe", (None, b"\x00\x01"))),
        (36 * S, "finale", tuple(ids), OscSend("/scene", ("night",))),
        (36 * S, "finale", facades, Fade("brightness", 1.0, 0.0, 10 * S, Ease("in-expo"))),
        (36 * S, "finale", xr, MqttSend("madang/show/end", None, retain=True)),
    ]
    actions = tuple(
        Action(at, cue, seq, devices, op)
        for seq, (at, cue, devices, op) in enumerate(sorted(ops, key=lambda o: o[0]))
    )
    sequences = (
        Sequence(0, ("preshow", "bloom", "ripple"), 0, 16 * S),
        Sequence(1, ("lotus",), 16 * S, 36 * S),
        Sequence(2, ("finale",), 36 * S, 46 * S),
    )
    return Timeline(
        "han-river-night-bloom", "han-river", cues, sequences, actions, 46 * S, device_count=len(ids)
    )


@pytest.fixture(scope="module")
def venue() -> Venue:
    return make_venue()


@pytest.fixture(scope="module")
def timeline(venue: Venue) -> Timeline:
    return make_timeline(venue)


# ------------------------------------------------------------------------------------ rows


def test_one_row_per_action_in_order(timeline: Timeline, venue: Venue) -> None:
    rows = plan_rows(timeline, venue)
    assert len(rows) == len(timeline.actions)
    assert [r.seq for r in rows] == [a.seq for a in timeline.actions]
    assert all(isinstance(r, PlanRow) for r in rows)
    first = rows[0]
    assert (first.time, first.cue, first.go, first.kind) == ("00:00.000", "preshow", "manual", "osc")
    assert first.what == 'osc /scene "dusk" 0.5 h:7'
    assert first.targets == "facades (12)"
    assert first.devices == 12


def test_rows_describe_each_operation(timeline: Timeline, venue: Venue) -> None:
    by_what = {(r.cue, r.kind, r.time): r for r in plan_rows(timeline, venue)}
    assert by_what["preshow", "mqtt", "00:00.000"].what == 'mqtt xr/{device}/scene {"scene":"dusk"} qos1'
    assert by_what["preshow", "fade", "00:00.000"].what == "fade brightness 0->0.4 over 8s in-out-sine"
    bloom = by_what["bloom", "fade", "00:10.000"]
    assert bloom.what == "fade brightness current->1 over 6s out-back"
    assert bloom.targets == "zone:yeouido & kind:facade (4)"
    assert bloom.end_ns == 16 * S
    ripple = by_what["ripple", "fade", "00:11.000"]
    assert ripple.what == "fade opacity 0->1 over 4s steps(4)"
    assert ripple.go == "auto-continue"
    assert ripple.targets == "zone:banpo & kind:xr (1,200)"
    lotus = by_what["lotus", "fade", "00:16.000"]
    assert lotus.go == "auto-follow + event"
    assert lotus.targets == "64 xr in banpo"
    assert by_what["lotus", "osc", "00:20.000"].what == "osc /strobe nil <2 bytes>"
    assert by_what["lotus", "osc", "00:20.000"].targets == "fac-01, fac-05"
    assert by_what["finale", "osc", "00:36.000"].targets == "all (1,275)"
    assert by_what["finale", "mqtt", "00:36.000"].what == "mqtt madang/show/end retain"
    assert by_what["finale", "mqtt", "00:36.000"].targets == "xr-audience (1,260)"


def test_target_names(venue: Venue) -> None:
    namer = TargetNamer(venue)
    banpo = [d.id for d in venue.devices if d.zone == "banpo"]
    assert namer.describe(banpo) == "zone:banpo (1,209)"
    assert namer.describe(["barge-1", "barge-2", "barge-3"]) == "barges (3)"
    assert namer.describe([]) == "no devices"
    assert namer.describe(["fac-01"]) == "fac-01"
    mixed = ["fac-01", "fac-02", "fac-05", "barge-1", "xr-0001"]
    assert namer.describe(mixed) == "5 devices (3 facade, 1 barge, 1 xr) in yeouido, banpo"
    assert namer.describe(["ghost-1", "ghost-2", "ghost-3", "ghost-4"]) == "4 devices not in the venue"
    assert namer.describe(["fac-01", "fac-02", "fac-03", "ghost"]) == "4 facade in yeouido (+1 unknown)"


def test_go_labels_and_ops() -> None:
    cue = CueSpan("a", "A", 0, Go.MANUAL, 0, 0, 0, trigger=EventTrigger("osc", "/ready"))
    assert go_label(cue) == "manual + event"
    assert describe_op(MqttSend("t", "x" * 100)).endswith("…")
    assert len(describe_op(MqttSend("t", "x" * 100))) == len("mqtt t ") + 60
    fade = Fade("level", 1.0, 0.25, 1_500_000_000, Ease("cubic-bezier", (0.25, 0.1, 0.25, 1.0)))
    assert describe_op(fade) == "fade level 1->0.25 over 1.5s cubic-bezier(0.25, 0.1, 0.25, 1)"


# ----------------------------------------------------------------------------------- table


def test_table_lists_cues_waits_and_actions(timeline: Timeline, venue: Venue) -> None:
    console = Console(width=200, record=True, color_system=None)
    console.print(render_table(timeline, venue))
    out = console.export_text()
    for cue in timeline.cues:
        assert cue.id in out
    assert "GO 1" in out
    assert "GO 2" in out
    assert "pre-wait 2s" in out
    assert "post-wait 3s" in out
    assert "waits for mqtt xr/+/ready ×1,000, after 30s: go" in out
    assert "zone:yeouido & kind:facade (4)" in out
    assert "fade brightness current->1 over 6s out-back" in out
    # The cue header comes before its actions, and cues appear in time order.
    body = out[out.index("┡") :]  # after the title and the column headers
    assert (
        body.index("preshow") < body.index('osc /scene "dusk"') < body.index("bloom") < body.index("finale")
    )
    assert "1,275 devices" in out


# ------------------------------------------------------------------------------------- SVG


def test_svg_is_valid_and_complete(timeline: Timeline, venue: Venue) -> None:
    text = render_svg(timeline, venue)
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    width, height = float(root.attrib["width"]), float(root.attrib["height"])
    assert 1000 <= width <= 8000
    assert 300 <= height <= 2000
    assert root.attrib["viewBox"] == f"0 0 {root.attrib['width']} {root.attrib['height']}"
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    joined = "\n".join(texts)
    for cue in timeline.cues:
        assert any(t.startswith(cue.id) for t in texts), cue.id
    # One lane per zone and kind, not one per device.
    lane_labels = [
        t for t in texts if " · " in t and not t.startswith(("venue", *(c.id for c in timeline.cues)))
    ]
    assert sorted(lane_labels) == sorted(
        [
            "yeouido · facade",
            "yeouido · xr",
            "banpo · barge",
            "banpo · facade",
            "banpo · xr",
            "ttukseom · facade",
        ]
    )
    assert "GO 1" in texts
    assert "GO 2" in texts
    assert "legend" in texts
    assert "30s → go" in texts
    # Time axis ticks in mm:ss.
    assert "00:00" in texts
    assert "00:40" in joined
    # Everything drawn lies inside the canvas.
    for el in root.iter():
        for attr in ("x", "x1", "x2", "cx"):
            if attr in el.attrib:
                assert -1 <= float(el.attrib[attr]) <= width + 1, (el.tag, el.attrib)
        for attr in ("y", "y1", "y2", "cy"):
            if attr in el.attrib:
                assert -1 <= float(el.attrib[attr]) <= height + 1, (el.tag, el.attrib)


def test_svg_draws_fades_along_their_easing(timeline: Timeline, venue: Venue) -> None:
    root = ET.fromstring(render_svg(timeline, venue))
    ramps = [
        p
        for p in root.iter(f"{SVG}path")
        if p.attrib.get("stroke") == "#f472b6" and p.find(f"{SVG}title") is not None
    ]
    fades = [a for a in timeline.actions if isinstance(a.op, Fade)]
    assert ramps, "no ramps drawn"
    # Each fade is drawn once in every lane it touches.
    assert len(ramps) >= len(fades)
    # The out-back ramp overshoots: some point is above (smaller y than) its end point.
    bloom = next(p for p in ramps if "out-back" in (p.findtext(f"{SVG}title") or ""))
    ys = [float(pt.split(",")[1]) for pt in re.findall(r"-?[\d.]+,-?[\d.]+", bloom.attrib["d"])]
    assert min(ys) < ys[-1]
    # The finale fades down: it ends lower (larger y) than it starts.
    finale = next(p for p in ramps if "brightness 1->0" in (p.findtext(f"{SVG}title") or ""))
    ys = [float(pt.split(",")[1]) for pt in re.findall(r"-?[\d.]+,-?[\d.]+", finale.attrib["d"])]
    assert ys[-1] > ys[0]


def test_svg_escapes_text(venue: Venue) -> None:
    cue = CueSpan("a<b>&c", 'say "hi"', 0, Go.MANUAL, 0, 0, S)
    action = Action(0, "a<b>&c", 0, ("fac-01",), OscSend("/x", ("<&>",)))
    tl = Timeline("show & <tell>", "han-river", (cue,), (Sequence(0, ("a<b>&c",), 0, S),), (action,), S)
    root = ET.fromstring(render_svg(tl, venue))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "show & <tell>" in texts
    assert any(t and t.startswith("a<b>&c") for t in texts)


def test_svg_of_an_empty_show(venue: Venue) -> None:
    tl = Timeline("empty", "han-river", (), (), (), 0)
    root = ET.fromstring(render_svg(tl, venue))
    assert float(root.attrib["width"]) >= 1000


def test_svg_summarises_a_big_venue_into_lanes() -> None:
    zones = tuple(f"zone-{z}" for z in range(40))
    devices = tuple(Device(f"d{i}", "xr", zones[i % 40], Sync.APP) for i in range(4000))
    venue = Venue("big", "Big", zones, "", devices, {})
    cue = CueSpan("go", "Go", 0, Go.MANUAL, 0, 0, 10 * S)
    actions = tuple(
        Action(i * S // 100, "go", i, tuple(d.id for d in devices[i::7]), OscSend("/t", (i,)))
        for i in range(1000)
    )
    tl = Timeline("big", "big", (cue,), (Sequence(0, ("go",), 0, 10 * S),), actions, 10 * S)
    text = render_svg(tl, venue)
    root = ET.fromstring(text)
    # 40 zones would make 40 lanes, more than fit: the last lane gathers the rest. Marks a few
    # pixels apart merge, keeping the document small.
    assert len(text) < 2_000_000
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    lane_counts = [t for t in texts if t.endswith(" devices")]
    assert len(lane_counts) == 28
    assert "13 more zones" in texts
    assert sum(int(t.split()[0].replace(",", "")) for t in lane_counts) == 4000
    ticks = [el for el in root.iter(f"{SVG}line") if el.attrib.get("stroke") == "#7dd3fc"]
    assert 28 <= len(ticks) <= 28 * (1000 // 4 + 2)  # at most one per 4 px per lane (+ the legend)
    assert any("more osc here" in (el.findtext(f"{SVG}title") or "") for el in ticks)
