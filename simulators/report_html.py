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

    def y(v: float) -> float:
        v = max(v, lo)
        return _H - _PAD - (math.log10(v) / lhi) * (_H - 2 * _PAD)

    n = len(cues)
    step = (_W - 2 * _PAD) / max(n, 1)
    times = [c.get("t_s") for c in cues]
    t_max = max([float(t) for t in times if isinstance(t, int | float)] + [0.0])
    # Time on the x axis when the report has it and the cues span a second or more.
    timed_x = all(isinstance(t, int | float) for t in times) and t_max >= 1.0

    def x_of(i: int) -> float:
        t = times[i]
        if timed_x and isinstance(t, int | float):
            return _PAD + 8 + (float(t) / t_max) * (_W - 2 * _PAD - 16)
        return _PAD + i * step + step / 2

    parts = [
        f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img">',
        f'<rect width="{_W}" height="{_H}" fill="#111"/>',
    ]
    decade = 1.0
    while decade <= hi:
        yy = y(decade)
        parts.append(f'<line x1="{_PAD}" x2="{_W - _PAD}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#333"/>')
        parts.append(
            f'<text x="{_PAD - 6}" y="{yy + 4:.1f}" fill="#aaa" font-size="11" '
            f'text-anchor="end">{_fmt_us(decade)}</text>'
        )
        decade *= 10
    for i, c in enumerate(cues):
        x = x_of(i)
        if "baseline_p99_us" in c:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y(c["baseline_p99_us"]):.1f}" r="3" fill="#e0664f">'
                f"<title>{html.escape(c['cue'])}: on receipt p99 {c['baseline_p99_us']:.0f} us</title>"
                "</circle>"
            )
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y(c["p99_us"]):.1f}" r="3" fill="#4fd18b">'
            f"<title>{html.escape(c['cue'])}: timed p99 {c['p99_us']:.0f} us</title></circle>"
        )
    parts.append(
        f'<text x="{_PAD}" y="20" fill="#4fd18b" font-size="13">● timed delivery (p99 per cue)</text>'
    )
    parts.append(f'<text x="{_PAD + 260}" y="20" fill="#e0664f" font-size="13">● firing on receipt</text>')
    axis = f"seconds from the first cue (0 to {t_max:,.1f} s)" if timed_x else "cues in show order"
    parts.append(
        f'<text x="{_W / 2}" y="{_H - 12}" fill="#aaa" font-size="12" text-anchor="middle">{axis}</text>'
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
    top = max(timed + base + [1])
    bw = (_W - 2 * _PAD) / len(bands)
    parts = [
        f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img">',
        f'<rect width="{_W}" height="{_H}" fill="#111"/>',
    ]
    for i, ((a, b), t, bb) in enumerate(zip(bands, timed, base, strict=True)):
        x = _PAD + i * bw
        for j, (v, col) in enumerate(((t, "#4fd18b"), (bb, "#e0664f"))):
            h = (v / top) * (_H - 2 * _PAD)
            parts.append(
                f'<rect x="{x + 6 + j * (bw / 2 - 4):.1f}" y="{_H - _PAD - h:.1f}" '
                f'width="{bw / 2 - 8:.1f}" height="{h:.1f}" fill="{col}"><title>{v} cues</title></rect>'
            )
        label = f"<{_fmt_us(b)}" if math.isfinite(b) else f">{_fmt_us(a)}"
        parts.append(
            f'<text x="{x + bw / 2:.1f}" y="{_H - _PAD + 16}" fill="#aaa" font-size="11" '
            f'text-anchor="middle">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


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
        f"{report['devices']:,} devices · {report['cues_fired']} cues fired · {report['missed']} missed · "
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
    h = _H + 40
    bw = (_W - 2 * _PAD) / nb
    inner = bw - 10
    parts = [
        f'<svg id="zone-histogram" viewBox="0 0 {_W} {h}" width="{_W}" height="{h}" role="img" '
        'aria-label="per-zone histogram of fire deviations">',
        f'<rect width="{_W}" height="{h}" fill="#111"/>',
    ]
    for k in (0.25, 0.5, 0.75, 1.0):
        yy = h - _PAD - k * (h - 2 * _PAD)
        parts.append(f'<line x1="{_PAD}" x2="{_W - _PAD}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#2a2a2a"/>')
        parts.append(
            f'<text x="{_PAD - 6}" y="{yy + 4:.1f}" fill="#aaa" font-size="11" '
            f'text-anchor="end">{k:.0%}</text>'
        )
    for zi, z in enumerate(names):
        counts = zones[z].get("hist", [])
        total = max(1, sum(counts))
        col = _ZONE_COLOURS[zi % len(_ZONE_COLOURS)]
        w = inner / max(1, len(names))
        for i, c in enumerate(counts[:nb]):
            frac = c / total
            bh = frac * (h - 2 * _PAD)
            x = _PAD + i * bw + 5 + zi * w
            parts.append(
                f'<rect class="zone-bar" data-zone="{html.escape(z)}" x="{x:.1f}" y="{h - _PAD - bh:.1f}" '
                f'width="{max(w - 1, 1):.1f}" height="{bh:.1f}" fill="{col}">'
                f"<title>{html.escape(z)}: {c} of {total} fires {html.escape(_band_label(i, edges))} "
                f"({frac:.1%})</title></rect>"
            )
    parts.extend(
        f'<text x="{_PAD + i * bw + bw / 2:.1f}" y="{h - _PAD + 16}" fill="#aaa" font-size="11" '
        f'text-anchor="middle">{html.escape(_band_label(i, edges))}</text>'
        for i in range(nb)
    )
    lx: float = _PAD
    ly = 20
    for zi, z in enumerate(names):
        col = _ZONE_COLOURS[zi % len(_ZONE_COLOURS)]
        label = f"● {z}"
        width = 24 + 7.5 * len(label)
        if lx + width > _W - _PAD:  # wrap the legend onto a second line
            lx, ly = _PAD, ly + 16
        parts.append(f'<text x="{lx:.0f}" y="{ly}" fill="{col}" font-size="12">{html.escape(label)}</text>')
        lx += width
    parts.append(
        f'<text x="{_W / 2}" y="{h - 8}" fill="#aaa" font-size="12" text-anchor="middle">'
        "distance from the cue's median fire instant (share of the zone's fires)</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


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
