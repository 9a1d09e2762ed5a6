"""A simulated OSC display (LED facade, projection server, fountain): a sans-I/O core.

Theory of operation
-------------------
The display keeps a state model: ``state[address] = args`` for every OSC message it executes, and
``params[name] = value`` when a message carries one number (``/brightness 0.8`` -> ``params
["brightness"] = 0.8``). Its behaviour follows the venue's ``sync`` (protocol.md):

* ``timetag``: a bundle executes when the device's *own* clock reaches the bundle's timetag
  (timetag 1, or a timetag already past, executes on receipt). Answers ``/madang/ping``.
* ``echo``: executes on receipt (bundle timetags ignored); answers ``/madang/ping``.
* ``none``: answers nothing and executes what it receives after its venue ``latency`` (the
  declared time from receipt to a visible change: a pump spinning up, a media server's frame
  pipeline). Madang sends such a device early by that latency, so it fires late by the network
  delay alone, as a real one would.

A bundle that begins with ``/madang/key ,sii show seq term`` (or ``,si show seq``, from a
controller older than terms) executes once per key; repeats are ignored (a device without that
understanding would just ignore the unknown address). The display keeps the highest term a key
has carried (:attr:`OscDisplay.term_floor`) and drops, counts (``dropped["stale_term"]``) and
records as a ``stale_term`` row any keyed bundle with a lower one, on receipt and again when a
scheduled bundle falls due (unless a copy under a term at least the floor arrived meanwhile);
protocol.md, "Controller terms (hot standby)". Plain messages carry no term and are executed.
Every execution is recorded in true and local time, with the term it came with. The core never
reads a clock: the driver gives it ``true_now``; the device's own clock is a
:class:`~simulators.clock.DeviceClock` of it.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from simulators.clock import DeviceClock
from simulators.devices._wire import BadInput, OscItem, encode_osc, ntp_to_ns, parse_osc
from simulators.devices.messages import Datagram
from simulators.record import STALE_TERM, Recorder
from venues.model import Device, Sync

__all__ = ["OscDisplay"]

log = logging.getLogger(__name__)
_KEY = "/madang/key"


class OscDisplay:
    """The core of one OSC display. Feed it datagrams with :meth:`receive`; call :meth:`tick`
    when :meth:`due_at` (true ns) comes; send the :class:`Datagram` s both return."""

    def __init__(
        self,
        device: Device,
        clock: DeviceClock,
        recorder: Recorder | None = None,
        *,
        report_fired: bool = True,
    ) -> None:
        self.device = device
        self.clock = clock
        self.recorder = recorder if recorder is not None else Recorder()
        self.index = self.recorder.register(device.id)
        self.report_fired = report_fired
        self.sync = device.sync
        # A ``none`` device with a declared latency shows what it receives that much later.
        self._slow = device.sync is Sync.NONE and device.latency_ns > 0
        self.state: dict[str, tuple[Any, ...]] = {}
        self.params: dict[str, float] = {}
        self.dropped: Counter[str] = Counter()
        self.pings = 0
        self.alive = True
        self._seen: set[tuple[str, int]] = set()
        self._pending: list[tuple[int, int, str, int, list[OscItem], object]] = []
        self.term_floor = 0  # the highest controller term a key has carried (0: none yet)
        self._pending_term: dict[tuple[str, int], int] = {}  # scheduled keys: the term vouching for each
        self._counter = 0
        self.reset()

    def reset(self) -> None:
        """Power-on state: the venue's safe values, nothing pending, no keys seen."""
        self.state.clear()
        self.params = {k: float(v) for k, v in self.device.safe.items() if isinstance(v, int | float)}
        self._seen.clear()
        self._pending.clear()
        self._pending_term.clear()
        self.term_floor = 0

    # -- faults ---------------------------------------------------------------------------------
    def crash(self) -> None:
        """Power off: loses everything and ignores input until :meth:`boot`."""
        self.alive = False
        self.reset()

    def boot(self, clock: DeviceClock | None = None) -> None:
        """Power on again (optionally with a new clock, e.g. an RTC that stepped)."""
        if clock is not None:
            self.clock = clock
        self.reset()
        self.alive = True

    # -- input ----------------------------------------------------------------------------------
    def receive(self, data: bytes, true_now: int, source: object = None) -> list[Datagram]:
        """Handle one datagram received at ``true_now`` from ``source``; returns replies."""
        if not self.alive:
            return []
        local_now = self.clock.local(true_now)
        try:
            items = parse_osc(data)
        except BadInput as e:
            self.dropped[e.reason] += 1
            if self.dropped[e.reason] == 1:
                log.warning("dropped bad OSC", extra={"device": self.device.id, "reason": e.reason})
            return []
        out: list[Datagram] = []
        bundle: list[OscItem] = []
        for item in items:
            if item.address == "/madang/ping" and item.timetag is None:
                out.extend(self._pong(item, local_now, source))
            elif item.timetag is None and self._slow:
                self._later([item], true_now + self.device.latency_ns, source, None)
            elif item.timetag is None:
                out.extend(self._execute([item], true_now, local_now, source))
            else:
                bundle.append(item)
        if bundle:
            out.extend(self._bundle(bundle, true_now, local_now, source))
        return out

    def _pong(self, item: OscItem, local_now: int, source: object) -> list[Datagram]:
        if self.sync not in (Sync.TIMETAG, Sync.ECHO):
            return []
        if len(item.args) < 2 or not all(isinstance(a, int) for a in item.args[:2]):
            self.dropped["bad_ping"] += 1
            return []
        self.pings += 1
        seq, t1 = item.args[0], item.args[1]
        # t2 on receipt and t3 just before sending: the core answers at once, so they are equal.
        pong = encode_osc("/madang/pong", ((seq, "i"), (t1, "h"), (local_now, "h"), (local_now, "h")))
        return [Datagram(pong, source)]

    def _bundle(self, items: list[OscItem], true_now: int, local_now: int, source: object) -> list[Datagram]:
        key: tuple[str, int] | None = None
        term = 0
        if items[0].address == _KEY and len(items[0].args) >= 2:
            args = items[0].args
            show, seq = args[0], args[1]
            if isinstance(show, str) and isinstance(seq, int):
                key = (show, seq)
            if len(args) >= 3:
                if not (isinstance(args[2], int) and not isinstance(args[2], bool) and args[2] >= 1):
                    self.dropped["bad_term"] += 1
                    return []
                term = args[2]
            items = items[1:]
        if key is not None:
            if term and term < self.term_floor:
                self._stale(key, term, true_now, local_now)
                return []
            self.term_floor = max(self.term_floor, term)
            if key in self._seen:
                # A repeat under a higher term vouches for a scheduled copy (protocol.md).
                if term > self._pending_term.get(key, term):
                    self._pending_term[key] = term
                return []
            self._seen.add(key)
            # When it first arrived: what executing on receipt would have given (the report's baseline).
            self.recorder.record(self.index, "rx", key[0], key[1], "", true_now, local_now, None, term)
        if self._slow:
            self._later(items, true_now + self.device.latency_ns, source, key, term)
            return []
        tt = items[0].timetag if items else None
        if self.sync is not Sync.TIMETAG or tt is None or tt <= 1:
            return self._execute(items, true_now, local_now, source, key, term)
        local_at = ntp_to_ns(tt)
        if local_at <= local_now:
            return self._execute(items, true_now, local_now, source, key, term)  # late: at once
        self._later(items, self.clock.true_of(local_at, after=true_now), source, key, term)
        return []

    def _stale(self, key: tuple[str, int], term: int, true_at: int, local_at: int) -> None:
        """A keyed bundle under ``term``, below the floor, dropped: counted, recorded, logged once."""
        self.dropped[STALE_TERM] += 1
        if self.dropped[STALE_TERM] == 1:
            log.warning(
                "dropped a bundle from a replaced controller (its term is below the highest seen)",
                extra={"device": self.device.id, "term": term, "floor": self.term_floor},
            )
        self.recorder.record(self.index, STALE_TERM, key[0], key[1], "osc", true_at, local_at, None, term)

    def _later(
        self, items: list[OscItem], true_at: int, source: object, key: tuple[str, int] | None, term: int = 0
    ) -> None:
        """Schedule ``items`` to execute at true instant ``true_at`` (see :meth:`tick`); a keyed
        bundle's ``term`` is kept to be checked again then."""
        if key is not None and term:
            self._pending_term[key] = term
        self._counter += 1
        heapq.heappush(
            self._pending,
            (true_at, self._counter, key[0] if key else "", key[1] if key else -1, items, source),
        )

    def _execute(
        self,
        items: Iterable[OscItem],
        true_at: int,
        local_at: int,
        source: object,
        key: tuple[str, int] | None = None,
        term: int = 0,
    ) -> list[Datagram]:
        show, seq = key if key is not None else ("", -1)
        rec = self.recorder.record
        for item in items:
            if item.address == _KEY:
                continue
            self.state[item.address] = item.args
            value: object = item.args
            if (
                len(item.args) == 1
                and isinstance(item.args[0], int | float)
                and not isinstance(item.args[0], bool)
            ):
                value = float(item.args[0])
                self.params[item.address.strip("/").replace("/", ".")] = value
            rec(self.index, "osc", show, seq, item.address, true_at, local_at, value, term)
        if key is not None and self.report_fired and source is not None:
            return [Datagram(encode_osc("/madang/fired", ((seq, "i"), (local_at, "h"))), source)]
        return []

    # -- time -----------------------------------------------------------------------------------
    def due_at(self) -> int | None:
        """The true instant of the next scheduled execution, or ``None``."""
        return self._pending[0][0] if self._pending and self.alive else None

    def tick(self, true_now: int) -> list[Datagram]:
        """Execute everything due at or before ``true_now``; each is recorded at its own instant."""
        out: list[Datagram] = []
        while self._pending and self._pending[0][0] <= true_now and self.alive:
            true_at, _, show, seq, items, source = heapq.heappop(self._pending)
            key = (show, seq) if seq >= 0 else None
            local_at = self.clock.local(true_at)
            term = self._pending_term.pop(key, 0) if key is not None else 0
            if key is not None and term and term < self.term_floor:
                # Planned by a controller replaced since: never executed; the key is forgotten
                # so that the live controller may still send it.
                self._seen.discard(key)
                self._stale(key, term, true_at, local_at)
                continue
            out.extend(self._execute(items, true_at, local_at, source, key, term))
        return out
