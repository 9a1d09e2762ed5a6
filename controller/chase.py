"""Chasing an external timecode: a sans-I/O state machine fed (arrival, timecode).

Theory of operation
-------------------
A source (Art-Net TimeCode, MTC) sends the time it is showing; each arrives late by a network
or MIDI delay that varies. :class:`Chaser` takes each arrival with :meth:`Chaser.receive` and
answers two questions: *what show time is it now* (:meth:`Chaser.show_ns_at`) and *what must
the show do* (the :class:`ChaseEvent` list each call returns):

* **Locking.** A frame is *consistent* when it is where the previous one predicts (its time
  advanced by the arrival gap, within ``tolerance_frames``). After ``lock_frames`` consistent
  frames the chaser locks: :class:`Locked` with the show time at that instant.
* **The clock.** While locked the show time is ``now + offset``, where ``offset`` is the largest
  ``timecode - arrival`` over the last ``window`` frames: the frame that arrived soonest after it
  was sent sets the clock, so delay jitter does not move it (a lower envelope of the delay).
* **Freewheel.** No consistent frame for ``dropout_ns``: :class:`Freewheeling`; the clock runs
  on at rate 1 from the last offset. A consistent frame within ``freewheel_ns`` resumes the lock
  silently (:class:`Relocked`, no seek).
* **Loss.** Freewheeling past ``freewheel_ns``: :class:`Lost` carrying the policy (``hold``:
  pause the show where it is; ``stop``: stop it). A later source locks again from scratch.
* **Jump.** Frames that break the line while locked (the source was located elsewhere) start a
  new line; once it has ``lock_frames`` consistent frames, :class:`Jumped` with the new show time
  (the show seeks, sending devices the catch-up state). A single stray frame never seeks.

A source that stops (or repeats one frame) sends nothing consistent: it is a dropout.

:func:`commands_for` turns an event into transport commands for the player, given the
transport's state. Every call takes ``now``; nothing reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from controller.playback import Command, Go, LoadAt, Pause, Resume, Seek, State, Stop

__all__ = [
    "ChaseEvent",
    "ChaseOptions",
    "ChaseState",
    "Chaser",
    "Freewheeling",
    "Jumped",
    "Locked",
    "Lost",
    "Relocked",
    "commands_for",
]

MS = 1_000_000
S = 1_000_000_000


class ChaseState(StrEnum):
    """Where the chaser stands."""

    IDLE = "idle"  # no source yet, or lost
    LOCKING = "locking"  # consistent frames arriving, not yet lock_frames of them
    LOCKED = "locked"
    FREEWHEEL = "freewheel"  # locked, but the source fell silent; the clock runs on


@dataclass(frozen=True, slots=True)
class ChaseOptions:
    """How the chaser judges a source (see the module docstring)."""

    frame_ns: int = 40 * MS  # one frame of the source (25 fps); set from its rate
    lock_frames: int = 4
    tolerance_frames: float = 1.5
    dropout_ns: int = 120 * MS  # silence that starts the freewheel
    freewheel_ns: int = 2 * S  # how long the clock runs on without the source
    on_loss: str = "hold"  # "hold" (pause where it is) or "stop"
    window: int = 16  # frames over which the offset's lower envelope is taken

    def __post_init__(self) -> None:
        if self.on_loss not in ("hold", "stop"):
            raise ValueError(f"on_loss {self.on_loss!r}: use hold or stop")


@dataclass(frozen=True, slots=True)
class Locked:
    """The chaser locked; the show should be at ``show_ns`` now."""

    show_ns: int


@dataclass(frozen=True, slots=True)
class Jumped:
    """The source was located elsewhere; the show should seek to ``show_ns`` now."""

    show_ns: int


@dataclass(frozen=True, slots=True)
class Freewheeling:
    """The source fell silent; the show runs on."""


@dataclass(frozen=True, slots=True)
class Relocked:
    """The source came back on the line it left; nothing to do."""


@dataclass(frozen=True, slots=True)
class Lost:
    """Freewheeled too long: ``policy`` is ``hold`` or ``stop``."""

    policy: str


ChaseEvent = Locked | Jumped | Freewheeling | Relocked | Lost


class Chaser:
    """The chase state machine (see the module docstring)."""

    def __init__(self, options: ChaseOptions | None = None) -> None:
        self.options = options or ChaseOptions()
        self.state = ChaseState.IDLE
        self._offsets: deque[int] = deque(maxlen=self.options.window)  # timecode - arrival, locked line
        self._offset: int | None = None  # the clock's offset (locked or freewheeling)
        self._last_good: int | None = None  # arrival of the last frame on the locked line
        # a candidate line (locking, or a jump while locked): last (arrival, tc) and its length
        self._cand: tuple[int, int] | None = None
        self._cand_n = 0
        self._cand_offsets: list[int] = []
        self.frames = 0
        self.inconsistent = 0  # frames off every line (glitches, jumps)
        self.locks = 0
        self.jumps = 0

    # -- queries -----------------------------------------------------------------------------

    def show_ns_at(self, now: int) -> int | None:
        """The chased show time at ``now``, or ``None`` when not locked (nor freewheeling)."""
        if self._offset is None or self.state not in (ChaseState.LOCKED, ChaseState.FREEWHEEL):
            return None
        return now + self._offset

    def next_deadline(self) -> int | None:
        """When :meth:`poll` has something to decide (the dropout, then the loss)."""
        if self._last_good is None:
            return None
        if self.state is ChaseState.LOCKED:
            return self._last_good + self.options.dropout_ns
        if self.state is ChaseState.FREEWHEEL:
            return self._last_good + self.options.freewheel_ns
        return None

    # -- input -------------------------------------------------------------------------------

    def receive(self, now: int, tc_ns: int) -> list[ChaseEvent]:
        """A timecode frame (its real time, :attr:`controller.timecode.Timecode.ns`) arrived at
        ``now``; returns what the show must do."""
        self.frames += 1
        events = self.poll(now)
        opts = self.options
        tol = opts.tolerance_frames * opts.frame_ns
        offset = tc_ns - now
        on_line = self._offset is not None and abs(offset - self._offset) <= tol
        if self.state in (ChaseState.LOCKED, ChaseState.FREEWHEEL) and on_line:
            if self.state is ChaseState.FREEWHEEL:  # the source is back where its line predicts
                self.state = ChaseState.LOCKED
                self._offsets.clear()
                events.append(Relocked())
            self._on_line(now, offset)
            self._cand = None
            self._cand_n = 0
            return events
        # Off the locked line (or nothing locked): grow a candidate line.
        if self._cand is not None and abs((tc_ns - self._cand[1]) - (now - self._cand[0])) <= tol \
                and tc_ns != self._cand[1]:
            self._cand_n += 1
            self._cand_offsets.append(offset)
        else:
            if self._cand is not None or self.state is ChaseState.LOCKED:
                self.inconsistent += 1
            self._cand_n = 1
            self._cand_offsets = [offset]
        self._cand = (now, tc_ns)
        if self.state is ChaseState.IDLE:
            self.state = ChaseState.LOCKING
        if self._cand_n >= opts.lock_frames:
            was_locked = self.state in (ChaseState.LOCKED, ChaseState.FREEWHEEL)
            self._offsets.clear()
            self._offsets.extend(self._cand_offsets[-opts.window:])
            self._offset = max(self._offsets)
            self._last_good = now
            self.state = ChaseState.LOCKED
            self._cand = None
            self._cand_n = 0
            show = now + self._offset
            if was_locked:
                self.jumps += 1
                events.append(Jumped(show))
            else:
                self.locks += 1
                events.append(Locked(show))
        return events

    def _on_line(self, now: int, offset: int) -> None:
        self._offsets.append(offset)
        self._offset = max(self._offsets)
        self._last_good = now

    def poll(self, now: int) -> list[ChaseEvent]:
        """Time passing: the dropout and the loss (call at :meth:`next_deadline`)."""
        events: list[ChaseEvent] = []
        last = self._last_good
        if last is None:
            return events
        if self.state is ChaseState.LOCKED and now - last > self.options.dropout_ns:
            self.state = ChaseState.FREEWHEEL
            events.append(Freewheeling())
        if self.state is ChaseState.FREEWHEEL and now - last > self.options.freewheel_ns:
            self.state = ChaseState.IDLE
            self._offset = None
            self._last_good = None
            self._offsets.clear()
            self._cand = None
            self._cand_n = 0
            events.append(Lost(self.options.on_loss))
        return events


def commands_for(event: ChaseEvent, state: State) -> list[Command]:
    """The transport commands that make the show follow ``event``, given its ``state``.

    A lock arms the show at the chased time and presses GO (or, when it already plays, seeks;
    when it was held by a loss, seeks and resumes); a jump seeks; a loss holds (pauses) or stops.
    """
    if isinstance(event, Locked | Jumped):
        if state in (State.PLAYING,):
            return [Seek(show_ns=event.show_ns)]
        if state is State.PAUSED:
            return [Seek(show_ns=event.show_ns), Resume()]
        return [LoadAt(show_ns=event.show_ns), Go()]
    if isinstance(event, Lost):
        if state is State.PLAYING:
            return [Pause()] if event.policy == "hold" else [Stop()]
        if state is State.PAUSED and event.policy == "stop":
            return [Stop()]
    return []
