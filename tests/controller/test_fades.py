"""Streaming fade maths: values at instants, frame instants, easing endpoints."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.fades import evaluate, frame_instants, frame_period_ns, value_at
from cues.timeline import Ease

S = 1_000_000_000
MS = 1_000_000

CURVES = ["linear", "in-quad", "out-cubic", "in-out-cubic", "in-out-sine", "in-quart", "out-quint"]


@pytest.mark.parametrize("kind", CURVES)
def test_curves_start_at_zero_and_end_at_one(kind: str) -> None:
    assert evaluate(Ease(kind), 0.0) == pytest.approx(0.0, abs=1e-12)
    assert evaluate(Ease(kind), 1.0) == pytest.approx(1.0)


@given(x=st.floats(0, 1), y=st.floats(0, 1))
def test_in_out_cubic_is_monotonic_and_symmetric(x: float, y: float) -> None:
    e = Ease("in-out-cubic")
    lo, hi = min(x, y), max(x, y)
    assert evaluate(e, lo) <= evaluate(e, hi) + 1e-12
    assert evaluate(e, x) + evaluate(e, 1 - x) == pytest.approx(1.0)


def test_in_out_cubic_values() -> None:
    e = Ease("in-out-cubic")
    assert evaluate(e, 0.25) == pytest.approx(4 * 0.25**3)
    assert evaluate(e, 0.5) == pytest.approx(0.5)
    assert evaluate(e, 0.4) == pytest.approx(4 * 0.4**3)


def test_value_at_clamps_and_interpolates() -> None:
    e = Ease()
    assert value_at(0.2, 1.0, e, -5, S) == 0.2
    assert value_at(0.2, 1.0, e, S // 2, S) == pytest.approx(0.6)
    assert value_at(0.2, 1.0, e, S, S) == 1.0
    assert value_at(0.2, 1.0, e, 0, 0) == 1.0  # a zero-length fade is a step


def test_frame_instants_do_not_drift_and_end_exactly() -> None:
    frames = list(frame_instants(7, 7 + S, 30.0))
    assert frames[0] == (0, 7)
    assert frames[-1] == (30, 7 + S)
    assert frames[10] == (10, 7 + round(10 * S / 30))  # computed, not accumulated
    assert [k for k, _ in frames] == list(range(31))


def test_frame_instants_resume_and_short_fades() -> None:
    assert list(frame_instants(0, 45 * MS, 50.0, first=1)) == [(1, 20 * MS), (2, 40 * MS), (3, 45 * MS)]
    assert list(frame_instants(5, 5, 50.0)) == [(0, 5)]


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="> 0"):
        frame_period_ns(0)
    with pytest.raises(ValueError):
        list(frame_instants(0, 1, -1.0))
    assert frame_period_ns(50.0) == 20 * MS


def test_steps_and_bezier() -> None:
    assert evaluate(Ease("steps", (4, 0)), 0.3) == pytest.approx(0.25)
    assert evaluate(Ease("steps", (4, 1)), 0.3) == pytest.approx(0.5)
    assert evaluate(Ease("cubic-bezier", (0.0, 0.0, 1.0, 1.0)), 0.3) == pytest.approx(0.3, abs=1e-6)
