"""What every simulated device executed, and when, in true time: a compact columnar log.

One :class:`Recorder` serves a whole venue. Each execution is one row: the device's index, what
kind of thing it executed (a cue op, an OSC message, a fade, a catch-up state, a panic), the cue
(or OSC address) and sequence number, the parameter or topic it set, the true instant and the
device's local instant, the value, and the controller term the command came with (``0``: it
carried none). Integer columns are ``array('q')`` (8 bytes a row), strings are interned once, so
ten thousand devices times a show's cues stays in megabytes; ``columns()`` hands NumPy arrays to
whoever computes spreads.

Two kinds of row are not executions: ``rx``, when a keyed cue first arrived (the baseline of
"execute on receipt"), and ``stale_term``, a command a device dropped because its term was lower
than the highest it had seen (docs/protocol.md, "Controller terms (hot standby)"; ``term`` is the
dropped message's). :meth:`Recorder.stale_term` counts the drops per device and
:meth:`Recorder.term_regressions` lists any execution under a lower term than one the same device
had executed before: what a test of a controller takeover asserts is empty ("no device ever
executed a deposed controller's command after the new controller's").
"""

from __future__ import annotations

import dataclasses
import json
import os
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["EXECUTIONS", "RECEIPT", "STALE_TERM", "Fire", "RecordWriter", "Recorder"]

EXECUTIONS = ("cue", "osc", "fade", "state", "panic")  # what a device did
RECEIPT = "rx"  # when a device first received a cue (the baseline "execute on receipt" would give)
STALE_TERM = "stale_term"  # a command dropped for a term lower than the device's floor (not executed)


@dataclass(frozen=True, slots=True)
class Fire:
    """One execution by one device, read back from a :class:`Recorder`.

    ``what`` is ``"cue"`` (an app cue op), ``"osc"`` (an OSC message), ``"fade"`` (start of a
    ramp), ``"state"`` (catch-up), ``"panic"``, or two rows that are not executions: ``"rx"``, the
    instant a keyed cue first arrived (what executing on receipt would have given), and
    ``"stale_term"``, a command dropped because its term was below the device's floor. ``key`` is
    the cue id (app devices) or the show of a ``/madang/key`` (OSC; ``""`` without a key); ``seq``
    is ``-1`` when there is none.
    ``param`` is the OSC address, the parameter, or the substituted MQTT topic (for a
    ``stale_term`` row: what was dropped, ``cue``, ``clock``, ``controller`` or ``osc``).
    ``term`` is the controller term the command came with, ``0`` when it carried none.
    """

    device: int
    device_id: str
    what: str
    key: str
    seq: int
    param: str
    true_ns: int
    local_ns: int
    value: object
    term: int = 0


