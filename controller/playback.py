"""Playback: the show transport's states, operator commands, and the one table of every transition.

Theory of operation
-------------------
The show's transport (playback, not a network transport) is a small state machine in the style
of h11: states are an enum, commands are frozen dataclasses, and every allowed transition lives in
:data:`TABLE`, which maps
``(state, command key)`` to ``(next state, effect)``. What is not in the table is refused with a
:class:`Rejected` that says why and what to do instead; a refusal is an answer for the operator
(the control port replies with it), not an exception.

The table decides *whether* and *to where*; the :class:`~controller.engine.Engine` carries out
the *effect* (starting sequences, cancelling, sending safe states) with the ``now`` it is given.
Guards that depend on the show rather than the state (GO debounce, an unknown cue id, no cue
standing by) are checked by the engine after the table has accepted the command.

::

    idle --load--> loaded --arm--> armed --go/event--> playing <--pause/resume--> paused
                                                   \\--stop--> stopped --arm--> armed
    any --panic--> panicked --arm--> armed         playing --show ended--> stopped
    loaded/armed/stopped/panicked --reset--> armed (the playhead back on the first cue)
    loaded/armed/stopped/panicked --load-at--> armed (the playhead at a show time or cue)

Internal commands (:class:`SequenceEnded`, :class:`ShowEnded`, :class:`EventArrived`,
:class:`Timeout`) are issued by the engine itself and go through the same table, so the table is
the whole story.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, ClassVar, Literal, TypeAlias

if TYPE_CHECKING:
    from cues.timeline import Timeline

__all__ = [
    "TABLE",
    "Arm",
    "Command",
    "Effect",
    "EventArrived",
    "Go",
    "Load",
    "LoadAt",
    "Panic",
    "Pause",
    "PlayheadNext",
    "PlayheadPrevious",
    "Rejected",
    "Reset",
    "Resume",
    "Seek",
    "SequenceEnded",
    "SetRate",
    "ShowEnded",
    "State",
    "Stop",
    "Timeout",
    "TogglePause",
    "Transition",
    "Transport",
    "command_key",
    "transition",
]


class State(StrEnum):
    """Where the show's transport is."""

    IDLE = "idle"  # no show loaded
    LOADED = "loaded"  # a show is loaded, devices are not expected to follow yet
    ARMED = "armed"  # ready: the playhead stands by on a cue, event triggers are listening
    PLAYING = "playing"  # at least one sequence has been started (or the show waits at a hold)
    PAUSED = "paused"  # every running sequence is frozen where it was
    STOPPED = "stopped"  # stopped by the operator, a timeout or the end of the show
    PANICKED = "panicked"  # every device sent to its safe state; needs an explicit Arm


class Effect(Enum):
    """What the engine does when a transition is taken."""

    LOAD = "load"
    ARM = "arm"
    RESET = "reset"  # back to the top: the playhead on the first cue, the transport's memory cleared
    LOAD_AT = "load-at"  # arm with the playhead at a show time or cue, devices sent its catch-up state
    START = "start"  # start the standby cue's (or the named cue's) sequence at now
    START_EVENT = "start-event"  # an event trigger (or its timeout with on_timeout=go) starts it
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    PANIC = "panic"
    SEEK = "seek"
    SET_RATE = "set-rate"
    PLAYHEAD = "playhead"  # move the standby cue
    SKIP = "skip"  # an event trigger timed out with on_timeout=skip
    HOLD = "hold"  # an event trigger timed out with on_timeout=hold: wait for GO
    NOTE = "note"  # bookkeeping only
    FINISH = "finish"  # the last sequence ended and no cue stands by


# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    """Load the show (``timeline``; ``None`` = the one the engine was built with)."""

    timeline: Timeline | None = None
    key: ClassVar[str] = "load"


@dataclass(frozen=True, slots=True)
class Arm:
    """Make the show ready to play: the playhead stands by, event triggers start listening."""

    key: ClassVar[str] = "arm"


