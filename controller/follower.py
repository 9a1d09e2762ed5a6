"""Following a live controller from its journal, and taking over from it: the shadow.

Theory of operation
-------------------
A core that follows (a hot standby, or a controller restarted with ``--resume`` reading the
journal its predecessor wrote) replays the live controller's inputs into its own engine
(:meth:`~controller.core.ControllerCore.follow`). Its engine then produces the same outputs, under
the same idempotency keys, as the live one did; the follower sends none of them. The
:class:`Shadow` keeps them, with what the journal says actually went on the wire (``sent``
records), until the follower takes over at ``now``
(:meth:`~controller.core.ControllerCore.take_over`). Then each output the engine produced is
exactly one of:

* **to come** (its instant is at or after ``now``): sent under its own key. The live controller
  may have sent it ahead already; a device executes a key once, so a copy is harmless, and a
  send that was journalled but never left (power cut between the two) is not lost;
* **done** (its instant has passed and a ``sent`` record names its key, or it is older than the
  last checkpoint's ``settled_before``): it left before the outage; nothing to do;
* **missed** (its instant passed while no controller was live and no ``sent`` record names
  it): reported as missed (:class:`Missed`), never fired late; the devices it targeted are sent
  the catch-up state of the show at ``now`` (what they would be showing), under a new op key;
* **uncertain** (a ``sent`` record names it but no ``left`` record follows: the live controller
  died while sending that poll's messages, so some devices may have got it and some not): past
  its instant, reported missed with ``uncertain``; still to come, sent again like any other.

Streamed fade frames are not reported one by one: those still to come are sent, those past are
covered by the catch-up state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from controller.delivery import Key
from controller.engine import Cancel, Fire, Frame, Output, Ramp

__all__ = ["Missed", "Shadow", "Takeover"]


@dataclass(frozen=True, slots=True)
class Missed:
    """A keyed action whose instant passed while no controller was live, never sent."""

    key: Key
    at_ns: int  # the instant it was due (show clock)
    devices: tuple[str, ...]
    # The journal says it was being sent when the live controller died (its ``sent`` record has
    # no ``left`` after it): some of its devices may have got it, some not.
    uncertain: bool = False

    def as_dict(self) -> dict[str, object]:
        """For reports: ``{"show", "cue", "seq", "at_ns", "devices", "uncertain"}``."""
        return {
            "show": self.key[0],
            "cue": self.key[1],
            "seq": self.key[2],
            "at_ns": self.at_ns,
            "devices": list(self.devices),
            "uncertain": self.uncertain,
        }


@dataclass(slots=True)
class Takeover:
    """What taking over did: the term claimed, what was missed, what was already done, what
    was sent again under its key, and the devices sent catch-up state."""

    at_ns: int
    term: int
    replayed: int = 0  # journal records followed before taking over
    missed: list[Missed] = field(default_factory=list)
    done: int = 0  # keys due before now that the previous controller had sent
    to_come: int = 0  # keys still to come, sent (again) under their own keys
    caught_up: list[str] = field(default_factory=list)  # devices sent catch-up state
    mismatches: int = 0  # journalled commands the replay did not end the same way (should be 0)
    last_record_ns: int | None = None  # the instant of the last record followed

    def as_dict(self) -> dict[str, object]:
        """For the report and the log."""
        return {
            "at_ns": self.at_ns,
            "term": self.term,
            "replayed": self.replayed,
            "missed": [m.as_dict() for m in self.missed],
            "done": self.done,
            "to_come": self.to_come,
            "caught_up": len(self.caught_up),
            "mismatches": self.mismatches,
            "outage_ns": None if self.last_record_ns is None else self.at_ns - self.last_record_ns,
        }


class Shadow:
    """The outputs a following engine produced, and the keys the journal says were sent."""

    __slots__ = ("frames", "outputs", "sent", "settled_before", "unconfirmed")

    def __init__(self) -> None:
        self.outputs: dict[Key, Fire | Ramp] = {}
        self.frames: list[Frame] = []
        self.sent: dict[Key, int] = {}  # key -> its latest due instant
        self.settled_before: int | None = None
        self.unconfirmed: set[Key] = set()  # keys of the last sent record with no ``left`` yet

    def note(self, outputs: Iterable[Output]) -> None:
        """Outputs the following engine produced (what the live one sent, or will)."""
        for o in outputs:
            if isinstance(o, Fire | Ramp):
                self.outputs[o.key] = o
            elif isinstance(o, Frame):
                self.frames.append(o)
            elif isinstance(o, Cancel) and o.keys:
                for k in o.keys:
                    out = self.outputs.get(k)
                    if out is not None and out.at > o.at:
                        del self.outputs[k]
                self.frames = [f for f in self.frames if not (f.key in o.keys and f.at > o.at)]

    def begin_sent(self) -> None:
        """A ``sent`` record begins: the one before it was followed by more, so it left."""
        self.unconfirmed.clear()

    def note_sent(self, key: Key, due_ns: int) -> None:
        """The journal says ``key`` is going on the wire (due at ``due_ns``): certain once the
        ``left`` record after it comes (:meth:`note_left`), or another ``sent`` record."""
        self.sent[key] = max(due_ns, self.sent.get(key, due_ns))
        self.unconfirmed.add(key)

    def note_left(self) -> None:
        """The sends of the last ``sent`` record all left."""
        self.unconfirmed.clear()

    def prune(self, before_ns: int) -> None:
        """Forget what was due before ``before_ns``: settled long ago (bounded memory)."""
        self.outputs = {k: o for k, o in self.outputs.items() if o.at >= before_ns}
        self.frames = [f for f in self.frames if f.at >= before_ns]
        self.sent = {k: t for k, t in self.sent.items() if t >= before_ns}

    def split(self, now: int) -> tuple[list[Output], list[Fire | Ramp], list[Fire | Ramp], int]:
        """At takeover: (outputs to send, keyed outputs missed, those of them uncertain, count of
        keys already done)."""
        to_come: list[Output] = []
        missed: list[Fire | Ramp] = []
        uncertain: list[Fire | Ramp] = []
        done = 0
        settled = self.settled_before
        for key, o in sorted(self.outputs.items(), key=lambda kv: (kv[1].at, kv[0][2])):
            if o.at >= now:
                to_come.append(o)
            elif key in self.unconfirmed:
                uncertain.append(o)
            elif key in self.sent or (settled is not None and o.at < settled):
                done += 1
            else:
                missed.append(o)
        to_come.extend(f for f in self.frames if f.at >= now)
        to_come.sort(key=lambda o: o.at)
        self.outputs.clear()
        self.frames.clear()
        self.unconfirmed.clear()
        return to_come, missed, uncertain, done
