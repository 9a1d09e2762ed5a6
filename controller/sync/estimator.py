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

The fit, per device, over its window of ``k`` samples (oldest first), uses the two legs apart.
The forward leg ``f = t2 - t1 = theta(t1) + floor_out + queue_out`` and the backward leg
``g = t4 - t3 = floor_back + queue_back - theta(t4)`` are each bounded below by their floor, and
each leg's *lower envelope* is reached by its own least-queued pings, which need not be the same
pings: the best of 64 forward legs and the best of 64 backward legs are far closer to their floors
than the forward and backward legs of the best round trip (on Wi-Fi-like paths, about 0.1 ms
against 0.6 ms). So:

1. Times are taken relative to a per-device base (the oldest ``t1``) and each leg relative to its
   own minimum, so every float64 in the fit is small and exact to well under a nanosecond,
   although raw instants are ~1.8e18 ns.
2. Drift: the slope of each leg's lower convex hull at the mean instant (the linear-programming
   skew estimator of Moon, Skelly and Towsley, 1999), the two averaged (``+b`` forward, ``-b``
   backward). Its standard error is taken as ``C_B * q / sqrt(Sxx)``, ``q`` half the median
   excess round trip (the queueing scale) and ``Sxx`` the spread of the ping instants; the
   estimate is then shrunk towards 0 with the prior spread of real oscillators,
   :data:`DRIFT_PRIOR` (30 ppm): ``b = b_hat * P / (P + s^2)``. A burst spanning a second gives a
   slope error of hundreds of ppm, so its drift is ~0 (rightly: assuming none is better); after
   a minute of pings the data dominate. Drift beyond :data:`MAX_DRIFT` is clamped.
3. Offset at the epoch ``e``: every sample bounds the offset there from one side, once carried to
   ``e`` along the drift line and widened by ``KAPPA`` drift standard errors per second of
   carrying: ``theta(e) + floor_out <= f_i + b (e - x_i) + KAPPA * sigma_b * |e - x_i|`` and
   likewise from below with ``g``. The tightest bound of each side is taken, and the offset is
   their midpoint: exact when the two floors are equal (no two-way method can see a difference
   between them; see docs/protocol.md). Old samples lose their say as the drift's uncertainty
   makes them loose, which is what keeps an unsure drift from dragging the offset.
4. Uncertainty at the epoch (about 99 % of errors within it on symmetric-floor paths):
   ``K_U`` times the distance from each leg's tightest bound to its third tightest (how sharply
   the envelope is pinned; the two legs combined in quadrature), plus three drift standard
   errors times the age of the samples that set the bounds, at least :data:`TAU_MIN_NS`. With
   fewer than three samples it is half the smallest round trip (the hard bound on asymmetry)
   plus the drift term.

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
    "C_B",
    "DRIFT_PRIOR",
    "KAPPA",
    "K_U",
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

