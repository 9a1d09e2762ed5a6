"""Bounds on what the network may make the controller do: rates per source, with a bounded table.

Theory of operation
-------------------
Every surface that takes messages from the network (the control port, the device reports, the
web port) is given a budget per source: :class:`Rates` is a token bucket per key (``rate`` per
second sustained, ``burst`` at once). A message over budget is dropped and counted by the caller;
the show never waits for it. The table of keys is bounded (``keys``): past it, the least recently
heard key is forgotten, so a flood from ever new addresses or device ids leaves memory flat (a
forgotten key starts again with a full bucket, which is the worst it can gain).

Nothing here does I/O or reads a clock: the caller passes ``now`` (integer nanoseconds).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["Rates"]

S = 1_000_000_000


class Rates:
    """A token bucket per key. :meth:`allow` says whether one more message from ``key`` fits;
    :attr:`dropped` counts the ones that did not, :attr:`forgotten` the keys evicted."""

    def __init__(self, rate_per_s: float, burst: int, keys: int = 4096) -> None:
        if rate_per_s <= 0 or burst < 1 or keys < 1:
            raise ValueError(
                f"a rate limit needs rate > 0, burst >= 1, keys >= 1; got {rate_per_s}, {burst}, {keys}"
            )
        self.rate_per_s, self.burst, self.keys = rate_per_s, burst, keys
        self._ns_per_token = S / rate_per_s
        self._buckets: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()  # key -> (tokens, at)
        self.dropped = 0
        self.forgotten = 0

    def allow(self, key: Hashable, now: int) -> bool:
        """Take one token from ``key``'s bucket at ``now``; False (counted) when it is empty."""
        entry = self._buckets.pop(key, None)
        if entry is None:
            tokens = float(self.burst)
            while len(self._buckets) >= self.keys:
                self._buckets.popitem(last=False)
                self.forgotten += 1
        else:
            tokens, at = entry
            tokens = min(float(self.burst), tokens + max(0, now - at) / self._ns_per_token)
        ok = tokens >= 1.0
        if ok:
            tokens -= 1.0
        else:
            self.dropped += 1
        self._buckets[key] = (tokens, now)
        return ok

    def __len__(self) -> int:
        return len(self._buckets)
