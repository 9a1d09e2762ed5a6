"""The engine with literal times: no loop, no sleeps."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from controller.engine import (
    BLACKOUT,
    Accepted,
    Cancel,
    Engine,
    Fire,
    Frame,
    Output,
    Ramp,
    Safe,
    StateSync,
    mqtt_topic_matches,
    osc_address_matches,
)
from controller.fades import evaluate
from controller.playback import (
    Arm,
    Go,
    Load,
    Panic,
    Pause,
    PlayheadNext,
    PlayheadPrevious,
    Rejected,
    Resume,
    Seek,
    SetRate,
    State,
    Stop,
)
from cues.timeline import (
    Action,
    CueSpan,
    Ease,
    EventTrigger,
    Fade,
    MqttSend,
    OscSend,
    Sequence,
    Timeline,
)
from cues.timeline import Go as GoMode
from venues.model import Device, Sync, Venue

S = 1_000_000_000
MS = 1_000_000

Op = OscSend | MqttSend | Fade


@dataclass
class C:
    """A cue for the hand-built timelines: ``ops`` are (offset from body, devices, op)."""

    id: str
    go: GoMode = GoMode.MANUAL
    pre: int = 0
    post: int = 0
    ops: list[tuple[int, tuple[str, ...], Op]] = field(default_factory=list)
    trigger: EventTrigger | None = None


def build(
    cues: list[C],
    devices: tuple[str, ...] = ("a", "b"),
    interpolates: tuple[str, ...] = (),
    safe: dict[str, dict[str, float | int | str]] | None = None,
) -> tuple[Timeline, Venue]:
    """Lay cues out on the nominal timeline as the compiler does (sequences back to back)."""
    spans: list[CueSpan] = []
    actions: list[Action] = []
    seqs: list[Sequence] = []
    members: list[str] = []
    seq_start = seq_end = prev_start = prev_end = prev_post = 0
    seqno = 0
    for i, c in enumerate(cues):
        if i == 0 or c.go is GoMode.MANUAL or c.trigger is not None:
            if i > 0:
                seqs.append(Sequence(len(seqs), tuple(members), seq_start, seq_end))
            members = []
            start = seq_end
            seq_start = seq_end = start
        elif c.go is GoMode.AUTO_CONTINUE:
            start = prev_start + prev_post
        else:
            start = prev_end + prev_post
        body = start + c.pre
        end = body
        for off, devs, op in c.ops:
            a = Action(body + off, c.id, seqno, devs, op)
            seqno += 1
            actions.append(a)
            end = max(end, a.end_ns)
        spans.append(CueSpan(c.id, c.id, i, c.go, start, body, end, c.post, c.trigger, len(seqs)))
        members.append(c.id)
        seq_end = max(seq_end, end)
        prev_start, prev_end, prev_post = start, end, c.post
    seqs.append(Sequence(len(seqs), tuple(members), seq_start, seq_end))
    actions.sort(key=lambda a: (a.at_ns, a.seq))
    tl = Timeline("show", "venue", tuple(spans), tuple(seqs), tuple(actions), seq_end)
    safe = safe or {}
    venue = Venue(
        "venue", "Venue", ("z",), "127.0.0.1:1883",
        tuple(Device(d, "led", "z", Sync.NONE, safe=safe.get(d, {}), interpolates=d in interpolates)
              for d in devices),
        {},
    )
    return tl, venue


def osc(addr: str, *args: object) -> OscSend:
    return OscSend(addr, tuple(args))  # type: ignore[arg-type]


def armed(tl: Timeline, venue: Venue, **kw: int | float) -> Engine:
    eng = Engine(tl, venue, **kw)  # type: ignore[arg-type]
    assert isinstance(eng.command(Load(), 0), Accepted)
    assert isinstance(eng.command(Arm(), 0), Accepted)
    return eng


def ok(result: Accepted | Rejected) -> Accepted:
    assert isinstance(result, Accepted), result
    return result


def sends(outs: list[Output] | tuple[Output, ...]) -> list[tuple[int, str]]:
    return [(o.at, o.action.cue) for o in outs if isinstance(o, Fire)]


def run_until(eng: Engine, start: int, end: int, step: int = 100 * MS) -> list[Output]:
    out: list[Output] = []
    t = start
    while t <= end:
        out.extend(eng.poll(t))
        t += step
    return out


TWO = [
    C("A", ops=[(0, ("a",), osc("/a", 1)), (1 * S, ("a",), osc("/a", 2)), (2 * S, ("b",), osc("/b", 3))]),
    C("B", ops=[(0, ("a", "b"), osc("/x"))]),
]


# --- GO, instants, lookahead ----------------------------------------------------------------


def test_go_anchors_the_sequence_at_now_and_outputs_come_once_in_lookahead() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue, lookahead_ns=500 * MS)
    res = ok(eng.command(Go(), 10 * S))
    assert res.state is State.PLAYING
    assert sends(res.outputs) == [(10 * S, "A")]
    assert eng.next_deadline() == 11 * S - 500 * MS
    assert eng.poll(10 * S + 400 * MS) == []
    out = eng.poll(10 * S + 500 * MS)
    assert sends(out) == [(11 * S, "A")]
    assert eng.poll(10 * S + 600 * MS) == []  # once
    out = eng.poll(12 * S)
    assert [(o.at, o.key) for o in out if isinstance(o, Fire)] == [(12 * S, ("show", "A", 2))]
    assert eng.snapshot.standby_cue == "B"
    assert eng.snapshot.current_cue == "A"


def test_playhead_moves_to_next_trigger_cue_and_show_ends_after_last_sequence() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue, lookahead_ns=0)
    ok(eng.command(Go(), 0))
    run_until(eng, 0, 2 * S)
    assert eng.snapshot.running == ()  # sequence A ended at its nominal end
    res = ok(eng.command(Go(), 3 * S))
    assert sends(res.outputs) == [(3 * S, "B")]
    assert eng.snapshot.standby_cue is None
    eng.poll(3 * S)
    assert eng.state is State.STOPPED  # nothing runs and nothing stands by: the show ended
    assert isinstance(eng.command(Go(), 4 * S), Rejected)


def test_go_cue_jumps_the_playhead_and_starts_that_cue() -> None:
    cues = [C("A", ops=[(0, ("a",), osc("/a"))]), C("B", ops=[(0, ("a",), osc("/b"))]),
            C("C", ops=[(S, ("a",), osc("/c"))])]
    tl, venue = build(cues)
    eng = armed(tl, venue, lookahead_ns=0)
    res = ok(eng.command(Go("B"), 5 * S))
    assert sends(res.outputs) == [(5 * S, "B")]
    assert eng.snapshot.standby_cue == "C"
    refused = eng.command(Go("nope"), 6 * S)
    assert isinstance(refused, Rejected) and "no cue 'nope'" in refused.reason


def test_go_cue_in_the_middle_of_a_chain_skips_earlier_cues() -> None:
    cues = [C("A", ops=[(0, ("a",), osc("/a"))]),
            C("A2", go=GoMode.AUTO_FOLLOW, ops=[(S, ("a",), osc("/a2"))])]
    tl, venue = build(cues)
    eng = armed(tl, venue, lookahead_ns=0)
    ok(eng.command(Go("A2"), 10 * S))
    out = run_until(eng, 10 * S, 12 * S)
    assert sends(out) == [(11 * S, "A2")]


def test_debounce_rejects_a_double_tap_and_counts_it() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue, debounce_ns=250 * MS)
    ok(eng.command(Go(), 0))
    res = eng.command(Go(), 100 * MS)
    assert isinstance(res, Rejected) and "double-tap" in res.reason
    assert eng.snapshot.debounced == 1
    assert eng.snapshot.standby_cue == "B"  # the double tap did not start B
    ok(eng.command(Go(), 250 * MS))
    assert eng.snapshot.running == (0, 1)


def test_go_during_pre_wait_starts_the_standby_cue_and_the_pre_wait_keeps_counting() -> None:
    cues = [C("A", pre=5 * S, ops=[(0, ("a",), osc("/a"))]), C("B", ops=[(0, ("b",), osc("/b"))])]
    tl, venue = build(cues)
    eng = armed(tl, venue, lookahead_ns=0)
    assert sends(ok(eng.command(Go(), 0)).outputs) == []
    res = ok(eng.command(Go(), 1 * S))
    assert sends(res.outputs) == [(1 * S, "B")]
    assert sends(run_until(eng, 1 * S, 6 * S)) == [(5 * S, "A")]


def test_auto_continue_and_auto_follow_fire_at_exact_ns() -> None:
    cues = [
        C("A", post=300 * MS, ops=[(0, ("a",), osc("/a")), (0, ("a",), Fade("dim", 0.0, 1.0, 2 * S))]),
        C("B", go=GoMode.AUTO_CONTINUE, post=1, ops=[(0, ("a",), osc("/b"))]),  # 300 ms after A started
        C("C", go=GoMode.AUTO_FOLLOW, pre=7, ops=[(0, ("a",), osc("/c"))]),  # 1 ns after B completed, +7 pre
    ]
    tl, venue = build(cues)
    eng = armed(tl, venue, lookahead_ns=0)
    anchor = 1_234_567_891
    out = list(ok(eng.command(Go(), anchor)).outputs) + run_until(eng, anchor, anchor + 3 * S, step=MS)
    assert sends(out) == [(anchor, "A"), (anchor + 300 * MS, "B"), (anchor + 300 * MS + 8, "C")]


# --- pause, resume, rate --------------------------------------------------------------------


def test_pause_freezes_and_resume_reanchors_withdrawing_what_was_sent_ahead() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue, lookahead_ns=1 * S)
    assert sends(ok(eng.command(Go(), 10 * S)).outputs) == [(10 * S, "A"), (11 * S, "A")]
    out = eng.poll(11 * S + 200 * MS)  # hands out the action due at 12 s already
    assert sends(out) == [(12 * S, "A")]
    res = ok(eng.command(Pause(), 11 * S + 500 * MS))
    assert res.state is State.PAUSED
    cancels = [o for o in res.outputs if isinstance(o, Cancel)]
    assert cancels == [Cancel(11 * S + 500 * MS, frozenset({("show", "A", 2)}))]
    assert eng.poll(15 * S) == []
    assert eng.next_deadline() is None
    res = ok(eng.command(Resume(), 20 * S))
    # position 1.5 s at pause: the action at nominal 2 s is due 0.5 s after resume
    assert sends(res.outputs) == [(20 * S + 500 * MS, "A")]


def test_set_rate_reanchors_at_now_keeping_the_position() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue, lookahead_ns=0)
    ok(eng.command(Go(), 0))
    ok(eng.command(SetRate(2.0), 500 * MS))  # position 0.5 s
    out = run_until(eng, 500 * MS, 2 * S, step=50 * MS)
    assert sends(out) == [(750 * MS, "A"), (1250 * MS, "A")]
    assert eng.snapshot.rate == 2.0
    assert isinstance(eng.command(SetRate(0.0), 2 * S), Rejected)


def test_rate_applies_to_a_sequence_started_later_with_integer_maths() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue, lookahead_ns=0)
    ok(eng.command(SetRate(1 / 3), 0))
    out = list(ok(eng.command(Go(), 7)).outputs) + run_until(eng, 7, 7 + 7 * S, step=S)
    assert sends(out) == [(7, "A"), (7 + 3 * S, "A"), (7 + 6 * S, "A")]


# --- fades ----------------------------------------------------------------------------------

EASE = Ease("in-out-cubic")


def fade_show(interp: tuple[str, ...] = ()) -> tuple[Timeline, Venue]:
    return build([C("F", ops=[(0, ("a", "b"), Fade("dim", 0.0, 1.0, 1 * S, EASE))])], interpolates=interp)


def test_frames_carry_the_value_for_their_own_instant_and_an_exact_final_frame() -> None:
    tl, venue = fade_show()
    eng = armed(tl, venue, lookahead_ns=0, control_rate_hz=50.0)
    out = list(ok(eng.command(Go(), 100 * S)).outputs) + run_until(eng, 100 * S, 102 * S, step=7 * MS)
    frames = [o for o in out if isinstance(o, Frame)]
    assert [f.at for f in frames] == [100 * S + k * 20 * MS for k in range(51)]
    at40 = next(f for f in frames if f.at == 100 * S + 400 * MS)
    assert at40.value == pytest.approx(evaluate(EASE, 0.4))
    assert at40.devices == ("a", "b")
    assert frames[-1].final and frames[-1].value == 1.0
    assert not any(f.final for f in frames[:-1])


def test_frames_after_a_late_poll_still_carry_values_for_their_instants() -> None:
    tl, venue = fade_show()
    eng = armed(tl, venue, lookahead_ns=0, control_rate_hz=10.0)
    out = list(ok(eng.command(Go(), 0)).outputs) + eng.poll(750 * MS)  # a late wake-up
    frames = [o for o in out if isinstance(o, Frame)]
    assert [f.at for f in frames] == [k * 100 * MS for k in range(8)]
    assert [f.value for f in frames] == pytest.approx([evaluate(EASE, k / 10) for k in range(8)])


def test_interpolating_devices_get_one_ramp_others_frames() -> None:
    tl, venue = fade_show(interp=("a",))
    eng = armed(tl, venue, lookahead_ns=0)
    ok(eng.command(SetRate(2.0), 0))
    res = ok(eng.command(Go(), 0))
    ramps = [o for o in res.outputs if isinstance(o, Ramp)]
    assert len(ramps) == 1
    r = ramps[0]
    assert (r.at, r.devices, r.start, r.end, r.duration_ns, r.ease) == (0, ("a",), 0.0, 1.0, 500 * MS, EASE)
    frames = [o for o in res.outputs if isinstance(o, Frame)]
    assert frames and all(f.devices == ("b",) for f in frames)


def test_fade_from_none_starts_at_the_live_value() -> None:
    cues = [
        C("up", ops=[(0, ("a",), Fade("dim", 0.0, 0.8, 1 * S))]),
        C("down", ops=[(0, ("a",), Fade("dim", None, 0.0, 1 * S))]),
    ]
    tl, venue = build(cues)
    eng = armed(tl, venue, lookahead_ns=0, control_rate_hz=10.0)
    ok(eng.command(Go(), 0))
    out = list(ok(eng.command(Go(), 500 * MS)).outputs)  # "up" is half way: "down" starts from 0.4
    out += run_until(eng, 500 * MS, 2 * S, step=10 * MS)
    frames = [o for o in out if isinstance(o, Frame)]
    down = [f for f in frames if f.action.cue == "down"]
    assert down[0].at == 500 * MS and down[0].value == pytest.approx(0.4)
    assert all(f.at <= 500 * MS for f in frames if f.action.cue == "up")  # superseded
    assert down[-1].final and down[-1].value == 0.0


def test_pause_mid_fade_holds_and_resume_continues_from_the_same_value() -> None:
    tl, venue = fade_show(interp=("a",))
    eng = armed(tl, venue, lookahead_ns=0, control_rate_hz=10.0)
    ok(eng.command(Go(), 0))
    eng.poll(300 * MS)
    res = ok(eng.command(Pause(), 400 * MS))
    holds = [o for o in res.outputs if isinstance(o, Frame) and o.at == 400 * MS]
    assert {d for f in holds for d in f.devices} == {"a", "b"}  # the ramp device is held too
    assert all(f.value == pytest.approx(evaluate(EASE, 0.4)) for f in holds)
    res = ok(eng.command(Resume(), 10 * S))
    frames = [o for o in list(res.outputs) + run_until(eng, 10 * S, 11 * S) if isinstance(o, Frame)]
    assert frames[0].at == 10 * S and frames[0].value == pytest.approx(evaluate(EASE, 0.4))
    assert {d for f in frames if f.at == 10 * S for d in f.devices} == {"a", "b"}
    assert frames[-1].at == 10 * S + 600 * MS and frames[-1].final


# --- seek -----------------------------------------------------------------------------------


def test_seek_into_the_middle_of_a_fade_syncs_the_eased_value_and_continues() -> None:
    cues = [C("F", ops=[(S, ("a", "b"), Fade("dim", 0.2, 1.0, 2 * S, EASE)), (4 * S, ("a",), osc("/end"))])]
    tl, venue = build(cues)
    eng = armed(tl, venue, lookahead_ns=0, control_rate_hz=10.0)
    ok(eng.command(Go(), 0))
    res = ok(eng.command(Seek(show_ns=2 * S), 50 * S))
    syncs = {o.device: o for o in res.outputs if isinstance(o, StateSync)}
    assert set(syncs) == {"a", "b"}
    mid = 0.2 + 0.8 * evaluate(EASE, 0.5)
    assert syncs["a"].state.params["dim"] == pytest.approx(mid)
    out = list(res.outputs) + run_until(eng, 50 * S, 53 * S, step=50 * MS)
    frames = [o for o in out if isinstance(o, Frame)]
    assert frames[0].at == 50 * S and frames[0].value == pytest.approx(mid)
    assert frames[-1].at == 51 * S and frames[-1].final
    assert sends(out) == [(52 * S, "F")]


def test_seek_to_a_cue_waits_at_the_hold_for_go() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue, lookahead_ns=0)
    ok(eng.command(Go(), 0))
    res = ok(eng.command(Seek(cue="B"), 1 * S))
    assert len([o for o in res.outputs if isinstance(o, StateSync)]) == 2
    assert sends(run_until(eng, 1 * S, 5 * S)) == []
    assert eng.snapshot.standby_cue == "B"
    assert sends(ok(eng.command(Go(), 6 * S)).outputs) == [(6 * S, "B")]
    assert isinstance(eng.command(Seek(show_ns=-1), 7 * S), Rejected)


def test_seek_while_armed_then_go_continues_the_sequence_from_there() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue, lookahead_ns=0)
    ok(eng.command(Seek(show_ns=1500 * MS), 0))
    assert eng.state is State.ARMED
    ok(eng.command(Go(), 10 * S))
    assert sends(run_until(eng, 10 * S, 12 * S)) == [(10 * S + 500 * MS, "A")]


# --- panic and stop -------------------------------------------------------------------------


def test_panic_sends_every_device_to_safe_now_and_cancels_everything() -> None:
    tl, venue = build(TWO, devices=("a", "b", "c"), safe={"a": {"brightness": 0.1, "scene": "off"}})
    eng = armed(tl, venue, lookahead_ns=2 * S)
    ok(eng.command(Go(), 0))
    res = ok(eng.command(Panic(), 500 * MS))
    assert res.state is State.PANICKED
    safes = [o for o in res.outputs if isinstance(o, Safe)]
    assert [(s.device, s.at, s.urgent) for s in safes] == [(d, 500 * MS, True) for d in ("a", "b", "c")]
    assert safes[0].values == {"brightness": 0.1, "scene": "off"}
    assert safes[1].values == BLACKOUT
    assert [o for o in res.outputs if isinstance(o, Cancel)] == [
        Cancel(500 * MS, frozenset({("show", "A", 1), ("show", "A", 2)}))]
    assert eng.poll(10 * S) == [] and eng.next_deadline() is None
    res2 = eng.command(Go(), 20 * S)
    assert isinstance(res2, Rejected) and "Arm" in res2.reason
    ok(eng.command(Arm(), 21 * S))
    assert sends(ok(eng.command(Go(), 22 * S)).outputs) == [(22 * S, "B")]


def test_stop_sends_safe_states_not_urgent_and_needs_a_rearm() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue)
    ok(eng.command(Go(), 0))
    res = ok(eng.command(Stop(), 100 * MS))
    assert res.state is State.STOPPED
    assert [(o.device, o.urgent) for o in res.outputs if isinstance(o, Safe)] == [("a", False), ("b", False)]
    assert isinstance(eng.command(Go(), S), Rejected)


# --- event triggers -------------------------------------------------------------------------


def event_show(count: int = 2, timeout: int | None = 5 * S, on_timeout: str = "hold") -> Engine:
    trig = EventTrigger("mqtt", "xr/+/ready", count, timeout, on_timeout)  # type: ignore[arg-type]
    cues = [C("intro", ops=[(0, ("a",), osc("/i"))]),
            C("wait", trigger=trig, ops=[(0, ("a",), osc("/w")), (S, ("a",), osc("/w2"))]),
            C("last", ops=[(0, ("a",), osc("/l"))])]
    tl, venue = build(cues)
    eng = armed(tl, venue, lookahead_ns=0)
    ok(eng.command(Go(), 0))  # intro; the playhead reaches "wait" and arms it at 0
    eng.poll(0)  # intro ends
    return eng


def test_event_trigger_counts_distinct_senders_matching_the_filter() -> None:
    eng = event_show(count=2)
    assert eng.snapshot.waiting_for == "wait"
    assert eng.receive_event("mqtt", "xr/h1/ready", "h1", 1 * S) == []
    assert eng.receive_event("mqtt", "xr/h1/ready", "h1", 1 * S + 1) == []  # same sender again
    assert eng.receive_event("mqtt", "xr/h2/other", "h2", 1 * S + 2) == []  # no match
    assert eng.receive_event("osc", "xr/h2/ready", "h2", 1 * S + 3) == []  # other transport
    out = eng.receive_event("mqtt", "xr/h2/ready", "h2", 2 * S)
    assert sends(out) == [(2 * S, "wait")]
    assert eng.snapshot.standby_cue == "last" and eng.snapshot.waiting_for is None
    assert sends(run_until(eng, 2 * S, 4 * S)) == [(3 * S, "wait")]


def test_event_timeout_go_starts_the_cue_at_the_deadline() -> None:
    eng = event_show(on_timeout="go")
    assert eng.next_deadline() == 5 * S
    out = eng.poll(5 * S + 300 * MS)
    assert sends(out) == [(5 * S, "wait")]


def test_event_timeout_skip_moves_the_playhead_on() -> None:
    eng = event_show(on_timeout="skip")
    assert sends(eng.poll(6 * S)) == []
    assert eng.snapshot.standby_cue == "last"
    assert eng.receive_event("mqtt", "xr/h1/ready", "h1", 7 * S) == []


def test_event_timeout_hold_waits_for_go() -> None:
    eng = event_show(on_timeout="hold", count=1)
    eng.poll(6 * S)
    assert eng.snapshot.standby_cue == "wait" and eng.snapshot.waiting_for is None
    assert eng.receive_event("mqtt", "xr/h1/ready", "h1", 7 * S) == []
    assert sends(ok(eng.command(Go(), 8 * S)).outputs) == [(8 * S, "wait")]


def test_event_timeout_stop_stops_the_show() -> None:
    eng = event_show(on_timeout="stop")
    out = eng.poll(6 * S)
    assert eng.state is State.STOPPED
    assert {o.at for o in out if isinstance(o, Safe)} == {5 * S}


def test_pause_freezes_the_event_timeout() -> None:
    eng = event_show(on_timeout="go")
    ok(eng.command(Pause(), 1 * S))
    assert eng.receive_event("mqtt", "xr/h1/ready", "h1", 2 * S) == []  # not counted while paused
    ok(eng.command(Resume(), 10 * S))
    assert eng.next_deadline() == 14 * S
    assert sends(eng.poll(14 * S)) == [(14 * S, "wait")]


def test_topic_and_address_matching() -> None:
    assert mqtt_topic_matches("xr/+/ready", "xr/h1/ready")
    assert not mqtt_topic_matches("xr/+/ready", "xr/h1/x/ready")
    assert mqtt_topic_matches("xr/#", "xr")
    assert mqtt_topic_matches("#", "a/b")
    assert not mqtt_topic_matches("#", "$SYS/x")
    assert not mqtt_topic_matches("xr/+", "xr/a/b")
    assert osc_address_matches("/dev/*/ready", "/dev/h1/ready")
    assert not osc_address_matches("/dev/*/ready", "/dev/h/1/ready")
    assert osc_address_matches("/dev/h[0-9]/{ready,go}", "/dev/h3/go")
    assert not osc_address_matches("/dev/h[!0-9]", "/dev/h3")


# --- playhead -------------------------------------------------------------------------------


def test_playhead_next_and_previous() -> None:
    cues = [C("A"), C("B"), C("C")]
    tl, venue = build(cues)
    eng = armed(tl, venue)
    assert isinstance(eng.command(PlayheadPrevious(), 0), Rejected)
    ok(eng.command(PlayheadNext(), 0))
    ok(eng.command(PlayheadNext(), 0))
    assert eng.snapshot.standby_cue == "C"
    assert isinstance(eng.command(PlayheadNext(), 0), Rejected)
    ok(eng.command(PlayheadPrevious(), 0))
    assert eng.snapshot.standby_cue == "B"
