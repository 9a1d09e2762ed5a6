"""The show as an SVG chart for a control room: cue bands on a time axis over device lanes.

Theory of operation
-------------------
:func:`render_svg` reads a :class:`~cues.timeline.Timeline` and its :class:`~venues.model.Venue`
and returns a self-contained SVG document, built as a string with no dependency (every text and
attribute value escaped). It describes cues and operations in the same words as the plan table
(:mod:`cues.plan`: :func:`~cues.plan.go_label`, :func:`~cues.plan.describe_op`,
:func:`~cues.plan.wait_notes`), in its tooltips.

Thousands of devices are never drawn one by one: devices are gathered into *lanes*, one per zone
and kind (``banpo · xr``), or one per zone when there would be too many, and past
``_MAX_LANES`` the last lane gathers the rest; so a venue of 1,200 headsets draws a handful of
lanes, not 1,200 rows. Marks a few pixels apart in one lane merge into one, whose tooltip counts
the others, which keeps the document small.

Times are the nominal layout of the timeline (see :mod:`cues.timeline`): a sequence that waits
for a GO is drawn where it would start if GO were pressed the moment the previous one ended.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from cues.easing import evaluate, value_at
from cues.plan import clip, describe_op, go_label, op_kind, wait_notes
from cues.timecode import format_time
from cues.timeline import NS_PER_S, Action, CueSpan, Fade, Go, Timeline
from venues.model import Venue

__all__ = ["render_svg"]

_BG = "#0d1117"
_PANEL = "#141a22"
_STRIPE = "#111820"
_GRID = "#232b36"
_MUTED = "#8b949e"
_TEXT = "#e6edf3"
_GO_COLOUR: Mapping[Go, str] = {Go.MANUAL: "#f0b429", Go.AUTO_CONTINUE: "#3fb6a8", Go.AUTO_FOLLOW: "#5b8def"}
_EVENT = "#b083f0"
_OP_COLOUR: Mapping[str, str] = {"osc": "#7dd3fc", "mqtt": "#86efac", "fade": "#f472b6"}
_FONT = "Inter, 'DejaVu Sans', 'Helvetica Neue', Arial, sans-serif"

_LABEL_W = 230  # lane labels on the left
_RIGHT = 40
_HEADER_H = 64
_AXIS_H = 26
_CUE_ROW_H = 34
_LANE_H = 40
_LEGEND_H = 64
_MAX_CUE_ROWS = 8
_MAX_LANES = 28
_TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


@dataclass(frozen=True, slots=True)
class _Lane:
    label: str
    count: int


def _text_w(text: str, size: float) -> float:
    """A rough width of ``text`` in a proportional sans font: good enough to avoid overlaps."""
    return len(text) * size * 0.58


def _lanes(timeline: Timeline, venue: Venue) -> tuple[list[_Lane], dict[str, int]]:
    """Lanes (zone · kind, or zone alone when there would be too many) and each device's lane."""
    targeted = {d for a in timeline.actions for d in a.devices}
    zone_order = {z: i for i, z in enumerate(venue.zones)}

    def keyed(by_pair: bool) -> tuple[list[tuple[str, ...]], dict[tuple[str, ...], list[str]]]:
        keys: dict[tuple[str, ...], list[str]] = {}
        for d in venue.devices:
            key: tuple[str, ...] = (d.zone, d.kind) if by_pair else (d.zone,)
            keys.setdefault(key, []).append(d.id)
        ordered = sorted(keys, key=lambda k: (zone_order.get(k[0], len(zone_order)), k))
        if len(ordered) > _MAX_LANES:  # too many: leave out the lanes nothing happens in
            ordered = [k for k in ordered if targeted.intersection(keys[k])]
        return ordered, keys

    by_pair = True
    ordered, keys = keyed(by_pair)
    if len(ordered) > _MAX_LANES:
        by_pair = False
        ordered, keys = keyed(by_pair)
    lanes: list[_Lane] = []
    index: dict[str, int] = {}
    shown, rest = (
        (ordered[: _MAX_LANES - 1], ordered[_MAX_LANES - 1 :]) if len(ordered) > _MAX_LANES else (ordered, [])
    )
    for key in shown:
        for dev in keys[key]:
            index[dev] = len(lanes)
        lanes.append(_Lane(" · ".join(key), len(keys[key])))
    if rest:  # still too many: the last lane gathers the rest
        for key in rest:
            for dev in keys[key]:
                index[dev] = len(lanes)
        noun = "lanes" if by_pair else "zones"
        lanes.append(_Lane(f"{len(rest)} more {noun}", sum(len(keys[k]) for k in rest)))
    unknown = targeted.difference(index)
    if unknown:
        for dev in unknown:
            index[dev] = len(lanes)
        lanes.append(_Lane("not in venue", len(unknown)))
    return lanes, index


