"""The journal: an append-only file of framed, checksummed records, safe against a torn tail.

Theory of operation
-------------------
A show controller that loses power mid-show must come back knowing what it had done: which
transport commands it took (with their ``now``) and which keyed sends it released. That log is the
core's input, not a dump of its objects (STYLE.md, "Durable state"): replaying it into a fresh core
rebuilds the same state. This module is only the file: records in, records out, intact.

File format (all integers big-endian)::

    header   b"MADANGJ1"                        8 bytes: magic and format version 1
    record   length  u32                        bytes of the payload (at most MAX_RECORD)
             crc     u32                        zlib.crc32 of the payload (ITU-T V.42 / IEEE 802.3)
             payload JSON object                {"k": kind, ...fields}

A record is written whole with one ``write`` and made durable with ``fsync`` where it matters
(:meth:`Journal.append` ``sync=True``: transport commands; sends may be batched). Power can still
cut a write in the middle. On reading, the first record that is not whole and intact (too short
for its frame, a length beyond :data:`MAX_RECORD`, a checksum that does not match, a payload that
is not a JSON object) ends the journal: it and everything after it are dropped, never guessed at,
and :class:`JournalContents` says where and why. Opening a journal for appending cuts that tail
off first, so new records never follow garbage.

Compaction (:meth:`Journal.compact`) writes the records to keep (typically one checkpoint record
and what followed it) to a new file, fsyncs it, renames it over the old one and fsyncs the
directory: at every instant the path holds either the old journal or the new one, whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from controller.records import summarise
from venues.errors import MadangError

__all__ = [
    "JOURNAL_FILE",
    "MAGIC",
    "MAX_RECORD",
    "Journal",
    "JournalContents",
    "JournalError",
    "LastRun",
    "ShowJournal",
    "default_journal_dir",
    "last_run",
    "read_journal",
]

JOURNAL_FILE = "journal.madang"
"""The journal's file name inside its folder (one folder per show)."""

MAGIC = b"MADANGJ1"
MAX_RECORD = 1 << 20  # a record larger than 1 MiB is taken as a torn or corrupt length
_FRAME = struct.Struct(">II")

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


class JournalError(MadangError, OSError):
    """A journal that cannot be used at all (not a journal, unreadable, unwritable)."""

    def __init__(self, path: Path, reason: str, hint: str = "") -> None:
        super().__init__(str(path), reason)
        self.path = path
        self.reason = reason
        self.hint = hint

    def __str__(self) -> str:
        hint = f"; {self.hint}" if self.hint else ""
        return f"journal {self.path}: {self.reason}{hint}"


@dataclass(frozen=True, slots=True)
class JournalContents:
    """What a journal holds: its intact ``records`` in order, the byte offset where the intact
    part ends (``end``), and, when something followed that could not be read, ``dropped`` bytes
    and the ``reason`` (a torn or corrupt tail)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    end: int = len(MAGIC)
    dropped: int = 0
    reason: str = ""


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One framed record (see the module docstring). Raises ``ValueError`` past :data:`MAX_RECORD`."""
    payload = _enc.encode(record)
    if len(payload) > MAX_RECORD:
        raise ValueError(f"a journal record of {len(payload)} bytes is over the {MAX_RECORD} limit")
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def decode_records(data: bytes) -> JournalContents:
    """Every intact record of a journal's bytes, up to the first that is not (pure)."""
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):  # a header torn by power loss right after creation
            return JournalContents([], len(data), 0, "" if not data else "torn header")
        raise ValueError("not a Madang journal (no MADANGJ1 header)")
    records: list[dict[str, Any]] = []
    pos = len(MAGIC)
    n = len(data)
    reason = ""
    while pos < n:
        if n - pos < _FRAME.size:
            reason = f"torn record frame at byte {pos}"
            break
        length, crc = _FRAME.unpack_from(data, pos)
        if length > MAX_RECORD:
            reason = f"record length {length} at byte {pos} is over the limit"
            break
        start = pos + _FRAME.size
        if n - start < length:
            reason = f"torn record at byte {pos} ({n - start} of {length} bytes)"
            break
        payload = data[start : start + length]
        if zlib.crc32(payload) != crc:
            reason = f"checksum mismatch in the record at byte {pos}"
            break
        try:
            body = _dec.decode(payload)
        except msgspec.DecodeError:
            body = None
        if not isinstance(body, dict):
            reason = f"the record at byte {pos} is not a JSON object"
            break
        records.append(body)
        pos = start + length
    return JournalContents(records, pos, n - pos, reason)


