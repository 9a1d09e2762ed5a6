from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from simulators.clock import ClockKind, ClockTable, DeviceClock, clocks_for_venue, random_clock
from tests.simulators._helpers import small_venue

S = 1_000_000_000


def test_offset_and_drift_are_exact_integers() -> None:
    c = DeviceClock(offset_ns=250_000, drift_ppm=50.0, epoch_ns=10 * S)
    assert c.local(10 * S) == 10 * S + 250_000
    # 50 ppm over 100 s is exactly 5 ms.
    assert c.local(110 * S) == 110 * S + 250_000 + 5_000_000
    assert c.local(0) == 0 + 250_000 - 500_000


def test_steps_apply_from_their_instant() -> None:
    c = DeviceClock(0, 0.0, [(5 * S, -20_000_000)])
    assert c.local(5 * S - 1) == 5 * S - 1
    assert c.local(5 * S) == 5 * S - 20_000_000


def test_true_of_after_a_forward_step_is_the_step_instant() -> None:
    c = DeviceClock(0, 0.0, [(5 * S, 100_000_000)])
    # The reading 5.05 s is jumped over at true 5 s: a timer for it fires at the step.
    assert c.true_of(5 * S + 50_000_000, after=0) == 5 * S


def test_true_of_after_a_backward_step_fires_once() -> None:
    c = DeviceClock(0, 0.0, [(5 * S, -100_000_000)])
    target = 4 * S + 950_000_000
    assert c.true_of(target, after=0) == target
    # Seen from after the step, the reading recurs 50 ms later.
    assert c.true_of(target, after=5 * S) == 5 * S + 50_000_000


@given(
    st.integers(-2 * S, 2 * S),
    st.floats(-100.0, 100.0, allow_nan=False),
    st.integers(0, 4_000_000_000 * S),
)
def test_true_of_inverts_local(offset: int, ppm: float, t: int) -> None:
    c = DeviceClock(offset, ppm, epoch_ns=1_700_000_000 * S)
    assert c.true_of(c.local(t)) == t or c.local(c.true_of(c.local(t))) == c.local(t)
    first = c.true_of(c.local(t))
    assert c.local(first) >= c.local(t) and c.local(first - 1) < c.local(t)


@given(st.integers(0, 10**6), st.sampled_from(list(ClockKind)))
def test_random_clocks_are_reproducible_and_in_range(seed: int, kind: ClockKind) -> None:
    a, b = random_clock(seed, kind), random_clock(seed, kind)
    assert a == b
    limit = 2 * S if kind is ClockKind.FREE else 50_000_000
    assert abs(a.offset_ns) <= limit
    assert abs(a.drift_ppm) <= 50.0


def test_venue_clocks_depend_on_seed() -> None:
    v = small_venue()
    assert clocks_for_venue(v, 1) == clocks_for_venue(v, 1)
    assert clocks_for_venue(v, 1) != clocks_for_venue(v, 2)
    assert set(clocks_for_venue(v, 1)) == {d.id for d in v.devices}


_T = 1_700_000_000 * 10**9  # a plausible true instant (Unix ns)


@given(
    clocks=st.lists(
        st.tuples(
            st.integers(-(10**13), 10**13),  # offset
            st.floats(-500.0, 500.0),  # drift ppm
            st.integers(0, 2 * _T),  # epoch
            st.booleans(),  # a step
            st.integers(-(10**12), 10**12),  # base, from _T
        ),
        min_size=1,
        max_size=6,
    ),
    reads=st.lists(st.tuples(st.integers(0, 5), st.integers(-(10**13), 10**13)), min_size=1, max_size=20),
)
def test_a_clock_table_reads_every_clock_exactly(
    clocks: list[tuple[int, float, int, bool, int]], reads: list[tuple[int, int]]
) -> None:
    table = ClockTable(len(clocks))
    made = []
    for row, (off, ppm, epoch, step, base) in enumerate(clocks):
        c = DeviceClock(offset_ns=off, drift_ppm=ppm, epoch_ns=epoch, steps=((_T, 7_000),) if step else ())
        table.set(row, c, _T + base)
        made.append(c)
    rows = np.array([r % len(clocks) for r, _ in reads], dtype=np.int64)
    at = np.array([_T + dt for _, dt in reads], dtype=np.int64)
    assert table.local(rows, at).tolist() == [
        made[r].local(int(t)) for r, t in zip(rows.tolist(), at, strict=True)
    ]
