"""The transport table: every (state, command) pair, accepted or rejected with a reason."""

from __future__ import annotations

import pytest

from controller.engine import Accepted, Engine
from controller.playback import (
    TABLE,
    Arm,
    Command,
    Effect,
    EventArrived,
    Go,
    Load,
    LoadAt,
    Panic,
    Pause,
    PlayheadNext,
    Rejected,
    Reset,
    Resume,
    Seek,
    SequenceEnded,
    SetRate,
    ShowEnded,
    State,
    Stop,
    Timeout,
    TogglePause,
    Transition,
    Transport,
    command_key,
    transition,
)
from cues.timeline import Action, CueSpan, OscSend, Sequence, Timeline
from cues.timeline import Go as GoMode
from venues.model import Device, Sync, Venue

S = 1_000_000_000

COMMANDS: list[Command] = [
    Load(), Arm(), Reset(), LoadAt(show_ns=0), Go(), Pause(), Resume(), TogglePause(), Stop(),
    Seek(show_ns=0), SetRate(1.0), Panic(), PlayheadNext(),
    SequenceEnded(0), ShowEnded(), EventArrived("c"), Timeout("c", "go"), Timeout("c", "skip"),
    Timeout("c", "hold"), Timeout("c", "stop"),
]

# The expected table, written out independently: state -> {command key: next state}.
ID, L, A, P, U, T, X = "idle", "loaded", "armed", "playing", "paused", "stopped", "panicked"
EXPECTED: dict[str, dict[str, str]] = {
    ID: {"load": L, "panic": X},
    L: {"load": L, "arm": A, "reset": A, "load-at": A, "playhead": L, "set-rate": L, "panic": X},
    A: {"load": L, "arm": A, "reset": A, "load-at": A, "go": P, "seek": A, "set-rate": A, "playhead": A,
        "stop": T, "panic": X,
        "event-arrived": P, "timeout-go": P, "timeout-skip": A, "timeout-hold": A, "timeout-stop": T},
    P: {"go": P, "pause": U, "toggle-pause": U, "stop": T, "seek": P, "set-rate": P, "playhead": P,
        "panic": X,
        "sequence-ended": P, "show-ended": T, "event-arrived": P, "timeout-go": P, "timeout-skip": P,
        "timeout-hold": P, "timeout-stop": T},
    U: {"resume": P, "toggle-pause": P, "stop": T, "seek": U, "set-rate": U, "playhead": U, "panic": X},
    T: {"load": L, "arm": A, "reset": A, "load-at": A, "playhead": T, "set-rate": T, "panic": X},
    X: {"load": L, "arm": A, "reset": A, "load-at": A, "panic": X},
}


def test_table_is_exactly_the_documented_one() -> None:
    got: dict[str, dict[str, str]] = {}
    for (state, key), tr in TABLE.items():
        got.setdefault(state.value, {})[key] = tr.state.value
    assert got == EXPECTED


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("cmd", COMMANDS, ids=command_key)
def test_every_pair_is_accepted_or_rejected_with_a_reason(state: State, cmd: Command) -> None:
    result = transition(state, cmd)
    expected = EXPECTED[state.value].get(command_key(cmd))
    if expected is None:
        assert isinstance(result, Rejected)
        assert state.value in result.reason and command_key(cmd) in result.reason
        assert result.state is state and result.command == cmd
        assert ":" in result.reason  # what to do follows
    else:
        assert isinstance(result, Transition)
        assert result.state.value == expected


def test_panic_is_accepted_in_every_state() -> None:
    for state in State:
        result = transition(state, Panic())
        assert isinstance(result, Transition) and result.state is State.PANICKED
        assert result.effect is Effect.PANIC


def test_go_in_idle_says_to_load_first_and_after_panic_to_rearm() -> None:
    r = transition(State.IDLE, Go())
    assert isinstance(r, Rejected) and "load a show" in r.reason
    r = transition(State.PANICKED, Go())
    assert isinstance(r, Rejected) and "re-arm" in r.reason


def test_transport_changes_state_only_when_accepted() -> None:
    t = Transport()
    assert isinstance(t.apply(Go()), Rejected) and t.state is State.IDLE
    assert isinstance(t.apply(Load()), Transition)
    assert t.state.value == "loaded"


def test_engine_walks_the_table() -> None:
    actions = (Action(0, "A", 0, ("d",), OscSend("/a")), Action(S, "B", 1, ("d",), OscSend("/b")))
    tl = Timeline(
        "show", "v",
        (CueSpan("A", "A", 0, GoMode.MANUAL, 0, 0, 0, sequence=0),
         CueSpan("B", "B", 1, GoMode.MANUAL, 0, S, S, sequence=1)),
        (Sequence(0, ("A",), 0, 0), Sequence(1, ("B",), 0, S)),
        actions, S,
    )
    venue = Venue("v", "V", ("z",), "b", (Device("d", "led", "z", Sync.NONE),), {})
    eng = Engine(tl, venue)
    steps: list[tuple[Command, State | None]] = [
        (Go(), None), (Load(), State.LOADED), (Go(), None), (Arm(), State.ARMED), (Resume(), None),
        (Go(), State.PLAYING), (Pause(), State.PAUSED), (Go(), None), (Resume(), State.PLAYING),
        (Stop(), State.STOPPED), (Go(), None), (Arm(), State.ARMED), (Panic(), State.PANICKED),
        (Go(), None), (Arm(), State.ARMED), (Load(), State.LOADED),
    ]
    now = 0
    for cmd, expected in steps:
        now += S
        before = eng.state
        result = eng.command(cmd, now)
        if expected is None:
            assert isinstance(result, Rejected), (cmd, before)
            assert eng.state is before
        else:
            assert isinstance(result, Accepted), (cmd, before, result)
            assert eng.state is expected and result.state is expected
