"""The engine's read-only queries for the live view: cue countdowns and event-trigger progress,
with literal times (no loop, no sleeps)."""

from __future__ import annotations

from controller.engine import CueClock, TriggerProgress
from controller.playback import Go, Pause, Resume, SetRate, State
from cues.timeline import EventTrigger, Fade, Timeline
from cues.timeline import Go as GoMode
from tests.controller.test_engine import C, armed, build, ok, osc
from venues.model import Venue

S = 1_000_000_000
MS = 1_000_000


def _show() -> tuple[Timeline, Venue]:
    return build(
        [
            # a: pre-wait 1 s, then a 2 s fade (ends at 3 s); b continues 4 s after a started.
            C("a", pre=1 * S, post=4 * S,
              ops=[(0, ("a",), osc("/a")), (0, ("b",), Fade("level", 0.0, 1.0, 2 * S))]),
            C("b", GoMode.AUTO_CONTINUE, ops=[(0, ("a",), Fade("level", 1.0, 0.0, 1 * S))]),
            C("c", trigger=EventTrigger("mqtt", "xr/+/ready", count=3, timeout_ns=30 * S, on_timeout="hold"),
              ops=[(0, ("a",), osc("/c"))]),
        ]
    )


def test_countdowns_of_a_running_chain() -> None:
    tl, venue = _show()
    eng = armed(tl, venue)
    assert eng.cue_clocks(0) == ()  # nothing runs before GO
    ok(eng.command(Go(), 0))
    assert eng.cue_clocks(S // 2) == (
        CueClock("a", pre_wait_ns=S // 2, post_wait_ns=3 * S + S // 2),
        CueClock("b", starts_in_ns=3 * S + S // 2),
    )
    assert eng.cue_clocks(2 * S) == (
        CueClock("a", action_ns=1 * S, post_wait_ns=2 * S),
        CueClock("b", starts_in_ns=2 * S),
    )
    # a has ended and b has started: only b, with its action running.
    assert eng.cue_clocks(4 * S + S // 2) == (CueClock("b", action_ns=S // 2),)


def test_countdowns_follow_the_rate_and_freeze_while_paused() -> None:
    tl, venue = _show()
    eng = armed(tl, venue)
    ok(eng.command(Go(), 0))
    ok(eng.command(SetRate(rate=2.0), 2 * S))  # a: 1 s of action left at x1 is 0.5 s at x2
    assert eng.cue_clocks(2 * S)[0] == CueClock("a", action_ns=S // 2, post_wait_ns=1 * S)
    ok(eng.command(Pause(), 2 * S + S // 4))
    frozen = eng.cue_clocks(2 * S + S // 4)
    assert frozen == eng.cue_clocks(60 * S)  # paused: nothing counts down
    assert frozen[0] == CueClock("a", action_ns=S // 4, post_wait_ns=S * 3 // 4)
    ok(eng.command(Resume(), 100 * S))
    assert eng.cue_clocks(100 * S) == frozen


def test_a_go_latency_shows_as_starts_in() -> None:
    tl, venue = _show()
    eng = armed(tl, venue, go_delay_ns=250 * MS)
    ok(eng.command(Go(), 0))
    first = eng.cue_clocks(0)[0]
    assert first.cue == "a" and first.starts_in_ns == 250 * MS


def test_trigger_progress_counts_senders_and_its_timeout() -> None:
    tl, venue = _show()
    eng = armed(tl, venue)
    assert eng.trigger_progress(0) is None  # the standby cue (a) waits for GO, not for an event
    ok(eng.command(Go(), 0))  # the playhead reaches c: its trigger listens from now
    assert eng.snapshot.standby_cue == "c"
    assert eng.trigger_progress(S) == TriggerProgress("c", "mqtt", "xr/+/ready", 0, 3, 29 * S, "hold")
    eng.receive_event("mqtt", "xr/h1/ready", "h1", 2 * S)
    eng.receive_event("mqtt", "xr/h1/ready", "h1", 2 * S)  # the same sender counts once
    eng.receive_event("mqtt", "xr/h2/ready", "h2", 3 * S)
    progress = eng.trigger_progress(4 * S)
    assert progress is not None and progress.counted == 2 and progress.timeout_ns == 26 * S
    ok(eng.command(Pause(), 5 * S))
    paused = eng.trigger_progress(50 * S)
    assert paused is not None and paused.timeout_ns == 25 * S  # pause freezes the timeout
    assert eng.state is State.PAUSED
