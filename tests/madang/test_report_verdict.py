"""The report's headline is coloured by its own spread against the sync budget and the on-receipt
baseline (simulators/report_html.verdict, printed by madang/report.py): finding 3's early GO,
which fired the screens 0.4 s apart against 0.15 ms on receipt, was printed as if all was well."""

from __future__ import annotations

from typing import Any

from simulators.report_html import render_html, verdict


def _report(
    spread_us: float, baseline_us: float, *, budget_us: float = 5_000.0, missed: int = 0
) -> dict[str, Any]:
    return {
        "devices": 10,
        "cues_fired": 3,
        "missed": missed,
        "late_devices": 0,
        "spread_p50_us": spread_us / 2,
        "spread_p99_us": spread_us,
        "spread_max_us": spread_us,
        "baseline_spread_p99_us": baseline_us,
        "cues": [],
        "controller": {"sync_budget_us": budget_us},
    }


def test_an_early_go_out_of_sync_is_red() -> None:
    # The figures of issue 10's finding 3 (lan): timed p99 423,122 us, on receipt 146 us.
    colour, words = verdict(_report(423_122, 146))
    assert colour == "red" and "no better than firing on receipt" in words
    assert '<span class="big red" id="headline">' in render_html(_report(423_122, 146))


def test_a_synced_wifi_venue_is_green() -> None:
    colour, words = verdict(_report(1_654, 194_208))  # madang demo (wifi) before the gate
    assert colour == "green" and "within the 5,000 us budget" in words and "117x tighter" in words


def test_over_budget_but_better_than_on_receipt_is_yellow() -> None:
    assert verdict(_report(8_000, 150_000))[0] == "yellow"
    assert verdict(_report(900, 150, budget_us=5_000))[0] == "yellow"  # within it, worse than receipt


def test_missed_cues_are_red() -> None:
    assert verdict(_report(100, 10_000, missed=2)) == ("red", "2 missed")