def read_journal(path: Path) -> JournalContents:
    """The intact records of the journal at ``path`` (an absent file is an empty journal)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return JournalContents([], 0)
    except OSError as err:
        raise JournalError(path, f"cannot be read: {err.strerror or err}") from err
    try:
        return decode_records(data)
    except ValueError as err:
        raise JournalError(path, str(err), "point --journal at a folder of Madang's own") from err


class Journal:
    """The journal at ``path``, open for appending. Use :func:`read_journal` (or
    :attr:`contents`, read at open) to resume, then :meth:`append` as the show goes on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.contents = read_journal(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise JournalError(path, f"cannot be opened: {err.strerror or err}") from err
        if self.contents.end < len(MAGIC):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, MAGIC, 0)
            self._end = len(MAGIC)
        else:
            self._end = self.contents.end
            if self.contents.dropped:
                os.ftruncate(self._fd, self._end)  # never append after a torn tail
        os.fsync(self._fd)
        self.appended = 0

    def append(self, record: Mapping[str, Any], *, sync: bool = False) -> None:
        """Write one record at the end; ``sync``: make it (and all before it) durable now."""
        self.append_many([record], sync=sync)

    def append_many(self, records: Iterable[Mapping[str, Any]], *, sync: bool = False) -> None:
        """Write records in one ``write``; ``sync``: make them durable now."""
        data = b"".join(encode_record(r) for r in records)
        if data:
            os.pwrite(self._fd, data, self._end)
            self._end += len(data)
            self.appended += 1
        if sync:
            os.fsync(self._fd)

    def sync(self) -> None:
        """Make everything appended so far durable."""
        os.fsync(self._fd)

    @property
    def size(self) -> int:
        """Bytes in the journal (header included)."""
        return self._end

    def compact(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Replace the journal with ``records`` (a checkpoint and what must follow it), atomically."""
        tmp = self.path.with_name(self.path.name + ".compact")
        data = MAGIC + b"".join(encode_record(r) for r in records)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR)
        self._end = len(data)

    def close(self) -> None:
        """Sync and close."""
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


def default_journal_dir(show_id: str) -> Path:
    """Where ``madang run`` keeps a show's journal unless told: ``$XDG_STATE_HOME/madang/journals/
    <show>`` (``~/.local/state/...`` when ``XDG_STATE_HOME`` is not set)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "madang" / "journals" / show_id


@dataclass(frozen=True, slots=True)
class LastRun:
    """What a journal says about the run that wrote it (:func:`last_run`)."""

    records: list[dict[str, Any]]
    show: str | None
    state: str | None  # the transport state after the last journalled command
    cue: str | None  # the cue of the last cue message sent (or of the last GO to a named cue)
    last_ns: int | None  # the instant of the last record
    ended: bool  # the run wrote its end record (it was not cut short)
    term: int
    dropped: int  # bytes of a torn or corrupt tail, ignored
    reason: str

    @property
    def live(self) -> bool:
        """The show was playing (or paused) when the journal stops, without an end: the run was
        cut short mid-show, and ``--resume`` carries it on."""
        return not self.ended and self.state in ("playing", "paused")


def last_run(path: Path) -> LastRun:
    """Read the journal at ``path`` for a resume (an absent file is an empty run)."""
    contents = read_journal(path)
    run = summarise(contents.records)
    return LastRun(
        contents.records, run.show, run.state, run.cue, run.last_ns, run.ended, run.term,
        contents.dropped, contents.reason,
    )  # fmt: skip


_KEPT = frozenset({"start", "cmd", "event", "degrade", "term"})
"""Record kinds a compaction keeps whole: the replay needs every one of them."""


class ShowJournal:
    """A run's journal in its folder: the core's records appended before their sends leave,
    compacted at checkpoints so it stays small, locked against a second writer.

    ``write`` fsyncs when a batch holds anything but ``sent`` records (a transport command must
    survive a power cut; a ``sent`` record lost with one only makes the resume report a cue as
    missed that may have fired, never fire it twice). A checkpoint (every ``checkpoint_every_ns``
    once the file is over ``compact_over`` bytes) rewrites the journal as: the records the replay
    needs (start, commands, events, degrades, terms), a ``checkpoint`` record whose
    ``settled_before`` is ``settle_ns`` before now, and the ``sent`` keys due after it.
    """

    def __init__(
        self,
        folder: Path,
        *,
        fresh: bool,
        checkpoint_every_ns: int = 10_000_000_000,
        settle_ns: int = 5_000_000_000,
        compact_over: int = 256 * 1024,
        keep_old: int = 5,
    ) -> None:
        self.folder = folder
        self.path = folder / JOURNAL_FILE
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._lock = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise JournalError(
                folder,
                f"cannot be created: {err.strerror or err}",
                "pass --journal a folder you can write to, or --no-journal",
            ) from err
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(self._lock)
            raise JournalError(
                folder,
                "is in use by another madang run of this show",
                "stop that run first, or give this one its own folder with --journal DIR",
            ) from err
        self.archived: Path | None = None
        if fresh and self.path.exists() and self.path.stat().st_size > len(MAGIC):
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.path.stat().st_mtime))
            self.archived = folder / f"journal-{stamp}.madang"
            n = 1
            while self.archived.exists():
                n += 1
                self.archived = folder / f"journal-{stamp}-{n}.madang"
            os.replace(self.path, self.archived)
            olds = sorted(folder.glob("journal-*.madang"), key=lambda p: p.stat().st_mtime)
            for old in olds[:-keep_old] if keep_old else olds:
                with contextlib.suppress(OSError):
                    old.unlink()
        self.journal = Journal(self.path)
        self.checkpoint_every_ns = checkpoint_every_ns
        self.settle_ns = settle_ns
        self.compact_over = compact_over
        self._kept: list[Mapping[str, Any]] = [
            r for r in self.journal.contents.records if r.get("k") in _KEPT
        ]
        self._sent: list[Mapping[str, Any]] = [
            r for r in self.journal.contents.records if r.get("k") == "sent"
        ]
        self._next_checkpoint: int | None = None
        self._left: Mapping[str, Any] | None = None  # the ``left`` after the last ``sent``, if any
        self.checkpoints = 0

    def write(self, records: list[dict[str, Any]], now: int) -> None:
        """Append the core's records (before the sends of the same poll leave)."""
        if records:
            durable = False
            for r in records:
                k = r.get("k")
                if k == "sent":
                    self._sent.append(r)
                    self._left = None
                elif k == "left":
                    self._left = r
                else:
                    durable = True
                    self._kept.append(r)
            self.journal.append_many(records, sync=durable)
        if self._next_checkpoint is None:
            self._next_checkpoint = now + self.checkpoint_every_ns
        elif now >= self._next_checkpoint:
            self._next_checkpoint = now + self.checkpoint_every_ns
            if self.journal.size > self.compact_over:
                self.checkpoint(now)

    def checkpoint(self, now: int) -> None:
        """Compact: keep what a replay needs and the keys due from ``now - settle_ns`` on."""
        settled = now - self.settle_ns
        sent: list[Mapping[str, Any]] = []
        for r in self._sent:
            sends = [s for s in r.get("sends", ()) if isinstance(s, list) and len(s) > 3 and s[3] >= settled]
            if sends:
                sent.append({**r, "sends": sends})
        self._sent = sent
        mark = {"k": "checkpoint", "at": now, "settled_before": settled}
        # The last sends' ``left`` stays last: without it a replay takes them for cut short.
        self.journal.compact([*self._kept, mark, *sent, *([self._left] if self._left else [])])
        self.checkpoints += 1

    @property
    def size(self) -> int:
        """Bytes in the journal now."""
        return self.journal.size

    def close(self, *, end: Mapping[str, Any] | None = None) -> None:
        """Write the ``end`` record (a clean exit), sync, close, unlock."""
        if end is not None:
            self.journal.append(end, sync=True)
        self.journal.close()
        if self._lock >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = -1
