"""Per-device clock models, ping scheduling and lead time.

Theory of operation
-------------------
:class:`ClockModels` is the registry of every device that answers pings (``sync`` ``app``,
``timetag`` or ``echo``): device id -> row index, the :class:`~controller.sync.samples.PingSamples`
rings, and the latest fit of each row as arrays. The transport adapters feed it pongs
(:meth:`ClockModels.add_sample`) and the engine calls :meth:`ClockModels.estimate` with ``now``
after a batch of pongs; only devices with new samples are refitted, in one Numba call.

A fitted model is the protocol's line (docs/protocol.md, "The clock model")::

    device = show + offset_ns + drift_ppb * (show - epoch) / 1e9

with the epoch the instant of the fit. :class:`ClockModel` converts one instant either way
exactly (integer arithmetic, round half up); :meth:`ClockModels.to_device_many` converts arrays
for a batch of ``timetag`` bundles.

:class:`PingPlanner` decides who is pinged when: a joining device gets a burst (30 pings over
its first 3 s), then one about every second, and after its first minute one every 5 s while its
model is good; phases are jittered by a seeded generator so that a venue of devices that joined
together spreads out. A global cap (``max_rate``, pings a second across every device) keeps a
mass join (thousands of phones at once) from flooding the controller and the network: the pings
due beyond it wait, steady pings of synced devices first, then bursts already begun, then devices
waiting for their first ping in the order they joined (see :meth:`PingPlanner.due_at`). It
remembers the pings in flight per
``(device, seq)`` so that a pong is matched to its ping, and a pong for a ping never sent,
already answered or sent too long ago is dropped and counted.

Lead time (:meth:`ClockModels.lead_ns`): a cue must leave early enough to reach a device before
its instant even in the tail of the delay distribution: the one-way tail (the p99 round trip less
the faster leg's share of the floor) plus a fan-out allowance plus a margin.

Everything is pure: ``now`` is passed in, no clock is read, no I/O.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from controller.sync.estimator import EstimateArrays, estimate_samples
from controller.sync.samples import PingSamples
from venues.errors import MadangError

__all__ = [
    "ClockModel",
    "ClockModels",
    "NoClockModelError",
    "PingPlanner",
    "UnknownDeviceError",
    "material_change",
]

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
_NS = 1_000_000_000
_SEQ_MOD = 1 << 32
_NEVER = np.iinfo(np.int64).max


@dataclass
class UnknownDeviceError(MadangError, KeyError):
    """A device id or row index that the clock models do not know."""

    device: str | int
    known: int

    def __post_init__(self) -> None:
        Exception.__init__(self, self.device)

    def __str__(self) -> str:
        return (
            f"clock models: unknown device {self.device!r} ({self.known} registered); "
            "register it with ClockModels.add_device() when it joins"
        )


@dataclass
class NoClockModelError(MadangError, LookupError):
    """A device has no clock model yet (no answered ping since it joined or rebooted)."""

    device: str

    def __post_init__(self) -> None:
        Exception.__init__(self, self.device)

    def __str__(self) -> str:
        return (
            f"clock models: device {self.device!r} has no clock model yet; wait for its ping burst "
            "to be answered and estimate() to run, or send it cues to execute on receipt"
        )


def _round_div(num: int, den: int) -> int:
    """``num / den`` rounded half up, exactly, for ``den > 0``."""
    return (2 * num + den) // (2 * den)


@dataclass(frozen=True, slots=True)
class ClockModel:
    """One device's clock as fitted at ``epoch`` (show clock, ns).

    ``device = show + offset_ns + drift_ppb * (show - epoch) / 1e9``. ``uncertainty_ns`` bounds
    the offset error at the epoch; it grows by about ``3 * drift_sigma_ppb`` per second after it
    (:meth:`uncertainty_at`). Delays are round trips; ``n`` is how many samples the fit used.
    """

    epoch: int
    offset_ns: int
    drift_ppb: int
    uncertainty_ns: int
    delay_p50_ns: int
    delay_p99_ns: int
    n: int
    min_delay_ns: int = 0
    drift_sigma_ppb: int = 0

    def to_device(self, ref_ns: int) -> int:
        """The device-clock instant at show-clock instant ``ref_ns``."""
        return ref_ns + self.offset_ns + _round_div(self.drift_ppb * (ref_ns - self.epoch), _NS)

    def to_ref(self, device_ns: int) -> int:
        """The show-clock instant at device-clock instant ``device_ns`` (inverse of
        :meth:`to_device` to within 1 ns either way)."""
        u = device_ns - self.offset_ns - self.epoch
        return self.epoch + _round_div(u * _NS, _NS + self.drift_ppb)

    def uncertainty_at(self, ref_ns: int) -> int:
        """The offset uncertainty at show-clock instant ``ref_ns``: it grows with the drift's."""
        return self.uncertainty_ns + 3 * self.drift_sigma_ppb * abs(ref_ns - self.epoch) // _NS

    def to_message(self) -> dict[str, int]:
        """The protocol's clock model message (docs/protocol.md, "The clock model")."""
        return {
            "epoch": self.epoch,
            "offset_ns": self.offset_ns,
            "drift_ppb": self.drift_ppb,
            "uncertainty_ns": self.uncertainty_ns,
        }


