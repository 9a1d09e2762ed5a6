"""Clock sync as the controller core uses it: pings, pongs, models and their messages.

:class:`SyncService` joins :class:`~controller.sync.clockmodel.PingPlanner` (who is due a ping)
and :class:`~controller.sync.clockmodel.ClockModels` (samples, the batch estimator, models) behind
the small :class:`~controller.core.PingSink` surface, keyed by device id. Pure: every call takes
``now``; the estimator runs at most every ``estimate_every_ns`` (one Numba call for all devices).

Cost matters at ten thousand devices: :meth:`SyncService.receive_pong` runs once per pong and does
two dict operations and a list append; everything else (storing samples, fitting, deciding whom to
send a model, moving devices between the fast and slow ping intervals) is done on arrays once per
estimate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from venues.model import Sync, Venue

from .clockmodel import ClockModel, ClockModels, PingPlanner

__all__ = ["DEFAULT_PING_RATE", "MIN_SETTLED_SAMPLES", "SIGMAS_IN_UNCERTAINTY", "SyncService"]

MS = 1_000_000
S = 1_000_000_000
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]

#: A model's ``uncertainty_ns`` is a ~99 % bound on its offset error built of three-sigma terms
#: (the estimator's ``K_U`` and its drift term): the error a cue is *predicted* to land with is
#: its one-sigma scale, the uncertainty divided by this.
SIGMAS_IN_UNCERTAINTY = 3.0
#: Fewer samples than this and a model is not settled: its offset rests on one or two round trips
#: (the estimator bounds it by half the smallest one), and cues go to the device on receipt.
MIN_SETTLED_SAMPLES = 3
#: The global ping cap recommended for a venue whose audience joins at once (``madang run
#: --ping-rate 5000``; off by default, docs/protocol.md "The ping cap"), pings a second across
#: every device: a mass join (10 pings a second each in their bursts) queues rather than floods
#: the controller and the network. ``madang bench ws`` at 2,000: peak 4,853 instead of 19,513.
DEFAULT_PING_RATE = 5_000


class SyncService:
    """Pings every device that can answer, keeps their clock models, says when to resend them.

    ``settle_ns``: a device whose offset uncertainty (a ~99 % bound, see
    :mod:`controller.sync.estimator`) is within it counts as settled and, 60 s after it joined,
    is pinged every 5 s instead of every second; an unsettled one (a noisy Wi-Fi path, pongs
    lost, a path gone bad) stays on one a second: over Wi-Fi the model keeps improving with every
    sample (fewer made the 80 s cue of ``madang bench sync`` 10-15 % worse at p99).
    """

    def __init__(
        self,
        venue: Venue,
        *,
        window: int = 64,
        estimate_every_ns: int = 250 * MS,
        resend_every_ns: int = 10 * S,
        tolerance_ns: int = 50_000,
        seed: int = 0,
        ping_interval_ns: int = S,
        slow_interval_ns: int = 5 * S,
        settle_ns: int = MS,
        tick_ns: int = 2 * MS,
        seq_base: int = 0,
        max_ping_rate: int | None = None,
    ) -> None:
        self.models = ClockModels(window)
        self.planner = PingPlanner(
            seed=seed,
            seq_base=seq_base,
            interval_ns=ping_interval_ns,
            jitter_ns=min(1_000_000_000, ping_interval_ns * 3 // 5),
            slow_interval_ns=max(slow_interval_ns, ping_interval_ns),
            tick_ns=tick_ns,
            max_rate=max_ping_rate,
        )
        self.estimate_every_ns = estimate_every_ns
        self.resend_every_ns = resend_every_ns
        self.tolerance_ns = tolerance_ns
        self.settle_ns = settle_ns
        self._pinged = [
            d.id
            for d in venue.devices
            if d.sync in (Sync.APP, Sync.TIMETAG, Sync.ECHO) and (d.osc or d.mqtt or d.ws)
        ]
        for did in self._pinged:
            self.models.add_device(did)
        self._index: dict[str, int] = {did: self.models.index(did) for did in self._pinged}
        n = len(self._pinged)
        app = {d.id for d in venue.devices if d.sync is Sync.APP}
        self._is_app = np.array([did in app for did in self._pinged], dtype=np.bool_)
        # Audience slots (venues.model.AudiencePool) are pinged only while a phone holds them:
        # they join when it says ready (reset) and leave when it goes (leave).
        pooled = {d.id for d in venue.devices if d.pooled}
        self._waiting = np.array([did not in pooled for did in self._pinged], dtype=np.bool_)
        echo = {d.id for d in venue.devices if d.sync is Sync.ECHO}
        self._is_echo = np.array([did in echo for did in self._pinged], dtype=np.bool_)
        # The model each app device was last sent (epoch, offset, drift) and when.
        self._sent_has = np.zeros(n, dtype=np.bool_)
        self._sent_epoch = np.zeros(n, dtype=np.int64)
        self._sent_offset = np.zeros(n, dtype=np.int64)
        self._sent_drift = np.zeros(n, dtype=np.int64)
        self._sent_at = np.zeros(n, dtype=np.int64)
        self._joined = False
        self._last_estimate: int | None = None
        self._now = 0
        self.implausible = 0

    @property
    def ids(self) -> Sequence[str]:
        """The pinged devices, in row order (rows of :meth:`due_rows` and :meth:`receive_pong_rows`)."""
        return self._pinged

    def due_rows(self, now: int) -> tuple[I64, I64]:
        """Rows (into :attr:`ids`) to ping at ``now`` and each ping's seq; every device joins
        with a burst at first."""
        self._now = now
        if not self._joined:
            self._joined = True
            self.planner.reserve(len(self._pinged))
            self.planner.join_many(np.flatnonzero(self._waiting).astype(np.int64), now)
        return self.planner.due_at(now)

    def queued(self) -> int:
        """Devices that joined and wait for their first ping (held by the global ping cap)."""
        return self.planner.queued()

    def ping_stats(self) -> dict[str, int | None]:
        """The pinging's counters for a report: ``sent``, ``deferred`` by the cap (ping by ping,
        each time one is due and held), ``peak_deferred`` (the most held at once), ``queued``
        now, the cap (``max_rate``, None: none), and the pongs ``matched`` to their pings or
        dropped: ``stale`` (past the timeout), ``unknown`` (no ping of that seq in flight),
        ``implausible`` (timestamps out of order, or a round trip of 10 s or more); ``late``
        pongs (matched, but over 2 s) and the ``backoffs`` they caused (the planner capped itself:
        ``max_rate`` is then the cap it set)."""
        p = self.planner
        return {"max_rate": p.max_rate, "sent": p.sent, "deferred": p.deferred,
                "peak_deferred": p.peak_deferred, "queued": p.queued(),
                # Pongs kept and dropped, by reason: a slow path shows as stale (past the timeout)
                # or implausible (a round trip of 10 s or more) long before it shows elsewhere.
                "matched": p.matched, "stale": p.dropped_stale, "unknown": p.dropped_unknown,
                # Pongs later than the congestion threshold, and the cuts the planner made when
                # they were more than a fifth (PingPlanner, "Backing off").
                "late": p.late, "backoffs": p.backoffs,
                "implausible": self.implausible}

    def due_pings(self, now: int) -> list[tuple[str, int]]:
        """:meth:`due_rows` as (device, seq) pairs."""
        rows, seqs = self.due_rows(now)
        ids = self._pinged
        return [(ids[r], s) for r, s in zip(rows.tolist(), seqs.tolist(), strict=True)]

    def receive_pong(self, device: str, seq: int, t1: int, t2: int, t3: int, t4: int) -> bool:
        """Match a pong to its ping and keep the sample; False when dropped."""
        idx = self._index.get(device)
        if idx is None:
            return False
        if not (t1 <= t4 and t4 - t1 < 10 * S and t3 >= t2 and t3 - t2 < S):
            self.implausible += 1
            return False
        if not self.planner.receive_pong(idx, seq, t4):
            return False
        self.models.add_sample(idx, t1, t2, t3, t4)
        return True

    def receive_pong_rows(self, rows: I64, seqs: I64, t1: I64, t2: I64, t3: I64, t4: I64) -> Bools:
        """:meth:`receive_pong` for arrays of pongs (by row, in order of receipt), vectorised;
        which were kept."""
        plausible = (t1 <= t4) & (t4 - t1 < 10 * S) & (t3 >= t2) & (t3 - t2 < S)
        self.implausible += int(plausible.size - plausible.sum())
        ok = plausible.copy()
        ok[plausible] = self.planner.receive_pong_rows(rows[plausible], seqs[plausible], t4[plausible])
        if ok.any():
            self.models.add_samples(rows[ok], t1[ok], t2[ok], t3[ok], t4[ok])
        return ok

    def update(self, now: int) -> list[str]:
        """:meth:`update_rows` as device ids."""
        ids = self._pinged
        return [ids[r] for r in self.update_rows(now).tolist()]

    def model_rows(self, rows: I64) -> tuple[I64, I64, I64, I64]:
        """The clock-model messages of ``rows`` (rows of :attr:`ids` that have a model, as
        :meth:`update_rows` returns them) as arrays: ``epoch``, ``offset_ns``, ``drift_ppb``,
        ``uncertainty_ns``; row for row what :meth:`clock_message` says."""
        return self.models.model_rows(rows)

    def update_rows(self, now: int) -> I64:
        """Re-estimate (at most every ``estimate_every_ns``); the rows (of :attr:`ids`) of the
        app devices whose model should be sent.

        A model is sent when the device has none yet, when ``resend_every_ns`` has passed since the
        last one, or when the new one predicts its clock differently from the last one sent, now
        or ``resend_every_ns`` from now (the longest it keeps one), by more than an eighth of its
        uncertainty (at least 5 us, at most ``tolerance_ns``).
        """
        self._now = now
        none = np.zeros(0, dtype=np.int64)
        if self._last_estimate is not None and now - self._last_estimate < self.estimate_every_ns:
            return none
        self._last_estimate = now
        m = self.models
        rows = m.estimate(now)
        n = len(self._pinged)
        unc = m.uncertainty_now(now)
        self.planner.set_settled(np.arange(n, dtype=np.int64), unc <= self.settle_ns)
        rows = rows[self._is_app[rows] & m.has_model[rows]]
        if rows.size == 0:
            return none
        off = m.offset_ns[rows]
        drift = m.drift_ppb[rows]
        s_off = self._sent_offset[rows]
        s_drift = self._sent_drift[rows].astype(np.float64)
        s_age = (now - self._sent_epoch[rows]).astype(np.float64)
        h = float(self.resend_every_ns)
        # A change matters relative to how well the device's clock is known: an eighth of its
        # uncertainty, between 5 us and ``tolerance_ns`` (a LAN device's model is good to tens of
        # microseconds; a Wi-Fi one's moves by more than that with every new sample).
        tol = np.clip(m.uncertainty_ns_of(rows) / 8.0, 5_000.0, float(self.tolerance_ns))
        # new(t) - old(t) for t = now and now + h; the new model's epoch is now
        d_now = (off - s_off).astype(np.float64) - s_drift * s_age / 1e9
        d_later = d_now + (drift.astype(np.float64) - s_drift) * h / 1e9
        send = (
            ~self._sent_has[rows]
            | (now - self._sent_at[rows] >= self.resend_every_ns)
            | (np.abs(d_now) > tol)
            | (np.abs(d_later) > tol)
        )
        out_rows = rows[send]
        if out_rows.size == 0:
            return none
        self._sent_has[out_rows] = True
        self._sent_epoch[out_rows] = m.epoch[out_rows]
        self._sent_offset[out_rows] = m.offset_ns[out_rows]
        self._sent_drift[out_rows] = m.drift_ppb[out_rows]
        self._sent_at[out_rows] = now
        return out_rows

    def clock_message(self, device: str) -> dict[str, int] | None:
        """The protocol's clock-model message (docs/protocol.md), or None without a model."""
        m = self.model(device)
        return None if m is None else m.to_message()

    def model(self, device: str) -> ClockModel | None:
        """The device's current clock model, if any."""
        idx = self._index.get(device)
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
        idx = self._index.get(device)
        if idx is None or not self.models.has_model[idx]:
            return None
        return self.models.one_way_tail_ns(idx)

    def lead_ns(self, device: str) -> int | None:
        """How far ahead to send to this device; None without a model."""
        idx = self._index.get(device)
        if idx is None or not self.models.has_model[idx]:
            return None
        return self.models.lead_ns(idx)

    def reset(self, device: str) -> None:
        """The device rebooted: forget its samples and ping it with a new burst."""
        idx = self._index.get(device)
        if idx is None:
            return
        self.models.reset(idx)
        self.planner.join(idx, self._now)
        self._sent_has[idx] = False

    def leave(self, device: str) -> None:
        """The device is gone (an audience slot its phone left): stop pinging it and forget its
        model, so the next phone in the slot starts with a burst (:meth:`reset`)."""
        idx = self._index.get(device)
        if idx is None:
            return
        self.planner.leave(idx)
        self.models.reset(idx)
        self._sent_has[idx] = False

    def next_deadline(self) -> int | None:
        """When the next ping falls due (None before the first call to :meth:`due_pings`)."""
        if not self._joined:
            return None
        return self.planner.next_deadline()

    def synced_count(self) -> int:
        """How many devices have a clock model."""
        return int(self.models.has_model[: len(self.models)].sum())

    def over_budget(self, budget_ns: int, now: int) -> list[str]:
        """Devices whose predicted fire error (:meth:`predicted_errors_ns`) exceeds ``budget_ns``,
        or that are not settled yet."""
        ids = self._pinged
        return [ids[i] for i in np.flatnonzero(self.predicted_errors_ns(now) > budget_ns).tolist()]

    def predicted_errors_ns(self, now: int) -> F64:
        """For every row (of :attr:`ids`), how far from its instant a cue is predicted to land,
        given how the device executes (ns; ``inf`` while it is not settled: no model, or fewer
        than :data:`MIN_SETTLED_SAMPLES` samples).

        * ``app`` and ``timetag`` devices execute at an instant of their own clock, translated
          through the model: the error is the model's, its uncertainty at ``now`` (which grows
          with the drift's) over :data:`SIGMAS_IN_UNCERTAINTY`.
        * ``echo`` devices execute on receipt, sent early by the measured delay: the error is the
          delay's spread (:meth:`ClockModels.delay_spread_ns`); the clock model plays no part.

        Raw uncertainty is the wrong yardstick for the operator: on Wi-Fi it is a few ms (a
        bound, dominated by the drift prior while a minute of pings has not pinned the drift)
        while the devices' cues land within a fraction of it (``madang demo``: true offset errors
        at p99 0.39 of the uncertainty, 1.2 of this prediction; docs/operator.md, "The sync gate").
        """
        m = self.models
        n = len(self._pinged)
        clock = m.uncertainty_now(now)[:n] / SIGMAS_IN_UNCERTAINTY
        out: F64 = np.where(self._is_echo, m.delay_spread_ns()[:n], clock)
        out[m.sample_counts()[:n] < MIN_SETTLED_SAMPLES] = np.inf
        p = self.planner
        if p.max_rate is not None and p.burst_left.size >= n:
            # Under the ping cap a mass join's bursts stretch over many seconds: a device whose
            # burst is not done is not settled yet (a model from its first few pings looked
            # settled and was not: bench ws at 2,000, spread p99 8.8-40 ms against 0.4 ms).
            out[p.active[:n] & (p.burst_left[:n] > 0)] = np.inf
        return out

    def predicted_error_ns(self, device: str, at_ns: int) -> int | None:
        """:meth:`predicted_errors_ns` of one device for a cue at ``at_ns``; None while it is
        not settled (then its cues go on receipt: :mod:`controller.delivery`)."""
        idx = self._index.get(device)
        if idx is None or not self.models.has_model[idx]:
            return None
        m = self.models.model(idx)
        if m is None or m.n < MIN_SETTLED_SAMPLES:
            return None
        if self._is_echo[idx]:
            return (m.delay_p99_ns - m.delay_p50_ns) // 2
        return int(np.ceil(m.uncertainty_at(at_ns) / SIGMAS_IN_UNCERTAINTY))

    def receipt_error_ns(self, device: str) -> int | None:
        """How far from its instant a cue sent on receipt (early by the measured delay) is
        predicted to land on this device: its delay spread; None without a model."""
        idx = self._index.get(device)
        if idx is None or not self.models.has_model[idx]:
            return None
        m = self.models.model(idx)
        return None if m is None else (m.delay_p99_ns - m.delay_p50_ns) // 2

    def ready_fraction(self, budget_ns: int, now: int) -> float:
        """The fraction of pinged devices whose predicted fire error (:meth:`predicted_errors_ns`)
        is within ``budget_ns`` at ``now`` (1.0 with no pinged device)."""
        n = len(self._pinged)
        if n == 0:
            return 1.0
        return float(np.count_nonzero(self.predicted_errors_ns(now) <= budget_ns)) / n
