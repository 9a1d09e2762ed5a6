"""The engine: plays a compiled :class:`~cues.timeline.Timeline` on the show clock, sans I/O.

Theory of operation
-------------------
The engine is a pure core in the style of a sans-I/O protocol: every method takes ``now`` (integer
nanoseconds on the show clock) and returns what to do; it never sleeps, reads a clock or touches
a socket. The runtime around it calls

* :meth:`Engine.command` for operator commands (GO, pause, seek...), which answers
  :class:`Accepted` with the outputs produced at once, or :class:`~controller.playback.Rejected`
  with the reason;
* :meth:`Engine.poll` whenever :meth:`Engine.next_deadline` is reached, which returns every
  output due up to ``now + lookahead`` exactly once, in instant order (the runtime sends ahead);
* :meth:`Engine.receive_event` for messages that may satisfy an :class:`~cues.timeline.EventTrigger`.

**Anchoring.** A sequence is anchored at the instant it is triggered (GO, an event, a timeout), as
QLab does; several sequences may run at once. With a run anchored at ``(wall, pos)`` and the rate
``num/den``, the action at nominal ``at_ns`` is due at ``wall + (at_ns - pos) * den // num``
(integer maths). Pause freezes every run at its position; resume and rate changes re-anchor at
``now`` keeping positions. Outputs already handed out for instants after ``now`` are withdrawn
with one :class:`Cancel` and produced again at their new instants.

**Fades.** A fade on devices that interpolate is one :class:`Ramp`; on the others a stream of
:class:`Frame` outputs at the control rate, each carrying the value for its own instant, plus an
exact final frame; frames are generated lazily per poll. A fade re-anchored mid-way (pause, rate
change, seek) continues as frames for every device, because a ramp cannot start mid-curve.
``start=None`` resolves, per device, to the parameter's live value (the fade that owns it now),
else its nominal value from :class:`~controller.state.StateIndex`.

**Takes.** A device executes each idempotency key once (docs/protocol.md), so a show played
again must not repeat its keys. Each time the transport is re-armed (arm, reset, load to time) or
seeks after something was emitted, a new *take* begins: from the second take on, the show part
of every key carries ``#<take>`` (``"yard-control #2"``). Keys that were withdrawn stay withdrawn.

**Playhead.** The standby cue is the first cue of the next sequence to trigger. GO starts it at
``now`` even while an earlier cue is still in its pre-wait (that cue keeps counting); ``Go(cue)``
jumps the playhead to ``cue`` and starts it. An event-triggered standby cue is armed when the
playhead reaches it; its timeout counts from then and is frozen by pause.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, TypeAlias

from controller.fades import value_at
from controller.playback import (
    Command,
    Effect,
    EventArrived,
    Go,
    Load,
    LoadAt,
    PlayheadNext,
    PlayheadPrevious,
    Rejected,
    Seek,
    SequenceEnded,
    SetRate,
    ShowEnded,
    State,
    Timeout,
    Transition,
    transition,
)
from controller.state import DeviceState, DeviceStates, StateIndex
from cues.timeline import NS_PER_S, Action, CueSpan, Ease, EventTrigger, Fade, MqttSend, OscSend, Timeline
from venues.model import Venue
from venues.names import osc_address_matches
from venues.names import topic_matches as mqtt_topic_matches

__all__ = [
    "BLACKOUT",
    "Accepted",
    "Cancel",
    "CueClock",
    "Engine",
    "Fire",
    "Frame",
    "Key",
    "Output",
    "Ramp",
    "Result",
    "Safe",
    "StateSync",
    "TransportSnapshot",
    "TriggerProgress",
    # The event matchers live in venues.names (one MQTT matcher for the project); kept here for callers.
    "mqtt_topic_matches",
    "osc_address_matches",
]

log = logging.getLogger(__name__)

Key: TypeAlias = tuple[str, str, int]
"""The idempotency key of an action: ``(show, cue, seq)``."""

BLACKOUT: Mapping[str, float] = {"brightness": 0.0}
"""The safe state of a device whose venue entry gives none."""

MAX_RATE = 16.0


# --- outputs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fire:
    """An action fires: ``op`` (as compiled, placeholders unsubstituted) on ``devices`` at instant
    ``at``. (Delivery turns it into the sends of :mod:`controller.delivery`.)"""

    at: int
    key: Key
    action: Action
    devices: tuple[str, ...]
    op: OscSend | MqttSend
    show_ns: int


@dataclass(frozen=True, slots=True)
class Ramp:
    """Devices that interpolate run this fade themselves: ``start`` to ``end`` from ``at`` over
    ``duration_ns`` (show-clock time, already scaled by the rate) along ``ease``."""

    at: int
    key: Key
    action: Action
    devices: tuple[str, ...]
    param: str
    start: float
    end: float
    duration_ns: int
    ease: Ease
    show_ns: int


@dataclass(frozen=True, slots=True)
class Frame:
    """One value of a streamed fade, computed for its own instant ``at``; ``final`` is the exact end."""

    at: int
    key: Key
    action: Action
    devices: tuple[str, ...]
    param: str
    value: float
    index: int
    final: bool
    show_ns: int


@dataclass(frozen=True, slots=True)
class StateSync:
    """Catch-up state for one device after a seek: apply on receipt."""

    at: int
    device: str
    state: DeviceState
    show_ns: int


@dataclass(frozen=True, slots=True)
class Safe:
    """Put ``device`` in its safe state at ``at``; ``urgent`` for panic (send before anything else)."""

    at: int
    device: str
    values: Mapping[str, float | int | str]
    urgent: bool


@dataclass(frozen=True, slots=True)
class Cancel:
    """Withdraw outputs handed out earlier: drop any with a key in ``keys`` due after ``at``."""

    at: int
    keys: frozenset[Key]


Output: TypeAlias = Fire | Ramp | Frame | StateSync | Safe | Cancel


@dataclass(frozen=True, slots=True)
class Accepted:
    """A command taken: the new state, the effect carried out, and the outputs produced at once."""

    state: State
    effect: Effect
    outputs: tuple[Output, ...] = ()


Result: TypeAlias = Accepted | Rejected


@dataclass(frozen=True, slots=True)
class TransportSnapshot:
    """Where the show is, as of the last ``now`` the engine saw."""

    state: State
    current_cue: str | None
    standby_cue: str | None
    show_ns: int | None
    rate: float
    running: tuple[int, ...]  # indexes of the running sequences
    waiting_for: str | None = None  # the event-triggered cue listening, if any
    debounced: int = 0  # GOs refused as double-taps since load
    now: int = 0
    take: int = 1  # how many times the show has been (re)started since the controller began


@dataclass(frozen=True, slots=True)
class CueClock:
    """Where one cue of a running sequence stands (:meth:`Engine.cue_clocks`): each field is the
    show-clock time left in that phase at the current rate (frozen while paused), or ``None``
    when the cue is not in it. ``starts_in_ns``: the cue's turn in its chain has not come yet
    (or a GO's latency is still running); ``post_wait_ns``: until the next cue of the chain starts."""

    cue: str
    starts_in_ns: int | None = None
    pre_wait_ns: int | None = None
    action_ns: int | None = None
    post_wait_ns: int | None = None


@dataclass(frozen=True, slots=True)
class TriggerProgress:
    """The listening event trigger (:meth:`Engine.trigger_progress`): ``counted`` of ``count``
    events so far; ``timeout_ns`` left (frozen while paused), ``None`` without a timeout."""

    cue: str
    transport: str
    pattern: str
    counted: int
    count: int
    timeout_ns: int | None
    on_timeout: str
    # An audience share trigger (``count: 80%``): the share, and the phones of its zone present
    # now (``count`` is then what that share of them is; ``counted`` those of them that tapped).
    share: float | None = None
    present: int | None = None
    zone: str | None = None
    event: str | None = None


# --- private run state ----------------------------------------------------------------------


class _Run:
    """A sequence being played: anchored at wall instant ``wall`` for nominal position ``pos``."""

    __slots__ = ("actions", "ats", "done", "end_pos", "index", "next_i", "pos", "streams", "wall")

    def __init__(self, index: int, actions: tuple[Action, ...], wall: int, pos: int, end_pos: int) -> None:
        self.index = index
        self.actions = actions
        self.ats = [a.at_ns for a in actions]
        self.wall = wall
        self.pos = pos
        self.next_i = 0
        self.end_pos = end_pos
        self.streams: list[_Stream] = []
        self.done = False


class _Stream:
    """A fade on some devices: a ramp already sent, or frames still being produced."""

    __slots__ = ("action", "base", "devices", "fade", "k", "mode", "run", "start")

    def __init__(
        self, run: _Run, action: Action, fade: Fade, devices: list[str], start: float,
        mode: Literal["ramp", "frames"], base: int,
    ) -> None:
        self.run = run
        self.action = action
        self.fade = fade
        self.devices = devices
        self.start = start
        self.mode = mode
        self.base = base
        self.k = 0


@dataclass(slots=True)
class _Armed:
    cue: CueSpan
    trigger: EventTrigger
    deadline: int | None  # show clock; None while paused or without timeout
    remaining: int | None = None  # while paused
    senders: set[str] = field(default_factory=set)
    anonymous: int = 0
    present: int = 0  # an audience share trigger: the phones of its zone present (the core says)

    def counted(self) -> int:
        return len(self.senders) + self.anonymous

    def reached(self) -> bool:
        trig = self.trigger
        if trig.share is not None and self.present <= 0:
            return False  # nobody there: no share of nobody starts a cue
        return self.counted() >= trig.needed(self.present)


_LISTENING = (State.ARMED, State.PLAYING)


class Engine:
    """Plays one timeline on one venue. Pure: give it ``now``, it says what to send and when.

    Start with ``command(Load(), now)`` and ``command(Arm(), now)``; then GO, and call
    :meth:`poll` at :meth:`next_deadline`.
    """

    def __init__(
        self,
        timeline: Timeline,
        venue: Venue,
        *,
        lookahead_ns: int = 500_000_000,
        control_rate_hz: float = 50.0,
        debounce_ns: int = 250_000_000,
        go_delay_ns: int = 0,
    ) -> None:
        if lookahead_ns < 0:
            raise ValueError(f"lookahead_ns must be >= 0, got {lookahead_ns}")
        if not control_rate_hz > 0:
            raise ValueError(f"control_rate_hz must be > 0, got {control_rate_hz}")
        self.lookahead_ns = lookahead_ns
        self.control_rate_hz = control_rate_hz
        self.debounce_ns = debounce_ns
        if go_delay_ns < 0:
            raise ValueError(f"go_delay_ns must be >= 0, got {go_delay_ns}")
        # A triggered sequence starts this long after its trigger, so that its first actions can
        # still be sent ahead of their instant (docs/operator.md, "GO latency").
        self.go_delay_ns = go_delay_ns
        self._venue = venue
        self._state = State.IDLE
        self._num, self._den = 1, 1
        self._now = 0
        self.debounced = 0
        self._index = StateIndex(timeline, venue)
        self._timeline = timeline
        self._take = 1  # never reset: keys must not repeat within this controller (see "Takes")
        self._take_used = False  # something was emitted with this take's keys
        self._show_key = timeline.show
        self.safe_stop = False  # the transport is stopped or panicked *and* devices were sent safe
        self._install(timeline)

    # --- setup ------------------------------------------------------------------------------

    def _install(self, timeline: Timeline) -> None:
        if timeline is not self._timeline:  # the index is read-only once built: a reload keeps it
            self._index = StateIndex(timeline, self._venue)
        self._timeline = timeline
        self._cue_index = {c.id: c.index for c in timeline.cues}
        by_seq: list[list[Action]] = [[] for _ in timeline.sequences]
        cue_seq = {c.id: c.sequence for c in timeline.cues}
        for a in timeline.actions:
            by_seq[cue_seq[a.cue]].append(a)
        self._seq_actions = [tuple(v) for v in by_seq]
        self._seq_starts = [s.start_ns for s in timeline.sequences]
        self._runs: list[_Run] = []
        self._owner: dict[tuple[str, str], _Stream] = {}
        self._ahead: dict[Key, int] = {}
        self._armed: _Armed | None = None
        self._standby: int | None = 0 if timeline.sequences else None
        self._standby_pos: int | None = None  # continue mid-sequence (after a seek while armed)
        self._standby_first = 0  # play the standby sequence from this cue index (load to a cue)
        self._last_go: int | None = None
        self._current: str | None = None
        self._show_ns: int | None = None
        self.debounced = 0

    # --- queries ----------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The transport state."""
        return self._state

    @property
    def timeline(self) -> Timeline:
        """The loaded timeline."""
        return self._timeline

    @property
    def snapshot(self) -> TransportSnapshot:
        """State, current and standby cue, show time, rate and running sequences at the last ``now``."""
        show_ns = self._show_ns
        current = self._current
        standby = self._standby_cue()
        if self._runs:
            run = max(self._runs, key=lambda r: (r.wall, r.index))
            pos = run.pos if self._state is State.PAUSED else self._pos(run, self._now)
            show_ns = min(run.end_pos, pos)
            current = self._cue_at(run, show_ns) or current
        return TransportSnapshot(
            state=self._state,
            current_cue=current,
            standby_cue=standby.id if standby is not None else None,
            show_ns=show_ns,
            rate=self._num / self._den,
            running=tuple(r.index for r in self._runs),
            waiting_for=self._armed.cue.id if self._armed is not None else None,
            debounced=self.debounced,
            now=self._now,
            take=self._take,
        )

    @property
    def listening(self) -> bool:
        """Whether an event trigger is armed (an event may start a cue)."""
        return self._armed is not None

    def set_take(self, take: int) -> None:
        """Continue as take ``take`` (a replay that must use the live controller's keys)."""
        self._take = take
        self._show_key = self._timeline.show if take == 1 else f"{self._timeline.show} #{take}"

    def position_at(self, now: int) -> int | None:
        """Nominal show time at ``now`` of the most recently started running sequence (for late
        joins and the operator view); the last known position when nothing runs."""
        if not self._runs:
            return self._show_ns
        run = max(self._runs, key=lambda r: (r.wall, r.index))
        pos = run.pos if self._state is State.PAUSED else self._pos(run, max(now, run.wall))
        return min(run.end_pos, pos)

    def state_at(self, show_ns: int) -> DeviceStates:
        """What every device should be showing at nominal show time ``show_ns``."""
        return self._index.state_at(show_ns)

    def param_at(self, device_id: str, param: str, show_ns: int) -> float | None:
        """One parameter's nominal value at ``show_ns`` (None before any fade touched it); the
        DMX output renders its frames from it (docs/dmx.md)."""
        return self._index.param_at(device_id, param, show_ns)

    def state_for_device(self, device_id: str, show_ns: int) -> DeviceState:
        """What one device should be showing at nominal show time ``show_ns`` (late join)."""
        return self._index.state_for_device(device_id, show_ns)

    def cue_clocks(self, now: int) -> tuple[CueClock, ...]:
        """For the operator view: every cue of the running sequences that has not finished, with
        its pre-wait, action and post-wait countdowns at ``now``. Read-only."""
        out: list[CueClock] = []
        tl = self._timeline
        for run in sorted(self._runs, key=lambda r: r.index):
            p = run.pos if self._state is State.PAUSED else self._pos(run, now)
            cues = [tl.cue_by_id[c] for c in tl.sequences[run.index].cues]

            def left(pos: int, p: int = p) -> int:  # nominal time ahead -> show-clock time
                return max(0, (pos - p) * self._den // self._num)

            for i, c in enumerate(cues):
                nxt = cues[i + 1] if i + 1 < len(cues) else None
                post: int | None = None
                if nxt is not None and c.post_wait_ns and p < nxt.start_ns:
                    from_ns = c.start_ns if nxt.go == "auto-continue" else c.end_ns  # else auto-follow
                    if p >= from_ns:
                        post = left(nxt.start_ns)
                if p < c.start_ns:
                    out.append(CueClock(c.id, starts_in_ns=left(c.start_ns)))
                elif p < c.body_ns:
                    out.append(CueClock(c.id, pre_wait_ns=left(c.body_ns), post_wait_ns=post))
                elif p < c.end_ns:
                    out.append(CueClock(c.id, action_ns=left(c.end_ns), post_wait_ns=post))
                elif post is not None:
                    out.append(CueClock(c.id, post_wait_ns=post))
        return tuple(out)

    def trigger_progress(self, now: int) -> TriggerProgress | None:
        """For the operator view: the event trigger listening now, how many events it has counted
        and how long until its timeout; ``None`` when none listens. Read-only."""
        armed = self._armed
        if armed is None:
            return None
        left = armed.remaining if armed.deadline is None else max(0, armed.deadline - now)
        trig = armed.trigger
        if trig.share is not None:
            return TriggerProgress(armed.cue.id, trig.transport, trig.pattern, armed.counted(),
                                   trig.needed(armed.present), left, trig.on_timeout,
                                   share=trig.share, present=armed.present, zone=trig.zone, event=trig.event)
        return TriggerProgress(armed.cue.id, trig.transport, trig.pattern, armed.counted(), trig.count,
                               left, trig.on_timeout, zone=trig.zone, event=trig.event)

    @property
    def audience_trigger(self) -> EventTrigger | None:
        """The listening trigger when it counts a share of the audience present (the core tells
        the engine how many phones are present: :meth:`receive_audience`)."""
        armed = self._armed
        return armed.trigger if armed is not None and armed.trigger.share is not None else None

    @property
    def audience_present(self) -> int | None:
        """What the listening audience share trigger was last told is present (None: none listens)."""
        armed = self._armed
        return armed.present if armed is not None and armed.trigger.share is not None else None

    def next_deadline(self) -> int | None:
        """The show-clock instant at which :meth:`poll` next has something to do, or ``None``."""
        if self._state not in _LISTENING:
            return None
        cands: list[int] = []
        for run in self._runs:
            t = self._next_run_instant(run)
            if t is not None:
                cands.append(t - self.lookahead_ns)
            cands.append(self._wall(run, run.end_pos))  # SequenceEnded
            cands.extend(self._frame_at(s) - self.lookahead_ns for s in run.streams if s.mode == "frames")
        if self._armed is not None and self._armed.deadline is not None:
            cands.append(self._armed.deadline)
        if self._state is State.PLAYING and not self._runs and self._standby is None:
            cands.append(self._now)  # the show has ended: the next poll says so
        return min(cands) if cands else None

    # --- the three entry points -------------------------------------------------------------

    def command(self, cmd: Command, now: int) -> Result:
        """Apply an operator (or internal) command at ``now``."""
        self._now = max(self._now, now)
        found = transition(self._state, cmd)
        if isinstance(found, Rejected):
            log.info("command rejected", extra={"command": cmd.key, "state": self._state.value,
                                                 "reason": found.reason})
            return found
        refusal = self._guard(cmd, found, now)
        if refusal is not None:
            log.info("command rejected", extra={"command": cmd.key, "state": self._state.value,
                                                 "reason": refusal})
            return Rejected(refusal, self._state, cmd)
        before = self._state
        self._state = found.state
        if found.state in (State.STOPPED, State.PANICKED):
            # stopped by the operator or panic (devices sent to their safe state), or the show's end
            self.safe_stop = found.effect in (Effect.STOP, Effect.PANIC)
        outputs = self._effect(cmd, found.effect, before, now)
        if before is not self._state:
            log.info("transport %s -> %s", before.value, self._state.value,
                     extra={"command": cmd.key, "show": self._timeline.show, "now": now})
        return Accepted(self._state, found.effect, tuple(outputs))

    def poll(self, now: int) -> list[Output]:
        """Every output due at or before ``now + lookahead`` not handed out yet, in instant order."""
        self._now = max(self._now, now)
        out: list[Output] = []
        if self._state not in _LISTENING:
            return out
        armed = self._armed
        if armed is not None and armed.deadline is not None and armed.deadline <= now:
            result = self.command(Timeout(armed.cue.id, armed.trigger.on_timeout), armed.deadline)
            if isinstance(result, Accepted):
                out.extend(result.outputs)
        out.extend(self._drain(now))
        out.extend(self._finish_runs(now))
        return out

    def receive_event(
        self, transport: str, name: str, sender: str, now: int, *, present: int | None = None
    ) -> list[Output]:
        """Count an event (an MQTT topic or OSC address ``name`` from ``sender``; ``""`` when the
        sender is unknown, every such event counts) towards the armed cue's trigger. An audience
        trigger counts the phone its topic names (``madang/audience/{zone}/{id}/...``), once;
        ``present`` is how many phones of its zone are present (for a share trigger)."""
        self._now = max(self._now, now)
        out: list[Output] = []
        if self._state not in _LISTENING:
            return out
        armed = self._armed
        if armed is not None and armed.deadline is not None and armed.deadline <= now:
            out.extend(self.poll(now))  # the timeout came first
            armed = self._armed
        if armed is None or armed.trigger.transport != transport:
            return out
        pattern = armed.trigger.pattern
        matched = (mqtt_topic_matches(pattern, name) if transport == "mqtt"
                   else osc_address_matches(pattern, name))
        if not matched:
            return out
        if present is not None and armed.trigger.share is not None:
            armed.present = present
        if armed.trigger.event is not None:
            armed.senders.add(name.split("/")[3])  # the phone's id (the pattern has 5 levels)
        elif sender:
            armed.senders.add(sender)
        else:
            armed.anonymous += 1
        if armed.reached():
            out.extend(self._event_arrived(armed, now))
        return out

    def receive_audience(self, present: int, gone: Iterable[str], now: int) -> list[Output]:
        """The phones present for the listening audience share trigger are now ``present``;
        ``gone`` left (their taps no longer count). Fewer present may make the share: the cue
        then starts, as for an event."""
        self._now = max(self._now, now)
        armed = self._armed
        if self._state not in _LISTENING or armed is None or armed.trigger.share is None:
            return []
        armed.present = present
        armed.senders.difference_update(gone)
        if armed.counted() and armed.reached():
            return self._event_arrived(armed, now)
        return []

    def _event_arrived(self, armed: _Armed, now: int) -> list[Output]:
        result = self.command(EventArrived(armed.cue.id), now)
        return list(result.outputs) if isinstance(result, Accepted) else []

    # --- guards and effects -----------------------------------------------------------------

    def _guard(self, cmd: Command, found: Transition, now: int) -> str | None:
        if isinstance(cmd, Go):
            if self._last_go is not None and now - self._last_go < self.debounce_ns:
                self.debounced += 1
                gap_ms = (now - self._last_go) / 1e6
                return (f"GO ignored: a second GO {gap_ms:.0f} ms after the previous one "
                        f"is taken as a double-tap (debounce {self.debounce_ns / 1e6:.0f} ms); press again")
            if cmd.cue is not None:
                if cmd.cue not in self._timeline.cue_by_id:
                    known = ", ".join(c.id for c in self._timeline.cues[:20])
                    return f"GO: the show has no cue '{cmd.cue}'; its cues are: {known}"
                seq = self._timeline.cue_by_id[cmd.cue].sequence
            elif self._standby is None:
                return "GO: no cue is standing by (the show has reached its end); seek or GO a named cue"
            else:
                seq = self._standby
            if any(r.index == seq for r in self._runs):
                return (f"GO: cue '{self._timeline.sequences[seq].cues[0]}' is still running; "
                        "wait for it to end or stop first")
        elif isinstance(cmd, Seek):
            if (cmd.show_ns is None) == (cmd.cue is None):
                return "seek needs exactly one of a show time or a cue id"
            if cmd.cue is not None and cmd.cue not in self._timeline.cue_by_id:
                return f"seek: the show has no cue '{cmd.cue}'"
            if cmd.show_ns is not None and not 0 <= cmd.show_ns <= self._timeline.duration_ns:
                return (f"seek: {cmd.show_ns / NS_PER_S:.3f} s is outside the show "
                        f"(0 to {self._timeline.duration_ns / NS_PER_S:.3f} s)")
        elif isinstance(cmd, LoadAt):
            if (cmd.show_ns is None) == (cmd.cue is None):
                return "load needs exactly one of a show time or a cue id"
            if cmd.cue is not None and cmd.cue not in self._timeline.cue_by_id:
                known = ", ".join(c.id for c in self._timeline.cues[:20])
                return f"load: the show has no cue '{cmd.cue}'; its cues are: {known}"
            if cmd.show_ns is not None and not 0 <= cmd.show_ns <= self._timeline.duration_ns:
                return (f"load: {cmd.show_ns / NS_PER_S:.3f} s is outside the show "
                        f"(0 to {self._timeline.duration_ns / NS_PER_S:.3f} s)")
        elif isinstance(cmd, SetRate):
            if not (math.isfinite(cmd.rate) and 0 < cmd.rate <= MAX_RATE):
                return f"rate must be above 0 and at most {MAX_RATE:g} (use pause to hold), got {cmd.rate}"
        elif isinstance(cmd, PlayheadNext):
            if self._standby is None or self._standby + 1 >= len(self._timeline.sequences):
                return "the playhead is already on the last cue"
        elif isinstance(cmd, PlayheadPrevious) and (self._standby == 0 or not self._timeline.sequences):
            return "the playhead is already on the first cue"
        return None

    def _effect(self, cmd: Command, effect: Effect, before: State, now: int) -> list[Output]:
        out: list[Output] = []
        if effect is Effect.LOAD:
            assert isinstance(cmd, Load)
            self._install(cmd.timeline if cmd.timeline is not None else self._timeline)
        elif effect is Effect.ARM:
            self._new_take(now)
            if self._standby is None and self._timeline.sequences:
                self._standby, self._standby_pos, self._standby_first = 0, None, 0
            self._arm_standby(now)
        elif effect is Effect.RESET:
            out.extend(self._reset(now))
        elif effect is Effect.LOAD_AT:
            assert isinstance(cmd, LoadAt)
            out.extend(self._load_at(cmd, now))
        elif effect is Effect.START:
            assert isinstance(cmd, Go)
            self._last_go = now
            if cmd.cue is not None:
                cue = self._timeline.cue_by_id[cmd.cue]
                self._start(cue.sequence, now, cue.start_ns, first_cue=cue.index, inclusive=True)
            else:
                assert self._standby is not None
                self._start_standby(now)
            out.extend(self._drain(now))
        elif effect is Effect.START_EVENT:
            self._start_standby(now)
            out.extend(self._drain(now))
        elif effect is Effect.PAUSE:
            out.extend(self._freeze(now, hold=True))
            if self._armed is not None and self._armed.deadline is not None:
                self._armed.remaining = self._armed.deadline - now
                self._armed.deadline = None
        elif effect is Effect.RESUME:
            self._thaw(now)
            if self._armed is not None and self._armed.remaining is not None:
                self._armed.deadline = now + self._armed.remaining
                self._armed.remaining = None
            out.extend(self._drain(now))
        elif effect is Effect.SET_RATE:
            assert isinstance(cmd, SetRate)
            running = self._state is State.PLAYING
            if running:
                out.extend(self._freeze(now, hold=False))
            frac = Fraction(cmd.rate).limit_denominator(1_000_000)
            self._num, self._den = frac.numerator, frac.denominator
            if running:
                self._thaw(now)
                out.extend(self._drain(now))
        elif effect in (Effect.STOP, Effect.PANIC):
            out.extend(self._cancel_all(now))
            urgent = effect is Effect.PANIC
            out.extend(Safe(now, d.id, d.safe or BLACKOUT, urgent) for d in self._venue.devices)
            if urgent:
                log.warning("panic: every device to its safe state", extra={"now": now})
        elif effect is Effect.SEEK:
            assert isinstance(cmd, Seek)
            out.extend(self._cancel_all(now))  # withdraws what was sent ahead, under the old keys
            self._new_take(now)
            out.extend(self._seek(cmd, now))
        elif effect is Effect.PLAYHEAD:
            assert self._standby is not None or isinstance(cmd, PlayheadPrevious)
            if isinstance(cmd, PlayheadNext):
                self._set_standby((self._standby or 0) + 1, now)
            else:
                n = len(self._timeline.sequences)
                self._set_standby(n - 1 if self._standby is None else self._standby - 1, now)
        elif effect is Effect.SKIP:
            assert self._standby is not None
            nxt = self._standby + 1
            self._set_standby(nxt if nxt < len(self._timeline.sequences) else None, now)
        elif effect is Effect.HOLD:
            self._armed = None
        elif effect is Effect.NOTE:
            assert isinstance(cmd, SequenceEnded)
        elif effect is Effect.FINISH:
            log.info("show ended", extra={"show": self._timeline.show, "now": now})
        return out

    # --- playhead ---------------------------------------------------------------------------

    def _standby_cue(self) -> CueSpan | None:
        if self._standby is None:
            return None
        return self._timeline.cue_by_id[self._timeline.sequences[self._standby].cues[0]]

    def _set_standby(self, index: int | None, now: int, pos: int | None = None, first: int = 0) -> None:
        self._standby = index
        self._standby_pos = pos
        self._standby_first = first
        self._arm_standby(now)

    def _arm_standby(self, now: int) -> None:
        self._armed = None
        cue = self._standby_cue()
        if cue is None or cue.trigger is None or self._state not in (*_LISTENING, State.PAUSED):
            return
        timeout = cue.trigger.timeout_ns
        if self._state is State.PAUSED:
            self._armed = _Armed(cue, cue.trigger, None, timeout)
        else:
            self._armed = _Armed(cue, cue.trigger, None if timeout is None else now + timeout)

    def _start_standby(self, now: int) -> None:
        assert self._standby is not None
        seq = self._timeline.sequences[self._standby]
        if self._standby_first:
            cue = self._timeline.cues[self._standby_first]
            self._start(self._standby, now, cue.start_ns, first_cue=self._standby_first, inclusive=True)
        elif self._standby_pos is not None and self._standby_pos > seq.start_ns:
            self._start(self._standby, now, self._standby_pos, first_cue=0, inclusive=False)
        else:
            self._start(self._standby, now, seq.start_ns, first_cue=0, inclusive=True)

    def _start(self, index: int, now: int, pos: int, *, first_cue: int, inclusive: bool) -> None:
        """Anchor sequence ``index`` at ``now`` for nominal ``pos`` and move the playhead on."""
        seq = self._timeline.sequences[index]
        actions = self._seq_actions[index]
        if first_cue:
            actions = tuple(a for a in actions if self._cue_index[a.cue] >= first_cue)
        wall = now + self.go_delay_ns if inclusive else now
        run = _Run(index, actions, wall, pos, seq.end_ns)
        run.next_i = bisect_left(run.ats, pos) if inclusive else bisect_right(run.ats, pos)
        self._runs.append(run)
        if not inclusive:
            self._resume_fades_at(run, pos, now)
        self._current = self._cue_at(run, pos)
        nxt = index + 1
        self._set_standby(nxt if nxt < len(self._timeline.sequences) else None, now)
        log.info("sequence started",
                 extra={"sequence": index, "cue": seq.cues[0], "now": now, "show_ns": pos})

    def _cue_at(self, run: _Run, pos: int) -> str | None:
        best: str | None = None
        for cid in self._timeline.sequences[run.index].cues:
            if self._timeline.cue_by_id[cid].start_ns <= pos:
                best = cid
        return best

    # --- time mapping -----------------------------------------------------------------------

    def _wall(self, run: _Run, pos: int) -> int:
        return run.wall + (pos - run.pos) * self._den // self._num

    def _pos(self, run: _Run, wall: int) -> int:
        return run.pos + (wall - run.wall) * self._num // self._den

    def _frame_at(self, s: _Stream) -> int:
        rate = s.fade.rate_hz or self.control_rate_hz
        at = s.base + round(s.k * NS_PER_S / rate)
        return min(at, self._wall(s.run, s.action.end_ns))

    def _next_run_instant(self, run: _Run) -> int | None:
        if run.next_i >= len(run.actions):
            return None
        return self._wall(run, run.actions[run.next_i].at_ns)

    # --- producing outputs ------------------------------------------------------------------

    def _drain(self, now: int) -> list[Output]:
        out: list[Output] = []
        self._ahead = {k: t for k, t in self._ahead.items() if t > now}
        horizon = now + self.lookahead_ns
        while True:
            best: tuple[int, int, int] | None = None
            pick: _Run | _Stream | None = None
            for run in self._runs:
                t = self._next_run_instant(run)
                if t is not None:
                    cand = (t, run.actions[run.next_i].seq, 0)
                    if best is None or cand < best:
                        best, pick = cand, run
                for s in run.streams:
                    if s.mode == "frames":
                        cand = (self._frame_at(s), s.action.seq, 1 + s.k)
                        if best is None or cand < best:
                            best, pick = cand, s
            if best is None or best[0] > horizon:
                return out
            if isinstance(pick, _Run):
                action = pick.actions[pick.next_i]
                pick.next_i += 1
                out.extend(self._emit_action(pick, action, best[0], now))
            elif isinstance(pick, _Stream):
                out.append(self._emit_frame(pick, best[0], now))

    def _key(self, action: Action) -> Key:
        self._take_used = True
        return (self._show_key, action.cue, action.seq)

    def _new_take(self, now: int) -> None:
        """Begin a new take if the current one emitted anything (see "Takes")."""
        if not self._take_used:
            return
        self._take += 1
        self._take_used = False
        self._show_key = f"{self._timeline.show} #{self._take}"
        log.info("new take", extra={"show": self._timeline.show, "take": self._take, "now": now})

    def _emit_action(self, run: _Run, action: Action, at: int, now: int) -> list[Output]:
        op = action.op
        key = self._key(action)
        self._track_ahead(key, at, now)
        out: list[Output] = []
        if not isinstance(op, Fade):
            out.append(Fire(at, key, action, action.devices, op, action.at_ns))
            return out
        groups: dict[tuple[bool, float], list[str]] = {}
        by_id = self._venue.by_id
        for dev in action.devices:
            device = by_id.get(dev)
            interp = device.interpolates if device is not None else False
            groups.setdefault((interp, self._start_value(dev, action, op, at)), []).append(dev)
        duration = self._wall(run, action.end_ns) - at
        for (interp, start), devs in groups.items():
            stream = _Stream(run, action, op, devs, start, "ramp" if interp else "frames", at)
            run.streams.append(stream)
            for dev in devs:
                self._take_ownership(dev, op.param, stream)
            if interp:
                out.append(Ramp(at, key, action, tuple(devs), op.param, start, op.end, duration, op.ease,
                                action.at_ns))
        return out

    def _track_ahead(self, key: Key, at: int, now: int) -> None:
        if at > now:
            self._ahead[key] = max(at, self._ahead.get(key, at))

    def _take_ownership(self, dev: str, param: str, stream: _Stream) -> None:
        old = self._owner.get((dev, param))
        if old is not None and old is not stream and dev in old.devices:
            old.devices.remove(dev)
            if not old.devices and old in old.run.streams:
                old.run.streams.remove(old)
        self._owner[(dev, param)] = stream

    def _start_value(self, dev: str, action: Action, fade: Fade, at: int) -> float:
        if fade.start is not None:
            return fade.start
        owner = self._owner.get((dev, fade.param))
        if owner is not None:
            return self._stream_value(owner, at)
        seg = self._index.segment(dev, action.seq)
        return seg.start if seg is not None else 0.0

    def _stream_value(self, s: _Stream, at: int) -> float:
        if s.run.done:
            return s.fade.end
        elapsed = self._pos(s.run, at) - s.action.at_ns
        return value_at(s.start, s.fade.end, s.fade.ease, elapsed, s.fade.duration_ns)

    def _emit_frame(self, s: _Stream, at: int, now: int) -> Frame:
        end_wall = self._wall(s.run, s.action.end_ns)
        final = at >= end_wall
        value = s.fade.end if final else self._stream_value(s, at)
        frame = Frame(at, self._key(s.action), s.action, tuple(s.devices), s.fade.param, value, s.k, final,
                      min(self._pos(s.run, at), s.action.end_ns))
        s.k += 1
        self._track_ahead(frame.key, at, now)
        if final:
            s.run.streams.remove(s)
        return frame

    def _finish_runs(self, now: int) -> list[Output]:
        out: list[Output] = []
        for run in list(self._runs):
            if run.next_i >= len(run.actions) and not any(s.mode == "frames" for s in run.streams) \
                    and self._wall(run, run.end_pos) <= now:
                run.done = True
                self._runs.remove(run)
                self._show_ns = run.end_pos
                self.command(SequenceEnded(run.index), now)
        if self._state is State.PLAYING and not self._runs and self._standby is None:
            self.command(ShowEnded(), now)
        return out

    # --- pause, rate, seek, stop ------------------------------------------------------------

    def _cancel_ahead(self, now: int) -> list[Output]:
        keys = frozenset(k for k, t in self._ahead.items() if t > now)
        self._ahead = {}
        return [Cancel(now, keys)] if keys else []

    def _cancel_all(self, now: int) -> list[Output]:
        out = self._cancel_ahead(now)
        for run in self._runs:
            run.done = True
        if self._runs:
            run = max(self._runs, key=lambda r: (r.wall, r.index))
            self._show_ns = min(run.end_pos, self._pos(run, now))
        self._runs = []
        self._owner = {}
        self._armed = None
        return out

    def _freeze(self, now: int, *, hold: bool) -> list[Output]:
        """Hand out what is due by ``now``, withdraw what was handed out for later, and anchor every
        run at its position at ``now``; fades in progress continue as frames."""
        out = self._drain_until(now)
        out.extend(self._cancel_ahead(now))
        for run in self._runs:
            j = run.next_i
            while j > 0 and self._wall(run, run.ats[j - 1]) > now:
                j -= 1  # handed out ahead of time: produced again after re-anchoring
            rewound = {a.seq for a in run.actions[j : run.next_i]}
            p = self._pos(run, now)
            run.next_i = j
            keep: list[_Stream] = []
            for s in run.streams:
                if s.action.seq not in rewound and p < s.action.end_ns and s.devices:
                    if hold:
                        value = self._stream_value(s, now)
                        out.append(Frame(now, self._key(s.action), s.action, tuple(s.devices), s.fade.param,
                                         value, s.k, False, p))
                    s.mode = "frames"
                    keep.append(s)
                elif s.action.seq in rewound:
                    for dev in s.devices:
                        if self._owner.get((dev, s.fade.param)) is s:
                            del self._owner[(dev, s.fade.param)]
            run.streams = keep
            run.wall, run.pos = now, p
        return out

    def _drain_until(self, now: int) -> list[Output]:
        saved = self.lookahead_ns
        self.lookahead_ns = 0
        try:
            return self._drain(now)
        finally:
            self.lookahead_ns = saved

    def _thaw(self, now: int) -> None:
        for run in self._runs:
            run.wall = now
            for s in run.streams:
                s.base, s.k = now, 0

    def _resume_fades_at(self, run: _Run, pos: int, now: int) -> None:
        """Fades of ``run`` in progress at nominal ``pos`` continue as frames from ``now``."""
        for action in run.actions[: run.next_i]:
            op = action.op
            if not isinstance(op, Fade) or not action.at_ns <= pos < action.end_ns:
                continue
            groups: dict[float, list[str]] = {}
            for dev in action.devices:
                seg = self._index.segment_at(dev, op.param, pos)
                if seg is None or seg.seq != action.seq:
                    continue  # a later fade owns the parameter by now
                groups.setdefault(seg.start, []).append(dev)
            for start, devs in groups.items():
                stream = _Stream(run, action, op, devs, start, "frames", now)
                run.streams.append(stream)
                for dev in devs:
                    self._take_ownership(dev, op.param, stream)

    def _reset(self, now: int) -> list[Output]:
        """Back to the top: nothing is sent (devices keep what they show), the transport forgets."""
        out = self._cancel_all(now)
        self._new_take(now)
        self._current = None
        self._show_ns = None
        self._last_go = None
        self.debounced = 0
        self._set_standby(0 if self._timeline.sequences else None, now)
        log.info("reset: the playhead is back on the first cue",
                 extra={"show": self._timeline.show, "now": now})
        return out

    def _load_at(self, cmd: LoadAt, now: int) -> list[Output]:
        """Arm at a show time or a cue: every device gets the state the show has there, and the
        playhead stands where GO plays on from (docs/operator.md, "Load to a time or a cue").

        A cue, or a time at the start of a sequence, is loaded *before* its actions: the catch-up
        state is the one just before, and GO fires the cue itself. A time inside a sequence is
        loaded *after* the actions at that instant, as a seek is, and GO continues from there."""
        out = self._cancel_all(now)
        self._new_take(now)
        tl = self._timeline
        self._current = None
        if cmd.cue is not None:
            cue = tl.cue_by_id[cmd.cue]
            t = cue.start_ns
            first = tl.sequences[cue.sequence].cues[0] != cue.id
            self._set_standby(cue.sequence, now, first=cue.index if first else 0)
            state_t = t - 1
        else:
            assert cmd.show_ns is not None
            t = cmd.show_ns
            i = bisect_right(self._seq_starts, t) - 1
            if i >= 0 and tl.sequences[i].start_ns < t < tl.sequences[i].end_ns:
                self._set_standby(i, now, pos=t)
                state_t = t
            else:
                nxt = bisect_left(self._seq_starts, t)
                self._set_standby(nxt if nxt < len(tl.sequences) else None, now)
                at_start = nxt < len(tl.sequences) and self._seq_starts[nxt] == t
                state_t = t - 1 if at_start else t
        self._show_ns = t
        if state_t >= 0:
            states = self._index.state_at(state_t)
            out.extend(StateSync(now, dev, st, t) for dev, st in states.devices.items())
        log.info("loaded to show time", extra={"show": tl.show, "show_ns": t, "cue": cmd.cue, "now": now})
        return out

    def _seek(self, cmd: Seek, now: int) -> list[Output]:
        out: list[Output] = []
        tl = self._timeline
        if cmd.cue is not None:
            cue = tl.cue_by_id[cmd.cue]
            t = cue.start_ns
        else:
            assert cmd.show_ns is not None
            t = cmd.show_ns
        states = self._index.state_at(t)
        out.extend(StateSync(now, dev, st, t) for dev, st in states.devices.items())
        self._show_ns = t
        i = bisect_right(self._seq_starts, t) - 1
        inside = i >= 0 and tl.sequences[i].start_ns < t < tl.sequences[i].end_ns
        if not inside:
            nxt = bisect_left(self._seq_starts, t)
            self._set_standby(nxt if nxt < len(tl.sequences) else None, now)
            self._current = None
            return out
        if self._state is State.ARMED:
            self._set_standby(i, now, pos=t)
            return out
        self._start(i, now, t, first_cue=0, inclusive=False)
        if self._state is State.PLAYING:
            out.extend(self._drain(now))
        return out
