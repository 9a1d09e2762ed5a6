"""The sync report as a self-contained HTML page with plots (inline SVG, no scripts, no downloads)."""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = ["render_html"]

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
    """Spread per cue in order of the show: p99 of the timed delivery vs on receipt (log scale)."""
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
        x = _PAD + i * step + step / 2
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
    parts.append(
        f'<text x="{_W / 2}" y="{_H - 12}" fill="#aaa" font-size="12" text-anchor="middle">'
        "cues in show order</text>"
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
.big {{ font-size:28px; color:#4fd18b; }} .base {{ color:#e0664f; }}
table {{ border-collapse:collapse; }}
td, th {{ padding:3px 10px; border-bottom:1px solid #222; text-align:right; }}
td:first-child, th:first-child {{ text-align:left; }}
</style></head><body>
<h1>Madang sync report: {mode} time, profile {profile}</h1>
<p>{head}</p>
<p>Spread of fire instants across devices (distance from each cue's median, all cues pooled):
<span class="big">p99 {report["spread_p99_us"]:.0f} us</span> (p50 {report["spread_p50_us"]:.0f} us,
max {report["spread_max_us"]:.0f} us). Firing on receipt would have given
<span class="base">p99 {report["baseline_spread_p99_us"]:.0f} us</span>.</p>
<h2>Spread over the show</h2>
{_spread_plot(cues)}
<h2>Cues by spread (p99)</h2>
{_histogram(cues)}
<h2>Per cue</h2>
<table><tr><th>cue</th><th>seq</th><th>devices</th><th>p50 us</th><th>p99 us</th><th>max us</th>
<th>on receipt p99 us</th></tr>{rows}</table>
</body></html>
"""