class Recorder:
    """A columnar log of executions. Devices call :meth:`record`; tests and reports read it."""

    def __init__(self) -> None:
        self._device = array("q")
        self._what = array("q")
        self._key = array("q")
        self._seq = array("q")
        self._param = array("q")
        self._true = array("q")
        self._local = array("q")
        self._term = array("q")
        self._values: list[object] = []
        self._strings: list[str] = []
        self._index: dict[str, int] = {}
        self.device_ids: list[str] = []

    def _intern(self, s: str) -> int:
        i = self._index.get(s)
        if i is None:
            i = self._index[s] = len(self._strings)
            self._strings.append(s)
        return i

    def register(self, device_id: str) -> int:
        """Give a device its index (stable: registering again returns the same index)."""
        key = "\x00dev:" + device_id
        i = self._index.get(key)
        if i is None:
            self._index[key] = i = len(self.device_ids)
            self.device_ids.append(device_id)
        return i

    def record(
        self,
        device: int,
        what: str,
        key: str,
        seq: int,
        param: str,
        true_ns: int,
        local_ns: int,
        value: object = None,
        term: int = 0,
    ) -> None:
        """Append one execution (true and local instants in integer nanoseconds; ``term``: the
        controller term the command came with, ``0`` for none)."""
        self._device.append(device)
        self._what.append(self._intern(what))
        self._key.append(self._intern(key))
        self._seq.append(seq)
        self._param.append(self._intern(param))
        self._true.append(true_ns)
        self._local.append(local_ns)
        self._term.append(term)
        self._values.append(value)

    def __len__(self) -> int:
        return len(self._device)

    def __iter__(self) -> Iterator[Fire]:
        return self.since(0)

    def since(self, start: int) -> Iterator[Fire]:
        """The rows from index ``start`` on, in the order recorded (as far as recorded now)."""
        for i in range(start, len(self._device)):
            yield self._row(i)

    def rows(self, what: Iterable[str] | None = None) -> list[Fire]:
        """Every row in the order recorded; only those whose ``what`` is in ``what`` if given
        (``rows(EXECUTIONS)``: executions without the receipt rows)."""
        if what is None:
            return list(self)
        wanted = set(what)
        return [f for f in self if f.what in wanted]

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """The log as NumPy columns: ``device, seq, true_ns, local_ns, term`` (int64) and ``what,
        key, param`` (object arrays of str). Values stay in :meth:`rows`."""
        s = np.array(self._strings, dtype=object) if self._strings else np.array([], dtype=object)

        def strs(col: array[int]) -> npt.NDArray[Any]:
            idx = np.frombuffer(col, dtype=np.int64)
            return s[idx] if len(idx) else np.array([], dtype=object)

        return {
            "device": np.frombuffer(self._device, dtype=np.int64).copy(),
            "seq": np.frombuffer(self._seq, dtype=np.int64).copy(),
            "true_ns": np.frombuffer(self._true, dtype=np.int64).copy(),
            "local_ns": np.frombuffer(self._local, dtype=np.int64).copy(),
            "term": np.frombuffer(self._term, dtype=np.int64).copy(),
            "what": strs(self._what),
            "key": strs(self._key),
            "param": strs(self._param),
        }

    def stale_term(self) -> dict[str, int]:
        """Per device id, how many commands it dropped because their term was lower than the
        highest it had seen (``stale_term`` rows); devices that dropped none are left out."""
        i = self._index.get(STALE_TERM)
        out: dict[str, int] = {}
        if i is None:
            return out
        ids = self.device_ids
        for d, w in zip(self._device, self._what, strict=True):
            if w == i:
                did = ids[d] if d < len(ids) else str(d)
                out[did] = out.get(did, 0) + 1
        return out

    def term_regressions(self) -> list[Fire]:
        """Executions that came with a lower term than one the same device had executed before,
        in true time: empty when no device ever obeyed a deposed controller after its successor.
        Rows without a term (``0``) are left out; so are receipts and drops."""
        return [self._row(int(i)) for i in self._regressed().tolist()]

    def _regressed(self) -> npt.NDArray[np.int64]:
        """Row indices of :meth:`term_regressions`, vectorised (a venue's record has millions)."""
        wanted = [self._index[w] for w in EXECUTIONS if w in self._index]
        what = np.frombuffer(self._what, dtype=np.int64)
        term = np.frombuffer(self._term, dtype=np.int64)
        rows = np.flatnonzero(np.isin(what, wanted) & (term > 0))
        if rows.size < 2:
            return np.zeros(0, dtype=np.int64)
        device = np.frombuffer(self._device, dtype=np.int64)[rows]
        true = np.frombuffer(self._true, dtype=np.int64)[rows]
        order = np.lexsort((rows, true, device))  # per device, in true time (then as recorded)
        d, t = device[order], term[rows][order]
        # Terms fit in 32 bits (an OSC int32): one running maximum over ``device << 32 | term``,
        # sorted by device, is each device's own running maximum of its terms.
        before = np.maximum.accumulate((d << 32) | t)
        prior = np.r_[-1, before[:-1]]
        same = np.r_[False, d[1:] == d[:-1]]
        bad = same & (t < (prior & 0xFFFFFFFF))
        return np.sort(rows[order][bad])

    def _row(self, i: int) -> Fire:
        s = self._strings
        d = self._device[i]
        return Fire(
            d,
            self.device_ids[d] if d < len(self.device_ids) else str(d),
            s[self._what[i]],
            s[self._key[i]],
            self._seq[i],
            s[self._param[i]],
            self._true[i],
            self._local[i],
            self._values[i],
            self._term[i],
        )

    def spread(self, seq: int, what: Sequence[str] = ("cue", "osc")) -> int | None:
        """Latest minus earliest true instant at which devices executed sequence ``seq``
        (first execution per device), or ``None`` when nobody executed it."""
        first: dict[int, int] = {}
        wanted = {self._index[w] for w in what if w in self._index}
        for i in range(len(self._device)):
            if self._seq[i] == seq and self._what[i] in wanted:
                d = self._device[i]
                t = self._true[i]
                if d not in first or t < first[d]:
                    first[d] = t
        if not first:
            return None
        return max(first.values()) - min(first.values())


class RecordWriter:
    """A :class:`Recorder` written to a file as it goes: one JSON object per row and line.

    Each :meth:`flush` appends the rows recorded since the last one, as whole lines, and hands
    them to the operating system, so the file is a complete record up to the last flush whatever
    happens to the process afterwards (only a ``kill -9`` in the middle of a write can leave a torn
    last line, which a reader drops). :meth:`close` flushes the rest and syncs the file to disk.
    A line holds the fields of :class:`Fire` (``value`` as JSON, or its ``str`` when it is not).
    """

    def __init__(self, recorder: Recorder, path: str | Path) -> None:
        self.recorder = recorder
        self.path = Path(path)
        self._fh = self.path.open("w", encoding="utf-8")
        self._done = 0
        self.lines = 0

    def flush(self) -> int:
        """Append every row recorded since the last flush; returns how many."""
        if self._fh.closed:
            return 0
        end = len(self.recorder)
        if end > self._done:
            chunk = "".join(
                json.dumps(dataclasses.asdict(f), default=str) + "\n" for f in self.recorder.since(self._done)
            )
            self._fh.write(chunk)
            n = end - self._done
            self._done = end
            self.lines += n
        else:
            n = 0
        self._fh.flush()
        return n

    def close(self) -> None:
        """Flush what is left, sync the file to disk and close it. Idempotent."""
        if self._fh.closed:
            return
        self.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
