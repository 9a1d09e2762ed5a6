"""The two injectable clocks, and NTP timestamp conversion.

Madang reads time through exactly two readings (STYLE.md, "Time"):

- ``monotonic_ns()``: for scheduling. Never jumps, never goes backwards.
- ``wall_ns()``: the show clock (the controller's *reference clock* in ``docs/protocol.md``),
  integer nanoseconds since the Unix epoch. It is what goes on the wire in pings, cue instants and
  OSC timetags.

Everything that decides *when* takes a :class:`Clock` (or a plain ``now``) as an argument, so tests
run on a :class:`ManualClock` in virtual time, instantly and identically every time.

NTP timestamps (RFC 5905 section 6) are 64-bit fixed point: seconds since 1900-01-01 in the high
32 bits, the binary fraction of a second in the low 32. OSC 1.0 uses them as bundle timetags.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = [
    "NTP_IMMEDIATELY",
    "Clock",
    "ManualClock",
    "SystemClock",
    "ns_to_ntp",
    "ntp_to_ns",
]

NS_PER_S = 1_000_000_000
#: Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01), RFC 868 / RFC 5905.
NTP_UNIX_DELTA_S = 2_208_988_800
_NTP_UNIX_DELTA_NS = NTP_UNIX_DELTA_S * NS_PER_S
_ERA_NS = (1 << 32) * NS_PER_S
_U64 = (1 << 64) - 1
#: The OSC 1.0 timetag that means "immediately" (63 zero bits then a one).
NTP_IMMEDIATELY = 1


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


def ns_to_ntp(ns_since_unix: int) -> int:
    """Nanoseconds since the Unix epoch as a 64-bit NTP timestamp (RFC 5905), rounded to nearest.

    The fraction is rounded to the nearest 2**-32 s (about 0.23 ns, ties away from zero), so
    :func:`ntp_to_ns` gives back exactly the same nanosecond. Instants from 2036-02-07T06:28:16Z
    on fall in NTP era 1 and wrap modulo 2**64, as RFC 5905 prescribes. Raises ``ValueError`` for
    instants before 1900.
    """
    total = ns_since_unix + _NTP_UNIX_DELTA_NS
    if total < 0:
        raise ValueError(f"{ns_since_unix} ns since the Unix epoch is before 1900: no NTP timestamp for it")
    q, r = divmod(total << 32, NS_PER_S)
    if 2 * r >= NS_PER_S:
        q += 1
    return q & _U64


def ntp_to_ns(ntp: int) -> int:
    """A 64-bit NTP timestamp as nanoseconds since the Unix epoch, rounded to nearest.

    The era is resolved as RFC 4330 section 3 suggests: a timestamp whose most significant bit is
    clear is taken to be in era 1 (2036-2104), otherwise era 0 (1968-2036). The OSC timetag
    ``1`` ("immediately", :data:`NTP_IMMEDIATELY`) is not an instant: check for it first.
    """
    if not 0 <= ntp <= _U64:
        raise ValueError(f"NTP timestamp {ntp} does not fit in 64 unsigned bits")
    ns = ((ntp * NS_PER_S) + (1 << 31)) >> 32
    if not ntp >> 63:
        ns += _ERA_NS
    return ns - _NTP_UNIX_DELTA_NS
