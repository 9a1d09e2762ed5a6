"""The post-show sync report of ``madang run --simulate`` and ``madang demo``: on the terminal
(:func:`print_report`) and on disk as JSON with its HTML page beside it (:func:`write_report`).

``--report FILE`` is checked by :func:`prepare_report` before the show starts, so a path that cannot be
written fails in a second, not after the show.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from controller.outputs import prepare, write_text

__all__ = ["prepare_report", "print_report", "write_report"]


def print_report(report: dict[str, Any]) -> None:
    """The sync report on the terminal: the worst cues' spread, the totals and the clock sync."""
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"sync report ({report.get('mode')}, profile {report.get('profile')})")
    t.add_column("cue")
    t.add_column("devices", justify="right")
    t.add_column("p50 us", justify="right")
    t.add_column("p99 us", justify="right")
    t.add_column("max us", justify="right")
    t.add_column("on receipt p99 us", justify="right")
    for row in report["cues"][:40]:
        t.add_row(
            f"{row['cue']} #{row['seq']}",
            str(row["devices"]),
            f"{row['p50_us']:.0f}",
            f"{row['p99_us']:.0f}",
            f"{row['max_us']:.0f}",
            f"{row.get('baseline_p99_us', float('nan')):.0f}",
        )
    con.print(t)
    from simulators.report_html import verdict

    colour, words = verdict(report)  # the spread against the budget and the on-receipt baseline
    con.print(
        f"[bold]{report['devices']:,} devices, {_fired(report)}, {report['missed']} missed, "
        f"{report['late_devices']} late.[/bold] Spread across devices: p50 {report['spread_p50_us']:.0f} us, "
        f"[bold {colour}]p99 {report['spread_p99_us']:.0f} us ({words})[/bold {colour}], "
        f"max {report['spread_max_us']:.0f} us; firing on receipt "
        f"would have given p99 {report['baseline_spread_p99_us']:.0f} us."
    )
    tel = report.get("telemetry") or []
    if tel:
        synced = sum(1 for r in tel if r["synced"])
        over = sum(1 for r in tel if r["over_budget"])
        worst = ", ".join(
            f"{r['device']} {r['predicted_error_us']:,.0f} us"
            for r in tel[:3]
            if r.get("predicted_error_us") is not None
        )
        budget = report.get("controller", {}).get("sync_budget_us", 0)
        degraded = sum(int(r.get("degraded") or 0) for r in tel)
        con.print(
            f"Clock sync: {synced:,} of {len(tel):,} devices synced, {over:,} predicted over the "
            f"{budget:,.0f} us budget (worst predicted fire error: {worst or '-'}); "
            f"{degraded:,} degraded fires (no settled clock model: played on receipt); "
            f"{report.get('on_receipt', 0):,} fires on receipt (the cue arrived after its instant)."
        )


def _fired(report: dict[str, Any]) -> str:
    """``5 cues fired (12 actions)``: cues, and the actions (messages, fades) they fired."""
    cues, actions = report["cues_fired"], report.get("actions_fired")
    text = f"{cues:,} cue{'s' if cues != 1 else ''} fired"
    if isinstance(actions, int):
        text += f" ({actions:,} action{'s' if actions != 1 else ''})"
    return text


def _html_of(path: Path) -> Path:
    """The report page beside ``path``: ``report.json`` -> ``report.html``, else ``FILE.html``."""
    return path.with_suffix(".html") if path.suffix == ".json" else Path(str(path) + ".html")


def prepare_report(args: argparse.Namespace) -> Path | None:
    """``--report FILE``, checked (with its page beside it) before the show, not after it."""
    if not args.report:
        return None
    path = prepare(args.report, "report")
    prepare(_html_of(path), "report page")
    return path


def write_report(report: dict[str, Any], path: Path) -> None:
    """The report as ``path`` (JSON) and its page beside it (HTML); says where they went."""
    write_text(path, json.dumps(report, indent=2) + "\n", "report")
    from simulators.report_html import render_html

    html = write_text(_html_of(path), render_html(report), "report page")
    print(f"wrote {path} and {html}")
