"""Journal records: what goes into the core, as plain JSON objects (the journal's vocabulary).

Theory of operation
-------------------
The journal (:mod:`controller.journal`) is a log of the core's inputs, not a dump of its objects
(STYLE.md, "Durable state"): replaying the records into a fresh core, in order, rebuilds the same
transport (the same anchors, the same take, so the same idempotency keys). A record is a dict
``{"k": kind, ...}``; this module makes and reads them, and nothing else knows their fields.

=============  ==============================================================================
``start``      a run began: the show (``show``, ``hash`` of the compiled timeline), the
               controller (``controller``), its ``term``, and the engine settings the replay
               must share (``go_delay_ns``, ``lookahead_ns``)
``cmd``        a transport command the core accepted at ``at``: ``cmd`` (:func:`encode_command`),
               and what it led to (``state``, ``take``) so a replay can check itself
``event``      a message delivered to a listening event trigger at ``at`` (``transport``,
               ``name``, ``sender``; ``present``: the audience present, for a share trigger)
``audience``   the phones present for a listening audience share trigger changed at ``at``
               (``present``; ``gone``: phones that left, their taps no longer count)
``degrade``    devices the operator chose to play on receipt (``devices``)
``sent``       keyed sends released for the wire at ``at``: ``sends``, one
               ``[show, cue, seq, due_ns, [targets]]`` per key (written *before* they leave)
``left``       every send of the last ``sent`` record left (written after them): a ``sent``
               record with no ``left`` after it was cut short by the controller's death
``term``       the controller claimed a new ``term`` at ``at`` (a takeover or a resume)
``checkpoint`` written when the journal is compacted at ``at``: every key due before
               ``settled_before`` was dealt with (sent, or reported missed) and its ``sent``
               record was dropped
``end``        the run ended at ``at`` with the transport in ``state`` (a clean exit; a journal
               without one was cut short: the show may have been live)
=============  ==============================================================================

A record that this version does not know is skipped by a replay (forward compatibility); a known
record with a bad field raises :class:`RecordError`, which the reader reports with the record's
index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from controller.playback import (
    Arm,
    Command,
    Go,
    LoadAt,
    Panic,
    Pause,
    PlayheadNext,
    PlayheadPrevious,
    Reset,
    Resume,
    Seek,
    SetRate,
    Stop,
    TogglePause,
)
from controller.playback import Load as LoadCmd
from cues.timeline import Timeline
from venues.errors import MadangError

__all__ = [
    "JOURNALLED",
    "LEFT",
    "RecordError",
    "RunSummary",
    "cmd_record",
    "decode_command",
    "encode_command",
    "sent_record",
    "summarise",
    "timeline_hash",
]

JOURNALLED: tuple[type, ...] = (
    LoadCmd,
    Arm,
    Reset,
    LoadAt,
    Go,
    Pause,
    Resume,
    TogglePause,
    Stop,
    Seek,
    SetRate,
    Panic,
    PlayheadNext,
    PlayheadPrevious,
)
"""The operator commands a journal records (the engine's internal ones are replayed by polling)."""

_BY_NAME: dict[str, type] = {c.__name__: c for c in JOURNALLED}

LEFT: dict[str, object] = {"k": "left"}
"""The ``left`` record: the sends of the ``sent`` record before it all left."""


class RecordError(MadangError, ValueError):
    """A journal record that cannot be read: ``what`` is wrong with it."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what

    def __str__(self) -> str:
        return self.what


def encode_command(cmd: Command) -> dict[str, Any]:
    """``{"type": "Go", "cue": ..., "force": ...}``: a command as JSON (a ``Load`` of a timeline
    other than the engine's own cannot be journalled: it is recorded as reloading its own)."""
    name = type(cmd).__name__
    if name not in _BY_NAME:
        raise RecordError(f"the command {name} is not journalled")
    if isinstance(cmd, LoadCmd):
        return {"type": name}
    fields = {f: getattr(cmd, f) for f in getattr(cmd, "__slots__", ())}
    return {"type": name, **fields}


def decode_command(data: object) -> Command:
    """The command of :func:`encode_command` (raises :class:`RecordError`)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("type"), str):
        raise RecordError(f"a command must be an object with a type, got {data!r:.80}")
    cls = _BY_NAME.get(data["type"])
    if cls is None:
        raise RecordError(f"unknown command type {data['type']!r:.40}")
    fields = {k: v for k, v in data.items() if k != "type"}
    try:
        cmd: Command = cls(**fields)
    except TypeError as err:
        raise RecordError(f"command {data['type']}: {err}") from err
    return cmd


def cmd_record(cmd: Command, at: int, state: str, take: int) -> dict[str, Any]:
    """The ``cmd`` record of an accepted command."""
    return {"k": "cmd", "at": at, "cmd": encode_command(cmd), "state": state, "take": take}


def sent_record(at: int, sends: Sequence[tuple[str, str, int, int, list[str]]]) -> dict[str, Any]:
    """The ``sent`` record of keyed sends released at ``at``."""
    return {"k": "sent", "at": at, "sends": [list(s) for s in sends]}


def timeline_hash(timeline: Timeline) -> str:
    """A short fingerprint of a compiled show: a journal replays only into the same show."""
    h = hashlib.blake2b(digest_size=12)
    h.update(timeline.show.encode())
    h.update(str(timeline.duration_ns).encode())
    for a in timeline.actions:
        h.update(msgspec.json.encode([a.cue, a.seq, a.at_ns, list(a.devices), repr(a.op)]))
    for s in timeline.sequences:
        h.update(msgspec.json.encode([s.start_ns, s.end_ns, list(s.cues)]))
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a journal's records say about the run that wrote them (:func:`summarise`)."""

    show: str | None
    state: str | None  # the transport state after the last journalled command (or at the end)
    cue: str | None  # the cue of the last cue message sent (or of the last GO to a named cue)
    last_ns: int | None  # the instant of the last record
    ended: bool  # the run wrote its end record (it was not cut short)
    term: int  # the highest term claimed


def summarise(records: Iterable[Mapping[str, Any]]) -> RunSummary:
    """The show, the state, the cue, the last instant, whether it ended and its term."""
    show: str | None = None
    state: str | None = None
    cue: str | None = None
    last: int | None = None
    ended = False
    term = 0
    for r in records:
        at = r.get("at")
        if isinstance(at, int):
            last = at if last is None else max(last, at)
        k = r.get("k")
        if k == "start":
            show = r.get("show") if isinstance(r.get("show"), str) else show
            ended = False
        elif k == "cmd":
            state = r.get("state") if isinstance(r.get("state"), str) else state
            cmd = r.get("cmd")
            if isinstance(cmd, dict) and cmd.get("type") == "Go":
                cue = cmd.get("cue") if isinstance(cmd.get("cue"), str) else cue
        elif k == "sent":
            keyed = [
                s for s in r.get("sends", ()) if isinstance(s, list) and len(s) > 2 and isinstance(s[2], int)
            ]
            cues = [s[1] for s in keyed if s[2] >= 0 and isinstance(s[1], str)]
            cue = cues[-1] if cues else cue
        elif k == "end":
            ended = True
            state = r.get("state") if isinstance(r.get("state"), str) else state
        if k in ("start", "term") and isinstance(r.get("term"), int):
            term = max(term, r["term"])
    return RunSummary(show, state, cue, last, ended, term)
