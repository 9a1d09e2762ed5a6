"""Tests for controller.clock: the injectable clocks and NTP conversion."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.clock import Clock, ManualClock, SystemClock
from controller.wire.ntp import NTP_IMMEDIATELY, ns_to_ntp, ntp_to_ns

NS = 1_000_000_000
Y1968 = (2**31 - 2_208_988_800) * NS  # 1968-01-20T03:14:08Z, start of the RFC 4330 era-0 window
Y2104 = (2**32 + 2**31 - 2_208_988_800) * NS  # 2104-02-26, end of the era-1 window


def test_known_ntp_values() -> None:
    # The Unix epoch is NTP second 2208988800 (RFC 868), fraction 0.
    assert ns_to_ntp(0) == 2_208_988_800 << 32
    # Half a second is exactly 2**31 in the fraction.
    assert ns_to_ntp(NS // 2) == (2_208_988_800 << 32) | (1 << 31)
    # 1 ns is 4.294967296 units of 2**-32 s: rounds to 4.
    assert ns_to_ntp(1) == (2_208_988_800 << 32) | 4
    assert ntp_to_ns(2_208_988_800 << 32) == 0
    assert ntp_to_ns((2_208_988_800 << 32) | (1 << 31)) == NS // 2


def test_era_one_wraps_and_comes_back() -> None:
    t = (2**32 - 2_208_988_800) * NS + 5  # just after 2036-02-07T06:28:16Z
    ntp = ns_to_ntp(t)
    assert ntp >> 32 == 0
    assert ntp_to_ns(ntp) == t


def test_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="before 1900"):
        ns_to_ntp(-2_208_988_801 * NS)
    with pytest.raises(ValueError, match="64 unsigned bits"):
        ntp_to_ns(1 << 64)
    assert NTP_IMMEDIATELY == 1


@given(st.integers(min_value=Y1968, max_value=Y2104 - NS))
def test_ntp_round_trip_is_exact(ns: int) -> None:
    ntp = ns_to_ntp(ns)
    assert 0 <= ntp < 1 << 64
    assert ntp_to_ns(ntp) == ns


@given(st.integers(min_value=0, max_value=2**62), st.integers(min_value=0, max_value=10**12))
def test_ntp_is_monotone(ns: int, delta: int) -> None:
    a, b = ns_to_ntp(ns), ns_to_ntp(ns + delta)
    if (b >> 63) == (a >> 63):  # same half of the era
        assert b >= a


def test_system_clock_wall_tracks_time_and_never_jumps() -> None:
    c = SystemClock()
    assert isinstance(c, Clock)
    assert abs(c.wall_ns() - time.time_ns()) < 50_000_000
    m0 = time.monotonic_ns()
    w = c.wall_ns()
    m1 = time.monotonic_ns()
    assert m0 <= w - c.offset_ns <= m1
    readings = [c.wall_ns() for _ in range(1000)]
    assert readings == sorted(readings)
    off = c.offset_ns
    c.resync()
    assert abs(c.offset_ns - off) < 50_000_000


def test_manual_clock_moves_both_readings_together() -> None:
    c = ManualClock(10, wall_offset_ns=1000)
    assert isinstance(c, Clock)
    assert (c.monotonic_ns(), c.wall_ns()) == (10, 1010)
    c.advance(5)
    assert (c.monotonic_ns(), c.wall_ns()) == (15, 1015)
    c.set(100)
    assert (c.monotonic_ns(), c.wall_ns()) == (100, 1100)
    with pytest.raises(ValueError, match="backwards"):
        c.set(99)
    with pytest.raises(ValueError, match="backwards"):
        c.advance(-1)
    assert c.monotonic_ns() == 100
