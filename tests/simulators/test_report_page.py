"""The report page (simulators/report_html.py), rendered by a real browser.

The page is built from a report with literal figures (no simulation), written to a temporary
file and loaded by headless Chromium (``--dump-dom``): the zone histogram, the zone table and the
per-device telemetry table must be in the DOM the browser built, worst device first, and the page
must not reach for anything outside itself. Without Chromium the browser test is skipped, except
under CI (``CI=true``), where a missing browser is a failure: .ci/run installs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from simulators.report import ZONE_BANDS_US
from simulators.report_html import render_html
from tests.conftest import missing_tool


def _report() -> dict[str, Any]:
    def tel(device: str, zone: str, unc: float, over: bool) -> dict[str, Any]:
        return {
            "device": device,
            "zone": zone,
            "kind": "xr",
            "sync": "app",
            "synced": True,
            "offset_us": -12_345.0,
            "offset_err_us": 210.0,
            "drift_ppm": 3.5,
            "delay_p50_us": 8_000.0,
            "delay_p99_us": 31_000.0,
            "uncertainty_us": unc,
            "over_budget": over,
            "acks": 7,
            "fire_error_us": 12.0,
            "fire_error_max_us": 480.0,
        }

    hist_a = [5, 9, 3, 1, 0, 0, 0, 0, 0]
    hist_b = [1, 2, 4, 6, 3, 1, 0, 0, 1]
    return {
        "mode": "real",
        "profile": "wifi",
        "devices": 3,
        "cues_fired": 2,
        "actions_fired": 5,
        "missed": 0,
        "late_devices": 1,
        "spread_p50_us": 120.0,
        "spread_p99_us": 1_900.0,
        "spread_max_us": 150_000.0,
        "baseline_spread_p99_us": 95_000.0,
        "cues": [
            {
                "seq": 1,
                "cue": "open",
                "devices": 3,
                "p50_us": 90.0,
                "p99_us": 800.0,
                "max_us": 810.0,
                "t_s": 0.0,
                "baseline_p99_us": 60_000.0,
            },
            {
                "seq": 4,
                "cue": "bloom <b>",
                "devices": 3,
                "p50_us": 150.0,
                "p99_us": 2_500.0,
                "max_us": 2_600.0,
                "t_s": 12.5,
                "baseline_p99_us": 90_000.0,
            },
        ],
        "zones": {
            "banpo": {
                "devices": 2,
                "fires": sum(hist_a),
                "p50_us": 110.0,
                "p99_us": 700.0,
                "max_us": 900.0,
                "hist": hist_a,
            },
            "yeouido": {
                "devices": 1,
                "fires": sum(hist_b),
                "p50_us": 800.0,
                "p99_us": 180_000.0,
                "max_us": 190_000.0,
                "hist": hist_b,
            },
        },
        "telemetry": [tel("xr-0007", "yeouido", 4_200.0, True), tel("xr-0001", "banpo", 300.0, False)],
        "controller": {"sync_budget_us": 1_000.0},
    }


def test_page_holds_the_zone_histogram_and_the_telemetry_table_without_outside_links() -> None:
    page = render_html(_report())
    assert 'id="zone-histogram"' in page and 'id="telemetry"' in page and 'id="zone-table"' in page
    # One bar per zone and band; the histogram's bands are the report's.
    assert page.count('class="zone-bar"') == 2 * len(ZONE_BANDS_US)
    assert "bloom &lt;b&gt;" in page and "bloom <b>" not in page  # escaped
    # Self-contained: no scripts, no fetched resources.
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "time of the cue, from the first cue" in page
    assert "2 cues fired (5 actions)" in page


def test_every_plot_has_axes_ticks_titles_and_a_legend() -> None:
    import xml.etree.ElementTree as ET

    page = render_html(_report())
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 3  # spread over the show, per zone, cues by spread
    for svg in svgs:
        root = ET.fromstring(svg)
        by_class: dict[str, list[ET.Element]] = {}
        for el in root.iter():
            for c in (el.get("class") or "").split():
                by_class.setdefault(c, []).append(el)
        assert len(by_class.get("axis", [])) == 2, svg[:300]  # x and y axis lines
        titles = [t.text for t in by_class.get("axis-title", [])]
        assert len(titles) == 2 and all(titles), titles  # both axes say what they measure
        assert len(by_class.get("tick", [])) >= 4 and len(by_class.get("tick-label", [])) >= 4
        legend = by_class.get("legend", [])
        assert legend and [t.text for t in legend[0].iter("text")], "a legend with labels"
    # The spread plot's x ticks are times: 0 s to the last cue (12.5 s) in round steps.
    spread = ET.fromstring(svgs[0])
    labels = [t.text for t in spread.iter("text") if t.get("class") == "tick-label"]
    assert "0 s" in labels and "10 s" in labels
    # The log y axis: one tick per decade, in the units an operator reads.
    assert "1 ms" in labels and "100 ms" in labels


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_a_real_browser_renders_the_zone_histogram_and_the_telemetry_table(tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        missing_tool("chromium", "chromium")
    page = tmp_path / "report.html"
    page.write_text(render_html(_report()), encoding="utf-8")
    out = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout
    # The browser parsed our SVG and tables into elements (the DOM it serialises back).
    assert re.search(r'<svg[^>]*id="zone-histogram"', dom), dom[:2000]
    assert len(re.findall(r'<rect[^>]*class="zone-bar"', dom)) == 2 * len(ZONE_BANDS_US)
    assert re.search(r'<table id="telemetry">', dom)
    rows = re.findall(
        r"<tr[^>]*>(.*?)</tr>", dom.split('<table id="telemetry">', 1)[1].split("</table>", 1)[0]
    )
    # Header, then the over-budget device before the good one (worst first).
    assert "uncertainty us" in rows[0]
    assert "xr-0007" in rows[1] and "over budget" in rows[1]
    assert "xr-0001" in rows[2] and "synced" in rows[2]
    assert re.search(r'<table id="zone-table">.*banpo.*yeouido', dom, re.S)
    # The plots reached the browser with their axes and legends.
    assert len(re.findall(r'<line[^>]*class="axis"', dom)) == 6
    assert len(re.findall(r'<g class="legend"', dom)) == 3


def test_a_screenshot_of_the_report_page_is_drawn(tmp_path: Path) -> None:
    """The page as a browser paints it (a PNG next to the page, for a person to look at)."""
    browser = _chromium()
    if browser is None:
        missing_tool("chromium", "chromium")
    page = tmp_path / "report.html"
    page.write_text(render_html(_report()), encoding="utf-8")
    shot = tmp_path / "report.png"
    out = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1500", f"--screenshot={shot}",
         page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
