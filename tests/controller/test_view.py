"""The live view (controller/view.py) rendered to text: the cue list with countdowns and trigger
progress, the operator log, the key help, the outbox figure."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from controller.engine import CueClock, TriggerProgress
from controller.view import CueRow, LogLine, ViewModel, cue_rows, render
from cues.compiler import compile_show

REPO = Path(__file__).resolve().parents[2]
S = 1_000_000_000


def text(vm: ViewModel, width: int = 160) -> str:
    console = Console(record=True, width=width, color_system=None, force_terminal=False)
    console.print(render(vm))
    return console.export_text()


def test_cue_list_shows_every_cue_with_number_name_go_mode_and_notes() -> None:
    timeline, _ = compile_show(REPO / "config" / "shows" / "gwanghwamun-light-gate.yaml")
    rows = cue_rows(timeline, timeline.cues[0].id)
    assert [r.number for r in rows] == list(range(1, len(timeline.cues) + 1))
    assert rows[0].role == "standby"
    seated = next(r for r in rows if "GO when the front section is seated" in r.notes)
    assert seated.name
    event = next(r for r in rows if r.go == "event")
    assert "ar/+/ready" in event.event and "540" in event.event
    out = text(ViewModel(state="armed", cues=rows, standby_cue=rows[0].cue))
    assert "waits for GO" in out
    for r in rows[:8]:
        assert r.cue in out


def test_running_cues_count_down_and_a_trigger_shows_its_progress() -> None:
    timeline, _ = compile_show(REPO / "config" / "shows" / "gwanghwamun-light-gate.yaml")
    cues = timeline.cues
    trig = next(c for c in cues if c.trigger is not None)
    clocks = [
        CueClock(cues[0].id, action_ns=4_200_000_000, post_wait_ns=2 * S),
        CueClock(cues[4].id, pre_wait_ns=1_500_000_000),
    ]
    progress = TriggerProgress(trig.id, "mqtt", "ar/+/ready", 812, 1000, 31 * S, "hold")
    rows = cue_rows(timeline, trig.id, clocks, progress)
    out = text(ViewModel(state="playing", cues=rows, standby_cue=trig.id))
    assert "action 4.2 s · post-wait 2.0 s" in out
    assert "pre-wait 1.5 s" in out
    assert "ready 812 of 1,000, timeout 31.0 s, then hold" in out
    paused = text(ViewModel(state="paused", cues=rows, standby_cue=trig.id))
    assert "(paused)" in paused


def test_a_long_cue_list_shows_a_window_around_the_playhead() -> None:
    many = [CueRow(i + 1, f"cue-{i}", "", "GO", role="standby" if i == 20 else "") for i in range(40)]
    out = text(ViewModel(state="armed", cues=many, standby_cue="cue-20"))
    assert "cue-20" in out and "cue-18" in out and "18 above" in out and "8 below" in out
    assert "cue-5 " not in out and "cue-35" not in out


def test_operator_log_shows_what_was_done_and_what_was_refused() -> None:
    log = [
        LogLine("21:04:05", "key Space", "GO", True, "-> playing"),
        LogLine("21:04:06", "osc 127.0.0.1", "GO", False, "refused: GO ignored: taken as a double-tap"),
        LogLine("21:04:07", "key g", "", False, "g does nothing: Space is GO", hint=True),
    ]
    out = text(ViewModel(state="playing", log=log))
    assert "operator log" in out
    assert "key Space" in out and "-> playing" in out
    assert "osc 127.0.0.1" in out and "refused: GO ignored" in out
    assert "g does nothing" in out


def test_key_help_and_hints() -> None:
    out = text(ViewModel(help=True))
    assert "keys (? to hide)" in out
    for key in ("Space", "G G", "Esc", "Ctrl-C", "Up / Left"):
        assert key in out
    assert "Space GO · Esc panic" in text(ViewModel())
    off = text(ViewModel(keys="keys off: stdin is not a terminal; use the OSC control port"))
    assert "keys off" in off and "Space GO" not in off


def test_outbox_shows_only_what_is_waiting() -> None:
    assert "outbox" not in text(ViewModel(outbox=0))
    assert "3 waiting" in text(ViewModel(outbox=3))
    assert "2 awaiting the broker's ack" in text(ViewModel(outbox=0, unacked=2))


def test_narrow_terminal_stacks_the_panels() -> None:
    vm = ViewModel(
        state="armed",
        cues=[CueRow(1, "dusk", "Dusk", "GO", notes="NOTE-TEXT", role="standby")],
        standby_cue="dusk",
        log=[LogLine("21:04:05", "key Space", "GO", True, "-> playing")],
    )
    assert "NOTE-TEXT" in text(vm, width=160)
    out = text(vm, width=80)
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "waits for GO" in out and "NOTE-TEXT" not in out  # the status stays, the notes go
    lines = out.splitlines()
    venue = next(i for i, line in enumerate(lines) if "venue" in line)
    oplog = next(i for i, line in enumerate(lines) if "operator log" in line)
    assert oplog > venue  # one above the other


def test_a_cue_that_fired_shows_its_live_spread_in_both_views() -> None:
    from controller.telemetry import CueSpread
    from controller.web.console import state_message

    timeline, _ = compile_show(REPO / "config" / "shows" / "gwanghwamun-light-gate.yaml")
    first, second = timeline.cues[0].id, timeline.cues[1].id
    spread = {first: CueSpread(reports=1200, spread_us=1500.0, p99_us=640.0)}
    rows = cue_rows(timeline, second, spread=spread)
    assert rows[0].spread == spread[first] and rows[1].spread is None
    vm = ViewModel(state="playing", cues=rows, standby_cue=second)
    assert "spread 1.5 ms · p99 640 us · 1,200 reports" in text(vm, width=200)
    page = state_message(vm)["cues"]
    assert page[0]["spread"] == "spread 1.5 ms · p99 640 us · 1,200 reports" and page[1]["spread"] is None
