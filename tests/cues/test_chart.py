"""The SVG chart of a hand-built show: valid, complete, escaped, and summarised into lanes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cues.chart import render_svg
from cues.timeline import Action, CueSpan, Fade, Go, OscSend, Sequence, Timeline
from tests.cues.plan_show import S, make_timeline, make_venue
from venues.model import Device, Sync, Venue

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def venue() -> Venue:
    return make_venue()


@pytest.fixture(scope="module")
def timeline(venue: Venue) -> Timeline:
    return make_timeline(venue)


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


def test_a_fade_without_from_is_drawn_from_the_value_it_starts_at(tmp_path: Path) -> None:
    """brightness: 0 -> 0.8, then a fade with no `from` to 0.2 starts at 0.8 and falls; a first
    fade with no `from` starts at the device's safe value (here 0.5, from the venue)."""
    from cues.chart import fade_starts
    from cues.compiler import compile_show

    venue = Path(tmp_path) / "v.yaml"
    venue.write_text(
        "venue: v\nzones: [z]\nsafe: {lamp: {brightness: 0.5}}\ndevices:\n"
        "  - {id: \"l-{1..2}\", kind: lamp, zone: z, sync: none, osc: {host: 127.0.0.1, port: \"9100+\"}}\n",
        encoding="utf-8",
    )
    show = Path(tmp_path) / "s.yaml"
    show.write_text(
        "show: s\nvenue: v.yaml\ncues:\n"
        "  - id: up\n    actions:\n"
        "      - fade: {targets: \"kind:lamp\", param: brightness, to: 1, over: 10s}\n"
        "  - id: set\n    go: auto-follow\n    actions:\n"
        "      - fade: {targets: \"kind:lamp\", param: brightness, from: 0, to: 0.8, over: 10s}\n"
        "  - id: down\n    go: auto-follow\n    actions:\n"
        "      - fade: {targets: \"kind:lamp\", param: brightness, to: 0.2, over: 10s}\n",
        encoding="utf-8",
    )
    timeline, v = compile_show(show)
    seq = {a.cue: a.seq for a in timeline.actions}
    assert fade_starts(timeline, v) == {seq["up"]: 0.5, seq["down"]: 0.8}
    root = ET.fromstring(render_svg(timeline, v))

    def curve(cue: str) -> list[tuple[float, float]]:
        (path,) = [
            p for p in root.iter(f"{SVG}path")
            if p.get("fill") == "none" and f" {cue}: fade " in (p.findtext(f"{SVG}title") or "")
        ]
        return [tuple(map(float, pt.lstrip("ML").split(","))) for pt in path.attrib["d"].split(" ")]  # type: ignore[misc]

    up, down = curve("up"), curve("down")
    # SVG y grows downwards: "down" starts high (0.8) and ends low (0.2); "up" starts half way.
    assert down[0][1] < down[-1][1]
    lane_low, lane_high = curve("set")[0][1], curve("set")[-1][1]  # 0 and 0.8 on this lane
    assert down[0][1] == pytest.approx(lane_high, abs=0.2)
    assert lane_low - up[0][1] == pytest.approx((lane_low - lane_high) * 0.5 / 0.8, abs=0.2)
    titles = [p.findtext(f"{SVG}title") or "" for p in root.iter(f"{SVG}path")]
    title = next(t for t in titles if " down:" in t)
    assert "from 0.8, the value it starts at" in title
