"""Ping samples: per-device ring buffers of the four NTP timestamps, as struct-of-arrays.

Theory of operation
-------------------
Every answered ping gives one sample ``(t1, t2, t3, t4)`` (RFC 5905 on-wire: ``t1``/``t4`` on
the show clock, ``t2``/``t3`` on the device clock; see docs/protocol.md, "Clock
synchronisation"). The estimator fits each device's clock from its last ``window`` samples, and
does so for thousands of devices in one Numba call, so samples live in four ``int64`` matrices of
shape ``(n_devices, window)`` rather than in per-device objects. Each row is a ring: ``head[d]``
is the slot the next sample of device ``d`` goes to, ``count[d]`` how many slots hold samples
(at most ``window``). The valid slots of row ``d``, oldest first, are
``(head[d] - count[d] + i) % window`` for ``i`` in ``range(count[d])``.

``dirty[d]`` is set when device ``d`` got a sample since its last estimate; the estimator only
refits dirty rows and the caller clears the mask (:meth:`PingSamples.clear_dirty`).

Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from venues.errors import MadangError

__all__ = ["PingSamples", "SampleError"]

I64 = npt.NDArray[np.int64]


@dataclass
class SampleError(MadangError, ValueError):
    """A ping sample, or a batch of them, that cannot be stored."""

    what: str
    device: int | None = None
    hint: str = ""

    def __post_init__(self) -> None:
        Exception.__init__(self, self.what)

    def __str__(self) -> str:
        where = f"device index {self.device}: " if self.device is not None else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"ping samples: {where}{self.what}{hint}"


class PingSamples:
    """Struct-of-arrays ring buffers of ping samples for ``n_devices`` devices.

    Add samples with :meth:`add` (one) or :meth:`add_many` (vectorised), make room for joining
    devices with :meth:`grow`, forget a rebooted device's history with :meth:`reset`. The
    estimator (:func:`controller.sync.estimator.estimate_batch`) reads the arrays directly.
    """

    __slots__ = ("count", "dirty", "head", "t1", "t2", "t3", "t4", "window")

    def __init__(self, n_devices: int, window: int = 64) -> None:
        if n_devices < 0:
            raise SampleError(f"n_devices must be >= 0, got {n_devices}")
        if window < 1:
            raise SampleError(f"window must be >= 1, got {window}", hint="64 is a good window")
        self.window = window
        self.t1: I64 = np.zeros((n_devices, window), dtype=np.int64)
        self.t2: I64 = np.zeros((n_devices, window), dtype=np.int64)
        self.t3: I64 = np.zeros((n_devices, window), dtype=np.int64)
        self.t4: I64 = np.zeros((n_devices, window), dtype=np.int64)
        self.count: I64 = np.zeros(n_devices, dtype=np.int64)
        self.head: I64 = np.zeros(n_devices, dtype=np.int64)
        self.dirty: npt.NDArray[np.bool_] = np.zeros(n_devices, dtype=np.bool_)

    @property
    def n_devices(self) -> int:
        """How many device rows the buffers hold."""
        return int(self.count.shape[0])

    def __len__(self) -> int:
        return self.n_devices

    def _check_dev(self, dev: int) -> None:
        if not 0 <= dev < self.n_devices:
            raise SampleError(
                "no such device row", device=dev, hint=f"valid rows are 0..{self.n_devices - 1}; grow() first"
            )

    def add(self, dev: int, t1: int, t2: int, t3: int, t4: int) -> None:
        """Store one sample of device row ``dev``, overwriting its oldest when the ring is full.

        A sample whose show-clock round trip runs backwards (``t4 < t1``) or whose device hold
        time is negative (``t3 < t2``) is impossible and raises :class:`SampleError`; parse and
        bound pongs before they get here.
        """
        self._check_dev(dev)
        if t4 < t1 or t3 < t2:
            raise SampleError(
                f"impossible timestamps t1={t1} t2={t2} t3={t3} t4={t4}",
                device=dev,
                hint="need t1 <= t4 and t2 <= t3; drop the pong",
            )
        h = int(self.head[dev])
        self.t1[dev, h] = t1
        self.t2[dev, h] = t2
        self.t3[dev, h] = t3
        self.t4[dev, h] = t4
        self.head[dev] = (h + 1) % self.window
        if self.count[dev] < self.window:
            self.count[dev] += 1
        self.dirty[dev] = True

    def add_many(
        self,
        devs: npt.ArrayLike,
        t1s: npt.ArrayLike,
        t2s: npt.ArrayLike,
        t3s: npt.ArrayLike,
        t4s: npt.ArrayLike,
    ) -> None:
        """Store a batch of samples; ``devs`` may repeat a device (samples keep their order).

        Vectorised: a batch of pongs gathered over one loop turn costs a few NumPy calls. Raises
        :class:`SampleError` without storing anything if any row or sample is invalid.
        """
        d = np.asarray(devs, dtype=np.int64).ravel()
        a1 = np.asarray(t1s, dtype=np.int64).ravel()
        a2 = np.asarray(t2s, dtype=np.int64).ravel()
        a3 = np.asarray(t3s, dtype=np.int64).ravel()
        a4 = np.asarray(t4s, dtype=np.int64).ravel()
        m = d.shape[0]
        if not (a1.shape[0] == a2.shape[0] == a3.shape[0] == a4.shape[0] == m):
            raise SampleError("devs, t1s, t2s, t3s and t4s must have the same length")
        if m == 0:
            return
        if int(d.min()) < 0 or int(d.max()) >= self.n_devices:
            bad = int(d[(d < 0) | (d >= self.n_devices)][0])
            raise SampleError("no such device row", device=bad, hint="grow() before adding samples")
        bad_mask = (a4 < a1) | (a3 < a2)
        if bad_mask.any():
            raise SampleError(
                f"{int(bad_mask.sum())} impossible samples (t4 < t1 or t3 < t2)",
                device=int(d[bad_mask][0]),
                hint="drop those pongs before adding",
            )
        # Rank of each sample among the batch's samples of the same device, in batch order, so
        # that repeats of a device land in consecutive ring slots.
        order = np.argsort(d, kind="stable")
        ds = d[order]
        starts = np.r_[0, np.flatnonzero(ds[1:] != ds[:-1]) + 1]
        group_len = np.diff(np.r_[starts, m])
        rank_sorted = np.arange(m, dtype=np.int64) - np.repeat(starts, group_len)
        rank = np.empty(m, dtype=np.int64)
        rank[order] = rank_sorted
        slot = (self.head[d] + rank) % self.window
        # A device given more than ``window`` samples in one batch keeps only its newest
        # ``window``: then every (device, slot) pair written below is distinct.
        n_of_dev = np.empty(m, dtype=np.int64)
        n_of_dev[order] = np.repeat(group_len, group_len)
        keep = rank >= n_of_dev - self.window
        dk, sk = d[keep], slot[keep]
        self.t1[dk, sk] = a1[keep]
        self.t2[dk, sk] = a2[keep]
        self.t3[dk, sk] = a3[keep]
        self.t4[dk, sk] = a4[keep]
        uniq = ds[starts]
        self.head[uniq] = (self.head[uniq] + group_len) % self.window
        self.count[uniq] = np.minimum(self.count[uniq] + group_len, self.window)
        self.dirty[uniq] = True

    def grow(self, n: int) -> None:
        """Make room for ``n`` device rows in total (joining devices); never shrinks."""
        old = self.n_devices
        if n <= old:
            return
        extra = n - old
        zeros = np.zeros((extra, self.window), dtype=np.int64)
        self.t1 = np.concatenate([self.t1, zeros])
        self.t2 = np.concatenate([self.t2, zeros])
        self.t3 = np.concatenate([self.t3, zeros])
        self.t4 = np.concatenate([self.t4, zeros])
        self.count = np.concatenate([self.count, np.zeros(extra, dtype=np.int64)])
        self.head = np.concatenate([self.head, np.zeros(extra, dtype=np.int64)])
        self.dirty = np.concatenate([self.dirty, np.zeros(extra, dtype=np.bool_)])

    def reset(self, dev: int) -> None:
        """Forget every sample of ``dev`` (it rebooted: its clock may have stepped)."""
        self._check_dev(dev)
        self.count[dev] = 0
        self.head[dev] = 0
        self.dirty[dev] = True

    def clear_dirty(self, devs: npt.ArrayLike | None = None) -> None:
        """Clear the dirty flag of ``devs`` (default: every device) after an estimate."""
        if devs is None:
            self.dirty[:] = False
        else:
            self.dirty[np.asarray(devs, dtype=np.int64)] = False

    def ordered(self, dev: int) -> tuple[I64, I64, I64, I64]:
        """The samples of ``dev``, oldest first, as four new arrays (for tests and references)."""
        self._check_dev(dev)
        c = int(self.count[dev])
        idx = (int(self.head[dev]) - c + np.arange(c)) % self.window
        return (
            self.t1[dev, idx].copy(),
            self.t2[dev, idx].copy(),
            self.t3[dev, idx].copy(),
            self.t4[dev, idx].copy(),
        )