def _pack_rows(cues: Sequence[CueSpan], x_of: _Scale) -> dict[str, int]:
    """Row of each cue band so that bands and their labels do not overlap (greedy packing)."""
    row_end: list[float] = []
    rows: dict[str, int] = {}
    for cue in cues:
        x0 = x_of(cue.start_ns)
        extent = x_of(cue.end_ns)
        label_end = x0 + 14 + _text_w(_cue_label(cue), 11)
        end = max(extent, label_end, _wait_end_x(cue, x_of)) + 6
        for i, last in enumerate(row_end):
            if last <= x0:
                row_end[i] = end
                rows[cue.id] = i
                break
        else:
            if len(row_end) < _MAX_CUE_ROWS:
                row_end.append(end)
                rows[cue.id] = len(row_end) - 1
            else:  # too crowded: put it on the row that frees up first
                i = min(range(len(row_end)), key=row_end.__getitem__)
                row_end[i] = max(row_end[i], end)
                rows[cue.id] = i
    return rows


def _wait_end_x(cue: CueSpan, x_of: _Scale) -> float:
    if cue.trigger is None or cue.trigger.timeout_ns is None:
        return 0.0
    return x_of(cue.start_ns + cue.trigger.timeout_ns)


def _cue_label(cue: CueSpan) -> str:
    return cue.id if not cue.name or cue.name == cue.id else f"{cue.id} · {cue.name}"


class _Scale:
    """Show time (ns) to x (px)."""

    def __init__(self, duration_ns: int, plot_w: float) -> None:
        self.duration_ns = max(duration_ns, 1)
        self.plot_w = plot_w
        self.px_per_ns = plot_w / self.duration_ns

    def __call__(self, ns: int) -> float:
        return _LABEL_W + ns * self.px_per_ns


