"""The sync report as a self-contained HTML page with plots (inline SVG, no scripts, no downloads)."""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = ["render_html", "verdict"]

_BANDS_US = (0.0, 100.0, 250.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 20_000.0, 100_000.0)  # report.ZONE_BANDS_US

_W, _H, _PAD = 760, 260, 48


def _axis_max(values: list[float]) -> float:
    top = max([v for v in values if math.isfinite(v)] or [1.0])
    if top <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(top))
    for m in (1, 2, 5, 10):
        if m * mag >= top:
            return float(m * mag)
    return float(10 * mag)


def _nice_step(span: float, target: int = 6) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``target`` ticks."""
    if span <= 0:
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * mag >= raw:
            return float(m * mag)
    return float(10 * mag)


def _fmt_s(v: float) -> str:
    """A time tick: ``45 s``, past a minute ``m:ss``."""
    if v >= 60:
        return f"{int(v // 60)}:{round(v % 60):02d}"
    return f"{v:g} s"


# The plot area of every chart: left for the y ticks and title, bottom for the x ticks and title.
_L, _R, _T, _B = 72, 20, 34, 52


def _frame(parts: list[str], w: float, h: float, x_title: str, y_title: str) -> None:
    """The axes of a chart: the two axis lines and their titles (the y title turned upright)."""
    x0, x1, y0, y1 = _L, w - _R, h - _B, _T
    parts.append(f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#888"/>')
    parts.append(f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#888"/>')
    parts.append(
        f'<text class="axis-title" x="{(x0 + x1) / 2:.1f}" y="{h - 10}" fill="#bbb" font-size="12" '
        f'text-anchor="middle">{html.escape(x_title)}</text>'
    )
    yc = (y0 + y1) / 2
    parts.append(
        f'<text class="axis-title" x="16" y="{yc:.1f}" fill="#bbb" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 16 {yc:.1f})">{html.escape(y_title)}</text>'
    )


def _y_tick(parts: list[str], w: float, y: float, label: str, *, grid: bool = True) -> None:
    if grid:
        parts.append(f'<line x1="{_L}" x2="{w - _R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#2a2a2a"/>')
    parts.append(f'<line class="tick" x1="{_L - 5}" x2="{_L}" y1="{y:.1f}" y2="{y:.1f}" stroke="#888"/>')
    parts.append(
        f'<text class="tick-label" x="{_L - 8}" y="{y + 4:.1f}" fill="#aaa" font-size="11" '
        f'text-anchor="end">{html.escape(label)}</text>'
    )


def _x_tick(parts: list[str], h: float, x: float, label: str) -> None:
    y0 = h - _B
    parts.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y0 + 5}" stroke="#888"/>')
    parts.append(
        f'<text class="tick-label" x="{x:.1f}" y="{y0 + 18}" fill="#aaa" font-size="11" '
        f'text-anchor="middle">{html.escape(label)}</text>'
    )


def _legend(parts: list[str], items: list[tuple[str, str, str]], x: float = _L + 8, y: float = 20) -> None:
    """A legend row: (colour, marker, label); marker ``dot`` or ``bar``."""
    parts.append('<g class="legend">')
    for colour, marker, label in items:
        if marker == "dot":
            parts.append(f'<circle cx="{x + 5:.1f}" cy="{y - 4}" r="4" fill="{colour}"/>')
        else:
            parts.append(f'<rect x="{x:.1f}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(
            f'<text x="{x + 15:.1f}" y="{y}" fill="{colour}" font-size="12">{html.escape(label)}</text>'
        )
        x += 30 + 7 * len(label)
    parts.append("</g>")


def _svg_open(w: float, h: float, label: str, extra: str = "") -> list[str]:
    return [
        f'<svg {extra}viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        f'aria-label="{html.escape(label)}">',
        f'<rect width="{w}" height="{h}" fill="#111"/>',
    ]


def _spread_plot(cues: list[dict[str, Any]]) -> str:
    """Spread per cue over the show's time: p99 of the timed delivery vs on receipt (log scale).

    The x axis is when each cue fired (``t_s``, seconds from the first cue); reports without it
    fall back to cues in show order."""
    if not cues:
        return "<p>No cue reached two or more devices.</p>"
    vals = [c["p99_us"] for c in cues] + [c.get("baseline_p99_us", 0.0) for c in cues]
    lo = 1.0
    hi = max(_axis_max(vals), 10.0)
    lhi = math.log10(hi)
    top, bottom = _T, _H - _B
    left, right = _L + 10, _W - _R - 10

    def y(v: float) -> float:
        v = max(v, lo)
        return bottom - (math.log10(v) / lhi) * (bottom - top)

    n = len(cues)
    times = [c.get("t_s") for c in cues]
    t_max = max([float(t) for t in times if isinstance(t, int | float)] + [0.0])
    # Time on the x axis when the report has it and the cues span a second or more.
    timed_x = all(isinstance(t, int | float) for t in times) and t_max >= 1.0

    def x_at(v: float, span: float) -> float:
        return left + (v / span) * (right - left) if span > 0 else (left + right) / 2

    def x_of(i: int) -> float:
        t = times[i]
        if timed_x and isinstance(t, int | float):
            return x_at(float(t), t_max)
        return x_at(float(i), float(max(n - 1, 1))) if n > 1 else (left + right) / 2

    parts = _svg_open(_W, _H, "spread per cue over the show, timed delivery and on receipt")
    decade = 1.0
    while decade <= hi:
        _y_tick(parts, _W, y(decade), _fmt_us(decade))
        decade *= 10
    if timed_x:
        step = _nice_step(t_max)
        k = 0.0
        while k <= t_max + 1e-9:
            _x_tick(parts, _H, x_at(k, t_max), _fmt_s(k))
            k += step
        x_title = "time of the cue, from the first cue"
    else:
        every = max(1, math.ceil(n / 12))
        for i in range(0, n, every):
            _x_tick(parts, _H, x_of(i), str(i + 1))
        x_title = "cues in show order"
    _frame(parts, _W, _H, x_title, "spread p99 (log)")
    for i, c in enumerate(cues):
        x = x_of(i)
        if "baseline_p99_us" in c:
            parts.append(
                f'<circle class="point-baseline" cx="{x:.1f}" cy="{y(c["baseline_p99_us"]):.1f}" r="3" '
                f'fill="#e0664f"><title>{html.escape(c["cue"])}: on receipt p99 '
                f"{c['baseline_p99_us']:.0f} us</title></circle>"
            )
        parts.append(
            f'<circle class="point-timed" cx="{x:.1f}" cy="{y(c["p99_us"]):.1f}" r="3" fill="#4fd18b">'
            f"<title>{html.escape(c['cue'])}: timed p99 {c['p99_us']:.0f} us</title></circle>"
        )
    _legend(
        parts, [("#4fd18b", "dot", "timed delivery (p99 per cue)"), ("#e0664f", "dot", "firing on receipt")]
    )
    parts.append("</svg>")
    return "".join(parts)


def _fmt_us(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:g} ms"
    return f"{v:g} us"


def _histogram(cues: list[dict[str, Any]]) -> str:
    """How many cues had their p99 spread in each band (log bands)."""
    bands = [
        (0, 100),
        (100, 250),
        (250, 500),
        (500, 1000),
        (1000, 2000),
        (2000, 5000),
        (5000, 20000),
        (20000, math.inf),
    ]
    timed = [sum(1 for c in cues if a <= c["p99_us"] < b) for a, b in bands]
    base = [sum(1 for c in cues if a <= c.get("baseline_p99_us", -1) < b) for a, b in bands]
    step = max(1.0, _nice_step(float(max(timed + base + [1])), 5))
    top_count = step * math.ceil(max(timed + base + [1]) / step)
    top, bottom = _T, _H - _B
    bw = (_W - _L - _R) / len(bands)
    parts = _svg_open(_W, _H, "cues by their p99 spread, timed delivery and on receipt")
    k = 0.0
    while k <= top_count + 1e-9:
        _y_tick(parts, _W, bottom - (k / top_count) * (bottom - top), f"{k:g}")
        k += step
    for i, ((a, b), t, bb) in enumerate(zip(bands, timed, base, strict=True)):
        x = _L + i * bw
        for j, (v, col, what) in enumerate(((t, "#4fd18b", "timed"), (bb, "#e0664f", "on receipt"))):
            h = (v / top_count) * (bottom - top)
            parts.append(
                f'<rect class="bar" x="{x + 6 + j * (bw / 2 - 4):.1f}" y="{bottom - h:.1f}" '
                f'width="{bw / 2 - 8:.1f}" height="{h:.1f}" fill="{col}">'
                f"<title>{v} cues ({what})</title></rect>"
            )
        label = f"<{_fmt_us(b)}" if math.isfinite(b) else f">{_fmt_us(a)}"
        _x_tick(parts, _H, x + bw / 2, label)
    _frame(parts, _W, _H, "spread p99 of the cue (band)", "cues")
    _legend(parts, [("#4fd18b", "bar", "timed delivery"), ("#e0664f", "bar", "firing on receipt")])
    parts.append("</svg>")
    return "".join(parts)


def _fired(report: dict[str, Any]) -> str:
    """``5 cues fired (12 actions)``: cues, and the actions (messages, fades) they fired."""
    cues, actions = report["cues_fired"], report.get("actions_fired")
    text = f"{cues:,} cue{'s' if cues != 1 else ''} fired"
    if isinstance(actions, int):
        text += f" ({actions:,} action{'s' if actions != 1 else ''})"
    return text


def render_html(report: dict[str, Any]) -> str:
    """The whole page."""
    cues = report.get("cues", [])
    rows = "".join(
        f"<tr><td>{html.escape(str(c['cue']))}</td><td>{c['seq']}</td><td>{c['devices']}</td>"
        f"<td>{c['p50_us']:.0f}</td><td>{c['p99_us']:.0f}</td><td>{c['max_us']:.0f}</td>"
        f"<td>{c.get('baseline_p99_us', float('nan')):.0f}</td></tr>"
        for c in cues
    )
    zones: dict[str, dict[str, Any]] = report.get("zones") or {}
    ctl = report.get("controller") or {}
    telemetry: list[dict[str, Any]] = report.get("telemetry") or ctl.get("telemetry") or []
    budget = ctl.get("sync_budget_us", report.get("sync_budget_us"))
    over = sum(1 for r in telemetry if r.get("over_budget"))
    synced = sum(1 for r in telemetry if r.get("synced"))
    tel_head = html.escape(
        f"{synced:,} of {len(telemetry):,} devices clock-synced; {over:,} over the "
        + (f"{budget:,.0f} us " if isinstance(budget, int | float) else "")
        + "budget of predicted fire error (or not synced). Delays are ping round trips; fire error is the "
        "device's reported fire instant against the cue's, read through the controller's clock model."
    )
    colour, words = verdict(report)
    verdict_words = html.escape(words)
    mode = html.escape(str(report.get("mode", "")))
    profile = html.escape(str(report.get("profile", "")))
    head = (
        f"{report['devices']:,} devices · {_fired(report)} · {report['missed']} missed · "
        f"{report['late_devices']} late"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Madang sync report</title>
<style>
body {{ background:#0b0b0b; color:#ddd; font:14px/1.4 system-ui, sans-serif; margin:24px; }}
h1 {{ font-size:20px; }} h2 {{ font-size:16px; margin-top:28px; }}
.big {{ font-size:28px; }} .base {{ color:#e0664f; }}
.green {{ color:#4fd18b; }} .yellow {{ color:#f2c14e; }} .red {{ color:#ff5f56; }}
table {{ border-collapse:collapse; }}
td, th {{ padding:3px 10px; border-bottom:1px solid #222; text-align:right; }}
td:first-child, th:first-child {{ text-align:left; }}
.plots {{ display:flex; flex-wrap:wrap; gap:24px; }}
.plots section {{ width:640px; }}
.plots svg {{ width:100%; height:auto; }}
tr.over td {{ color:#f2c14e; }}
#zone-table {{ margin-top:8px; }}
</style></head><body>
<h1>Madang sync report: {mode} time, profile {profile}</h1>
<p>{head}</p>
<p>Spread of fire instants across devices (distance from each cue's median, all cues pooled):
<span class="big {colour}" id="headline">p99 {report["spread_p99_us"]:.0f} us</span>
(p50 {report["spread_p50_us"]:.0f} us, max {report["spread_max_us"]:.0f} us):
<span class="{colour}">{verdict_words}</span>. Firing on receipt would have given
<span class="base">p99 {report["baseline_spread_p99_us"]:.0f} us</span>.</p>
<div class="plots">
<section><h2>Spread over the show</h2>
{_spread_plot(cues)}</section>
<section><h2>Per zone: distance from each cue's median</h2>
{_zone_histogram(zones)}
{_zone_table(zones)}</section>
</div>
<h2>Cues by spread (p99)</h2>
{_histogram(cues)}
<h2>Devices, worst first</h2>
<p>{tel_head}</p>
{_telemetry_table(telemetry)}
<h2>Per cue</h2>
<table><tr><th>cue</th><th>seq</th><th>devices</th><th>p50 us</th><th>p99 us</th><th>max us</th>
<th>on receipt p99 us</th></tr>{rows}</table>
</body></html>
"""


