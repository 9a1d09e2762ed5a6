"""Per-device sync telemetry: what the operator sees live and what the post-show report keeps.

Theory of operation
-------------------
Pure bookkeeping, no I/O and no clock reads (``now`` is passed in). The runtime feeds it:

* every pong the clock-sync service **accepted** (:class:`TelemetrySink` wraps the service and
  sees them pass), from which it keeps each device's recent round-trip delays (RFC 5905's
  ``(t4 - t1) - (t3 - t2)``), so delay percentiles do not depend on the estimator's internals;
* every cue instant it sends: ``at`` of each app cue message (show clock) and the timetag of each
  keyed OSC bundle (the device's own clock), by sequence number;
* every fire report (``madang/dev/{id}/fired`` or ``/madang/fired``): an acknowledgement, and,
  where the device says *when* it fired, a fire error. For an ``app`` device the reported local
  instant is turned back into show-clock time with the device's current clock model and compared
  with the cue's ``at``; for a ``timetag`` display it is compared with the bundle's timetag, both
  in the display's own clock.

* every cue to a ``timetag`` device that went on receipt because it had no settled clock model
  (a ``degraded`` send), and every fire report that says the device had no model
  (``"synced": false``): both count as *degraded* fires of that device.

:meth:`Telemetry.rows` joins that with the clock-sync service's public surface (``model``,
``over_budget``: a predicted fire error over the budget) into one row per device;
:meth:`Telemetry.summary` is the compact view the terminal shows; :meth:`Telemetry.cue_spread`
the live spread of each cue (the fire errors of its reports, across devices).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from controller.core import DEFAULT_SYNC_BUDGET_NS, I64, Bools, PingSink
from controller.sync.clockmodel import ClockModel
from venues.model import Sync, Venue

__all__ = ["COLUMNS", "CueSpread", "Telemetry", "TelemetrySink", "TelemetrySummary", "TelemetrySync"]

US = 1_000
DELAY_WINDOW = 64  # round trips kept per device (the estimator's own window is 64 too)
FIRE_WINDOW = 256  # fire errors kept per device
CUE_WINDOW = 8192  # fire errors kept per cue (its live spread)
_NTP_EPOCH_S = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix), RFC 5905

COLUMNS = (
    "device",
    "zone",
    "kind",
    "sync",
    "synced",
    "offset_us",
    "drift_ppm",
    "delay_p50_us",
    "delay_p99_us",
    "uncertainty_us",
    "predicted_error_us",
    "over_budget",
    "acks",
    "degraded",
    "fire_error_us",
    "fire_error_max_us",
)
"""The report's per-device columns, in order (docs/operator.md, "Sync telemetry")."""


class TelemetrySync(PingSink, Protocol):
    """The clock-sync service as telemetry reads it: the core's surface plus the public queries."""

    def model(self, device: str) -> ClockModel | None: ...

    def synced_count(self) -> int: ...

    def over_budget(self, budget_ns: int, now: int) -> list[str]: ...


def ntp_to_unix_ns(tag: int) -> int:
    """A 64-bit NTP timestamp (RFC 5905: seconds since 1900, 32-bit fraction) as Unix ns."""
    sec, frac = tag >> 32, tag & 0xFFFFFFFF
    return (sec - _NTP_EPOCH_S) * 1_000_000_000 + ((frac * 1_000_000_000 + (1 << 31)) >> 32)


@dataclass
class _Device:
    delays: deque[int]
    fire_errors: deque[int]
    acks: int = 0
    degraded: int = 0  # cues it played on receipt for want of a settled clock model


@dataclass(frozen=True, slots=True)
class CueSpread:
    """How one cue landed across the devices that reported it (:meth:`Telemetry.cue_spread`):
    ``reports`` fire reports with a measurable error (the last :data:`CUE_WINDOW`), ``spread_us``
    from the earliest to the latest, ``p99_us`` of ``|fire error|``."""

    reports: int
    spread_us: float
    p99_us: float


@dataclass(frozen=True, slots=True)
class TelemetrySummary:
    """What the live view shows: counts and the few worst devices by predicted fire error."""

    pinged: int
    synced: int
    over_budget: int
    acks: int
    worst: tuple[tuple[str, float, float], ...]  # (device, predicted fire error us, offset us)
    fire_error_p99_us: float | None


