"""The two injectable clocks.

Madang reads time through exactly two readings (STYLE.md, "Time"):

- ``monotonic_ns()``: for scheduling. Never jumps, never goes backwards.
- ``wall_ns()``: the show clock (the controller's *reference clock* in ``docs/protocol.md``),
  integer nanoseconds since the Unix epoch. It is what goes on the wire in pings, cue instants and
  OSC timetags.

Everything that decides *when* takes a :class:`Clock` (or a plain ``now``) as an argument, so tests
run on a :class:`ManualClock` in virtual time, instantly and identically every time.

NTP timestamp conversion (what goes on the wire) is in :mod:`controller.wire.ntp`.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]

NS_PER_S = 1_000_000_000


@runtime_checkable
class Clock(Protocol):
    """The two clock readings Madang uses; inject one, never call ``time`` directly."""

    def monotonic_ns(self) -> int:
        """Nanoseconds on a clock that never jumps: for scheduling and measuring durations."""
        ...

    def wall_ns(self) -> int:
        """The show (reference) clock: nanoseconds since the Unix epoch, stamped on the wire."""
        ...


class SystemClock:
    """The real clocks of this host.

    ``monotonic_ns`` is :func:`time.monotonic_ns`. ``wall_ns`` is *not* :func:`time.time_ns`: it is
    ``offset_ns + time.monotonic_ns()`` where ``offset_ns`` is sampled once, at construction, as the
    difference between the system wall clock and the monotonic clock. So the show clock tracks the
    host's wall clock at start-up and then runs at the monotonic rate: an NTP step or a manual
    change of the system clock during a show cannot make every cue instant jump. Devices are kept
    in time against this clock by measuring their offsets (see ``docs/protocol.md``), so it need
    not agree with UTC to the microsecond; only its steadiness matters. Call :meth:`resync` between
    shows if you want it to pick up a corrected system clock.
    """

    __slots__ = ("_offset_ns",)

    def __init__(self) -> None:
        self._offset_ns = self._sample_offset()

    @staticmethod
    def _sample_offset() -> int:
        # Bracket the wall reading between two monotonic readings and keep the tightest of a few
        # tries, so a preemption between the two calls does not bias the offset.
        best_width = None
        best = 0
        for _ in range(5):
            m0 = time.monotonic_ns()
            w = time.time_ns()
            m1 = time.monotonic_ns()
            width = m1 - m0
            if best_width is None or width < best_width:
                best_width = width
                best = w - (m0 + m1) // 2
        return best

    @property
    def offset_ns(self) -> int:
        """``wall_ns() - monotonic_ns()``, fixed since construction or the last :meth:`resync`."""
        return self._offset_ns

    def resync(self) -> None:
        """Re-sample the offset to the system wall clock (between shows, never during one)."""
        self._offset_ns = self._sample_offset()

    def monotonic_ns(self) -> int:
        """:func:`time.monotonic_ns`."""
        return time.monotonic_ns()

    def wall_ns(self) -> int:
        """The show clock: the start-up wall clock advanced at the monotonic rate."""
        return self._offset_ns + time.monotonic_ns()


class ManualClock:
    """A clock for tests: it moves only when told to, and both readings move together.

    ``wall_ns() == monotonic_ns() + wall_offset_ns`` always holds.
    """

    __slots__ = ("_now", "wall_offset_ns")

    def __init__(self, start_ns: int = 0, *, wall_offset_ns: int = 1_750_000_000 * NS_PER_S) -> None:
        self._now = start_ns
        self.wall_offset_ns = wall_offset_ns

    def monotonic_ns(self) -> int:
        """The current virtual monotonic reading."""
        return self._now

    def wall_ns(self) -> int:
        """The current virtual show clock (monotonic + ``wall_offset_ns``)."""
        return self._now + self.wall_offset_ns

    def advance(self, ns: int) -> None:
        """Move both readings forward by ``ns`` (which must not be negative)."""
        if ns < 0:
            raise ValueError(f"ManualClock.advance({ns}): a monotonic clock cannot go backwards")
        self._now += ns

    def set(self, ns: int) -> None:
        """Set the monotonic reading to ``ns`` (not earlier than now); the wall reading follows."""
        if ns < self._now:
            raise ValueError(
                f"ManualClock.set({ns}): earlier than the current reading {self._now}; "
                "a monotonic clock cannot go backwards (make a new ManualClock instead)"
            )
        self._now = ns
