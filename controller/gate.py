"""The sync gate: is every device that needs a clock model ready for a GO?

Theory of operation
-------------------
A cue sent ahead lands on its instant only if the device's clock is known (docs/protocol.md).
While a device's clock model is still settling, a GO would play the first cues from a guess, so
the gate holds GO until the venue is **READY**:

* every device that needs sync (``app`` and ``timetag``: they execute at an instant of their own
  clock) has a settled model whose *predicted fire error* is within the budget;
* every ``echo`` device (executes on receipt, sent early by its measured delay) has a measured
  delay: waiting cannot make its path steadier, so its predicted error is shown, not gated on;
* or the operator has explicitly *degraded* the device (:meth:`SyncGate.degrade`): its cues go
  on receipt and it no longer holds the gate.

``none`` devices (execute on receipt, answer nothing) never hold it, nor does a venue played
without clock sync.

The predicted fire error (:meth:`controller.sync.service.SyncService.predicted_errors_ns`) is
where a cue is expected to land given how the device executes, not the model's raw uncertainty,
which on a noisy link is a loose bound that would hold a healthy Wi-Fi venue forever.

:meth:`SyncGate.readiness` answers with a :class:`Readiness`: counts, the worst device, and the
reason an operator reads when a GO is refused (:meth:`Readiness.reason`). Pure: ``now`` is passed
in, nothing is read or sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from venues.errors import MadangError
from venues.model import Sync, Venue

__all__ = ["GateSync", "GateTimeoutError", "Readiness", "SyncGate"]

US = 1_000


class GateSync(Protocol):
    """What the gate reads of the clock sync (:class:`controller.sync.service.SyncService`)."""

    @property
    def ids(self) -> Sequence[str]:
        """The pinged devices, in row order."""
        ...

    def predicted_errors_ns(self, now: int) -> npt.NDArray[np.float64]:
        """Each row's predicted fire error (ns; ``inf`` while not settled)."""
        ...

    def queued(self) -> int:
        """Devices (phones too) that joined and wait for their first ping (the ping cap)."""
        ...


@dataclass(frozen=True, slots=True)
class Readiness:
    """The gate's answer at one instant (for all devices, or for one cue's)."""

    ready: bool
    need: int  # devices that hold the gate until they are ready
    within: int  # of those, ready (settled, predicted error within budget; echo: measured)
    unsettled: int  # of those, with no settled model yet
    over: int  # of those, settled but predicted over the budget
    degraded: int  # devices the operator degraded (on receipt; they do not hold the gate)
    budget_ns: int
    worst: tuple[str, float] | None = None  # the worst not-ready device and its predicted error (ns)
    waiting: tuple[str, ...] = ()  # a few not-ready devices, worst first
    queued: int = 0  # devices (phones too) joined and waiting for their first ping (the ping cap)

    @property
    def not_ready(self) -> int:
        """Devices that still hold the gate."""
        return self.need - self.within

    @property
    def label(self) -> str:
        """``READY`` or ``NOT READY``, for a view."""
        return "READY" if self.ready else "NOT READY"

    def summary(self) -> str:
        """How many are not ready and why, with the worst: ``3 of 40 devices not ready (...)``."""
        parts = []
        if self.unsettled:
            parts.append(f"{self.unsettled:,} not yet synced")
        if self.over:
            parts.append(f"{self.over:,} predicted over the {self.budget_ns / US:,.0f} us budget")
        if self.queued:
            parts.append(f"{self.queued:,} queued for their first sync")
        worst = ""
        if self.worst is not None:
            did, err = self.worst
            worst = (
                f"; worst: {did} (no settled clock model)"
                if math.isinf(err)
                else f"; worst: {did} predicted {err / US:,.0f} us"
            )
        return f"{self.not_ready:,} of {self.need:,} devices not ready ({', '.join(parts)}){worst}"

    def reason(self) -> str:
        """Why a GO is refused, and what to do, in one line for the operator."""
        if self.ready:
            return "sync gate: READY"
        who = self.worst[0] if self.worst else "DEVICE"
        return (
            f"sync gate NOT READY: {self.summary()}; wait for READY, degrade them to play on "
            f"receipt (--degrade {who}), or force the GO (/go/force)"
        )

    def as_dict(self) -> dict[str, object]:
        """A JSON-able form (the control port's ``/state`` reply, reports)."""
        return {
            "ready": self.ready,
            "need": self.need,
            "within": self.within,
            "not_ready": self.not_ready,
            "unsettled": self.unsettled,
            "over": self.over,
            "degraded": self.degraded,
            "budget_us": self.budget_ns / US,
            "worst": None
            if self.worst is None
            else {
                "device": self.worst[0],
                "predicted_us": None if math.isinf(self.worst[1]) else self.worst[1] / US,
            },
            "waiting": list(self.waiting),
            "queued": self.queued,
        }


