"""Clock sync as the controller core uses it: pings, pongs, models and their messages.

:class:`SyncService` joins :class:`~controller.sync.clockmodel.PingPlanner` (who is due a ping)
and :class:`~controller.sync.clockmodel.ClockModels` (samples, the batch estimator, models) behind
the small :class:`~controller.core.PingSink` surface, keyed by device id. Pure: every call takes
``now``; the estimator runs at most every ``estimate_every_ns`` (one Numba call for all devices).
"""

from __future__ import annotations

from venues.model import Sync, Venue

from .clockmodel import ClockModel, ClockModels, PingPlanner, material_change

__all__ = ["SyncService"]

MS = 1_000_000
S = 1_000_000_000


class SyncService:
    """Pings every device that can answer, keeps their clock models, says when to resend them."""

    def __init__(
        self,
        venue: Venue,
        *,
        window: int = 64,
        estimate_every_ns: int = 250 * MS,
        resend_every_ns: int = 10 * S,
        tolerance_ns: int = 50_000,
        seed: int = 0,
        ping_interval_ns: int = 1_500_000_000,
    ) -> None:
        self.models = ClockModels(window)
        self.planner = PingPlanner(
            seed=seed, interval_ns=ping_interval_ns, jitter_ns=min(1_000_000_000, ping_interval_ns * 2 // 3)
        )
        self.estimate_every_ns = estimate_every_ns
        self.resend_every_ns = resend_every_ns
        self.tolerance_ns = tolerance_ns
        self._pinged = [
            d.id
            for d in venue.devices
            if d.sync in (Sync.APP, Sync.TIMETAG, Sync.ECHO) and (d.osc or d.mqtt or d.ws)
        ]
        for did in self._pinged:
            self.models.add_device(did)
        self._app = {d.id for d in venue.devices if d.sync is Sync.APP}
        self._joined = False
        self._last_estimate: int | None = None
        self._sent: dict[str, tuple[ClockModel, int]] = {}
        self._now = 0
        self.implausible = 0

    def _idx(self, device: str) -> int | None:
        try:
            return self.models.index(device)
        except LookupError:
            return None

    def due_pings(self, now: int) -> list[tuple[str, int]]:
        """(device, seq) of the pings to send at ``now``; every device joins with a burst at first."""
        self._now = now
        if not self._joined:
            self._joined = True
            self.planner.join_many(list(range(len(self._pinged))), now)
        rows, seqs = self.planner.due_at(now)
        ids = self.models.ids
        return [(ids[int(r)], int(s)) for r, s in zip(rows, seqs, strict=True)]

    def receive_pong(self, device: str, seq: int, t1: int, t2: int, t3: int, t4: int) -> bool:
        """Match a pong to its ping and keep the sample; False when dropped."""
        idx = self._idx(device)
        if idx is None:
            return False
        if not (t1 <= t4 and t4 - t1 < 10 * S and t3 >= t2 and t3 - t2 < S):
            self.implausible += 1
            return False
        if not self.planner.receive_pong(idx, seq, t4):
            return False
        self.models.add_sample(idx, t1, t2, t3, t4)
        return True

    def update(self, now: int) -> list[str]:
        """Re-estimate (at most every ``estimate_every_ns``); app devices whose model should be sent."""
        self._now = now
        if self._last_estimate is not None and now - self._last_estimate < self.estimate_every_ns:
            return []
        self._last_estimate = now
        rows = self.models.estimate(now)
        out: list[str] = []
        ids = self.models.ids
        for r in rows:
            did = ids[int(r)]
            if did not in self._app:
                continue
            model = self.models.model(int(r))
            if model is None:
                continue
            sent = self._sent.get(did)
            if (
                sent is None
                or now - sent[1] >= self.resend_every_ns
                or material_change(sent[0], model, now, self.tolerance_ns)
            ):
                self._sent[did] = (model, now)
                out.append(did)
        return out

    def clock_message(self, device: str) -> dict[str, int] | None:
        """The protocol's clock-model message (docs/protocol.md), or None without a model."""
        m = self.model(device)
        return None if m is None else m.to_message()

    def model(self, device: str) -> ClockModel | None:
        """The device's current clock model, if any."""
        idx = self._idx(device)
        return None if idx is None else self.models.model(idx)

    def to_device(self, device: str, ref_ns: int) -> int | None:
        """The device-clock reading at show-clock ``ref_ns``; None without a model."""
        m = self.model(device)
        return None if m is None else m.to_device(ref_ns)

    def to_ref(self, device: str, local_ns: int) -> int | None:
        """The show-clock instant at device-clock ``local_ns``; None without a model."""
        m = self.model(device)
        return None if m is None else m.to_ref(local_ns)

    def one_way_ns(self, device: str) -> int | None:
        """The device's one-way delay tail (p99 estimate); None without a model."""
        idx = self._idx(device)
        if idx is None or self.models.model(idx) is None:
            return None
        return self.models.one_way_tail_ns(idx)

    def lead_ns(self, device: str) -> int | None:
        """How far ahead to send to this device; None without a model."""
        idx = self._idx(device)
        if idx is None or self.models.model(idx) is None:
            return None
        return self.models.lead_ns(idx)

    def reset(self, device: str) -> None:
        """The device rebooted: forget its samples and ping it with a new burst."""
        idx = self._idx(device)
        if idx is None:
            return
        self.models.reset(idx)
        self.planner.join(idx, self._now)
        self._sent.pop(device, None)

    def next_deadline(self) -> int | None:
        """When the next ping falls due (None before the first call to :meth:`due_pings`)."""
        if not self._joined:
            return None
        return self.planner.next_deadline()

    def synced_count(self) -> int:
        """How many devices have a clock model."""
        return int(self.models.has_model[: len(self.models)].sum())

    def over_budget(self, budget_ns: int, now: int) -> list[str]:
        """Devices whose uncertainty exceeds ``budget_ns`` (or with no model yet)."""
        ids = self.models.ids
        return [ids[i] for i in self.models.over_budget(budget_ns, now)]