class Telemetry:
    """Per-device sync telemetry for one venue. See the module docstring."""

    def __init__(self, venue: Venue, *, budget_ns: int = DEFAULT_SYNC_BUDGET_NS) -> None:
        self.venue = venue
        self.budget_ns = budget_ns
        self._dev: dict[str, _Device] = {
            d.id: _Device(deque(maxlen=DELAY_WINDOW), deque(maxlen=FIRE_WINDOW)) for d in venue.devices
        }
        self._pinged = [
            d.id
            for d in venue.devices
            if d.sync in (Sync.APP, Sync.TIMETAG, Sync.ECHO) and (d.osc or d.mqtt or d.ws)
        ]
        self._cue_at: dict[int, int] = {}  # app cues: seq -> at (show clock)
        # keyed bundles: (device, seq) -> timetag (device clock)
        self._tag_at: dict[tuple[str, int], int] = {}
        # Per cue, the fire errors of every device (the live spread): seq -> cue, cue -> errors.
        self._seq_cue: dict[int, str] = {}
        self._cue_errors: dict[str, deque[int]] = {}
        self._spread_cache: tuple[int, dict[str, CueSpread]] = (-1, {})
        self._spread_version = 0

    # -- inputs ------------------------------------------------------------------------------

    def receive_pong(self, device: str, t1: int, t2: int, t3: int, t4: int) -> None:
        """An accepted ping sample: keep its round-trip delay."""
        d = self._dev.get(device)
        if d is not None:
            d.delays.append((t4 - t1) - (t3 - t2))

    def sent_cue(self, seq: int, at: int, cue: str | None = None) -> None:
        """An app cue message for ``seq`` (of ``cue``) due at show-clock ``at`` left (the latest
        ``at`` wins: a pause and resume sends the same key again for a new instant)."""
        self._cue_at[seq] = at
        self._note_seq(seq, cue)

    def _note_seq(self, seq: int, cue: str | None) -> None:
        if cue is None:
            return
        self._seq_cue[seq] = cue
        if len(self._seq_cue) > 200_000:  # as _tag_at: forget the oldest half
            for k in list(self._seq_cue)[:100_000]:
                del self._seq_cue[k]

    def sent_bundle(self, device: str, seq: int, timetag_ntp: int, cue: str | None = None) -> None:
        """A keyed OSC bundle for ``seq`` (of ``cue``) left for ``device`` with this NTP timetag."""
        self._note_seq(seq, cue)
        if timetag_ntp > 1:
            self._tag_at[(device, seq)] = ntp_to_unix_ns(timetag_ntp)
            if len(self._tag_at) > 200_000:  # a week-long installation: forget the oldest half
                for k in list(self._tag_at)[:100_000]:
                    del self._tag_at[k]

    def sent_degraded(self, device: str) -> None:
        """A cue went to ``device`` on receipt because it had no settled clock model."""
        d = self._dev.get(device)
        if d is not None:
            d.degraded += 1

    def degraded_total(self) -> int:
        """Degraded fires (on receipt for want of a model) over every device."""
        return sum(d.degraded for d in self._dev.values())

    def receive_fired(
        self, device: str, seq: int | None, local: int | None, synced: bool, sync: TelemetrySync | None
    ) -> None:
        """A fire report: one acknowledgement, and a fire error when it can be measured."""
        d = self._dev.get(device)
        if d is None:
            return
        d.acks += 1
        if not synced:
            d.degraded += 1  # an app device with no model executed on receipt (docs/protocol.md)
        if seq is None or local is None:
            return
        tag = self._tag_at.get((device, seq))
        if tag is not None:
            self._fire_error(d, seq, local - tag)
            return
        at = self._cue_at.get(seq)
        if at is None or not synced or sync is None:
            return
        ref = sync.to_ref(device, local)
        if ref is not None:
            self._fire_error(d, seq, ref - at)

    def _fire_error(self, d: _Device, seq: int, error: int) -> None:
        d.fire_errors.append(error)
        cue = self._seq_cue.get(seq)
        if cue is not None:
            errs = self._cue_errors.get(cue)
            if errs is None:
                errs = self._cue_errors[cue] = deque(maxlen=CUE_WINDOW)
            errs.append(error)
            self._spread_version += 1

    def cue_spread(self) -> dict[str, CueSpread]:
        """The live spread of each cue that devices reported firing with a measurable error:
        how far apart they fired (max - min of their fire errors) and the p99 of ``|error|``.
        Recomputed only when a fire report came in since the last call."""
        version, cached = self._spread_cache
        if version == self._spread_version:
            return cached
        out: dict[str, CueSpread] = {}
        for cue, errs in self._cue_errors.items():
            x = np.fromiter(errs, dtype=np.int64, count=len(errs))
            out[cue] = CueSpread(
                reports=int(x.size),
                spread_us=float(x.max() - x.min()) / US,
                p99_us=float(np.percentile(np.abs(x), 99)) / US,
            )
        self._spread_cache = (self._spread_version, out)
        return out

    # -- outputs -----------------------------------------------------------------------------

    def acks(self, device: str) -> int:
        """Fire reports received from ``device``."""
        d = self._dev.get(device)
        return 0 if d is None else d.acks

    def fire_errors_ns(self, device: str) -> list[int]:
        """The device's recent fire errors (ns, positive = late)."""
        d = self._dev.get(device)
        return [] if d is None else list(d.fire_errors)

    def rows(self, sync: TelemetrySync | None, now: int) -> list[dict[str, Any]]:
        """One row per device (:data:`COLUMNS`), worst first: over budget, then by predicted fire
        error."""
        over = set(sync.over_budget(self.budget_ns, now)) if sync is not None else set()
        pinged = set(self._pinged)
        predicted: dict[str, float] = {}
        if sync is not None:
            errs = sync.predicted_errors_ns(now)
            predicted = {did: float(e) for did, e in zip(sync.ids, errs.tolist(), strict=True)}
        out: list[dict[str, Any]] = []
        for dev in self.venue.devices:
            t = self._dev[dev.id]
            m = sync.model(dev.id) if sync is not None and dev.id in pinged else None
            delays = np.fromiter(t.delays, dtype=np.int64, count=len(t.delays))
            errs = np.abs(np.fromiter(t.fire_errors, dtype=np.int64, count=len(t.fire_errors)))
            out.append(
                {
                    "device": dev.id,
                    "zone": dev.zone,
                    "kind": dev.kind,
                    "sync": str(dev.sync),
                    "synced": m is not None,
                    "offset_us": None if m is None else (m.to_device(now) - now) / US,
                    "drift_ppm": None if m is None else m.drift_ppb / 1000.0,
                    "delay_p50_us": _pct_us(delays, 50),
                    "delay_p99_us": _pct_us(delays, 99),
                    "uncertainty_us": None if m is None else m.uncertainty_at(now) / US,
                    "predicted_error_us": _finite_us(predicted.get(dev.id)),
                    "over_budget": dev.id in over,
                    "acks": t.acks,
                    "degraded": t.degraded,
                    "fire_error_us": _pct_us(errs, 50),
                    "fire_error_max_us": None if errs.size == 0 else float(errs.max()) / US,
                }
            )
        out.sort(key=_badness)
        return out

    def summary(self, sync: TelemetrySync | None, now: int, *, worst: int = 3) -> TelemetrySummary:
        """The compact live figures (cheap enough for a few refreshes a second at 10k devices)."""
        if sync is None:
            return TelemetrySummary(len(self._pinged), 0, 0, self.total_acks(), (), None)
        pred = sync.predicted_errors_ns(now)
        ids = sync.ids
        over = int(np.count_nonzero(pred > self.budget_ns))
        # The worst settled devices by predicted fire error (unsettled ones are counted in ``over``).
        finite = np.flatnonzero(np.isfinite(pred))
        top = finite[np.argsort(-pred[finite], kind="stable")[:worst]]
        cands: list[tuple[str, float, float]] = []
        for r in top.tolist():
            m = sync.model(ids[r])
            offset = 0.0 if m is None else (m.to_device(now) - now) / US
            cands.append((ids[r], float(pred[r]) / US, offset))
        errs = [abs(e) for d in self._dev.values() for e in list(d.fire_errors)[-20:]]
        p99 = float(np.percentile(errs, 99)) / US if errs else None
        return TelemetrySummary(
            len(self._pinged), sync.synced_count(), over, self.total_acks(), tuple(cands), p99
        )

    def total_acks(self) -> int:
        """Fire reports received from every device."""
        return sum(d.acks for d in self._dev.values())