def _band_label(i: int, edges: tuple[float, ...]) -> str:
    if i + 1 < len(edges):
        return f"<{_fmt_us(edges[i + 1])}"
    return f">{_fmt_us(edges[i])}"


_ZONE_COLOURS = ("#4fd18b", "#5aa9e6", "#f2c14e", "#c77dff", "#e0664f", "#7ae7c7", "#ff9fb2", "#b8b8b8")


def _zone_histogram(zones: dict[str, dict[str, Any]]) -> str:
    """Per zone, the share of its fires in each band of distance from the cue's median."""
    if not zones:
        return '<p id="zone-histogram">No per-zone figures in this report.</p>'
    edges = _BANDS_US
    nb = len(edges)
    names = list(zones)
    # Room above the plot for a legend of many zones (wrapped onto more rows).
    legend_rows = _legend_rows([f"{z}" for z in names], _W - _L - _R)
    h = _H + 40 + 16 * (len(legend_rows) - 1)
    top = _T + 16 * (len(legend_rows) - 1)
    bottom = h - _B
    bw = (_W - _L - _R) / nb
    inner = bw - 10
    parts = _svg_open(_W, h, "per-zone histogram of fire deviations", 'id="zone-histogram" ')
    for k in (0.0, 0.25, 0.5, 0.75, 1.0):
        _y_tick(parts, _W, bottom - k * (bottom - top), f"{k:.0%}", grid=k > 0)
    for zi, z in enumerate(names):
        counts = zones[z].get("hist", [])
        total = max(1, sum(counts))
        col = _ZONE_COLOURS[zi % len(_ZONE_COLOURS)]
        w = inner / max(1, len(names))
        for i, c in enumerate(counts[:nb]):
            frac = c / total
            bh = frac * (bottom - top)
            x = _L + i * bw + 5 + zi * w
            parts.append(
                f'<rect class="zone-bar" data-zone="{html.escape(z)}" x="{x:.1f}" y="{bottom - bh:.1f}" '
                f'width="{max(w - 1, 1):.1f}" height="{bh:.1f}" fill="{col}">'
                f"<title>{html.escape(z)}: {c} of {total} fires {html.escape(_band_label(i, edges))} "
                f"({frac:.1%})</title></rect>"
            )
    for i in range(nb):
        _x_tick(parts, h, _L + i * bw + bw / 2, _band_label(i, edges))
    _frame(parts, _W, h, "distance from the cue's median fire instant", "share of the zone's fires")
    colours = {z: _ZONE_COLOURS[zi % len(_ZONE_COLOURS)] for zi, z in enumerate(names)}
    for row_i, row in enumerate(legend_rows):
        _legend(parts, [(colours[z], "bar", z) for z in row], y=20 + 16 * row_i)
    parts.append("</svg>")
    return "".join(parts)


