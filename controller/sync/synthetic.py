"""Seeded synthetic ping samples against a known truth, for tests and benchmarks.

A device's clock is ``device(t) = t + offset_ns + drift_ppb * (t - epoch_ns) / 1e9`` for true
time ``t`` (the same line the protocol's clock model describes), and the show clock is true
time. Each leg of a ping takes half the path's floor, plus exponential queueing (its own mean
per direction, so paths can be asymmetric), plus, with some probability, a heavy-tail spike on
one leg; device timestamps carry a little noise. Everything is drawn from the ``numpy``
generator passed in, so a seed gives the same samples every time. No clock is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["LAN", "WIFI", "WIFI_SYMMETRIC", "PathProfile", "SyntheticPings", "simulate_pings"]

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PathProfile:
    """Delays of a network path between the controller and a device, in ns."""

    floor_ns: int  # round-trip floor, split evenly between the legs
    queue_out_mean_ns: float  # mean exponential queueing, controller -> device
    queue_back_mean_ns: float  # mean exponential queueing, device -> controller
    spike_prob: float = 0.0  # probability a ping hits a spike (on one leg, chosen at random)
    spike_min_ns: float = 0.0
    spike_max_ns: float = 0.0
    stamp_noise_ns: float = 0.0  # std of device timestamping noise (t2 and t3)
    hold_ns: int = 50_000  # device time between receiving the ping and answering


#: Wi-Fi-like: 2 ms floor, 5 ms mean queueing split 4:1 (uplink-heavy), 5 % spikes of 50-200 ms.
WIFI = PathProfile(
    floor_ns=2_000_000,
    queue_out_mean_ns=4_000_000.0,
    queue_back_mean_ns=1_000_000.0,
    spike_prob=0.05,
    spike_min_ns=50_000_000.0,
    spike_max_ns=200_000_000.0,
    stamp_noise_ns=20_000.0,
)
#: Wi-Fi-like with the queueing split evenly (the hardest case for low-delay selection).
WIFI_SYMMETRIC = PathProfile(
    floor_ns=2_000_000,
    queue_out_mean_ns=2_500_000.0,
    queue_back_mean_ns=2_500_000.0,
    spike_prob=0.05,
    spike_min_ns=50_000_000.0,
    spike_max_ns=200_000_000.0,
    stamp_noise_ns=20_000.0,
)
#: Wired-LAN-like: 200 us floor, 50 us mean queueing split 4:1, 1 % spikes of 1-5 ms.
LAN = PathProfile(
    floor_ns=200_000,
    queue_out_mean_ns=40_000.0,
    queue_back_mean_ns=10_000.0,
    spike_prob=0.01,
    spike_min_ns=1_000_000.0,
    spike_max_ns=5_000_000.0,
    stamp_noise_ns=2_000.0,
)


@dataclass(frozen=True, slots=True)
class SyntheticPings:
    """Samples ``(n_devices, n_samples)`` per timestamp, oldest first, and the truth behind them."""

    t1: I64
    t2: I64
    t3: I64
    t4: I64
    offset_ns: I64  # true offset at epoch_ns, per device
    drift_ppb: I64  # true drift, per device
    epoch_ns: int

    def true_offset_at(self, at_ns: int) -> npt.NDArray[np.float64]:
        """True device-minus-show offset of every device at show-clock instant ``at_ns``."""
        return self.offset_ns + self.drift_ppb * ((at_ns - self.epoch_ns) / 1e9)


def simulate_pings(
    rng: np.random.Generator,
    n_devices: int,
    n_samples: int,
    profile: PathProfile,
    *,
    start_ns: int = 1_763_694_000_000_000_000,
    period_ns: int = 1_000_000_000,
    period_jitter_ns: int = 0,
    max_offset_ns: int = 5_000_000_000,
    max_drift_ppb: int = 100_000,
    epoch_ns: int | None = None,
) -> SyntheticPings:
    """Draw ``n_samples`` pings for each of ``n_devices`` devices, one every ``period_ns``.

    True offsets are uniform in ``+-max_offset_ns`` (at ``epoch_ns``, default the last ping's
    send time) and drifts uniform in ``+-max_drift_ppb``.
    """
    shape = (n_devices, n_samples)
    if epoch_ns is None:
        epoch_ns = start_ns + (n_samples - 1) * period_ns
    offset = rng.integers(-max_offset_ns, max_offset_ns + 1, size=n_devices, dtype=np.int64)
    drift = rng.integers(-max_drift_ppb, max_drift_ppb + 1, size=n_devices, dtype=np.int64)
    jitter = (
        rng.integers(0, period_jitter_ns + 1, size=shape, dtype=np.int64)
        if period_jitter_ns > 0
        else np.zeros(shape, dtype=np.int64)
    )
    t1 = start_ns + np.arange(n_samples, dtype=np.int64)[None, :] * period_ns + jitter
    half = profile.floor_ns / 2.0
    out_leg = half + rng.exponential(profile.queue_out_mean_ns, size=shape)
    back_leg = half + rng.exponential(profile.queue_back_mean_ns, size=shape)
    if profile.spike_prob > 0.0:
        spike = rng.random(shape) < profile.spike_prob
        size = rng.uniform(profile.spike_min_ns, profile.spike_max_ns, size=shape)
        on_out = rng.random(shape) < 0.5
        out_leg = out_leg + np.where(spike & on_out, size, 0.0)
        back_leg = back_leg + np.where(spike & ~on_out, size, 0.0)
    arrive = t1 + np.rint(out_leg).astype(np.int64)
    depart = arrive + profile.hold_ns
    t4 = depart + np.rint(back_leg).astype(np.int64)

    def device(true_ns: I64) -> I64:
        dt = (true_ns - epoch_ns).astype(np.float64)
        return true_ns + offset[:, None] + np.rint(drift[:, None] * dt / 1e9).astype(np.int64)

    noise2 = np.rint(rng.normal(0.0, profile.stamp_noise_ns, size=shape)).astype(np.int64)
    noise3 = np.rint(rng.normal(0.0, profile.stamp_noise_ns, size=shape)).astype(np.int64)
    t2 = device(arrive) + noise2
    t3 = np.maximum(device(depart) + noise3, t2)
    return SyntheticPings(t1, t2, t3, t4, offset, drift, epoch_ns)
