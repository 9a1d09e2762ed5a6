"""Seeded network impairments: delay, jitter, heavy-tail spikes, loss, duplication, partitions.

Theory of operation
-------------------
A :class:`Path` is the network between the controller and one device. For each message it draws,
from its own seeded random streams (one per direction, so uplink traffic never perturbs the
downlink draws), a one-way delay made of three parts::

    delay = floor + queueing + spike
    queueing ~ Gamma(shape k, mean m)          (contention and MAC back-off; k=1 is M/M/1's exponential)
    spike    ~ bounded Pareto(alpha, lo, hi)   with probability p, else 0 (power-save wake-ups,
                                               retransmission storms, roaming)

then decides whether it is lost (probability ``loss``) and whether it is duplicated (probability
``dup``: a second, independently delayed copy, as link-layer retransmissions of an unacknowledged
frame produce). Reordering is not a parameter: it falls out of independent delays. Uplink
(device -> controller) queueing is scaled by ``up_scale`` because on a crowded Wi-Fi cell the
stations contend for air time while the access point has priority (EDCA), so up and down differ.

Two delivery models:

* :meth:`Path.deliveries` / :meth:`Path.delay_ns`: datagrams (OSC over UDP). Lost is lost.
* :meth:`Path.stream_delay`: a message on a TCP stream (MQTT, WebSocket). Nothing is lost or
  duplicated; a lost segment is retransmitted after an RTO (200 ms, doubling), and the caller keeps
  the stream in order (FIFO). A partition holds the message until it ends.

Stream delays are by far the most numerous draws (every MQTT message of a whole show at ten
thousand headsets), so they come from NumPy, drawn ahead in blocks per path and direction (one
seeded ``numpy.random.Generator`` each, blocks of 64 doubling to 256, kept as ``array('q')``):
a path's n-th stream delay depends only on its seed, its direction and n, never on other paths'
traffic. Datagrams keep their own ``random.Random`` streams.

A partition (:meth:`Path.partition`) drops every datagram *sent* inside ``[start, end)``.
Profiles are named, frozen and documented with their numbers in ``docs/simulators.md``.
"""

from __future__ import annotations

import bisect
import random
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import ClassVar

import numpy as np
import numpy.typing as npt

__all__ = ["PROFILES", "Direction", "Path", "Profile", "profile", "profile_names", "stream_delays"]

_US = 1_000
_MS = 1_000_000
_RTO_NS = 200 * _MS  # Linux TCP minimum retransmission timeout (RFC 6298 says 1 s; Linux uses 200 ms)
_RTO_MAX_NS = 60_000 * _MS
_BLOCK_FIRST = 64  # stream delays drawn ahead per path and direction: few for quiet paths ...
_BLOCK_MAX = 256  # ... up to this many for busy ones
_DIR_CODE = {"down": 0, "up": 1}


class Direction(StrEnum):
    """Which way a message travels on a :class:`Path`."""

    DOWN = "down"  # controller (or broker) -> device
    UP = "up"  # device -> controller (or broker)


@dataclass(frozen=True, slots=True)
class Profile:
    """The numbers of one impairment profile. All durations are integer nanoseconds."""

    name: str
    floor_ns: int  # propagation + serialisation + the stack: never below this
    queue_mean_ns: int  # mean of the Gamma-distributed queueing delay (0: none)
    queue_shape: float = 1.0  # Gamma shape k: 1 = exponential; larger = less variable
    spike_prob: float = 0.0  # probability that a message also suffers a heavy-tail spike
    spike_min_ns: int = 0
    spike_max_ns: int = 0
    spike_alpha: float = 1.2  # Pareto tail index: smaller = heavier tail
    loss: float = 0.0  # probability a datagram is lost
    dup: float = 0.0  # probability a delivered datagram arrives twice
    up_scale: float = 1.0  # uplink queueing and spikes are this much larger

    def __post_init__(self) -> None:
        for name in ("spike_prob", "loss", "dup"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"profile {self.name!r}: {name}={v} must be a probability in [0, 1]")
        if self.floor_ns < 0 or self.queue_mean_ns < 0 or self.spike_min_ns > self.spike_max_ns:
            raise ValueError(f"profile {self.name!r}: delays must be >= 0 and spike_min <= spike_max")


# A decent Wi-Fi 5/6 cell: 2 ms floor, 4 ms mean contention; 2 % of frames hit a spike of 30-200 ms
# (power-save: a dozing station wakes every DTIM beacon, 102.4 ms x DTIM period; retries at low
# MCS; roaming). 1 % residual loss after link-layer retries, 0.2 % dups.
_WIFI = Profile(
    "wifi",
    floor_ns=2 * _MS,
    queue_mean_ns=4 * _MS,
    queue_shape=1.5,
    spike_prob=0.02,
    spike_min_ns=30 * _MS,
    spike_max_ns=200 * _MS,
    spike_alpha=1.2,
    loss=0.01,
    dup=0.002,
    up_scale=1.25,
)

