"""PingSamples: ring order, vectorised adds, growth and reset."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.sync.samples import PingSamples, SampleError
from venues.errors import MadangError


def test_add_keeps_the_newest_window_oldest_first() -> None:
    s = PingSamples(2, window=4)
    for i in range(6):
        s.add(1, 100 * i, 100 * i + 10, 100 * i + 11, 100 * i + 20)
    t1, t2, t3, t4 = s.ordered(1)
    assert t1.tolist() == [200, 300, 400, 500]
    assert t4.tolist() == [220, 320, 420, 520]
    assert (t3 - t2).tolist() == [1, 1, 1, 1]
    assert int(s.count[1]) == 4 and int(s.count[0]) == 0
    assert s.dirty.tolist() == [False, True]


def test_impossible_samples_and_unknown_rows_are_refused() -> None:
    s = PingSamples(1, window=4)
    with pytest.raises(SampleError) as e:
        s.add(0, 10, 5, 4, 20)
    assert isinstance(e.value, MadangError) and isinstance(e.value, ValueError)
    assert "t3" in str(e.value) and "device index 0" in str(e.value)
    with pytest.raises(SampleError, match="grow"):
        s.add(3, 1, 1, 1, 1)
    with pytest.raises(SampleError):
        s.add_many([0, 0], [1, 10], [1, 9], [1, 8], [1, 11])
    assert int(s.count[0]) == 0


@settings(max_examples=60, deadline=None)
@given(
    window=st.integers(1, 6),
    devs=st.lists(st.integers(0, 3), min_size=0, max_size=40),
    split=st.integers(0, 40),
)
def test_add_many_equals_adding_one_by_one(window: int, devs: list[int], split: int) -> None:
    n = len(devs)
    t1 = np.arange(n, dtype=np.int64) * 1000
    t2 = t1 + 7
    t3 = t2 + 3
    t4 = t1 + 20
    one = PingSamples(4, window)
    for i, d in enumerate(devs):
        one.add(d, int(t1[i]), int(t2[i]), int(t3[i]), int(t4[i]))
    many = PingSamples(4, window)
    # two batches, so that the second one starts from a partly filled ring
    many.add_many(devs[:split], t1[:split], t2[:split], t3[:split], t4[:split])
    many.add_many(devs[split:], t1[split:], t2[split:], t3[split:], t4[split:])
    for d in range(4):
        for a, b in zip(one.ordered(d), many.ordered(d), strict=True):
            assert a.tolist() == b.tolist()
    assert one.dirty.tolist() == many.dirty.tolist()


def test_grow_and_reset() -> None:
    s = PingSamples(1, window=3)
    s.add(0, 1, 2, 3, 4)
    s.clear_dirty()
    s.grow(3)
    assert s.n_devices == 3 and int(s.count[0]) == 1 and not s.dirty.any()
    s.add(2, 5, 6, 7, 8)
    s.reset(0)
    assert int(s.count[0]) == 0 and bool(s.dirty[0])
    assert s.ordered(0)[0].tolist() == []
    assert s.ordered(2)[0].tolist() == [5]