def material_change(
    old: ClockModel | None, new: ClockModel, at_ns: int, tolerance_ns: int, horizon_ns: int = 10 * _NS
) -> bool:
    """Whether ``new`` predicts the device clock differently from ``old`` by more than
    ``tolerance_ns`` anywhere between ``at_ns`` and ``at_ns + horizon_ns`` (the longest a
    device keeps a model before the periodic resend): i.e. whether to send it again now."""
    if old is None:
        return True
    return any(abs(new.to_device(t) - old.to_device(t)) > tolerance_ns for t in (at_ns, at_ns + horizon_ns))


class ClockModels:
    """Every pinged device's samples and clock model, by id and by row index.

    Feed it answered pings with :meth:`add_sample` / :meth:`add_samples`, call
    :meth:`estimate` with ``now``, then read :meth:`model`, :meth:`clock_message`,
    :meth:`lead_ns` or translate instants in batch with :meth:`to_device_many`. Call
    :func:`controller.sync.estimator.warm` once before the show.
    """

    def __init__(
        self,
        window: int = 64,
        *,
        fanout_ns: int = 20_000_000,
        margin_ns: int = 10_000_000,
        default_lead_ns: int = 250_000_000,
    ) -> None:
        self.fanout_ns = fanout_ns
        self.margin_ns = margin_ns
        self.default_lead_ns = default_lead_ns
        self.samples = PingSamples(0, window)
        self._est = EstimateArrays(0)
        self._ids: list[str] = []
        self._ids_tuple: tuple[str, ...] = ()
        self._index: dict[str, int] = {}
        self.rejected_samples = 0
        self._rejected_logged = False
        self._pending: list[tuple[int, int, int, int, int]] = []
        self.epoch: I64 = np.zeros(0, dtype=np.int64)
        self.offset_ns: I64 = np.zeros(0, dtype=np.int64)
        self.drift_ppb: I64 = np.zeros(0, dtype=np.int64)
        self.has_model: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)

    # -- registry ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> tuple[str, ...]:
        """Device ids in row order."""
        if len(self._ids_tuple) != len(self._ids):
            self._ids_tuple = tuple(self._ids)
        return self._ids_tuple

    def add_device(self, device_id: str) -> int:
        """Register ``device_id`` (if new) and return its row index; rows are never reused."""
        idx = self._index.get(device_id)
        if idx is not None:
            return idx
        idx = len(self._ids)
        self._ids.append(device_id)
        self._index[device_id] = idx
        n = idx + 1
        if n > self.samples.n_devices:
            cap = max(n, 2 * self.samples.n_devices, 16)
            self.samples.grow(cap)
            self._est.grow(cap)
            extra = cap - self.epoch.shape[0]
            self.epoch = np.concatenate([self.epoch, np.zeros(extra, dtype=np.int64)])
            self.offset_ns = np.concatenate([self.offset_ns, np.zeros(extra, dtype=np.int64)])
            self.drift_ppb = np.concatenate([self.drift_ppb, np.zeros(extra, dtype=np.int64)])
            self.has_model = np.concatenate([self.has_model, np.zeros(extra, dtype=np.bool_)])
        return idx

    def index(self, device_id: str) -> int:
        """The row index of ``device_id``; raises :class:`UnknownDeviceError`."""
        try:
            return self._index[device_id]
        except KeyError:
            raise UnknownDeviceError(device_id, len(self._ids)) from None

    def device_id(self, dev: int) -> str:
        """The id of row ``dev``."""
        self._check(dev)
        return self._ids[dev]

    def _check(self, dev: int) -> None:
        if not 0 <= dev < len(self._ids):
            raise UnknownDeviceError(dev, len(self._ids))

    # -- samples and estimation ----------------------------------------------------------------

    def add_sample(self, dev: int, t1: int, t2: int, t3: int, t4: int) -> bool:
        """Record one answered ping of row ``dev`` (``t1``/``t4`` show clock, ``t2``/``t3``
        device clock). An impossible sample (``t4 < t1`` or ``t3 < t2``: a broken or hostile
        device) is dropped, counted in ``rejected_samples`` and logged once; returns whether the
        sample was kept.

        Cheap on purpose (it runs once per pong): the sample is appended to a pending batch that
        :meth:`estimate` (or :meth:`flush`) stores into the rings in one vectorised call.
        """
        if not 0 <= dev < len(self._ids):
            raise UnknownDeviceError(dev, len(self._ids))
        if t4 < t1 or t3 < t2:
            self.rejected_samples += 1
            if not self._rejected_logged:
                self._rejected_logged = True
                log.warning(
                    "impossible ping sample dropped (t4 < t1 or t3 < t2); further ones are only counted",
                    extra={"device": self._ids[dev], "t1": t1, "t2": t2, "t3": t3, "t4": t4},
                )
            return False
        self._pending.append((dev, t1, t2, t3, t4))
        return True

    def flush(self) -> None:
        """Store the pending samples (from :meth:`add_sample`) into the rings."""
        if not self._pending:
            return
        a = np.array(self._pending, dtype=np.int64)
        self._pending = []
        self.samples.add_many(a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4])

    def add_samples(
        self,
        devs: npt.ArrayLike,
        t1s: npt.ArrayLike,
        t2s: npt.ArrayLike,
        t3s: npt.ArrayLike,
        t4s: npt.ArrayLike,
    ) -> None:
        """Record a batch of answered pings (vectorised :meth:`add_sample`)."""
        d = np.asarray(devs, dtype=np.int64)
        if d.size and (int(d.min()) < 0 or int(d.max()) >= len(self._ids)):
            raise UnknownDeviceError(int(d[(d < 0) | (d >= len(self._ids))][0]), len(self._ids))
        self.flush()
        self.samples.add_many(d, t1s, t2s, t3s, t4s)

    def reset(self, dev: int) -> None:
        """Forget row ``dev``'s samples and model: it rebooted and its clock may have stepped."""
        self._check(dev)
        self.flush()
        self.samples.reset(dev)
        self.has_model[dev] = False
        log.info("clock model reset", extra={"device": self._ids[dev]})

    def estimate(self, now_ns: int) -> I64:
        """Refit every device with new samples, with ``now_ns`` as their epoch.

        Returns the row indices refitted (those now have a model, unless they were reset and have
        no samples). Costs one Numba call whatever the number of devices.
        """
        n = len(self._ids)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        self.flush()
        _, rows = estimate_samples(self.samples, now_ns, self._est)
        rows = rows[rows < n]
        if rows.size == 0:
            return rows
        est = self._est
        self.epoch[rows] = now_ns
        self.offset_ns[rows] = est.offset_ns[rows]
        self.drift_ppb[rows] = np.rint(est.drift_ppb[rows]).astype(np.int64)
        self.has_model[rows] = est.n_samples[rows] > 0
        return rows

    def model(self, dev: int) -> ClockModel | None:
        """Row ``dev``'s current model, or ``None`` before its first answered ping."""
        self._check(dev)
        if not self.has_model[dev]:
            return None
        est = self._est
        return ClockModel(
            epoch=int(self.epoch[dev]),
            offset_ns=int(self.offset_ns[dev]),
            drift_ppb=int(self.drift_ppb[dev]),
            uncertainty_ns=int(est.uncertainty_ns[dev]),
            delay_p50_ns=int(est.delay_p50_ns[dev]),
            delay_p99_ns=int(est.delay_p99_ns[dev]),
            n=int(est.n_samples[dev]),
            min_delay_ns=int(est.min_delay_ns[dev]),
            drift_sigma_ppb=int(np.ceil(est.drift_sigma_ppb[dev])),
        )

    def model_rows(self, rows: I64) -> tuple[I64, I64, I64, I64]:
        """The clock model message of each of ``rows`` (which must have a model) as arrays:
        ``epoch``, ``offset_ns``, ``drift_ppb``, ``uncertainty_ns``, the fields of
        :meth:`clock_message` in its order."""
        r = np.asarray(rows, dtype=np.int64)
        return self.epoch[r], self.offset_ns[r], self.drift_ppb[r], self._est.uncertainty_ns[r].copy()

    def clock_message(self, dev: int) -> dict[str, int]:
        """The clock model message for row ``dev`` (``epoch``, ``offset_ns``, ``drift_ppb``,
        ``uncertainty_ns``); raises :class:`NoClockModelError` if it has none yet."""
        m = self.model(dev)
        if m is None:
            raise NoClockModelError(self._ids[dev])
        return m.to_message()

    # -- batch translation ---------------------------------------------------------------------

    def _rows_with_model(self, dev_idx: npt.ArrayLike) -> I64:
        d = np.asarray(dev_idx, dtype=np.int64)
        if d.size and (int(d.min()) < 0 or int(d.max()) >= len(self._ids)):
            raise UnknownDeviceError(int(d[(d < 0) | (d >= len(self._ids))][0]), len(self._ids))
        missing = ~self.has_model[d]
        if missing.any():
            raise NoClockModelError(self._ids[int(d[missing][0])])
        return d

    def to_device_many(self, dev_idx: npt.ArrayLike, ref_ns: npt.ArrayLike) -> I64:
        """Show-clock instants ``ref_ns`` translated to the clocks of rows ``dev_idx``
        (element-wise, broadcasting); within 1 ns of :meth:`ClockModel.to_device`."""
        d = self._rows_with_model(dev_idx)
        r = np.asarray(ref_ns, dtype=np.int64)
        dt = (r - self.epoch[d]).astype(np.float64)
        corr = np.floor(self.drift_ppb[d].astype(np.float64) * dt / 1e9 + 0.5).astype(np.int64)
        out: I64 = r + self.offset_ns[d] + corr
        return out

    def to_ref_many(self, dev_idx: npt.ArrayLike, device_ns: npt.ArrayLike) -> I64:
        """Device-clock instants of rows ``dev_idx`` translated to the show clock (inverse of
        :meth:`to_device_many` to within 1 ns)."""
        d = self._rows_with_model(dev_idx)
        u = (np.asarray(device_ns, dtype=np.int64) - self.offset_ns[d] - self.epoch[d]).astype(np.float64)
        scaled = np.floor(u * (1e9 / (1e9 + self.drift_ppb[d].astype(np.float64))) + 0.5)
        out: I64 = self.epoch[d] + scaled.astype(np.int64)
        return out

    # -- lead time and health ------------------------------------------------------------------

    def one_way_tail_ns(self, dev: int) -> int:
        """An estimate of the p99 one-way delay to row ``dev``: its p99 round trip less half its
        minimum (the return leg takes at least its share of the floor)."""
        self._check(dev)
        est = self._est
        return int(est.delay_p99_ns[dev] - est.min_delay_ns[dev] // 2)

    def lead_ns(self, dev: int) -> int:
        """How far ahead of its instant a cue must leave for row ``dev``: its one-way delay
        tail plus the fan-out allowance plus the margin (``default_lead_ns`` with no model)."""
        self._check(dev)
        if not self.has_model[dev]:
            return self.default_lead_ns
        return self.one_way_tail_ns(dev) + self.fanout_ns + self.margin_ns

    def uncertainty_ns_of(self, rows: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The offset uncertainty at their epoch of the last fit of ``rows`` (ns)."""
        out: npt.NDArray[np.float64] = self._est.uncertainty_ns[np.asarray(rows, dtype=np.int64)].astype(
            np.float64
        )
        return out

    def uncertainty_now(self, now_ns: int | None = None) -> npt.NDArray[np.float64]:
        """Every row's offset uncertainty (ns; ``inf`` without a model), at ``now_ns`` if given:
        the fit's own plus three drift standard errors per second since the fit."""
        n = len(self._ids)
        unc = self._est.uncertainty_ns[:n].astype(np.float64)
        if now_ns is not None:
            age = np.abs(now_ns - self.epoch[:n]).astype(np.float64)
            unc = unc + 3.0 * self._est.drift_sigma_ppb[:n] * age / 1e9
        out: npt.NDArray[np.float64] = np.where(self.has_model[:n], unc, np.inf)
        return out

    def sample_counts(self) -> I64:
        """Every row's number of samples in its last fit (0 without a model)."""
        out: I64 = self._est.n_samples[: len(self._ids)].astype(np.int64)
        return out

    def delay_spread_ns(self) -> npt.NDArray[np.float64]:
        """Every row's one-way delay spread (ns): half the gap between its p99 and p50 round
        trips, which is how far a message sent early by the measured delay lands from its
        instant when the device executes on receipt (``inf`` without a model)."""
        n = len(self._ids)
        est = self._est
        spread = (est.delay_p99_ns[:n] - est.delay_p50_ns[:n]).astype(np.float64) / 2.0
        out: npt.NDArray[np.float64] = np.where(self.has_model[:n], spread, np.inf)
        return out

    def over_budget(self, budget_ns: int, now_ns: int | None = None) -> list[int]:
        """Rows whose offset uncertainty exceeds ``budget_ns`` (at ``now_ns`` if given, which adds
        the drift uncertainty accumulated since the fit), including rows with no model yet."""
        return [int(i) for i in np.flatnonzero(self.uncertainty_now(now_ns) > budget_ns)]


class PingPlanner:
    """Which devices are due a ping when, and which pongs answer a ping in flight.

    Rows are the same indices as :class:`ClockModels`. Call :meth:`join` when a device appears
    (or reboots), :meth:`due_at` whenever the loop wakes (it returns the rows to ping now and the
    ``seq`` to put in each ping), sleep until :meth:`next_deadline`, and pass every pong through
    :meth:`receive_pong` before using its sample.

    The regime (docs/protocol.md, "Clock synchronisation"): a joining device gets a burst of
    ``burst`` pings over ``burst_span_ns`` (30 over 3 s: the first model needs many samples,
    because over Wi-Fi only the few least-queued pings of each direction say much, and many
    recent ones, because its drift is not known yet), then one every ``interval_ns`` (about 1 s,
    jittered) for ``fast_for_ns`` (60 s) after it joined, while its drift gets pinned; after
    that, one every ``slow_interval_ns`` (about 5 s) while the caller says its model is good
    (:meth:`set_settled`), else one every ``steady_interval_ns`` (1 s by default): a device on a
    noisy path keeps needing samples, and one whose model went bad gets them again.
    Due instants are rounded up to a ``tick_ns`` grid (2 ms), so that at ten thousand devices
    :meth:`due_at` does its (vectorised) work once per tick, not once per loop turn, and returns
    each tick's pings in a seeded random order. (A 10 ms tick cost a third of the CPU but put
    1,000 pings in each batch during the bursts, and queueing behind the batch on the broker
    connection cost the LAN spread 96 -> 114 us p99 at 10,000 devices.)

    **The cap.** With ``max_rate`` (pings a second, across all devices) the planner never sends
    more than ``max_rate`` pings in any window of one second: a token bucket holding at most
    ``max_rate // 20`` tokens (a twentieth of a second's worth may leave at once), refilled at
    ``max_rate`` less that a second. When more are due than the bucket holds, the pings due
    longest go first (first come, first served: a device that joined waits behind those due before
    it joined, never behind later ones, and nobody starves); among pings due at the same instant,
    steady pings of devices past their burst (in a random order), then bursts already begun, then
    first pings, in the order the devices joined (a seeded random order among those that joined
    in the same instant). The rest stay due and go at the next tick with tokens. Each device keeps
    one ping pending at most and its own gaps (a burst ping at most every
    ``burst_span_ns / burst``, 100 ms), measured from when its ping really left: when more devices
    want pings than the cap allows, every one of them is pinged less often, none is left out.
    :meth:`queued` counts the devices that joined and wait for their first ping; :attr:`deferred`
    the pings put off.

    **Backing off (congestion).** Pings that cannot get through make matters worse: a broker, a
    bridge or a simulator that falls behind queues them, their pongs come back seconds late
    (useless to the fit, and dropped as stale after ``timeout_ns``), and the pings keep coming, so
    the queue only grows and no model ever settles (measured: a rehearsal of 1,217 devices on a
    loaded 2-core machine, 41,729 pongs in 45 s, 871 of them usable). So the planner watches its
    own pongs, a second at a time: when more than a fifth of those answered in a second (at least
    20) come back later than ``congested_rtt_ns`` (2 s) or stale, it caps itself (the cap above) at
    half the pings it sent that second (at least ``min_rate``), halves again if that is still
    congested, waiting ``3`` seconds after each cut for the queue to drain, and raises the cap by a
    quarter each quiet second; a second in which the cap held no ping back lifts it (back to
    ``max_rate``, or none). A healthy path never triggers it: Wi-Fi's worst delays are hundreds of
    milliseconds (``adaptive=False`` turns it off). :attr:`backoffs` counts the cuts.
    """

    def __init__(
        self,
        *,
        burst: int = 30,
        burst_span_ns: int = 3 * _NS,
        interval_ns: int = _NS,
        jitter_ns: int = 600_000_000,
        slow_interval_ns: int = 5 * _NS,
        steady_interval_ns: int = _NS,
        fast_for_ns: int = 60 * _NS,
        tick_ns: int = 2_000_000,
        timeout_ns: int = 5 * _NS,
        max_in_flight: int = 16,
        seed: int = 0,
        seq_base: int = 0,
        max_rate: int | None = None,
        adaptive: bool = True,
        congested_rtt_ns: int = 2 * _NS,
        min_rate: int = 100,
    ) -> None:
        if not 0 <= seq_base < _SEQ_MOD // 2:
            raise ValueError(f"seq_base must be in [0, 2**31), got {seq_base}")
        if max_rate is not None and max_rate < 1:
            raise ValueError(f"max_rate is pings a second across all devices, 1 or more, got {max_rate}")
        if (
            burst < 1
            or interval_ns <= 0
            or not 0 <= jitter_ns < 2 * interval_ns
            or max_in_flight < 1
            or not interval_ns <= steady_interval_ns <= slow_interval_ns
            or tick_ns < 1
        ):
            raise ValueError(
                "need burst >= 1, interval_ns > 0, 0 <= jitter_ns < 2 * interval_ns, "
                "interval_ns <= steady_interval_ns <= slow_interval_ns, tick_ns >= 1, max_in_flight >= 1"
            )
        self.burst = burst
        self.burst_gap_ns = burst_span_ns // burst
        self.interval_ns = interval_ns
        self.jitter_ns = jitter_ns
        self.slow_interval_ns = slow_interval_ns
        self.steady_interval_ns = steady_interval_ns
        self.fast_for_ns = fast_for_ns
        self.tick_ns = tick_ns
        self.timeout_ns = timeout_ns
        self.max_in_flight = max_in_flight
        # Where each device's ping seqs start: two controllers of a pair ping the same devices
        # and both hear every MQTT pong, so each starts its seqs in its own block (a pong to the
        # other's ping is then dropped as unknown, not taken for an answer).
        self.seq_base = seq_base
        self._rng = np.random.default_rng(seed)
        self.active: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)
        self.next_due: I64 = np.zeros(0, dtype=np.int64)
        self.burst_left: I64 = np.zeros(0, dtype=np.int64)
        self.next_seq: I64 = np.zeros(0, dtype=np.int64)
        self.fast_until: I64 = np.zeros(0, dtype=np.int64)
        self.settled: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)
        self._fl_seq: I64 = np.zeros((0, max_in_flight), dtype=np.int64)
        self._fl_sent: I64 = np.zeros((0, max_in_flight), dtype=np.int64)
        # Pings in flight by key ``row << 32 | seq`` -> send instant: what receive_pong reads, so
        # that matching a pong costs one dict operation instead of several NumPy scalar reads.
        self._flight: dict[int, int] = {}
        self._next: int | None = None  # cached next_deadline(); None: nothing active
        self._purged_at = 0
        self.sent = 0
        self.matched = 0
        self.dropped_unknown = 0
        self.dropped_stale = 0
        # The global cap (see the class docstring): tokens are kept times _NS, exactly.
        self.max_rate = max_rate
        self._bucket = 0 if max_rate is None else max(1, max_rate // 20)
        self._refill = 0 if max_rate is None else max(1, max_rate - self._bucket)  # tokens a second
        self._tokens = self._bucket * _NS
        self._filled_at: int | None = None
        self._blocked_until = 0  # no ping can leave before this (the bucket is empty)
        self._order: I64 = np.zeros(0, dtype=np.int64)  # join order of each row (first come first)
        self._joins = 0
        self.deferred = 0  # pings the cap put off (each counted once, however long it waited)
        self._held: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)  # rows whose ping waits
        self.peak_deferred = 0  # the most pings held back at once
        # Backing off (see the class docstring): this second's pings and pongs.
        self.adaptive = adaptive
        self.congested_rtt_ns = congested_rtt_ns
        self.min_rate = min_rate
        self._user_rate = max_rate
        self._win_at: int | None = None
        self._win_sent = 0
        self._win_good = 0
        self._win_bad = 0
        self._win_deferred = 0
        self._judge_after = 0
        self.backoffs = 0
        self.late = 0  # pongs matched, but later than congested_rtt_ns

    def _grow(self, n: int) -> None:
        extra = n - self.active.shape[0]
        if extra <= 0:
            return
        extra = max(extra, self.active.shape[0], 16)
        m = self.max_in_flight
        self.active = np.concatenate([self.active, np.zeros(extra, dtype=np.bool_)])
        self.next_due = np.concatenate([self.next_due, np.full(extra, _NEVER, dtype=np.int64)])
        self.burst_left = np.concatenate([self.burst_left, np.zeros(extra, dtype=np.int64)])
        self.next_seq = np.concatenate([self.next_seq, np.full(extra, self.seq_base, dtype=np.int64)])
        self.fast_until = np.concatenate([self.fast_until, np.zeros(extra, dtype=np.int64)])
        self.settled = np.concatenate([self.settled, np.zeros(extra, dtype=np.bool_)])
        self._order = np.concatenate([self._order, np.zeros(extra, dtype=np.int64)])
        self._held = np.concatenate([self._held, np.zeros(extra, dtype=np.bool_)])
        self._fl_seq = np.concatenate([self._fl_seq, np.full((extra, m), -1, dtype=np.int64)])
        self._fl_sent = np.concatenate([self._fl_sent, np.zeros((extra, m), dtype=np.int64)])

    def _on_grid(self, t: I64) -> I64:
        q = self.tick_ns
        out: I64 = -(-t // q) * q
        return out

    def _refresh_next(self) -> None:
        # Rows not being pinged hold _NEVER, so neither this nor due_at needs the active mask.
        nxt = int(self.next_due.min()) if self.next_due.size else _NEVER
        self._next = None if nxt == _NEVER else max(nxt, self._blocked_until)

    def _forget_flight(self, devs: I64) -> None:
        if not self._flight:
            return
        fl = self._fl_seq[devs]
        for dev, seq in zip(np.repeat(devs, fl.shape[1]).tolist(), fl.ravel().tolist(), strict=True):
            if seq >= 0:
                self._flight.pop(dev << 32 | seq, None)

    def reserve(self, n: int) -> None:
        """Make room for rows ``0 .. n-1``; those not joined are not pinged (audience slots)."""
        self._grow(n)

    def join(self, dev: int, now_ns: int) -> None:
        """Start pinging row ``dev`` with a burst from ``now_ns`` (also after a reboot)."""
        self.join_many(np.array([dev], dtype=np.int64), now_ns)

    def join_many(self, devs: npt.ArrayLike, now_ns: int) -> None:
        """:meth:`join` for many rows at once. Every row's first ping is due at once; the rest of
        its burst follows at a seeded random phase within one burst gap, so that a venue that
        joined together does not send every ping of its bursts in the same instant."""
        d = np.asarray(devs, dtype=np.int64).ravel()
        if d.size == 0:
            return
        if int(d.min()) < 0:
            raise ValueError(f"negative device row {int(d.min())}")
        self._grow(int(d.max()) + 1)
        self._forget_flight(d)
        self.active[d] = True
        self.next_due[d] = now_ns
        self.burst_left[d] = self.burst
        self.fast_until[d] = now_ns + self.fast_for_ns
        self.settled[d] = False
        self._fl_seq[d] = -1  # pongs to pings sent before a reboot are not answers
        self._held[d] = False
        if self.max_rate is not None:
            # First come, first served under the cap; a seeded random order within one instant.
            n = int(d.size)
            self._order[self._rng.permutation(d)] = np.arange(self._joins, self._joins + n, dtype=np.int64)
            self._joins += n
        self._refresh_next()

    def leave(self, dev: int) -> None:
        """Stop pinging row ``dev`` (it went offline); its pongs in flight are no longer matched."""
        if 0 <= dev < self.active.shape[0]:
            self._forget_flight(np.array([dev], dtype=np.int64))
            self.active[dev] = False
            self.next_due[dev] = _NEVER
            self._fl_seq[dev] = -1
            self._refresh_next()

    def set_settled(self, devs: npt.ArrayLike, settled: npt.ArrayLike) -> None:
        """Say whether each of ``devs`` has a good model (``settled``): once ``fast_for_ns`` has
        passed since it joined, a settled row is pinged every ``slow_interval_ns``, an unsettled
        one (a noisy path, or a model whose uncertainty grew) every ``steady_interval_ns``, from
        its next ping on."""
        d = np.asarray(devs, dtype=np.int64)
        if d.size:
            self.settled[d] = np.asarray(settled, dtype=np.bool_)

    def due_at(self, now_ns: int) -> tuple[I64, I64]:
        """Rows to ping at ``now_ns`` and the ``seq`` of each ping (32-bit, per device).

        The pings count as sent at ``now_ns``; put the show clock's reading as ``t1`` in each.
        Costs nothing until the next deadline (:meth:`next_deadline`) has come.
        """
        if self.adaptive:
            if self._win_at is None:
                self._win_at = now_ns
            elif now_ns - self._win_at >= _NS:
                self._adapt(now_ns)
        if self._next is None or now_ns < self._next:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy()
        idx = np.flatnonzero(self.next_due <= now_ns).astype(np.int64)
        if idx.size == 0:
            self._refresh_next()
            return idx, idx.copy()
        if idx.size > 1:
            # In a seeded random order: pings leave one after another, and the last of a batch
            # queues behind the others; always in row order, the same devices would always
            # queue, and their offsets would carry that as a bias.
            idx = self._rng.permutation(idx)
        if self.max_rate is not None:
            idx = self._cap(idx, now_ns)
            if idx.size == 0:
                self._refresh_next()
                return idx, idx.copy()
        seqs = self.next_seq[idx].copy()
        self.next_seq[idx] = (seqs + 1) % _SEQ_MOD
        slot = seqs % self.max_in_flight
        old = self._fl_seq[idx, slot]
        if (old >= 0).any():
            # The ring slot still holds an unanswered ping: it is now too old to match.
            for dev, seq in zip(idx[old >= 0].tolist(), old[old >= 0].tolist(), strict=True):
                self._flight.pop(dev << 32 | seq, None)
        self._fl_seq[idx, slot] = seqs
        self._fl_sent[idx, slot] = now_ns
        keys = (idx << 32) | seqs
        self._flight.update(dict.fromkeys(keys.tolist(), now_ns))
        in_burst = self.burst_left[idx] > 0
        self.burst_left[idx] = np.maximum(self.burst_left[idx] - 1, 0)
        still = self.burst_left[idx] > 0
        later = self.fast_until[idx] <= now_ns
        base = np.where(
            later,
            np.where(self.settled[idx], self.slow_interval_ns, self.steady_interval_ns),
            self.interval_ns,
        )
        half = self.jitter_ns // 2
        steady = base - half + self._rng.integers(0, self.jitter_ns + 1, size=idx.size)
        gap = np.full(idx.size, self.burst_gap_ns, dtype=np.int64)
        first = self.burst_left[idx] == self.burst - 1
        if first.any():
            gap[first] += self._rng.integers(0, max(1, self.burst_gap_ns), size=int(first.sum()))
        self.next_due[idx] = self._on_grid(now_ns + np.where(in_burst & still, gap, steady))
        self.sent += int(idx.size)
        self._win_sent += int(idx.size)
        self._refresh_next()
        if now_ns - self._purged_at >= self.timeout_ns:
            self._purge(now_ns)
        return idx, seqs

    def _adapt(self, now_ns: int) -> None:
        """Judge the second gone by (see "Backing off" in the class docstring) and move the cap."""
        sent, good, bad = self._win_sent, self._win_good, self._win_bad
        held = self.deferred - self._win_deferred
        self._win_at, self._win_sent, self._win_good, self._win_bad = now_ns, 0, 0, 0
        self._win_deferred = self.deferred
        if now_ns < self._judge_after:
            return
        answered = good + bad
        if answered >= 20 and bad * 5 > answered:
            base = sent if self.max_rate is None else min(self.max_rate, max(sent, 1))
            self._set_rate(max(self.min_rate, base // 2))
            self.backoffs += 1
            self._judge_after = now_ns + 3 * _NS
        elif self.max_rate is not None and self.max_rate != self._user_rate and bad * 20 <= max(answered, 1):
            if held == 0:
                self._set_rate(self._user_rate)  # the cap held nothing back: lift it
            else:
                raised = self.max_rate + max(self.max_rate // 4, 1)
                self._set_rate(raised if self._user_rate is None else min(raised, self._user_rate))

    def _set_rate(self, rate: int | None) -> None:
        self.max_rate = rate
        self._bucket = 0 if rate is None else max(1, rate // 20)
        self._refill = 0 if rate is None else max(1, rate - self._bucket)
        self._tokens = min(self._tokens, self._bucket * _NS)
        if rate is None:
            self._blocked_until = 0

    def _cap(self, idx: I64, now_ns: int) -> I64:
        """The rows of ``idx`` the bucket lets go now, by priority (see the class docstring);
        the others stay due."""
        if self._filled_at is not None:
            self._tokens = min(self._bucket * _NS, self._tokens + (now_ns - self._filled_at) * self._refill)
        self._filled_at = now_ns
        can = self._tokens // _NS
        if idx.size > can:
            left = self.burst_left[idx]
            # 0: steady (past the burst), 1: a burst begun, 2: waiting for the first ping.
            cls = np.where(left == 0, 0, np.where(left < self.burst, 1, 2))
            order = np.where(cls == 0, 0, self._order[idx])
            held = int(idx.size - can)
            ranked = idx[np.lexsort((order, cls, self.next_due[idx]))]
            idx, wait = ranked[:can], ranked[can:]
            self.deferred += int(np.count_nonzero(~self._held[wait]))
            self._held[wait] = True
            self.peak_deferred = max(self.peak_deferred, held)
            # The next token: nothing can leave before it (the held rows stay due).
            short = _NS - (self._tokens - can * _NS)
            self._blocked_until = -(-(now_ns + -(-short // self._refill)) // self.tick_ns) * self.tick_ns
        else:
            self._blocked_until = 0
        self._tokens -= int(idx.size) * _NS
        self._held[idx] = False
        return idx

    def queued(self) -> int:
        """Devices that joined (or rejoined) and still wait for their first ping (held by the
        cap, or due this very tick)."""
        return int(np.count_nonzero(self.active & (self.burst_left == self.burst)))

    def _purge(self, now_ns: int) -> None:
        # Lost pings never get a pong: drop their entries once they are past the timeout.
        self._purged_at = now_ns
        limit = now_ns - self.timeout_ns
        stale = [k for k, sent in self._flight.items() if sent < limit]
        for k in stale:
            del self._flight[k]

    def next_deadline(self) -> int | None:
        """The earliest instant a ping falls due, or ``None`` if no device is being pinged."""
        return self._next

    def receive_pong(self, dev: int, seq: int, now_ns: int) -> bool:
        """Whether a pong ``(dev, seq)`` received at ``now_ns`` answers a ping in flight.

        ``True`` once per ping; a repeat, a pong for a ping never sent (or sent before the
        device rejoined) and one for a ping older than ``timeout_ns`` give ``False`` and are
        counted in ``dropped_unknown`` / ``dropped_stale``.
        """
        if not (0 <= dev < self.active.shape[0]) or not 0 <= seq < _SEQ_MOD:
            self.dropped_unknown += 1
            return False
        sent = self._flight.pop(dev << 32 | seq, None)
        if sent is None:
            # Sent but since evicted from the in-flight ring or purged (or answered already)
            # counts as stale when it is among the last 2**31 seqs issued; anything else is
            # unknown.
            nxt = int(self.next_seq[dev])
            behind = (nxt - seq) % _SEQ_MOD
            if (
                self.active[dev]
                and 0 < behind <= min(nxt, _SEQ_MOD // 2)
                and (behind > self.max_in_flight or int(self._fl_seq[dev, seq % self.max_in_flight]) == seq)
            ):
                self.dropped_stale += 1
                self._win_bad += 1
            else:
                self.dropped_unknown += 1
            return False
        self._fl_seq[dev, seq % self.max_in_flight] = -1
        if now_ns - sent > self.timeout_ns:
            self.dropped_stale += 1
            self._win_bad += 1
            return False
        self.matched += 1
        if now_ns - sent > self.congested_rtt_ns:
            self.late += 1
            self._win_bad += 1
        else:
            self._win_good += 1
        return True

    def receive_pong_rows(self, devs: I64, seqs: I64, now_ns: I64) -> npt.NDArray[np.bool_]:
        """:meth:`receive_pong` for arrays of pongs in order of receipt (``now_ns`` each's
        receipt), vectorised; which answer a ping in flight."""
        n = devs.size
        keys = (devs << 32) | seqs
        rows_ok = n > 0 and int(devs.min()) >= 0 and int(devs.max()) < self.active.shape[0]
        if not rows_ok or np.unique(keys).size != n:
            # A repeat within the batch, or a row out of range: one by one, as they came.
            each = zip(devs.tolist(), seqs.tolist(), now_ns.tolist(), strict=True)
            return np.array([self.receive_pong(d, q, t) for d, q, t in each], dtype=np.bool_)
        slot = seqs % self.max_in_flight
        ring = np.flatnonzero((seqs >= 0) & (seqs < _SEQ_MOD) & (self._fl_seq[devs, slot] == seqs))
        flight = self._flight
        hit = np.zeros(n, dtype=np.bool_)
        hit[ring] = [flight.pop(k, None) is not None for k in keys[ring].tolist()]
        rtt = now_ns - self._fl_sent[devs, slot]
        ok: npt.NDArray[np.bool_] = hit & (rtt <= self.timeout_ns)
        self._fl_seq[devs[hit], slot[hit]] = -1
        n_ok = int(ok.sum())
        n_late = int(np.count_nonzero(ok & (rtt > self.congested_rtt_ns)))
        self.matched += n_ok
        self.late += n_late
        self.dropped_stale += int(hit.sum()) - n_ok
        self._win_good += n_ok - n_late
        self._win_bad += n_late + int(hit.sum()) - n_ok
        miss = np.flatnonzero(~hit)
        for i in miss.tolist():  # never answers a ping in flight: classified as stale or unknown
            self.receive_pong(int(devs[i]), int(seqs[i]), int(now_ns[i]))
        return ok

    def in_flight(self, dev: int) -> int:
        """How many pings to row ``dev`` await their pong."""
        return int((self._fl_seq[dev] >= 0).sum())
