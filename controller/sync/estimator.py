"""Clock estimation from ping samples: a Numba batch kernel and its pure-Python reference.

Theory of operation
-------------------
One ping gives (docs/protocol.md, "Clock synchronisation"; RFC 5905 section 8)::

    theta = ((t2 - t1) + (t3 - t4)) / 2      # device clock minus show clock
    delay = (t4 - t1) - (t3 - t2)            # round trip, less the device's hold time

at the reference instant ``r = (t1 + t4) / 2``. If the outbound and return legs took ``o`` and
``b``, theta is off the truth by ``(o - b) / 2``, and ``|o - b| <= delay``. Queueing only ever
*adds* delay, and is usually lopsided (Wi-Fi uplink versus downlink), so a sample's excess
delay over the path's floor bounds its error: the samples with the smallest delay are the
truthful ones, and a median of offsets is biased by half the mean asymmetric queueing.

The fit, per device, over its window of ``k`` samples (oldest first):

1. Times are taken relative to a per-device base (the oldest ``t1``) and offsets relative to the
   offset of the minimum-delay sample, so every float64 in the fit is small and exact to well
   under a nanosecond, although raw instants are ~1.8e18 ns.
2. ``dmin`` is the smallest delay; each sample's *excess* is ``e = delay - dmin``. The scale
   ``tau`` is the excess of the sample of rank ``k // 8`` (so roughly the best eighth of the
   window sets it), but at least :data:`TAU_MIN_NS` (timestamping noise).
3. Weighted least squares of theta against ``r`` with weights ``exp(-(e / tau)^2)``: the
   lower delay envelope dominates and queued samples fall away steeply. Because the fit is a
   line, drift is taken out while the low-delay samples are found by their delay alone (delay
   does not depend on the offset or drift), so the selection is drift-aware by construction.
4. Drift whose standard error exceeds the prior spread of real oscillators
   (:data:`DRIFT_PRIOR`, 100 ppm) is not trusted: it is set to 0 and its uncertainty to the
   prior. Drift beyond :data:`MAX_DRIFT` is clamped (a clock that fast has stepped, not drifted).
5. Uncertainty at the epoch: ``dmin / 2`` (the hard bound on the best sample's asymmetry) plus
   three standard errors of the fitted line at the epoch, with the residual spread floored at
   ``tau / 2`` so a few samples that happen to line up do not claim perfection. The weights
   are read as inverse variances relative to the best sample (``sigma^2 / w``), which is what
   makes the standard errors ``sigma / sqrt(sum w)`` and ``sigma / sqrt(Sxx)``; a sample
   weighted out has, rightly, no say in how well the drift is known.

:func:`estimate_batch` runs this over every dirty device at once; :func:`estimate_one_reference`
is the same computation written plainly, and a property test holds the two equal. Call
:func:`warm` before a show: compiling a kernel takes seconds and no JIT pause may ever land on a
cue. Kernels are compiled with ``cache=True``, so later processes load them from disk.

Nothing here reads a clock or does I/O: the epoch is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from controller.sync.samples import PingSamples

__all__ = [
    "DRIFT_PRIOR",
    "MAX_DRIFT",
    "TAU_MIN_NS",
    "Estimate",
    "EstimateArrays",
    "estimate_batch",
    "estimate_one_reference",
    "estimate_samples",
    "naive_offset_ns",
    "warm",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: Prior spread of oscillator drift (100 ppm, as a fraction): a drift estimate noisier than this
#: is worse than assuming none.
DRIFT_PRIOR = 1e-4
#: Largest drift believed (1000 ppm); beyond it the clock has stepped, not drifted.
MAX_DRIFT = 1e-3
#: Smallest excess-delay scale, ns: timestamping noise of a good device.
TAU_MIN_NS = 2_000.0
#: Standard errors of the fitted line added to ``dmin / 2`` in the uncertainty.
_K_SIGMA = 3.0
#: The excess-delay scale is the excess of the sample of this rank divisor (k // 8).
_TAU_RANK_DIV = 8
#: Samples more than this many ``tau`` above the minimum delay get weight 0 (exp(-36) ~ 2e-16):
#: exactly what their weight would round to in the sums, without computing the exponential.
_Z_CUT = 6.0


@dataclass(frozen=True, slots=True)
class Estimate:
    """One device's clock estimate at ``epoch_ns`` (show clock).

    ``offset_ns`` is device clock minus show clock at the epoch; the device clock runs
    ``drift_ppb`` parts per billion fast. ``uncertainty_ns`` bounds the offset error at the epoch.
    Delays are round trips less the device hold time. ``n_samples`` 0 means no estimate.
    """

    epoch_ns: int
    offset_ns: int
    drift_ppb: float
    drift_sigma_ppb: float
    uncertainty_ns: int
    delay_p50_ns: int
    delay_p99_ns: int
    min_delay_ns: int
    n_samples: int


class EstimateArrays:
    """Per-device estimator outputs as arrays (row ``d`` is device ``d``): see :class:`Estimate`."""

    __slots__ = (
        "delay_p50_ns",
        "delay_p99_ns",
        "drift_ppb",
        "drift_sigma_ppb",
        "min_delay_ns",
        "n_samples",
        "offset_ns",
        "uncertainty_ns",
    )

    def __init__(self, n: int) -> None:
        self.offset_ns: I64 = np.zeros(n, dtype=np.int64)
        self.drift_ppb: F64 = np.zeros(n, dtype=np.float64)
        self.drift_sigma_ppb: F64 = np.zeros(n, dtype=np.float64)
        self.uncertainty_ns: I64 = np.zeros(n, dtype=np.int64)
        self.delay_p50_ns: I64 = np.zeros(n, dtype=np.int64)
        self.delay_p99_ns: I64 = np.zeros(n, dtype=np.int64)
        self.min_delay_ns: I64 = np.zeros(n, dtype=np.int64)
        self.n_samples: I64 = np.zeros(n, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.offset_ns.shape[0])

    def grow(self, n: int) -> None:
        """Make room for ``n`` rows in total; new rows hold no estimate (``n_samples`` 0)."""
        extra = n - len(self)
        if extra <= 0:
            return
        for name in self.__slots__:
            arr = getattr(self, name)
            setattr(self, name, np.concatenate([arr, np.zeros(extra, dtype=arr.dtype)]))

    def row(self, dev: int, epoch_ns: int) -> Estimate:
        """Row ``dev`` as an :class:`Estimate` (``epoch_ns`` is the epoch it was fitted at)."""
        return Estimate(
            epoch_ns=epoch_ns,
            offset_ns=int(self.offset_ns[dev]),
            drift_ppb=float(self.drift_ppb[dev]),
            drift_sigma_ppb=float(self.drift_sigma_ppb[dev]),
            uncertainty_ns=int(self.uncertainty_ns[dev]),
            delay_p50_ns=int(self.delay_p50_ns[dev]),
            delay_p99_ns=int(self.delay_p99_ns[dev]),
            min_delay_ns=int(self.min_delay_ns[dev]),
            n_samples=int(self.n_samples[dev]),
        )


# --------------------------------------------------------------------------------------------
# Numba kernels


@njit(cache=True)
def _rank_index(k: int, pct: int) -> int:  # pragma: no cover - compiled
    # Nearest-rank percentile: the ceil(pct/100 * k)-th smallest, as a 0-based index.
    i = (pct * k + 99) // 100 - 1
    if i < 0:
        i = 0
    return i


@njit(cache=True)
def _select(src: I64, k: int, kth: int, a: I64, b: I64) -> int:  # pragma: no cover - compiled
    # The kth smallest of src[:k] (src untouched; a and b are scratch of length >= k).
    # Three-way quickselect whose partition has no data-dependent branch: each value is
    # written to both ends of the destination and the comparisons advance the cursors. On
    # 64 random delays a branchy quickselect spent most of its time in mispredictions and cost
    # more than the rest of the fit; a full sort cost even more.
    n = k
    cur = src
    into_a = True
    while True:
        x0 = cur[0]
        x1 = cur[n >> 1]
        x2 = cur[n - 1]
        p = max(min(x0, x1), min(max(x0, x1), x2))  # median of three: an element, so ne >= 1
        dst = a if into_a else b
        nl = 0
        ng = 0
        for i in range(n):
            v = cur[i]
            dst[nl] = v
            nl += v < p
            dst[n - 1 - ng] = v
            ng += v > p
        if kth < nl:
            n = nl
            cur = dst
            into_a = not into_a
        elif kth < n - ng:
            return int(p)
        else:
            # The greater values sit at dst[n - ng:n]; move them to the other buffer's front
            # and keep writing into dst next time round.
            other = b if into_a else a
            for i in range(ng):
                other[i] = dst[n - ng + i]
            kth -= n - ng
            n = ng
            cur = other


@njit(cache=True)
def _fit_row(
    t1: I64,
    t2: I64,
    t3: I64,
    t4: I64,
    count: int,
    head: int,
    epoch: int,
    x: F64,
    y: F64,
    w: F64,
    d: I64,
    ds: I64,
    sa: I64,
) -> tuple[int, float, float, int, int, int, int]:  # pragma: no cover - compiled
    window = t1.shape[0]
    k = count
    s = head - k
    if s < 0:
        s += window
    base = t1[s]
    dmin = np.int64(0)
    dmax = np.int64(0)
    ref2 = np.int64(0)
    # Gather the ring oldest first (no modulo in the loop: it dominated the gather).
    for i in range(k):
        a1 = t1[s]
        a4 = t4[s]
        di = (a4 - a1) - (t3[s] - t2[s])
        d[i] = di
        if i == 0 or di > dmax:
            dmax = di
        s2 = (t2[s] - a1) + (t3[s] - a4)
        y[i] = float(s2)
        x[i] = float(a1 - base) + 0.5 * float(a4 - a1)
        if i == 0 or di < dmin:
            dmin = di
            ref2 = s2
        s += 1
        if s == window:
            s = 0
    fref2 = float(ref2)
    r_tau = k // _TAU_RANK_DIV
    r_50 = _rank_index(k, 50)
    r_99 = _rank_index(k, 99)
    q_tau = _select(d, k, r_tau, ds, sa)
    p50 = _select(d, k, r_50, ds, sa)
    p99 = dmax if r_99 == k - 1 else _select(d, k, r_99, ds, sa)
    tau = float(q_tau - dmin)
    if tau < TAU_MIN_NS:
        tau = TAU_MIN_NS
    wsum = 0.0
    xs = 0.0
    ys = 0.0
    for i in range(k):
        yi = 0.5 * (y[i] - fref2)
        y[i] = yi
        z = float(d[i] - dmin) / tau
        wi = math.exp(-(z * z)) if z < _Z_CUT else 0.0
        w[i] = wi
        wsum += wi
        xs += wi * x[i]
        ys += wi * yi
    xbar = xs / wsum
    ybar = ys / wsum
    sxx = 0.0
    sxy = 0.0
    syy = 0.0
    for i in range(k):
        wi = w[i]
        dx = x[i] - xbar
        dy = y[i] - ybar
        sxx += wi * dx * dx
        sxy += wi * dx * dy
        syy += wi * dy * dy
    b = 0.0
    if sxx > 0.0:
        b = sxy / sxx
        if b > MAX_DRIFT:
            b = MAX_DRIFT
        elif b < -MAX_DRIFT:
            b = -MAX_DRIFT
    # sum of w * (dy - b * dx)^2, expanded: saves a pass over the samples
    rss = syy - 2.0 * b * sxy + b * b * sxx
    if rss < 0.0:
        rss = 0.0
    sigma = math.sqrt(rss / wsum)
    if sigma < 0.5 * tau:
        sigma = 0.5 * tau
    sigma_b = DRIFT_PRIOR
    if sxx > 0.0:
        sigma_b = sigma / math.sqrt(sxx)
    if sigma_b >= DRIFT_PRIOR:
        sigma_b = DRIFT_PRIOR
        b = 0.0
    dx_epoch = float(epoch - base) - xbar
    theta = 0.5 * fref2 + ybar + b * dx_epoch
    offset = math.floor(theta + 0.5)
    line_sd = math.sqrt(sigma * sigma / wsum + (sigma_b * dx_epoch) ** 2)
    unc = math.ceil(0.5 * float(dmin) + _K_SIGMA * line_sd)
    return offset, b * 1e9, sigma_b * 1e9, unc, int(p50), int(p99), int(dmin)


@njit(cache=True)
def estimate_batch(
    t1: I64,
    t2: I64,
    t3: I64,
    t4: I64,
    counts: I64,
    heads: I64,
    dirty: npt.NDArray[np.bool_],
    epoch: I64,
    offset_ns: I64,
    drift_ppb: F64,
    drift_sigma_ppb: F64,
    uncertainty_ns: I64,
    delay_p50_ns: I64,
    delay_p99_ns: I64,
    min_delay_ns: I64,
    n_samples: I64,
) -> int:  # pragma: no cover - compiled
    """Refit every device whose ``dirty`` flag is set, writing its row of the output arrays.

    ``t1..t4`` are the ``(n, window)`` rings of :class:`~controller.sync.samples.PingSamples`,
    ``counts``/``heads`` their fill and next slot, ``epoch[d]`` the show-clock instant at which
    device ``d``'s offset is wanted. A dirty device with no samples gets ``n_samples`` 0 and
    zeros elsewhere. Returns how many devices were refitted. Serial: on two shared cores a
    parallel loop did not pay for its thread wake-ups (see ``controller.bench.estimator``).
    """
    n = t1.shape[0]
    window = t1.shape[1]
    x = np.empty(window, dtype=np.float64)
    y = np.empty(window, dtype=np.float64)
    w = np.empty(window, dtype=np.float64)
    d = np.empty(window, dtype=np.int64)
    ds = np.empty(window, dtype=np.int64)
    sa = np.empty(window, dtype=np.int64)
    done = 0
    for dev in range(n):
        if not dirty[dev]:
            continue
        done += 1
        k = counts[dev]
        n_samples[dev] = k
        if k <= 0:
            offset_ns[dev] = 0
            drift_ppb[dev] = 0.0
            drift_sigma_ppb[dev] = 0.0
            uncertainty_ns[dev] = 0
            delay_p50_ns[dev] = 0
            delay_p99_ns[dev] = 0
            min_delay_ns[dev] = 0
            continue
        off, dr, drs, unc, p50, p99, dmin = _fit_row(
            t1[dev], t2[dev], t3[dev], t4[dev], k, heads[dev], epoch[dev], x, y, w, d, ds, sa
        )
        offset_ns[dev] = off
        drift_ppb[dev] = dr
        drift_sigma_ppb[dev] = drs
        uncertainty_ns[dev] = unc
        delay_p50_ns[dev] = p50
        delay_p99_ns[dev] = p99
        min_delay_ns[dev] = dmin
    return done


@njit(cache=True)
def _naive_batch(
    t1: I64, t2: I64, t3: I64, t4: I64, counts: I64, heads: I64, out: I64
) -> None:  # pragma: no cover - compiled
    n = t1.shape[0]
    window = t1.shape[1]
    th = np.empty(window, dtype=np.float64)
    for dev in range(n):
        k = counts[dev]
        if k <= 0:
            out[dev] = 0
            continue
        start = (heads[dev] - k) % window
        for i in range(k):
            s = (start + i) % window
            th[i] = 0.5 * float((t2[dev, s] - t1[dev, s]) + (t3[dev, s] - t4[dev, s]))
        out[dev] = math.floor(np.median(th[:k]) + 0.5)


# --------------------------------------------------------------------------------------------
# Python entry points


def estimate_samples(
    samples: PingSamples,
    epoch_ns: int | npt.ArrayLike,
    out: EstimateArrays | None = None,
    *,
    only_dirty: bool = True,
) -> tuple[EstimateArrays, I64]:
    """Run :func:`estimate_batch` over ``samples`` and return ``(out, refitted_rows)``.

    ``epoch_ns`` is one show-clock instant for every device or an array with one per device.
    With ``only_dirty`` (the default) only devices with new samples are refitted, and their
    dirty flags are cleared; otherwise every device is.
    """
    n = samples.n_devices
    if out is None:
        out = EstimateArrays(n)
    out.grow(n)
    ep = np.broadcast_to(np.asarray(epoch_ns, dtype=np.int64), (n,)).copy()
    mask = samples.dirty.copy() if only_dirty else np.ones(n, dtype=np.bool_)
    estimate_batch(
        samples.t1,
        samples.t2,
        samples.t3,
        samples.t4,
        samples.count,
        samples.head,
        mask,
        ep,
        out.offset_ns,
        out.drift_ppb,
        out.drift_sigma_ppb,
        out.uncertainty_ns,
        out.delay_p50_ns,
        out.delay_p99_ns,
        out.min_delay_ns,
        out.n_samples,
    )
    rows = np.flatnonzero(mask).astype(np.int64)
    samples.clear_dirty(rows)
    return out, rows


def naive_offset_ns(samples: PingSamples) -> I64:
    """The naive estimate, for comparison only: each device's median theta over its window."""
    out = np.zeros(samples.n_devices, dtype=np.int64)
    _naive_batch(samples.t1, samples.t2, samples.t3, samples.t4, samples.count, samples.head, out)
    return out