@dataclass(frozen=True, slots=True)
class Reset:
    """Back to the top (QLab's reset): a show that is not running is armed with the playhead on its
    first cue; the current cue, the last show time, the GO debounce and the double-tap count are
    cleared. Devices keep what they show (nothing is sent); the rate stays as set."""

    key: ClassVar[str] = "reset"


@dataclass(frozen=True, slots=True)
class LoadAt:
    """Load to time (QLab's *load to time*): arm with the playhead at nominal show time
    ``show_ns`` or at the start of ``cue`` (give exactly one). Every device is sent the catch-up
    state the show has there, so the next GO plays on from there with the venue already showing
    it; a time inside a sequence continues that sequence from that point."""

    show_ns: int | None = None
    cue: str | None = None
    key: ClassVar[str] = "load-at"


@dataclass(frozen=True, slots=True)
class Go:
    """GO: start the standby cue, or jump the playhead to ``cue`` and start it. ``force``: the
    operator insists (``/go/force``): a GO that a guard would refuse for the devices' sake (the
    sync gate) goes ahead; the transport's own rules still apply."""

    cue: str | None = None
    force: bool = False
    key: ClassVar[str] = "go"


@dataclass(frozen=True, slots=True)
class Pause:
    """Freeze every running sequence where it is."""

    key: ClassVar[str] = "pause"


@dataclass(frozen=True, slots=True)
class Resume:
    """Carry on from where :class:`Pause` froze the show."""

    key: ClassVar[str] = "resume"


@dataclass(frozen=True, slots=True)
class TogglePause:
    """Pause when playing, resume when paused (one key or button for both; the table decides)."""

    key: ClassVar[str] = "toggle-pause"


@dataclass(frozen=True, slots=True)
class Stop:
    """Cancel everything pending and send every device its safe state."""

    key: ClassVar[str] = "stop"


@dataclass(frozen=True, slots=True)
class Seek:
    """Jump to nominal show time ``show_ns`` or to the start of ``cue`` (give exactly one)."""

    show_ns: int | None = None
    cue: str | None = None
    key: ClassVar[str] = "seek"


@dataclass(frozen=True, slots=True)
class SetRate:
    """Play at ``rate`` times nominal speed (rehearsal at 2x); running sequences keep their place."""

    rate: float
    key: ClassVar[str] = "set-rate"


@dataclass(frozen=True, slots=True)
class Panic:
    """Every device to its safe state now; cancel everything. Always accepted."""

    key: ClassVar[str] = "panic"


@dataclass(frozen=True, slots=True)
class PlayheadNext:
    """Move the standby cue to the next sequence without starting anything."""

    key: ClassVar[str] = "playhead"


@dataclass(frozen=True, slots=True)
class PlayheadPrevious:
    """Move the standby cue to the previous sequence without starting anything."""

    key: ClassVar[str] = "playhead"


@dataclass(frozen=True, slots=True)
class SequenceEnded:
    """Internal: sequence ``sequence`` has played to its end."""

    sequence: int
    key: ClassVar[str] = "sequence-ended"


@dataclass(frozen=True, slots=True)
class ShowEnded:
    """Internal: the last running sequence ended and no cue stands by."""

    key: ClassVar[str] = "show-ended"


@dataclass(frozen=True, slots=True)
class EventArrived:
    """Internal: the event trigger of ``cue`` has counted enough matching events."""

    cue: str
    key: ClassVar[str] = "event-arrived"


@dataclass(frozen=True, slots=True)
class Timeout:
    """Internal: the event trigger of ``cue`` timed out; ``on_timeout`` says what happens."""

    cue: str
    on_timeout: Literal["go", "skip", "hold", "stop"]
    key: ClassVar[str] = "timeout"


Command: TypeAlias = (
    Load
    | Arm
    | Reset
    | LoadAt
    | Go
    | Pause
    | Resume
    | TogglePause
    | Stop
    | Seek
    | SetRate
    | Panic
    | PlayheadNext
    | PlayheadPrevious
    | SequenceEnded
    | ShowEnded
    | EventArrived
    | Timeout
)


def command_key(cmd: Command) -> str:
    """The table key of a command (a timeout's key includes its ``on_timeout``)."""
    if isinstance(cmd, Timeout):
        return f"timeout-{cmd.on_timeout}"
    return cmd.key