#: Prior standard deviation of oscillator drift (30 ppm, as a fraction: phone and display quartz is
#: specified at +-20-50 ppm): the drift estimate is shrunk towards 0 with it.
DRIFT_PRIOR = 3e-5
#: Largest drift believed (1000 ppm); beyond it the clock has stepped, not drifted.
MAX_DRIFT = 1e-3
#: Smallest excess-delay scale, ns: timestamping noise of a good device.
TAU_MIN_NS = 2_000.0
#: Drift standard errors per second of age added to the uncertainty.
_K_SIGMA = 3.0
#: Scale of the hull slope's standard error: ``C_B * q / sqrt(Sxx)``. About twice the error
#: measured on the simulator's wifi and lan profiles (0.45-0.65 there): the extra shrinkage costs
#: drift accuracy but gave better offsets, where it counts (p99 over devices, offline on samples
#: recorded from ``madang bench sync``: LAN 3 s into the burst 85 -> 78 us, Wi-Fi at 48 s
#: 827 -> 779 us; on synthetic Wi-Fi with drifts to 100 ppm it costs 337 -> 396 us).
C_B = 1.0
#: Drift standard errors per second of carrying that widen each sample's bound on the offset.
KAPPA = 2.0
#: The hulls are not computed when the slope's variance exceeds this many times the prior's: the
#: shrunk drift would be within 0.01 % of 0 (a burst spanning a second or two).
_SKIP_HULL = 1e4
#: Multiple of the envelope's sharpness (tightest to third tightest bound) in the uncertainty.
K_U = 3.0


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
def _hull_slope(
    x: F64, y: F64, k: int, xm: float, h: I64, xc: F64, yc: F64
) -> float:  # pragma: no cover - compiled
    # Slope of the lower convex hull of (x, y), x sorted ascending, at xm (monotone chain; of
    # points with equal x only the lowest counts). 0 when the hull is a single point.
    # The hull passes through the lowest point and lies below the chords from the first point to
    # it and from it to the last, so points above those chords (most of a queued window) are
    # dropped first, without branches: the chain's pops mispredict, the filter does not.
    lo = 0
    ylo = y[0]
    for i in range(1, k):
        yi = y[i]
        lo = i if yi < ylo else lo
        ylo = min(ylo, yi)
    x0 = x[0]
    y0 = y[0]
    xl = x[lo]
    yl = y[lo]
    xk = x[k - 1]
    yk = y[k - 1]
    n = 0
    for i in range(k):
        # The chord of this side (the three named points pass: each lies on its chord).
        left = i <= lo
        ax = x0 if left else xl
        ay = y0 if left else yl
        bx = xl if left else xk
        by = yl if left else yk
        xi = x[i]
        yi = y[i]
        xc[n] = xi
        yc[n] = yi
        n += (yi - ay) * (bx - ax) <= (by - ay) * (xi - ax)
    m = 0
    for i in range(n):
        if m > 0 and xc[h[m - 1]] == xc[i]:
            if yc[i] >= yc[h[m - 1]]:
                continue
            m -= 1
        while m >= 2:
            i1 = h[m - 2]
            i2 = h[m - 1]
            if (yc[i2] - yc[i1]) * (xc[i] - xc[i1]) >= (yc[i] - yc[i1]) * (xc[i2] - xc[i1]):
                m -= 1
            else:
                break
        h[m] = i
        m += 1
    if m < 2:
        return 0.0
    j = 0
    while j < m - 2 and xc[h[j + 1]] < xm:
        j += 1
    a = h[j]
    b = h[j + 1]
    return float((yc[b] - yc[a]) / (xc[b] - xc[a]))


@njit(cache=True)
def _sorted_by_x(x: F64, y: F64, k: int, xo: F64, yo: F64) -> None:  # pragma: no cover - compiled
    # Stable insertion sort of (x, y) by x into (xo, yo): the rings are in arrival order, so
    # only a reordered pong ever moves anything.
    for i in range(k):
        xi = x[i]
        yi = y[i]
        j = i
        while j > 0 and xo[j - 1] > xi:
            xo[j] = xo[j - 1]
            yo[j] = yo[j - 1]
            j -= 1
        xo[j] = xi
        yo[j] = yi


@njit(cache=True)
def _leg_slope(
    x: F64, y: F64, k: int, xm: float, in_order: bool, xo: F64, yo: F64, h: I64, xc: F64, yc: F64
) -> float:  # pragma: no cover - compiled
    if in_order:
        return _hull_slope(x, y, k, xm, h, xc, yc)
    _sorted_by_x(x, y, k, xo, yo)
    return _hull_slope(xo, yo, k, xm, h, xc, yc)


