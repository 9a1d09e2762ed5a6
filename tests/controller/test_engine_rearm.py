"""Arm again, reset and load to time (docs/operator.md): a stopped show plays again without a
restart, under keys the devices have not seen yet. Literal times, no loop."""

from __future__ import annotations

from controller.engine import Fire, StateSync
from controller.playback import Arm, Go, LoadAt, Panic, Rejected, Reset, Seek, State, Stop
from cues.timeline import Go as GoMode
from tests.controller.test_engine import MS, TWO, C, S, armed, build, ok, osc, run_until, sends

CHAIN = [
    C("A", ops=[(0, ("a",), osc("/level", 1)), (1 * S, ("a",), osc("/level", 2))]),
    C("B", ops=[(0, ("a", "b"), osc("/level", 3)), (500 * MS, ("b",), osc("/flash"))]),
    C("C", ops=[(0, ("a",), osc("/level", 4))]),
]


def test_arm_after_stop_plays_the_standby_cue_again_under_a_new_take() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue, lookahead_ns=0)
    first = ok(eng.command(Go(), 0)).outputs
    keys_first = {o.key for o in first if isinstance(o, Fire)}
    assert {k[0] for k in keys_first} == {"show"}
    ok(eng.command(Stop(), 100 * MS))
    assert isinstance(eng.command(Go(), S), Rejected)
    ok(eng.command(Arm(), 2 * S))
    assert eng.state is State.ARMED and eng.snapshot.standby_cue == "B" and eng.snapshot.take == 2
    again = ok(eng.command(Go(), 3 * S)).outputs
    assert sends(again) == [(3 * S, "B")]
    assert {o.key[0] for o in again if isinstance(o, Fire)} == {"show #2"}


def test_arm_after_the_end_of_the_show_starts_at_the_top_with_fresh_keys() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue, lookahead_ns=0)
    ok(eng.command(Go(), 0))
    ok(eng.command(Go(), 1 * S))  # B
    run_until(eng, 1 * S, 10 * S)
    assert eng.state is State.STOPPED
    ok(eng.command(Arm(), 11 * S))
    assert eng.snapshot.standby_cue == "A"
    outs = ok(eng.command(Go(), 12 * S)).outputs + tuple(run_until(eng, 12 * S, 15 * S))
    fired = [(o.at, o.key) for o in outs if isinstance(o, Fire)]
    assert [at for at, _ in fired] == [12 * S, 13 * S, 14 * S]
    assert {k for _, k in fired} == {("show #2", "A", 0), ("show #2", "A", 1), ("show #2", "A", 2)}


def test_arm_twice_without_playing_keeps_the_take() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue)
    ok(eng.command(Arm(), 1))
    ok(eng.command(Reset(), 2))
    assert eng.snapshot.take == 1


def test_reset_puts_the_playhead_on_the_first_cue_sends_nothing_and_forgets() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue, lookahead_ns=0)
    ok(eng.command(Go(), 0))
    assert isinstance(eng.command(Go(), 100 * MS), Rejected)  # a double-tap, counted
    assert eng.snapshot.debounced == 1
    assert isinstance(eng.command(Reset(), 200 * MS), Rejected)  # not while playing
    ok(eng.command(Stop(), 300 * MS))
    res = ok(eng.command(Reset(), 400 * MS))
    assert res.state is State.ARMED and res.outputs == ()  # devices keep what they show
    snap = eng.snapshot
    assert (snap.standby_cue, snap.current_cue, snap.show_ns, snap.debounced) == ("A", None, None, 0)
    # The debounce was cleared with the rest: a GO right away is taken.
    assert sends(ok(eng.command(Go(), 450 * MS)).outputs) == [(450 * MS, "A")]


def test_reset_after_panic_is_an_explicit_rearm() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue)
    ok(eng.command(Go(), 0))
    assert eng.snapshot.standby_cue == "B"
    ok(eng.command(Panic(), 1 * S))
    ok(eng.command(Reset(), 2 * S))
    assert eng.state is State.ARMED and eng.snapshot.standby_cue == "A"