# --- the table ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """An accepted command: the state it leads to and the effect the engine carries out."""

    state: State
    effect: Effect


@dataclass(frozen=True, slots=True)
class Rejected:
    """A command refused in the current state, with the reason for the operator."""

    reason: str
    state: State
    command: Command | None = None

    def __str__(self) -> str:
        return self.reason


_S = State
_E = Effect

_TIMEOUTS_WHILE_LISTENING = {
    "event-arrived": _E.START_EVENT,
    "timeout-go": _E.START_EVENT,
    "timeout-skip": _E.SKIP,
    "timeout-hold": _E.HOLD,
}

TABLE: dict[tuple[State, str], Transition] = {
    # idle: nothing loaded
    (_S.IDLE, "load"): Transition(_S.LOADED, _E.LOAD),
    (_S.IDLE, "panic"): Transition(_S.PANICKED, _E.PANIC),
    # loaded: a show is loaded
    (_S.LOADED, "load"): Transition(_S.LOADED, _E.LOAD),
    (_S.LOADED, "arm"): Transition(_S.ARMED, _E.ARM),
    (_S.LOADED, "reset"): Transition(_S.ARMED, _E.RESET),
    (_S.LOADED, "load-at"): Transition(_S.ARMED, _E.LOAD_AT),
    (_S.LOADED, "playhead"): Transition(_S.LOADED, _E.PLAYHEAD),
    (_S.LOADED, "set-rate"): Transition(_S.LOADED, _E.SET_RATE),
    (_S.LOADED, "panic"): Transition(_S.PANICKED, _E.PANIC),
    # armed: standing by
    (_S.ARMED, "load"): Transition(_S.LOADED, _E.LOAD),
    (_S.ARMED, "arm"): Transition(_S.ARMED, _E.ARM),
    (_S.ARMED, "reset"): Transition(_S.ARMED, _E.RESET),
    (_S.ARMED, "load-at"): Transition(_S.ARMED, _E.LOAD_AT),
    (_S.ARMED, "go"): Transition(_S.PLAYING, _E.START),
    (_S.ARMED, "seek"): Transition(_S.ARMED, _E.SEEK),
    (_S.ARMED, "set-rate"): Transition(_S.ARMED, _E.SET_RATE),
    (_S.ARMED, "playhead"): Transition(_S.ARMED, _E.PLAYHEAD),
    (_S.ARMED, "stop"): Transition(_S.STOPPED, _E.STOP),
    (_S.ARMED, "panic"): Transition(_S.PANICKED, _E.PANIC),
    (_S.ARMED, "event-arrived"): Transition(_S.PLAYING, _E.START_EVENT),
    (_S.ARMED, "timeout-go"): Transition(_S.PLAYING, _E.START_EVENT),
    (_S.ARMED, "timeout-skip"): Transition(_S.ARMED, _E.SKIP),
    (_S.ARMED, "timeout-hold"): Transition(_S.ARMED, _E.HOLD),
    (_S.ARMED, "timeout-stop"): Transition(_S.STOPPED, _E.STOP),
    # playing
    (_S.PLAYING, "go"): Transition(_S.PLAYING, _E.START),
    (_S.PLAYING, "pause"): Transition(_S.PAUSED, _E.PAUSE),
    (_S.PLAYING, "toggle-pause"): Transition(_S.PAUSED, _E.PAUSE),
    (_S.PLAYING, "stop"): Transition(_S.STOPPED, _E.STOP),
    (_S.PLAYING, "seek"): Transition(_S.PLAYING, _E.SEEK),
    (_S.PLAYING, "set-rate"): Transition(_S.PLAYING, _E.SET_RATE),
    (_S.PLAYING, "playhead"): Transition(_S.PLAYING, _E.PLAYHEAD),
    (_S.PLAYING, "panic"): Transition(_S.PANICKED, _E.PANIC),
    (_S.PLAYING, "sequence-ended"): Transition(_S.PLAYING, _E.NOTE),
    (_S.PLAYING, "show-ended"): Transition(_S.STOPPED, _E.FINISH),
    **{(_S.PLAYING, k): Transition(_S.PLAYING, e) for k, e in _TIMEOUTS_WHILE_LISTENING.items()},
    (_S.PLAYING, "timeout-stop"): Transition(_S.STOPPED, _E.STOP),
    # paused: everything frozen (event triggers do not count, their timeouts do not run)
    (_S.PAUSED, "resume"): Transition(_S.PLAYING, _E.RESUME),
    (_S.PAUSED, "toggle-pause"): Transition(_S.PLAYING, _E.RESUME),
    (_S.PAUSED, "stop"): Transition(_S.STOPPED, _E.STOP),
    (_S.PAUSED, "seek"): Transition(_S.PAUSED, _E.SEEK),
    (_S.PAUSED, "set-rate"): Transition(_S.PAUSED, _E.SET_RATE),
    (_S.PAUSED, "playhead"): Transition(_S.PAUSED, _E.PLAYHEAD),
    (_S.PAUSED, "panic"): Transition(_S.PANICKED, _E.PANIC),
    # stopped: re-arm to play again
    (_S.STOPPED, "load"): Transition(_S.LOADED, _E.LOAD),
    (_S.STOPPED, "arm"): Transition(_S.ARMED, _E.ARM),
    (_S.STOPPED, "reset"): Transition(_S.ARMED, _E.RESET),
    (_S.STOPPED, "load-at"): Transition(_S.ARMED, _E.LOAD_AT),
    (_S.STOPPED, "playhead"): Transition(_S.STOPPED, _E.PLAYHEAD),
    (_S.STOPPED, "set-rate"): Transition(_S.STOPPED, _E.SET_RATE),
    (_S.STOPPED, "panic"): Transition(_S.PANICKED, _E.PANIC),
    # panicked: re-arm explicitly after checking the venue
    (_S.PANICKED, "load"): Transition(_S.LOADED, _E.LOAD),
    (_S.PANICKED, "arm"): Transition(_S.ARMED, _E.ARM),
    (_S.PANICKED, "reset"): Transition(_S.ARMED, _E.RESET),
    (_S.PANICKED, "load-at"): Transition(_S.ARMED, _E.LOAD_AT),
    (_S.PANICKED, "panic"): Transition(_S.PANICKED, _E.PANIC),
}
"""Every allowed transition: ``(state, command key) -> (next state, effect)``."""