def _legend_rows(labels: list[str], width: float) -> list[list[str]]:
    """Legend labels split into rows that fit ``width`` (the same spacing as :func:`_legend`)."""
    rows: list[list[str]] = [[]]
    used = 0.0
    for label in labels:
        need = 30 + 7 * len(label)
        if rows[-1] and used + need > width:
            rows.append([])
            used = 0.0
        rows[-1].append(label)
        used += need
    return rows


def _zone_table(zones: dict[str, dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(z)}</td><td>{v.get('devices', 0):,}</td><td>{v.get('fires', 0):,}</td>"
        f"<td>{v.get('p50_us', 0):,.0f}</td><td>{v.get('p99_us', 0):,.0f}</td>"
        f"<td>{v.get('max_us', 0):,.0f}</td></tr>"
        for z, v in zones.items()
    )
    return (
        '<table id="zone-table"><tr><th>zone</th><th>devices</th><th>fires</th><th>p50 us</th>'
        f"<th>p99 us</th><th>max us</th></tr>{rows}</table>"
    )


_TEL_COLS = (
    ("device", "device", None),
    ("zone", "zone", None),
    ("sync", "sync", None),
    ("offset_us", "offset us", "{:,.0f}"),
    ("offset_err_us", "offset error us (true)", "{:,.0f}"),
    ("drift_ppm", "drift ppm", "{:,.1f}"),
    ("delay_p50_us", "delay p50 us", "{:,.0f}"),
    ("delay_p99_us", "delay p99 us", "{:,.0f}"),
    ("uncertainty_us", "uncertainty us", "{:,.0f}"),
    ("acks", "acks", "{:,}"),
    ("fire_error_us", "fire error us", "{:,.0f}"),
    ("fire_error_max_us", "fire error max us", "{:,.0f}"),
)