def test_load_to_a_time_inside_a_sequence_syncs_that_state_and_go_continues_from_there() -> None:
    tl, venue = build(CHAIN)
    eng = armed(tl, venue, lookahead_ns=0)
    ok(eng.command(Go(), 0))
    ok(eng.command(Panic(), 100 * MS))
    # B runs from 1.0 s (/level 3 on a and b) to 1.5 s (/flash on b); load 1.25 s, inside it.
    res = ok(eng.command(LoadAt(show_ns=1250 * MS), 300 * MS))
    assert res.state is State.ARMED
    states = {o.device: o.state for o in res.outputs if isinstance(o, StateSync)}
    assert states["a"].osc == {"/level": (3,)} and states["b"].osc == {"/level": (3,)}
    assert all(o.show_ns == 1250 * MS for o in res.outputs if isinstance(o, StateSync))
    snap = eng.snapshot
    assert (snap.state, snap.standby_cue, snap.show_ns) == (State.ARMED, "B", 1250 * MS)
    # GO plays on from 1.25 s: /flash (at 1.5 s) 250 ms after GO, under a new take's key.
    outs = ok(eng.command(Go(), 10 * S)).outputs + tuple(run_until(eng, 10 * S, 11 * S, 50 * MS))
    fired = [(o.at, o.action.op) for o in outs if isinstance(o, Fire)]
    assert fired == [(10 * S + 250 * MS, osc("/flash"))]
    assert all(o.key[0] == f"show #{eng.snapshot.take}" for o in outs if isinstance(o, Fire))
    assert eng.snapshot.take >= 2


def test_load_to_a_cue_syncs_the_state_before_it_and_go_fires_the_cue_itself() -> None:
    chain = [
        C("A", ops=[(0, ("a",), osc("/level", 1)), (S, ("b",), osc("/x"))]),
        C("B", ops=[(0, ("a",), osc("/level", 2)), (S, ("b",), osc("/y"))]),
        C("B2", go=GoMode.AUTO_FOLLOW, ops=[(0, ("a",), osc("/level", 5))]),
    ]
    tl, venue = build(chain)
    eng = armed(tl, venue, lookahead_ns=0)
    # A cue at the start of its sequence: the state before it, GO fires it.
    res = ok(eng.command(LoadAt(cue="B"), 0))
    assert {o.device: o.state.osc for o in res.outputs if isinstance(o, StateSync)}["a"] == {"/level": (1,)}
    assert eng.snapshot.standby_cue == "B"
    assert [o.action.cue for o in ok(eng.command(Go(), S)).outputs if isinstance(o, Fire)] == ["B"]
    ok(eng.command(Stop(), 2 * S))
    # A cue inside a chain (auto-follow): the state before it; GO plays from that cue on.
    res = ok(eng.command(LoadAt(cue="B2"), 3 * S))
    assert {o.device: o.state.osc for o in res.outputs if isinstance(o, StateSync)}["a"] == {"/level": (2,)}
    outs = ok(eng.command(Go(), 4 * S)).outputs + tuple(run_until(eng, 4 * S, 6 * S))
    assert [o.action.cue for o in outs if isinstance(o, Fire)] == ["B2"]


def test_load_to_the_first_cue_sends_no_state_and_load_refusals_say_why() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue)
    res = ok(eng.command(LoadAt(cue="A"), 0))
    assert not [o for o in res.outputs if isinstance(o, StateSync)]
    for bad, words in [
        (LoadAt(cue="nope"), "no cue 'nope'; its cues are: A, B"),
        (LoadAt(show_ns=-1), "outside the show"),
        (LoadAt(show_ns=10_000 * S), "outside the show"),
        (LoadAt(), "exactly one"),
        (LoadAt(show_ns=0, cue="A"), "exactly one"),
    ]:
        refused = eng.command(bad, 1)
        assert isinstance(refused, Rejected) and words in refused.reason, (bad, refused)
    ok(eng.command(Go(), 2))
    refused = eng.command(LoadAt(show_ns=0), 3)
    assert isinstance(refused, Rejected) and "stop it first" in refused.reason


def test_seek_back_while_playing_replays_under_a_new_take() -> None:
    tl, venue = build(TWO)
    eng = armed(tl, venue, lookahead_ns=0)
    ok(eng.command(Go(), 0))
    first = run_until(eng, 0, 1500 * MS)
    assert [o.key for o in first if isinstance(o, Fire)] == [("show", "A", 1)]
    ok(eng.command(Seek(show_ns=500 * MS), 1600 * MS))
    again = run_until(eng, 1600 * MS, 3 * S)
    assert [o.key for o in again if isinstance(o, Fire)][:1] == [("show #2", "A", 1)]