def _finite_us(ns: float | None) -> float | None:
    return None if ns is None or not np.isfinite(ns) else ns / US


def _pct_us(x: np.ndarray[Any, Any], q: float) -> float | None:
    return None if x.size == 0 else float(np.percentile(x, q)) / US


def _badness(row: Mapping[str, Any]) -> tuple[int, int, float, str]:
    pinged = row["synced"] or row["delay_p50_us"] is not None
    unc = row["predicted_error_us"]
    return (
        0 if row["over_budget"] else 1,
        0 if pinged else 1,
        -(unc if unc is not None else float("inf")),
        str(row["device"]),
    )


class TelemetrySink:
    """The clock-sync service, seen through telemetry: every call is passed on unchanged, and
    every pong it accepts is also recorded in :class:`Telemetry` (its round-trip delay)."""

    def __init__(self, inner: TelemetrySync, telemetry: Telemetry) -> None:
        self.inner = inner
        self.telemetry = telemetry

    @property
    def ids(self) -> Sequence[str]:
        """See :class:`~controller.core.PingSink`."""
        return self.inner.ids

    def due_rows(self, now: int) -> tuple[I64, I64]:
        """See :class:`~controller.core.PingSink`."""
        return self.inner.due_rows(now)

    def receive_pong(self, device: str, seq: int, t1: int, t2: int, t3: int, t4: int) -> bool:
        """Pass the pong on; record its delay when the service keeps it."""
        ok = self.inner.receive_pong(device, seq, t1, t2, t3, t4)
        if ok:
            self.telemetry.receive_pong(device, t1, t2, t3, t4)
        return ok

    def receive_pong_rows(self, rows: I64, seqs: I64, t1: I64, t2: I64, t3: I64, t4: I64) -> Bools:
        """Pass the pongs on; record the delay of each the service keeps."""
        ok = self.inner.receive_pong_rows(rows, seqs, t1, t2, t3, t4)
        ids = self.ids
        for i in np.flatnonzero(ok).tolist():
            self.telemetry.receive_pong(ids[int(rows[i])], int(t1[i]), int(t2[i]), int(t3[i]), int(t4[i]))
        return ok

    def update_rows(self, now: int) -> I64:
        """See :class:`~controller.core.PingSink`."""
        return self.inner.update_rows(now)

    def model_rows(self, rows: I64) -> tuple[I64, I64, I64, I64]:
        """See :class:`~controller.core.PingSink`."""
        return self.inner.model_rows(rows)

    def to_device(self, device: str, ref_ns: int) -> int | None:
        """See :class:`~controller.core.PingSink`."""
        return self.inner.to_device(device, ref_ns)

    def to_ref(self, device: str, local_ns: int) -> int | None:
        """See :class:`~controller.core.PingSink`."""
        return self.inner.to_ref(device, local_ns)

    def one_way_ns(self, device: str) -> int | None:
        """See :class:`~controller.core.PingSink`."""
        return self.inner.one_way_ns(device)

    def lead_ns(self, device: str) -> int | None:
        """See :class:`~controller.core.PingSink`."""
        return self.inner.lead_ns(device)

    def predicted_errors_ns(self, now: int) -> npt.NDArray[np.float64]:
        """See :class:`~controller.core.PingSink`."""
        return self.inner.predicted_errors_ns(now)

    def predicted_error_ns(self, device: str, at_ns: int) -> int | None:
        """See :class:`~controller.core.PingSink`."""
        return self.inner.predicted_error_ns(device, at_ns)

    def queued(self) -> int:
        """See :class:`~controller.core.PingSink`."""
        return self.inner.queued()

    def ping_stats(self) -> dict[str, int | None]:
        """The inner service's ping counters (:meth:`SyncService.ping_stats`), or ``{}``."""
        stats = getattr(self.inner, "ping_stats", None)
        return dict(stats()) if callable(stats) else {}

    def receipt_error_ns(self, device: str) -> int | None:
        """See :class:`~controller.core.PingSink`."""
        return self.inner.receipt_error_ns(device)

    def reset(self, device: str) -> None:
        """See :class:`~controller.core.PingSink`."""
        self.inner.reset(device)

    def leave(self, device: str) -> None:
        """See :class:`~controller.core.PingSink`."""
        self.inner.leave(device)

    def next_deadline(self) -> int | None:
        """See :class:`~controller.core.PingSink`."""
        return self.inner.next_deadline()

    def model(self, device: str) -> ClockModel | None:
        """The device's clock model (from the service)."""
        return self.inner.model(device)

    def synced_count(self) -> int:
        """How many devices have a clock model (from the service)."""
        return self.inner.synced_count()

    def over_budget(self, budget_ns: int, now: int) -> list[str]:
        """Devices predicted over the fire-error budget or not settled (from the service)."""
        return self.inner.over_budget(budget_ns, now)