def _telemetry_table(rows: list[dict[str, Any]], limit: int = 200) -> str:
    """The per-device telemetry, worst first (the report keeps them in that order)."""
    if not rows:
        return '<p id="telemetry">No per-device telemetry in this report.</p>'
    cols = [c for c in _TEL_COLS if any(c[0] in r for r in rows)]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in cols) + "<th>state</th>"
    body = []
    for r in rows[:limit]:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            text = "-" if v is None else (fmt.format(v) if fmt else str(v))
            cells.append(f"<td>{html.escape(text)}</td>")
        state = "over budget" if r.get("over_budget") else ("synced" if r.get("synced") else "not synced")
        cls = "over" if r.get("over_budget") else ""
        cells.append(f"<td>{state}</td>")
        body.append(f'<tr class="{cls}">' + "".join(cells) + "</tr>")
    more = "" if len(rows) <= limit else f"<p>{len(rows) - limit:,} more devices in the JSON report.</p>"
    return f'<table id="telemetry"><tr>{head}</tr>{"".join(body)}</table>{more}'


def verdict(report: dict[str, Any]) -> tuple[str, str]:
    """The headline's colour and words, from the report's own spread (p99) against the sync
    budget and against the on-receipt baseline (docs/operator.md, "The sync gate"):

    * ``green``: within the budget and no worse than firing on receipt;
    * ``yellow``: over the budget but better than on receipt, or within it but worse;
    * ``red``: over the budget and no better than on receipt (sync did not help), or over ten
      budgets, or cues missed.
    """
    ctl = report.get("controller") or {}
    budget = float(ctl.get("sync_budget_us") or report.get("sync_budget_us") or 5_000.0)
    spread = float(report.get("spread_p99_us", 0.0))
    base = float(report.get("baseline_spread_p99_us", 0.0))
    within = spread <= budget
    better = base <= 0.0 or spread <= base
    vs_base = f"{base / spread:,.0f}x tighter than on receipt" if better and spread > 0 else "on receipt"
    if report.get("missed"):
        return "red", f"{report['missed']} missed"
    if within and better:
        return "green", f"within the {budget:,.0f} us budget, {vs_base}"
    if not within and (not better or spread > 10 * budget):
        return "red", f"over the {budget:,.0f} us budget and no better than firing on receipt"
    if within:
        return "yellow", f"within the {budget:,.0f} us budget but worse than firing on receipt"
    return "yellow", f"over the {budget:,.0f} us budget, though {vs_base}"