def estimate_one_reference(
    t1: Sequence[int],
    t2: Sequence[int],
    t3: Sequence[int],
    t4: Sequence[int],
    epoch_ns: int,
) -> Estimate:
    """The estimator for one device, written plainly (the oracle for :func:`estimate_batch`).

    ``t1..t4`` are the device's samples, oldest first. See the module docstring for the method.
    """
    k = len(t1)
    if not (len(t2) == len(t3) == len(t4) == k):
        raise ValueError("t1, t2, t3 and t4 must have the same length")
    if k == 0:
        return Estimate(epoch_ns, 0, 0.0, 0.0, 0, 0, 0, 0, 0)
    a1 = [int(v) for v in t1]
    a2 = [int(v) for v in t2]
    a3 = [int(v) for v in t3]
    a4 = [int(v) for v in t4]
    delays = [(a4[i] - a1[i]) - (a3[i] - a2[i]) for i in range(k)]
    jmin = min(range(k), key=lambda i: (delays[i], i))
    dmin = delays[jmin]
    ref2 = (a2[jmin] - a1[jmin]) + (a3[jmin] - a4[jmin])
    base = a1[0]
    xs = [float(a1[i] - base) + 0.5 * float(a4[i] - a1[i]) for i in range(k)]
    ys = [0.5 * float((a2[i] - a1[i]) + (a3[i] - a4[i]) - ref2) for i in range(k)]
    ordered = sorted(delays)
    tau = max(TAU_MIN_NS, float(ordered[k // _TAU_RANK_DIV] - dmin))
    zs = [(delays[i] - dmin) / tau for i in range(k)]
    ws = [math.exp(-(z**2)) if z < _Z_CUT else 0.0 for z in zs]
    wsum = sum(ws)
    xbar = sum(ws[i] * xs[i] for i in range(k)) / wsum
    ybar = sum(ws[i] * ys[i] for i in range(k)) / wsum
    sxx = sum(ws[i] * (xs[i] - xbar) ** 2 for i in range(k))
    sxy = sum(ws[i] * (xs[i] - xbar) * (ys[i] - ybar) for i in range(k))
    b = min(MAX_DRIFT, max(-MAX_DRIFT, sxy / sxx)) if sxx > 0.0 else 0.0
    rss = sum(ws[i] * (ys[i] - ybar - b * (xs[i] - xbar)) ** 2 for i in range(k))  # >= 0, plainly
    sigma = max(math.sqrt(rss / wsum), 0.5 * tau)
    sigma_b = sigma / math.sqrt(sxx) if sxx > 0.0 else DRIFT_PRIOR
    if sigma_b >= DRIFT_PRIOR:
        sigma_b, b = DRIFT_PRIOR, 0.0
    dx_epoch = float(epoch_ns - base) - xbar
    theta = 0.5 * float(ref2) + ybar + b * dx_epoch
    line_sd = math.sqrt(sigma**2 / wsum + (sigma_b * dx_epoch) ** 2)

    def rank(pct: int) -> int:
        return ordered[max(0, (pct * k + 99) // 100 - 1)]

    return Estimate(
        epoch_ns=epoch_ns,
        offset_ns=math.floor(theta + 0.5),
        drift_ppb=b * 1e9,
        drift_sigma_ppb=sigma_b * 1e9,
        uncertainty_ns=math.ceil(0.5 * dmin + _K_SIGMA * line_sd),
        delay_p50_ns=rank(50),
        delay_p99_ns=rank(99),
        min_delay_ns=dmin,
        n_samples=k,
    )


def warm() -> None:
    """Compile (or load from the on-disk cache) every kernel in this module.

    Call it at start-up, before a show is armed: the first call of a Numba kernel compiles it,
    which takes seconds, and no JIT pause may ever land on a cue. Later processes load the
    compiled code from Numba's cache (``cache=True``) in a fraction of that.
    """
    s = PingSamples(2, window=4)
    for i in range(3):
        s.add(0, 1_000 + i * 10, 2_000 + i * 10, 2_001 + i * 10, 1_010 + i * 10)
    estimate_samples(s, 1_000, only_dirty=False)
    naive_offset_ns(s)
