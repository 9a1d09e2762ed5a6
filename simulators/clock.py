"""Simulated device clocks: offset, drift and steps, in exact integer nanoseconds.

Theory of operation
-------------------
The simulator keeps one reference clock, *true time* (in real-time mode: the host's wall clock,
which is also the controller's show clock). Every simulated device reads its own clock, a
piecewise-linear function of true time::

    local(t) = t + offset + floor((t - epoch) * drift_ppt / 10**12) + sum(s for at, s in steps if at <= t)

``drift_ppt`` is the drift in parts per trillion, so ``drift_ppm`` given as a float is rounded once
to an integer at construction and every later computation is exact integer maths. ``steps`` model
a phone's NTP correction: at true instant ``at`` the clock jumps by ``step`` (either sign).

``true_of(local, after=t)`` answers the question a device's timer asks: *when (in true time) does
my clock first read at least ``local``, looking from true instant ``t`` on?* With a backward step a
reading can recur; a timer that already fired does not fire again, so "first" is the right answer.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from venues.model import Device, Sync, Venue

__all__ = ["ClockKind", "ClockTable", "DeviceClock", "clock_kind_of", "clocks_for_venue", "random_clock"]

_PPT = 10**12  # parts per trillion: the unit of drift inside the clock
_MS = 1_000_000
_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class DeviceClock:
    """One device's clock as a function of true time (integer nanoseconds since the Unix epoch).

    ``offset_ns`` is the reading minus true time at ``epoch_ns``; ``drift_ppm`` how many
    microseconds per second it gains (positive) or loses; ``steps`` are ``(at_true_ns, step_ns)``
    jumps (sorted on construction). ``seed`` records which seed generated the clock (for reports).
    Call :meth:`local` to read it and :meth:`true_of` to find when it reaches a reading.
    """

    offset_ns: int = 0
    drift_ppm: float = 0.0
    steps: Sequence[tuple[int, int]] = ()
    seed: int = 0
    epoch_ns: int = 0
    _drift_ppt: int = field(init=False, repr=False, compare=False)
    _cum: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ppt = round(self.drift_ppm * 1_000_000)
        if ppt <= -_PPT:
            raise ValueError(f"drift_ppm={self.drift_ppm}: a clock must move forwards (> -1e6 ppm)")
        steps = tuple(sorted((int(a), int(s)) for a, s in self.steps))
        cum: list[int] = []
        total = 0
        for _, s in steps:
            total += s
            cum.append(total)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "_drift_ppt", ppt)
        object.__setattr__(self, "_cum", tuple(cum))

    @property
    def drift_ppt(self) -> int:
        """The drift as an exact integer in parts per trillion."""
        return self._drift_ppt

    def _linear(self, true_ns: int) -> int:
        return true_ns + self.offset_ns + ((true_ns - self.epoch_ns) * self._drift_ppt) // _PPT

    def _stepped(self, true_ns: int) -> int:
        """Sum of the steps that happened at or before ``true_ns``."""
        if not self._cum:
            return 0
        total = 0
        for (at, _), c in zip(self.steps, self._cum, strict=True):
            if at > true_ns:
                break
            total = c
        return total

    def local(self, true_ns: int) -> int:
        """The device's reading at true instant ``true_ns``."""
        v = true_ns + self.offset_ns + ((true_ns - self.epoch_ns) * self._drift_ppt) // _PPT
        return v + self._stepped(true_ns) if self._cum else v

    def _first_linear(self, local_ns: int, step_sum: int) -> int:
        """Smallest true ``t`` with ``_linear(t) + step_sum >= local_ns`` (no step boundaries)."""
        target = local_ns - step_sum
        # Invert t + off + (t - epoch) * ppt / 1e12 exactly: estimate, then correct by a few ns.
        t = self.epoch_ns + ((target - self.offset_ns - self.epoch_ns) * _PPT) // (_PPT + self._drift_ppt)
        while self._linear(t) < target:
            t += 1
        while self._linear(t - 1) >= target:
            t -= 1
        return t

    def true_of(self, local_ns: int, after: int | None = None) -> int:
        """First true instant, at or after ``after``, at which the clock reads ``>= local_ns``.

        Without ``after`` (and without steps) this is the exact inverse of :meth:`local`.
        When the clock steps forward past ``local_ns``, the answer is the instant of the step.
        """
        bounds = [at for at, _ in self.steps]
        starts = [None, *bounds]  # segment i runs from starts[i] (None: -inf) to bounds[i] (excl.)
        ends: list[int | None] = [*bounds, None]
        sums = [0, *self._cum]
        for start, end, ssum in zip(starts, ends, sums, strict=True):
            if end is not None and (
                (after is not None and end <= after) or (start is not None and start >= end)
            ):
                continue
            lo = start if after is None or (start is not None and start > after) else after
            if lo is not None and self._linear(lo) + ssum >= local_ns:
                return lo
            t = self._first_linear(local_ns, ssum)
            if lo is not None and t < lo:
                t = lo
            if end is None or t < end:
                return t
        raise AssertionError("unreachable: the last segment is unbounded")  # pragma: no cover

    def with_step(self, at_true_ns: int, step_ns: int) -> DeviceClock:
        """A copy with one more step (a reboot that re-reads a wrong RTC, an NTP correction)."""
        return DeviceClock(
            self.offset_ns, self.drift_ppm, (*self.steps, (at_true_ns, step_ns)), self.seed, self.epoch_ns
        )


