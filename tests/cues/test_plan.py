"""The operator's plan view: rows and the terminal table of a hand-built show (the SVG chart: test_chart)."""

from __future__ import annotations

import pytest
from rich.console import Console

import cues.chart
import cues.plan
from cues.plan import PlanRow, TargetNamer, describe_op, go_label, plan_rows, render_table
from cues.timeline import CueSpan, Ease, EventTrigger, Fade, Go, MqttSend, Timeline
from tests.cues.plan_show import S, make_timeline, make_venue
from venues.model import Venue


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


def test_render_svg_is_still_importable_from_plan() -> None:
    # controller/cli.py imports it from cues.plan; it lives in cues.chart.
    from cues.plan import render_svg

    assert render_svg is cues.chart.render_svg
    assert "render_svg" in cues.plan.__all__
