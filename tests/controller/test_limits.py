"""controller.limits: token buckets per source, with a bounded table."""

from __future__ import annotations

import pytest

from controller.limits import Rates

MS = 1_000_000


def test_a_burst_then_the_sustained_rate() -> None:
    r = Rates(rate_per_s=100, burst=5)
    assert [r.allow("a", 0) for _ in range(7)] == [True] * 5 + [False, False]
    assert r.dropped == 2
    assert not r.allow("a", 5 * MS)  # half a token back
    assert r.allow("a", 10 * MS + 5 * MS)  # 1.5 tokens back since the last call
    assert r.allow("b", 0)  # another source has its own bucket


def test_the_table_stays_bounded_under_a_flood_of_new_keys() -> None:
    r = Rates(rate_per_s=1, burst=1, keys=100)
    for i in range(10_000):
        r.allow(f"10.0.{i // 256}.{i % 256}", i)
    assert len(r) == 100
    assert r.forgotten == 9_900


@pytest.mark.parametrize(("rate", "burst", "keys"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_nonsense_limits_are_refused(rate: float, burst: int, keys: int) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        Rates(rate, burst, keys)