_SPLIT = 10**6  # sqrt(_PPT): products are split at it so that every one fits in int64
_VECTOR_PPT = 10**10  # drifts beyond 1 % are read one by one (their products would not fit)
I64 = npt.NDArray[np.int64]


class ClockTable:
    """Many device clocks read at once: ``local(rows, t)`` equals ``clocks[row].local(t)`` exactly.

    For each row, :meth:`set` folds the clock's offset, drift and the part of
    ``(t - epoch) * drift`` up to a base instant (now) into integers; a reading is then a few
    int64 array operations, with the drift product split so that nothing overflows. Clocks with
    steps (or an absurd drift) are read one by one through :meth:`DeviceClock.local`.
    """

    def __init__(self, n: int) -> None:
        self._clock: list[DeviceClock | None] = [None] * n
        self._base = np.zeros(n, dtype=np.int64)
        self._off = np.zeros(n, dtype=np.int64)  # offset + floor((base - epoch) * ppt / 10**12)
        self._rem = np.zeros(n, dtype=np.int64)  # ... and its remainder (0 <= rem < 10**12)
        self._ppt = np.zeros(n, dtype=np.int64)
        self._exact = np.zeros(n, dtype=np.bool_)  # read one by one

    def set(self, row: int, clock: DeviceClock, base_ns: int) -> None:
        """Row ``row`` reads ``clock`` from now (``base_ns``) on."""
        q, r = divmod((base_ns - clock.epoch_ns) * clock.drift_ppt, _PPT)
        self._clock[row] = clock
        self._base[row] = base_ns
        self._off[row] = clock.offset_ns + q
        self._rem[row] = r
        self._ppt[row] = clock.drift_ppt
        self._exact[row] = bool(clock.steps) or abs(clock.drift_ppt) > _VECTOR_PPT

    def local(self, rows: I64, true_ns: I64) -> I64:
        """Each ``rows[i]``'s reading at true instant ``true_ns[i]``."""
        x = true_ns - self._base[rows]
        ppt = self._ppt[rows]
        a, b = np.divmod(x, _SPLIT)
        aq, ar = np.divmod(a * ppt, _SPLIT)
        out: I64 = true_ns + self._off[rows] + aq + (self._rem[rows] + ar * _SPLIT + b * ppt) // _PPT
        exact = np.flatnonzero(self._exact[rows])
        for i in exact.tolist():
            clock = self._clock[int(rows[i])]
            assert clock is not None
            out[i] = clock.local(int(true_ns[i]))
        return out


class ClockKind(StrEnum):
    """Families of device clocks, with the ranges :func:`random_clock` draws from."""

    NTP = "ntp"  # a media server or display on NTP: +-50 ms, +-10 ppm, no steps
    FREE = "free"  # an NTP-less device on its RTC: up to +-2 s, +-50 ppm
    PHONE = "phone"  # a headset / phone: +-50 ms, +-50 ppm, occasional NTP step corrections


_RANGES: Mapping[ClockKind, tuple[int, float, float]] = {
    # kind: (max |offset| ns, max |drift| ppm, probability of one step within the horizon)
    ClockKind.NTP: (50 * _MS, 10.0, 0.0),
    ClockKind.FREE: (2 * _S, 50.0, 0.0),
    ClockKind.PHONE: (50 * _MS, 50.0, 0.10),
}


def random_clock(
    seed: int, kind: ClockKind | str = ClockKind.PHONE, *, epoch_ns: int = 0, horizon_ns: int = 3600 * _S
) -> DeviceClock:
    """A reproducible random clock of this ``kind`` (same seed, same clock).

    Offsets are uniform in +-max, drift uniform in +-max ppm. A phone has a 10 % chance of one
    step inside ``[epoch_ns, epoch_ns + horizon_ns)``: an NTP correction of 5-100 ms either way.
    """
    kind = ClockKind(kind)
    rng = random.Random(f"clock:{seed}")
    max_off, max_ppm, p_step = _RANGES[kind]
    offset = rng.randint(-max_off, max_off)
    drift = round(rng.uniform(-max_ppm, max_ppm), 3)
    steps: list[tuple[int, int]] = []
    if p_step and rng.random() < p_step:
        at = epoch_ns + rng.randrange(max(1, horizon_ns))
        size = rng.randint(5 * _MS, 100 * _MS) * rng.choice((-1, 1))
        steps.append((at, size))
    return DeviceClock(offset, drift, tuple(steps), seed, epoch_ns)


def clock_kind_of(device: Device, seed: int) -> ClockKind:
    """Which clock family a venue device gets: ``app`` devices are phones/headsets; OSC displays
    are NTP-disciplined or free-running (NTP-less) with equal odds, drawn from ``seed``."""
    if device.sync is Sync.APP:
        return ClockKind.PHONE
    rng = random.Random(f"kind:{seed}:{device.id}")
    return ClockKind.FREE if rng.random() < 0.5 else ClockKind.NTP


def clocks_for_venue(
    venue: Venue | Iterable[Device], seed: int, *, epoch_ns: int = 0, horizon_ns: int = 3600 * _S
) -> dict[str, DeviceClock]:
    """Seeded clocks for every device of a venue, by device id (same seed, same clocks)."""
    devices = venue.devices if isinstance(venue, Venue) else tuple(venue)
    out: dict[str, DeviceClock] = {}
    for i, d in enumerate(devices):
        dseed = seed * 1_000_003 + i
        out[d.id] = random_clock(dseed, clock_kind_of(d, seed), epoch_ns=epoch_ns, horizon_ns=horizon_ns)
    return out