_WHAT_TO_DO = {
    State.IDLE: "load a show first",
    State.LOADED: "arm the show first (Arm: /arm, key A)",
    State.ARMED: "press GO to start the show",
    State.PLAYING: "the show is running; stop it first (/stop, key S), or seek (/seek) to jump",
    State.PAUSED: "resume (/resume, key P) or stop (/stop, key S) first",
    State.STOPPED: "re-arm to play again: Arm (/arm, key A) continues from the standby cue, "
    "Reset (/reset) goes back to the top, Load (/load <seconds>, /load/{cue}) arms there",
    State.PANICKED: "check the venue, then re-arm before GO: Arm (/arm, key A), Reset (/reset) "
    "or Load (/load <seconds>, /load/{cue})",
}
"""What the operator can do instead, per state: the second half of every refusal."""


def transition(state: State, cmd: Command) -> Transition | Rejected:
    """Look ``cmd`` up in :data:`TABLE` for ``state``: the transition, or why it is refused."""
    key = command_key(cmd)
    found = TABLE.get((state, key))
    if found is not None:
        return found
    return Rejected(f"{key} is not possible while {state.value}: {_WHAT_TO_DO[state]}", state, cmd)


class Transport:
    """The current state and the table; :meth:`apply` moves it. Owned by the engine."""

    __slots__ = ("state",)

    def __init__(self, state: State = State.IDLE) -> None:
        self.state = state

    def apply(self, cmd: Command) -> Transition | Rejected:
        """Take the transition for ``cmd`` (the state changes only if it is accepted)."""
        result = transition(self.state, cmd)
        if isinstance(result, Transition):
            self.state = result.state
        return result