class _Svg:
    """A list of SVG elements; every text and attribute value is escaped."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(
        self, tag: str, attrs: Mapping[str, object], text: str | None = None, title: str | None = None
    ) -> None:
        attr = " ".join(
            f"{k.replace('_', '-')}={quoteattr(_num(v))}" for k, v in attrs.items() if v is not None
        )
        inner = ""
        if title:
            inner += f"<title>{escape(title)}</title>"
        if text is not None:
            inner += escape(text)
        self.parts.append(f"<{tag} {attr}>{inner}</{tag}>" if inner else f"<{tag} {attr}/>")

    def text(
        self, x: float, y: float, text: str, size: float = 12, fill: str = _TEXT, **attrs: object
    ) -> None:
        self.add("text", {"x": x, "y": y, "font_size": size, "fill": fill, **attrs}, text)

    def raw(self, markup: str) -> None:
        self.parts.append(markup)


def _num(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.1f}".removesuffix(".0")
    return str(v)


def _tick_step_s(duration_s: float, plot_w: float) -> int:
    for step in _TICK_STEPS_S:
        if step * plot_w / max(duration_s, 1e-9) >= 80:
            return step
    return _TICK_STEPS_S[-1]


def _clock_label(ns: int) -> str:
    text = format_time(ns)
    return text.removesuffix(".000")


def render_svg(timeline: Timeline, venue: Venue) -> str:
    """The show as a self-contained SVG chart for a control room (dark background).

    Top: cues as bands on a time axis, coloured by go mode; manual GOs are numbered flags with a
    line through every lane, auto-continue and auto-follow cues are linked to the cue they
    follow, event waits are dashed with their timeout. Below: one lane per zone and kind, with
    OSC and MQTT sends as ticks and fades as ramps drawn along their easing curve. A legend at
    the bottom. Hover any mark for its details.
    """
    # The axis spans the show, every fade's end and every event wait's timeout, plus a margin
    # for the labels at the end.
    waits = (c.start_ns + c.trigger.timeout_ns for c in timeline.cues if c.trigger and c.trigger.timeout_ns)
    span_ns = max(
        timeline.duration_ns, max((a.end_ns for a in timeline.actions), default=0), max(waits, default=0)
    )
    duration_ns = max(span_ns + span_ns // 25, 1)
    duration_s = duration_ns / NS_PER_S
    plot_w = min(7200.0, max(1000.0, duration_s * 8))
    x_of = _Scale(duration_ns, plot_w)
    cues = sorted(timeline.cues, key=lambda c: (c.start_ns, c.index))
    rows = _pack_rows(cues, x_of)
    n_rows = max(rows.values(), default=0) + 1
    lanes, lane_of = _lanes(timeline, venue)

    width = _LABEL_W + plot_w + _RIGHT
    cue_top = _HEADER_H + _AXIS_H
    lanes_top = cue_top + n_rows * _CUE_ROW_H + 14
    lanes_bottom = lanes_top + max(len(lanes), 1) * _LANE_H
    legend_top = lanes_bottom + _AXIS_H + 12
    height = legend_top + _LEGEND_H

    svg = _Svg()
    svg.raw(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(width)}" height="{_num(height)}" '
        f'viewBox="0 0 {_num(width)} {_num(height)}" font-family={quoteattr(_FONT)}>'
    )
    svg.raw(
        "<defs>"
        + "".join(
            f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
            for name, colour in (
                ("continue", _GO_COLOUR[Go.AUTO_CONTINUE]),
                ("follow", _GO_COLOUR[Go.AUTO_FOLLOW]),
            )
        )
        + '<pattern id="prewait" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="none"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{_MUTED}" stroke-width="2" stroke-opacity="0.6"/>'
        "</pattern>"
        "</defs>"
    )
    svg.add("rect", {"x": 0, "y": 0, "width": width, "height": height, "fill": _BG})

    # Header.
    gos = [c for c in cues if c.go is Go.MANUAL]
    svg.text(20, 30, timeline.show, 20, _TEXT, font_weight="600")
    svg.text(
        20,
        50,
        f"venue {timeline.venue} · {format_time(timeline.duration_ns)} · {len(cues)} cues · {len(gos)} GO · "
        f"{len(timeline.actions):,} actions · {len(venue.devices):,} devices in {len(lanes)} lanes",
        12,
        _MUTED,
    )

    # Panels, grid and time axes.
    svg.add(
        "rect",
        {"x": _LABEL_W, "y": cue_top, "width": plot_w, "height": lanes_bottom - cue_top, "fill": _PANEL},
    )
    for i, lane in enumerate(lanes):
        y = lanes_top + i * _LANE_H
        if i % 2:
            svg.add("rect", {"x": 0, "y": y, "width": width, "height": _LANE_H, "fill": _STRIPE})
        svg.text(16, y + 17, clip(lane.label, 30), 12, _TEXT)
        svg.text(16, y + 32, f"{lane.count:,} device{'s' if lane.count != 1 else ''}", 10, _MUTED)
    svg.text(16, cue_top + 18, "cues", 12, _MUTED, font_weight="600")
    step_ns = _tick_step_s(duration_s, plot_w) * NS_PER_S
    for t in range(0, span_ns + 1, step_ns):
        x = x_of(t)
        svg.add(
            "line", {"x1": x, "y1": cue_top, "x2": x, "y2": lanes_bottom, "stroke": _GRID, "stroke_width": 1}
        )
        for y in (cue_top - 8, lanes_bottom + 18):
            svg.text(x, y, _clock_label(t), 11, _MUTED, text_anchor="middle")
    end_x = x_of(timeline.duration_ns)
    svg.add(
        "line",
        {
            "x1": end_x,
            "y1": cue_top,
            "x2": end_x,
            "y2": lanes_bottom,
            "stroke": _MUTED,
            "stroke_dasharray": "2 3",
        },
        title=f"end {format_time(timeline.duration_ns)}",
    )

    # Sequence starts: a line through every lane where the show waits for a GO or an event.
    go_number = 0
    go_numbers: dict[str, int] = {}
    for cue in cues:
        if cue.go is Go.MANUAL:
            go_number += 1
            go_numbers[cue.id] = go_number
        if cue.needs_trigger:
            colour = _GO_COLOUR[Go.MANUAL] if cue.go is Go.MANUAL else _EVENT
            x = x_of(cue.start_ns)
            svg.add(
                "line",
                {
                    "x1": x,
                    "y1": cue_top,
                    "x2": x,
                    "y2": lanes_bottom,
                    "stroke": colour,
                    "stroke_width": 1.2,
                    "stroke_dasharray": "5 4",
                    "stroke_opacity": 0.7,
                },
            )

    # Cue bands.
    row_y = {cue.id: cue_top + rows[cue.id] * _CUE_ROW_H + 6 for cue in cues}
    in_list_order = sorted(timeline.cues, key=lambda c: c.index)
    for prev, cue in itertools.pairwise(in_list_order):
        if cue.go is Go.MANUAL or cue.trigger is not None:
            continue
        _link(svg, x_of, prev, cue, row_y)
    for cue in cues:
        _cue_band(svg, x_of, cue, row_y[cue.id], go_numbers.get(cue.id))

    # Lanes: ticks and ramps.
    _lane_marks(svg, timeline, venue, lanes, lane_of, x_of, lanes_top)

    _legend(svg, legend_top, min(width, 1400.0))
    svg.raw("</svg>")
    return "\n".join(svg.parts) + "\n"


def _cue_band(svg: _Svg, x_of: _Scale, cue: CueSpan, y: float, go_number: int | None) -> None:
    colour = _GO_COLOUR[cue.go]
    x0, xb, x1 = x_of(cue.start_ns), x_of(cue.body_ns), x_of(cue.end_ns)
    band_h = 18
    details = f"{cue.id}: {cue.name}\n{go_label(cue)} at {format_time(cue.start_ns)}\n" + "\n".join(
        wait_notes(cue)
    )
    svg.add(
        "rect",
        {
            "x": x0,
            "y": y,
            "width": max(x1 - x0, 3.0),
            "height": band_h,
            "rx": 3,
            "fill": colour,
            "fill_opacity": 0.28,
            "stroke": colour,
            "stroke_width": 1.2,
        },
        title=details,
    )
    if xb > x0:
        svg.add("rect", {"x": x0, "y": y, "width": xb - x0, "height": band_h, "fill": "url(#prewait)"})
    label_x = x0 + 5
    if cue.go is Go.MANUAL:
        # A flag: a triangle standing on the band's start, numbered in GO order.
        svg.add(
            "path",
            {
                "d": f"M{_num(x0)},{_num(y - 4)} l0,{band_h + 8} M{_num(x0)},{_num(y - 4)} l12,6 l-12,6 z",
                "fill": colour,
                "stroke": colour,
                "stroke_width": 1.5,
            },
            title=f"GO {go_number}: {cue.id}",
        )
        svg.text(x0 - 3, y + band_h + 2, f"GO {go_number}", 9, colour, text_anchor="end", font_weight="700")
        label_x = x0 + 15
    if cue.trigger is not None:
        trig = cue.trigger
        svg.add(
            "path",
            {"d": f"M{_num(x0)},{_num(y + band_h / 2 - 6)} l6,6 l-6,6 l-6,-6 z", "fill": _EVENT},
            title=f"waits for {trig.transport} {trig.pattern} ×{trig.count}",
        )
        if trig.timeout_ns is not None:
            xt = x_of(cue.start_ns + trig.timeout_ns)
            yw = y + band_h + 4
            svg.add(
                "path",
                {
                    "d": f"M{_num(x0)},{_num(yw)} H{_num(xt)} m0,-3 v6",
                    "stroke": _EVENT,
                    "stroke_width": 1.5,
                    "stroke_dasharray": "4 3",
                    "fill": "none",
                },
                title=f"timeout {format_time(trig.timeout_ns, 'seconds')}, then {trig.on_timeout}",
            )
            svg.text(
                xt + 3, yw + 3, f"{format_time(trig.timeout_ns, 'seconds')} → {trig.on_timeout}", 9, _EVENT
            )
        label_x = max(label_x, x0 + 8)
    svg.text(label_x, y + 13, _cue_label(cue), 11, _TEXT, font_weight="600")


def _link(svg: _Svg, x_of: _Scale, prev: CueSpan, cue: CueSpan, row_y: Mapping[str, float]) -> None:
    """An arrow from the cue this one follows: from its start (auto-continue) or end (auto-follow)."""
    name = "follow" if cue.go is Go.AUTO_FOLLOW else "continue"
    colour = _GO_COLOUR[cue.go]
    xa = x_of(prev.end_ns if cue.go is Go.AUTO_FOLLOW else prev.start_ns)
    ya = row_y[prev.id] + (18 if cue.go is Go.AUTO_CONTINUE else 9)
    xb, yb = x_of(cue.start_ns), row_y[cue.id] + 9
    if abs(yb - ya) < 1 and xb - xa < 4:
        return  # adjacent on one row: the bands already touch
    if abs(xb - xa) < 12:
        # Straight above or below: a vertical arrow from band edge to band edge.
        down = row_y[cue.id] > row_y[prev.id]
        y0 = row_y[prev.id] + (18 if down else 0)
        y1 = row_y[cue.id] - 1 if down else row_y[cue.id] + 19
        path = f"M{_num(xb + 4)},{_num(y0)} V{_num(y1)}"
    else:
        mid = (xa + xb) / 2
        path = (
            f"M{_num(xa)},{_num(ya)} C{_num(mid)},{_num(ya)} {_num(mid)},{_num(yb)} {_num(xb - 1)},{_num(yb)}"
        )
    svg.add(
        "path",
        {
            "d": path,
            "fill": "none",
            "stroke": colour,
            "stroke_width": 1.3,
            "stroke_opacity": 0.9,
            "marker_end": f"url(#arrow-{name})",
        },
        title=f"{cue.id} {cue.go.value}s {prev.id}",
    )


_BIN_PX = 4  # marks closer than this in one lane merge into one (its tooltip counts the rest)


@dataclass
class _Mark:
    action: Action
    count: int  # devices of the lane it reaches
    merged: int = 0  # further actions drawn by this mark


def _lane_marks(
    svg: _Svg,
    timeline: Timeline,
    venue: Venue,
    lanes: Sequence[_Lane],
    lane_of: Mapping[str, int],
    x_of: _Scale,
    lanes_top: float,
) -> None:
    lane_cache: dict[tuple[str, ...], Counter[int]] = {}
    marks: dict[tuple[int, int, str], _Mark] = {}
    starts = fade_starts(timeline, venue)
    for action in timeline.actions:
        hits = lane_cache.get(action.devices)
        if hits is None:
            hits = lane_cache[action.devices] = Counter(lane_of[d] for d in action.devices if d in lane_of)
        kind = op_kind(action)
        bucket = int(x_of(action.at_ns) // _BIN_PX)
        for lane_index, count in hits.items():
            key = (lane_index, bucket, kind)
            mark = marks.get(key)
            if mark is None:
                marks[key] = _Mark(action, count)
            else:
                mark.merged += 1
    for (lane_index, _, kind), mark in sorted(marks.items(), key=lambda kv: (kv[0][0], kv[1].action.seq)):
        action = mark.action
        lane = lanes[lane_index]
        top = lanes_top + lane_index * _LANE_H
        colour = _OP_COLOUR[kind]
        x = x_of(action.at_ns)
        title = (
            f"{format_time(action.at_ns)} {action.cue}: {describe_op(action.op)} → "
            f"{mark.count:,} of {lane.count:,} in {lane.label}"
        )
        if mark.merged:
            title += f" (and {mark.merged:,} more {kind} here)"
        if isinstance(action.op, Fade):
            start = starts.get(action.seq, action.op.start)
            if action.op.start is None and start is not None:
                title += f" (from {start:g}, the value it starts at)"
            _ramp(svg, x, x_of(action.end_ns), top, action.op, start, colour, title)
            continue
        y0, y1 = (top + 6, top + _LANE_H - 6) if kind == "osc" else (top + 10, top + _LANE_H - 2)
        svg.add(
            "line",
            {
                "x1": x,
                "y1": y0,
                "x2": x,
                "y2": y1,
                "stroke": colour,
                "stroke_width": 2,
                "stroke_opacity": 0.55 if mark.count < lane.count else 1,
                "stroke_linecap": "round",
            },
            title=title,
        )
        svg.add("circle", {"cx": x, "cy": y0, "r": 2.5, "fill": colour})


def fade_starts(timeline: Timeline, venue: Venue) -> dict[int, float]:
    """The value each fade without a ``from`` starts at, by action ``seq``: where the previous
    fade of that parameter on the same device stands at that instant (mid-fade: along its
    easing), or the device's safe value for the parameter (0 when it has none), as the
    controller's catch-up state resolves it. Read on the fade's first device."""
    # (device, param) -> the last fade's course: (at_ns, resolved start, the fade)
    course: dict[tuple[str, str], tuple[int, float, Fade]] = {}
    out: dict[int, float] = {}
    for action in timeline.actions:  # in (at_ns, seq) order
        op = action.op
        if not isinstance(op, Fade) or not action.devices:
            continue
        for did in action.devices:
            start = op.start
            if start is None:
                prev = course.get((did, op.param))
                if prev is None:
                    start = _safe_value(venue, did, op.param)
                else:
                    at, a, f = prev
                    start = value_at(a, f.end, f.ease, action.at_ns - at, f.duration_ns)
                if did == action.devices[0]:
                    out[action.seq] = start
            course[(did, op.param)] = (action.at_ns, start, op)
    return out


def _safe_value(venue: Venue, device_id: str, param: str) -> float:
    dev = venue.by_id.get(device_id)
    v = dev.safe.get(param) if dev is not None else None
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def _ramp(
    svg: _Svg, x0: float, x1: float, top: float, fade: Fade, start: float | None, colour: str, title: str
) -> None:
    """A fade drawn as its easing curve across the lane, at its values: the lane's height spans
    0 to 1 (or further, for values outside it), so ``0.3 -> 0.8`` rises from 30 % to 80 %. A
    fade whose start is unknown is drawn rising from the bottom."""
    low, high = top + _LANE_H - 7, top + 9
    a = 0.0 if start is None else float(start)
    b = float(fade.end)
    lo, hi = min(0.0, a, b), max(1.0, a, b)

    def y(v: float) -> float:
        return low + (high - low) * (v - lo) / (hi - lo)

    width = max(x1 - x0, 1.0)
    samples = max(2, min(48, int(width / 3)))
    points = []
    for i in range(samples + 1):
        t = i / samples
        p = evaluate(fade.ease, t)
        points.append(f"{_num(x0 + t * width)},{_num(y(a + (b - a) * p))}")
    base = y(lo)
    svg.add(
        "path",
        {
            "d": f"M{_num(x0)},{_num(base)} L" + " L".join(points) + f" L{_num(x0 + width)},{_num(base)} Z",
            "fill": colour,
            "fill_opacity": 0.16,
            "stroke": "none",
        },
    )
    svg.add(
        "path",
        {
            "d": "M" + " L".join(points),
            "fill": "none",
            "stroke": colour,
            "stroke_width": 1.8,
            "stroke_linejoin": "round",
        },
        title=title,
    )
    if width > 60:
        svg.text(x0 + 6, top + 8, clip(fade.param, max(4, int(width / 6))), 9, colour)


def _legend(svg: _Svg, top: float, width: float) -> None:
    items: list[tuple[str, str]] = [
        ("manual GO (numbered flag)", "go"),
        ("auto-continue: starts after the previous cue starts", "continue"),
        ("auto-follow: starts when the previous cue ends", "follow"),
        ("waits for an event (dashed: timeout)", "event"),
        ("pre-wait", "prewait"),
        ("OSC send", "osc"),
        ("MQTT publish", "mqtt"),
        ("fade, drawn along its easing", "fade"),
    ]
    x, y = 20.0, top + 18
    svg.text(20, top, "legend", 11, _MUTED, font_weight="600")
    for label, key in items:
        w = 26 + _text_w(label, 11) + 22
        if x + w > width - 20:
            x, y = 20.0, y + 22
        _swatch(svg, key, x, y)
        svg.text(x + 24, y + 4, label, 11, _TEXT)
        x += w


def _swatch(svg: _Svg, key: str, x: float, y: float) -> None:
    if key == "go":
        c = _GO_COLOUR[Go.MANUAL]
        svg.add(
            "path",
            {
                "d": f"M{_num(x + 4)},{_num(y - 7)} l0,14 M{_num(x + 4)},{_num(y - 7)} l10,5 l-10,5 z",
                "fill": c,
                "stroke": c,
                "stroke_width": 1.5,
            },
        )
    elif key in ("continue", "follow"):
        c = _GO_COLOUR[Go.AUTO_CONTINUE if key == "continue" else Go.AUTO_FOLLOW]
        svg.add(
            "rect",
            {
                "x": x,
                "y": y - 6,
                "width": 18,
                "height": 12,
                "rx": 2,
                "fill": c,
                "fill_opacity": 0.28,
                "stroke": c,
            },
        )
    elif key == "event":
        svg.add("path", {"d": f"M{_num(x + 5)},{_num(y - 6)} l6,6 l-6,6 l-6,-6 z", "fill": _EVENT})
        svg.add(
            "line",
            {
                "x1": x + 10,
                "y1": y + 3,
                "x2": x + 20,
                "y2": y + 3,
                "stroke": _EVENT,
                "stroke_dasharray": "3 2",
            },
        )
    elif key == "prewait":
        svg.add(
            "rect", {"x": x, "y": y - 6, "width": 18, "height": 12, "fill": "url(#prewait)", "stroke": _MUTED}
        )
    elif key == "fade":
        c = _OP_COLOUR["fade"]
        svg.add(
            "path",
            {
                "d": f"M{_num(x)},{_num(y + 6)} C{_num(x + 10)},{_num(y + 6)} {_num(x + 8)},{_num(y - 6)} "
                f"{_num(x + 18)},{_num(y - 6)}",
                "fill": "none",
                "stroke": c,
                "stroke_width": 1.8,
            },
        )
    else:
        c = _OP_COLOUR[key]
        svg.add("line", {"x1": x + 9, "y1": y - 7, "x2": x + 9, "y2": y + 7, "stroke": c, "stroke_width": 2})
        svg.add("circle", {"cx": x + 9, "cy": y - 7, "r": 2.5, "fill": c})