PROFILES: Mapping[str, Profile] = {
    p.name: p
    for p in (
        Profile("perfect", floor_ns=0, queue_mean_ns=0),
        # Switched gigabit LAN, one or two hops: ~150 us through two kernel stacks, tens of us jitter.
        Profile("lan", floor_ns=150 * _US, queue_mean_ns=50 * _US, queue_shape=1.0),
        _WIFI,
        # A stadium of phones: thousands of stations per channel, hidden nodes, heavy retries.
        Profile(
            "wifi-crowded",
            floor_ns=5 * _MS,
            queue_mean_ns=15 * _MS,
            queue_shape=1.0,
            spike_prob=0.08,
            spike_min_ns=30 * _MS,
            spike_max_ns=500 * _MS,
            spike_alpha=1.0,
            loss=0.05,
            dup=0.01,
            up_scale=1.5,
        ),
        # Wi-Fi at the edge of coverage: the wifi delays, one message in five lost.
        replace(_WIFI, name="lossy", loss=0.20),
    )
}


def profile_names() -> tuple[str, ...]:
    """The names of the built-in profiles, in a stable order."""
    return tuple(PROFILES)


def profile(name: str | Profile) -> Profile:
    """The profile called ``name`` (a :class:`Profile` passes through).

    Raises ``KeyError`` naming the known profiles when there is none by that name.
    """
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"no network profile {name!r}; the simulator knows: {', '.join(PROFILES)}") from None


class Path:
    """The network between the controller and one device, seeded and reproducible.

    ``Path("wifi", seed=7)`` gives the same sequence of draws every time for the same sequence of
    calls per direction. Call :meth:`deliveries` for each datagram (empty: lost; two: duplicated),
    :meth:`stream_delay` for each message on a TCP stream, :meth:`partition` to cut it for a while.
    """

    __slots__ = ("_down", "_down_i", "_gen", "_partitions", "_rng", "_up", "_up_i", "profile", "seed")

    def __init__(self, profile_: str | Profile = "wifi", seed: int = 0) -> None:
        self.profile = profile(profile_)
        self.seed = seed
        self._rng = {
            Direction.DOWN: random.Random(f"path:{seed}:down"),
            Direction.UP: random.Random(f"path:{seed}:up"),
        }
        self._partitions: list[tuple[int, int]] = []  # sorted, possibly overlapping
        # Stream delays drawn ahead, per direction (block, next index); generators made on first use.
        self._down: array[int] = array("q")
        self._down_i = 0
        self._up: array[int] = array("q")
        self._up_i = 0
        self._gen: dict[str, np.random.Generator] = {}

    def partition(self, start_ns: int, end_ns: int) -> None:
        """Cut the path during ``[start_ns, end_ns)``: datagrams sent then are dropped."""
        if end_ns > start_ns:
            bisect.insort(self._partitions, (start_ns, end_ns))
            Path.cuts += 1

    cuts: ClassVar[int] = 0
    """How many partitions were ever set on any path (a cache of which paths have one can
    check this to know it is stale)."""

    @property
    def has_partitions(self) -> bool:
        """Whether any partition was ever set on this path (past ones included)."""
        return bool(self._partitions)

    def partitioned_until(self, now_ns: int) -> int | None:
        """The end of the partition covering ``now_ns``, or ``None`` when the path is up."""
        if not self._partitions:
            return None
        end: int | None = None
        for s, e in self._partitions:
            if s > now_ns:
                break
            if e > now_ns:
                end = e if end is None else max(end, e)
        return end

    def _one(self, rng: random.Random, direction: Direction) -> int:
        p = self.profile
        scale = p.up_scale if direction is Direction.UP else 1.0
        d = float(p.floor_ns)
        if p.queue_mean_ns:
            k = p.queue_shape
            d += rng.gammavariate(k, p.queue_mean_ns * scale / k)
        if p.spike_prob and rng.random() < p.spike_prob:
            d += _bounded_pareto(rng, p.spike_alpha, p.spike_min_ns * scale, p.spike_max_ns * scale)
        return int(d)

    def deliveries(self, now_ns: int, direction: Direction | str) -> tuple[int, ...]:
        """Delays (ns) of each copy of one datagram sent at ``now_ns``: ``()`` when it is lost."""
        direction = Direction(direction)
        rng = self._rng[direction]
        # Draw a fixed number of variates per message whatever the outcome, so one message's fate
        # never shifts the draws of the next ones (keeps seeds comparable across profiles).
        lost = rng.random() < self.profile.loss
        dup = rng.random() < self.profile.dup
        first = self._one(rng, direction)
        second = self._one(rng, direction) if dup else None
        if lost or self.partitioned_until(now_ns) is not None:
            return ()
        return (first,) if second is None else (first, second)

    def delay_ns(self, now_ns: int, direction: Direction | str) -> int | None:
        """The delay of one datagram sent at ``now_ns``, or ``None`` when it is lost (no duplicates)."""
        d = self.deliveries(now_ns, direction)
        return d[0] if d else None

    def stream_delay(self, now_ns: int, direction: Direction | str) -> int:
        """Delay of one message on a TCP stream sent at ``now_ns``: losses become retransmissions
        (RTO 200 ms, doubling), a partition holds it until it ends. The caller keeps FIFO order."""
        return self.stream_up(now_ns) if direction == "up" else self.stream_down(now_ns)

    def stream_down(self, now_ns: int) -> int:
        """:meth:`stream_delay` downwards (controller or broker -> device)."""
        i = self._down_i
        block = self._down
        if i >= len(block):
            block = self._down = self._draw_block("down", min(2 * len(block), _BLOCK_MAX) or _BLOCK_FIRST)
            i = 0
        self._down_i = i + 1
        if self._partitions:
            until = self.partitioned_until(now_ns)
            if until is not None:
                return block[i] + until - now_ns
        return block[i]

    def stream_up(self, now_ns: int) -> int:
        """:meth:`stream_delay` upwards (device -> broker or controller)."""
        i = self._up_i
        block = self._up
        if i >= len(block):
            block = self._up = self._draw_block("up", min(2 * len(block), _BLOCK_MAX) or _BLOCK_FIRST)
            i = 0
        self._up_i = i + 1
        if self._partitions:
            until = self.partitioned_until(now_ns)
            if until is not None:
                return block[i] + until - now_ns
        return block[i]

    def _draw_block(self, key: str, n: int) -> array[int]:
        """The next ``n`` stream delays of one direction, drawn at once (see the module docstring)."""
        gen = self._gen.get(key)
        if gen is None:
            gen = np.random.Generator(np.random.PCG64([self.seed % (1 << 64), _DIR_CODE[key], 0x5EED]))
            self._gen[key] = gen
        return array("q", stream_delays(gen, self.profile, n, up=key == "up").tobytes())