class SyncGate:
    """Decides READY for a venue (see the module docstring). ``sync`` None: nothing is gated."""

    def __init__(self, venue: Venue, sync: GateSync | None, *, budget_ns: int) -> None:
        self.budget_ns = budget_ns
        self.sync = sync
        self.degraded: set[str] = set()
        ids = list(sync.ids) if sync is not None else []
        self._ids = ids
        self._row = {d: i for i, d in enumerate(ids)}
        self._masks: dict[frozenset[str], npt.NDArray[np.bool_]] = {}
        kinds = {d.id: d.sync for d in venue.devices}
        # Rows gated on the budget (app, timetag) and rows gated on having a measurement (echo).
        self._budgeted = np.array([kinds.get(d) in (Sync.APP, Sync.TIMETAG) for d in ids], dtype=np.bool_)
        self._known = set(kinds)
        # Audience slots (phones) never hold the gate: the show does not wait for the crowd.
        pooled = {d.id for d in venue.devices if d.pooled}
        self._optional = np.array([d in pooled for d in ids], dtype=np.bool_)

    def _mask(self, devices: Iterable[str]) -> npt.NDArray[np.bool_]:
        """The rows of ``devices``; kept for a frozen set (a cue's devices, asked on every poll
        while a GO is held: at a hundred thousand devices the loop cost more than the show)."""
        key = devices if isinstance(devices, frozenset) else None
        if key is not None:
            hit = self._masks.get(key)
            if hit is not None:
                return hit
        mask = np.zeros(len(self._ids), dtype=np.bool_)
        row = self._row
        rows = [r for r in map(row.get, devices) if r is not None]
        mask[rows] = True
        if key is not None:
            if len(self._masks) >= 64:
                self._masks.clear()
            self._masks[key] = mask
        return mask

    def degrade(self, devices: Iterable[str]) -> list[str]:
        """Play these devices on receipt from now on: they stop holding the gate, and their cues
        are not sent with a timetag (:mod:`controller.delivery`). Returns the ids it does not know."""
        unknown = []
        for d in devices:
            if d in self._known:
                self.degraded.add(d)
            else:
                unknown.append(d)
        return unknown

    def restore(self, devices: Iterable[str]) -> None:
        """Undo :meth:`degrade` for these devices."""
        self.degraded.difference_update(devices)

    def readiness(self, now: int, devices: Iterable[str] | None = None) -> Readiness:
        """READY or not at ``now``, for every device or only ``devices`` (a cue's)."""
        sync = self.sync
        if sync is None or not self._ids:
            return Readiness(True, 0, 0, 0, 0, len(self.degraded), self.budget_ns)
        queued = sync.queued()
        err = np.asarray(sync.predicted_errors_ns(now), dtype=np.float64)[: len(self._ids)]
        mask = np.ones(len(self._ids), dtype=np.bool_) if devices is None else self._mask(devices).copy()
        for d in self.degraded:
            r = self._row.get(d)
            if r is not None:
                mask[r] = False
        mask &= ~self._optional
        settled = np.isfinite(err)
        ok = settled & (~self._budgeted | (err <= self.budget_ns))
        need = int(mask.sum())
        bad = mask & ~ok
        within = need - int(bad.sum())
        unsettled = int((bad & ~settled).sum())
        over = int(bad.sum()) - unsettled
        worst: tuple[str, float] | None = None
        waiting: tuple[str, ...] = ()
        if bad.any():
            rows = np.flatnonzero(bad)
            order = rows[np.argsort(-err[rows], kind="stable")][:5]
            waiting = tuple(self._ids[int(r)] for r in order)
            worst = (waiting[0], float(err[int(order[0])]))
        return Readiness(
            within == need, need, within, unsettled, over, len(self.degraded), self.budget_ns, worst, waiting,
            queued,
        )


class GateTimeoutError(MadangError, TimeoutError):
    """An unattended GO (``--go``, rehearsals) waited ``timeout_ns`` for READY in vain."""

    def __init__(self, readiness: Readiness, timeout_ns: int) -> None:
        super().__init__(readiness, timeout_ns)
        self.readiness = readiness
        self.timeout_ns = timeout_ns

    def __str__(self) -> str:
        r = self.readiness
        names = ", ".join(r.waiting) + (", ..." if r.not_ready > len(r.waiting) else "")
        return (
            f"sync gate: not READY after {self.timeout_ns / 1e9:g} s, the unattended GO was not pressed: "
            f"{r.summary()}; waiting for: {names}. Check those devices' network, degrade them to "
            "play on receipt (--degrade ID), or allow longer (--ready-timeout SECONDS)"
        )