@njit(cache=True)
def _fit_row(
    t1: I64,
    t2: I64,
    t3: I64,
    t4: I64,
    count: int,
    head: int,
    epoch: int,
    xf: F64,
    xb: F64,
    ff: F64,
    gg: F64,
    xo: F64,
    yo: F64,
    xc: F64,
    yc: F64,
    d: I64,
    ds: I64,
    sa: I64,
    h: I64,
) -> tuple[int, float, float, int, int, int, int]:  # pragma: no cover - compiled
    window = t1.shape[0]
    k = count
    s = head - k
    if s < 0:
        s += window
    base = t1[s]
    fref = t2[s] - base  # the legs are taken relative to the oldest sample's
    gref = t4[s] - t3[s]
    dmin = np.int64(0)
    dmax = np.int64(0)
    sf = 0.0
    sb_ = 0.0
    sff = 0.0
    f_order = True
    b_order = True
    # One pass over the ring, oldest first (no modulo in the loop: it dominated the gather).
    for i in range(k):
        a1 = t1[s]
        a4 = t4[s]
        fi = t2[s] - a1
        gi = a4 - t3[s]
        di = fi + gi
        d[i] = di
        if i == 0 or di > dmax:
            dmax = di
        if i == 0 or di < dmin:
            dmin = di
        x1 = float(a1 - base)
        x4 = float(a4 - base)
        xf[i] = x1
        xb[i] = x4
        ff[i] = float(fi - fref)
        gg[i] = float(gi - gref)
        if i > 0:
            f_order = f_order and x1 >= xf[i - 1]
            b_order = b_order and x4 >= xb[i - 1]
        sf += x1
        sb_ += x4
        sff += x1 * x1
        s += 1
        if s == window:
            s = 0
    xmf = sf / k
    xmb = sb_ / k
    sxx = sff - sf * xmf
    r_50 = _rank_index(k, 50)
    r_99 = _rank_index(k, 99)
    p50 = _select(d, k, r_50, ds, sa)
    p99 = dmax if r_99 == k - 1 else _select(d, k, r_99, ds, sa)
    prior2 = DRIFT_PRIOR * DRIFT_PRIOR
    b = 0.0
    var_b = prior2
    if k >= 3 and sxx > 0.0:
        q = 0.5 * float(p50 - dmin)
        if q < TAU_MIN_NS:
            q = TAU_MIN_NS
        s2 = (C_B * q) * (C_B * q) / sxx
        var_b = prior2 * s2 / (prior2 + s2)
        if s2 < _SKIP_HULL * prior2:
            bf = _leg_slope(xf, ff, k, xmf, f_order, xo, yo, h, xc, yc)
            bg = _leg_slope(xb, gg, k, xmb, b_order, xo, yo, h, xc, yc)
            b = 0.5 * (bf - bg) * prior2 / (prior2 + s2)
            if b > MAX_DRIFT:
                b = MAX_DRIFT
            elif b < -MAX_DRIFT:
                b = -MAX_DRIFT
    sb = math.sqrt(var_b)
    e = float(epoch - base)
    ks = KAPPA * sb
    # The three tightest bounds of each side (u: forward, v: backward) and the ages of the best.
    u1 = math.inf
    u2 = math.inf
    u3 = math.inf
    v1 = math.inf
    v2 = math.inf
    v3 = math.inf
    age_u = 0.0
    age_v = 0.0
    for i in range(k):
        # Branch-free: a min/max network keeps the three smallest of each side, and the age of
        # the smallest rides along as a select (mispredicted branches cost more than the work).
        df = e - xf[i]
        af = abs(df)
        u = ff[i] + b * df + ks * af
        age_u = af if u < u1 else age_u
        w1 = max(u1, u)
        u1 = min(u1, u)
        w2 = max(u2, w1)
        u2 = min(u2, w1)
        u3 = min(u3, w2)
        db = e - xb[i]
        ab = abs(db)
        v = gg[i] - b * db + ks * ab
        age_v = ab if v < v1 else age_v
        w1 = max(v1, v)
        v1 = min(v1, v)
        w2 = max(v2, w1)
        v2 = min(v2, w1)
        v3 = min(v3, w2)
    theta = 0.5 * ((u1 + float(fref)) - (v1 + float(gref)))
    offset = math.floor(theta + 0.5)
    drift_term = _K_SIGMA * sb * 0.5 * (age_u + age_v)
    if k >= 3:
        unc_f = K_U * math.sqrt((u3 - u1) * (u3 - u1) + (v3 - v1) * (v3 - v1)) + drift_term
    else:
        unc_f = 0.5 * float(dmin) + drift_term
    if unc_f < TAU_MIN_NS:
        unc_f = TAU_MIN_NS
    unc = math.ceil(unc_f)
    return offset, b * 1e9, sb * 1e9, unc, int(p50), int(p99), int(dmin)


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
    parallel loop did not pay for its thread wake-ups (see ``madang.bench.estimator``).
    """
    n = t1.shape[0]
    window = t1.shape[1]
    xf = np.empty(window, dtype=np.float64)
    xb = np.empty(window, dtype=np.float64)
    ff = np.empty(window, dtype=np.float64)
    gg = np.empty(window, dtype=np.float64)
    d = np.empty(window, dtype=np.int64)
    ds = np.empty(window, dtype=np.int64)
    sa = np.empty(window, dtype=np.int64)
    xo = np.empty(window, dtype=np.float64)
    yo = np.empty(window, dtype=np.float64)
    xc = np.empty(window, dtype=np.float64)
    yc = np.empty(window, dtype=np.float64)
    h = np.empty(window, dtype=np.int64)
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
            t1[dev], t2[dev], t3[dev], t4[dev], k, heads[dev], epoch[dev],
            xf, xb, ff, gg, xo, yo, xc, yc, d, ds, sa, h,
        )  # fmt: skip
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


def _hull_slope_reference(x: list[float], y: list[float], xm: float) -> float:
    order = sorted(range(len(x)), key=lambda i: (x[i], i))
    h: list[int] = []
    for i in order:
        if h and x[h[-1]] == x[i]:
            if y[i] >= y[h[-1]]:
                continue
            h.pop()
        while len(h) >= 2 and (y[h[-1]] - y[h[-2]]) * (x[i] - x[h[-2]]) >= (y[i] - y[h[-2]]) * (
            x[h[-1]] - x[h[-2]]
        ):
            h.pop()
        h.append(i)
    if len(h) < 2:
        return 0.0
    j = 0
    while j < len(h) - 2 and x[h[j + 1]] < xm:
        j += 1
    a, b = h[j], h[j + 1]
    return (y[b] - y[a]) / (x[b] - x[a])


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
    base = a1[0]
    fwd = [a2[i] - a1[i] for i in range(k)]
    back = [a4[i] - a3[i] for i in range(k)]
    delays = [fwd[i] + back[i] for i in range(k)]
    dmin = min(delays)
    xf = [float(a1[i] - base) for i in range(k)]
    xb = [float(a4[i] - base) for i in range(k)]
    ff = [float(v - fwd[0]) for v in fwd]  # legs relative to the oldest sample's
    gg = [float(v - back[0]) for v in back]
    ordered = sorted(delays)

    def rank(pct: int) -> int:
        return ordered[max(0, (pct * k + 99) // 100 - 1)]

    sf, sb_, sff = 0.0, 0.0, 0.0
    for i in range(k):  # the kernel's single pass, in its order (float sums are order-sensitive)
        sf += xf[i]
        sb_ += xb[i]
        sff += xf[i] * xf[i]
    xmf, xmb = sf / k, sb_ / k
    sxx = sff - sf * xmf
    prior2 = DRIFT_PRIOR * DRIFT_PRIOR
    b, var_b = 0.0, prior2
    if k >= 3 and sxx > 0.0:
        q = max(TAU_MIN_NS, 0.5 * float(rank(50) - dmin))
        s2 = (C_B * q) * (C_B * q) / sxx
        var_b = prior2 * s2 / (prior2 + s2)
        if s2 < _SKIP_HULL * prior2:
            bh = 0.5 * (_hull_slope_reference(xf, ff, xmf) - _hull_slope_reference(xb, gg, xmb))
            b = min(MAX_DRIFT, max(-MAX_DRIFT, bh * prior2 / (prior2 + s2)))
    sb = math.sqrt(var_b)
    e = float(epoch_ns - base)
    ups = [(ff[i] + b * (e - xf[i]) + KAPPA * sb * abs(e - xf[i]), i) for i in range(k)]
    los = [(gg[i] - b * (e - xb[i]) + KAPPA * sb * abs(e - xb[i]), i) for i in range(k)]
    ups.sort()
    los.sort()
    theta = 0.5 * ((ups[0][0] + float(fwd[0])) - (los[0][0] + float(back[0])))
    drift_term = _K_SIGMA * sb * 0.5 * (abs(e - xf[ups[0][1]]) + abs(e - xb[los[0][1]]))
    if k >= 3:
        unc = K_U * math.hypot(ups[2][0] - ups[0][0], los[2][0] - los[0][0]) + drift_term
    else:
        unc = 0.5 * float(dmin) + drift_term
    return Estimate(
        epoch_ns=epoch_ns,
        offset_ns=math.floor(theta + 0.5),
        drift_ppb=b * 1e9,
        drift_sigma_ppb=sb * 1e9,
        uncertainty_ns=math.ceil(max(unc, TAU_MIN_NS)),
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