def stream_delays(gen: np.random.Generator, p: Profile, n: int, *, up: bool) -> npt.NDArray[np.int64]:
    """``n`` stream delays (ns) of profile ``p`` drawn from ``gen``, as :meth:`Path.stream_delay`
    draws them: floor, queueing, spikes, and a retransmission timeout (200 ms, doubling) per loss."""
    scale = p.up_scale if up else 1.0
    d = np.full(n, float(p.floor_ns))
    if p.queue_mean_ns:
        k = p.queue_shape
        d += gen.gamma(k, p.queue_mean_ns * scale / k, n)
    if p.spike_prob:
        hit = gen.random(n) < p.spike_prob
        d += np.where(
            hit,
            _bounded_pareto_np(gen.random(n), p.spike_alpha, p.spike_min_ns * scale, p.spike_max_ns * scale),
            0.0,
        )
    out: npt.NDArray[np.int64] = d.astype(np.int64)
    if p.loss:
        # Losses before the segment gets through: geometric; each costs an RTO, doubling.
        losses = gen.geometric(1.0 - p.loss, n) - 1 if p.loss < 1.0 else np.full(n, 64)
        rto = _RTO_NS
        for j in range(int(losses.max(initial=0))):
            out += np.where(losses > j, rto, 0)
            rto = min(rto * 2, _RTO_MAX_NS)
    return out


def _bounded_pareto_np(u: np.ndarray, alpha: float, lo: float, hi: float) -> np.ndarray:
    """:func:`_bounded_pareto` for an array of uniform variates ``u``."""
    if hi <= lo:
        return np.full(u.shape, lo)
    la, ha = lo**alpha, hi**alpha
    return np.asarray((-(u * ha - u * la - ha) / (ha * la)) ** (-1.0 / alpha), dtype=np.float64)


def _bounded_pareto(rng: random.Random, alpha: float, lo: float, hi: float) -> float:
    """A Pareto(alpha) variate truncated to ``[lo, hi]`` by inverting its CDF."""
    if hi <= lo:
        return lo
    u = rng.random()
    la, ha = lo**alpha, hi**alpha
    return float((-(u * ha - u * la - ha) / (ha * la)) ** (-1.0 / alpha))
