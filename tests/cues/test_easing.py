"""Easing curves: names, the maths of each family, CSS functions, and the NumPy twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from cues.easing import (
    CSS_KEYWORDS,
    EASE_NAMES,
    FAMILIES,
    MONOTONE_FAMILIES,
    EaseError,
    evaluate,
    evaluate_array,
    format_ease,
    parse_ease,
    value_at,
)
from cues.timeline import Ease
from venues.errors import Mark, SourceError

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
names = st.sampled_from(EASE_NAMES)
beziers = st.tuples(st.floats(0, 1), st.floats(-2, 3), st.floats(0, 1), st.floats(-2, 3)).map(
    lambda p: Ease("cubic-bezier", p)
)
steps = st.one_of(
    st.tuples(st.integers(1, 20), st.sampled_from([0, 1, 3])),
    st.tuples(st.integers(2, 20), st.just(2)),
).map(lambda p: Ease("steps", p))
any_ease = st.one_of(names.map(Ease), beziers, steps)


# ------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "text",
    [
        "in-out-cubic",
        "ease-in-out-cubic",
        "inOutCubic",
        "easeInOutCubic",
        "in_out_cubic",
        "cubic-in-out",
        " IN-OUT-CUBIC ",
        "InOutCubic",
    ],
)
def test_aliases(text: str) -> None:
    assert parse_ease(text) == Ease("in-out-cubic")


def test_every_name_parses_to_itself() -> None:
    assert len(EASE_NAMES) == 2 + 3 * len(FAMILIES) == 32
    for name in EASE_NAMES:
        assert parse_ease(name) == Ease(name)


@pytest.mark.parametrize(
    ("text", "ease"),
    [
        ("ease", Ease("cubic-bezier", (0.25, 0.1, 0.25, 1.0))),
        ("ease-in-out", Ease("cubic-bezier", (0.42, 0.0, 0.58, 1.0))),
        ("easeIn", Ease("cubic-bezier", (0.42, 0.0, 1.0, 1.0))),
        ("cubic-bezier(0.1, 0.7, 1.0, 0.1)", Ease("cubic-bezier", (0.1, 0.7, 1.0, 0.1))),
        ("cubic-bezier(.5,-1,.5,2)", Ease("cubic-bezier", (0.5, -1.0, 0.5, 2.0))),
        ("steps(4)", Ease("steps", (4, 0))),
        ("steps(4, end)", Ease("steps", (4, 0))),
        ("steps(4, jump-end)", Ease("steps", (4, 0))),
        ("steps(4, start)", Ease("steps", (4, 1))),
        ("Steps(2, JUMP-NONE)", Ease("steps", (2, 2))),
        ("steps(3, jump-both)", Ease("steps", (3, 3))),
        ("step-start", Ease("steps", (1, 1))),
        ("step-end", Ease("steps", (1, 0))),
        ("hold", Ease("hold")),
    ],
)
def test_css_forms(text: str, ease: Ease) -> None:
    assert parse_ease(text) == ease


@pytest.mark.parametrize(
    ("text", "problem", "hint"),
    [
        ("in-out-cubc", "unknown easing", "did you mean in-out-cubic"),
        ("outbounce", "unknown easing", "did you mean out-bounce"),
        ("wobble", "unknown easing", "in-out-F"),
        ("cubic-bezier(2, 0, 1, 1)", "must lie in 0..1", "between 0 and 1"),
        ("cubic-bezier(0.1, 0.2, 0.3)", "4 numbers", "cubic-bezier("),
        ("cubic-bezier(a, b, c, d)", "numbers", "cubic-bezier("),
        ("cubic-bezier", "needs its parameters", "cubic-bezier(x1"),
        ("steps(0)", "at least 1", "steps(4)"),
        ("steps(1, jump-none)", "at least 2", "jump-none"),
        ("steps(2.5)", "whole number", "steps(4)"),
        ("steps(3, middle)", "position", "jump-both"),
        ("stepz(3)", "function", "did you mean steps"),
    ],
)
def test_errors(text: str, problem: str, hint: str) -> None:
    with pytest.raises(EaseError) as info:
        parse_ease(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert problem in err.problem
    assert hint in err.hint
    located = err.at(Mark("show.yaml", 3, 12))
    assert isinstance(located, SourceError)
    assert str(located).startswith(f"show.yaml:3:12: easing {text!r}")


def test_unknown_kind_cannot_be_evaluated() -> None:
    with pytest.raises(EaseError):
        evaluate(Ease("in-wobble"), 0.5)
    with pytest.raises(EaseError):
        evaluate(Ease("sideways-cubic"), 0.5)
    with pytest.raises(EaseError):
        evaluate_array(Ease("in-wobble"), np.array([0.5]))


# ------------------------------------------------------------------------- known values


@pytest.mark.parametrize(
    ("name", "x", "y"),
    [
        ("linear", 0.3, 0.3),
        ("in-quad", 0.5, 0.25),
        ("out-quad", 0.5, 0.75),
        ("in-out-cubic", 0.25, 0.0625),
        ("in-out-cubic", 0.75, 0.9375),
        ("in-quart", 0.5, 0.0625),
        ("in-quint", 0.5, 0.03125),
        ("in-sine", 0.5, 1 - math.cos(math.pi / 4)),
        ("in-out-sine", 0.25, (1 - math.cos(math.pi / 4)) / 2),
        ("in-expo", 0.5, 2**-5),
        ("out-expo", 0.5, 1 - 2**-5),
        ("in-circ", 0.6, 0.2),
        ("in-back", 0.5, 2.70158 * 0.125 - 1.70158 * 0.25),
        ("in-out-back", 0.25, 0.25 * ((1.70158 * 1.525 + 1) * 0.5 - 1.70158 * 1.525) / 2),
        ("out-bounce", 0.5, 0.765625),
        ("in-bounce", 0.5, 0.234375),
        ("in-elastic", 0.5, -(2**-5) * math.sin((5 - 10.75) * 2 * math.pi / 3)),
        ("hold", 0.999, 0.0),
    ],
)
def test_known_values(name: str, x: float, y: float) -> None:
    assert evaluate(parse_ease(name), x) == pytest.approx(y, abs=1e-12)


@pytest.mark.parametrize(
    ("text", "x", "y"),
    [
        # CSS Easing Level 1, section 3.1.1 (step easing functions).
        ("steps(4)", 0.0, 0.0),
        ("steps(4)", 0.3, 0.25),
        ("steps(4)", 0.99, 0.75),
        ("steps(4)", 1.0, 1.0),
        ("steps(4, start)", 0.0, 0.25),
        ("steps(4, start)", 0.3, 0.5),
        ("steps(4, start)", 0.8, 1.0),
        ("steps(5, jump-none)", 0.0, 0.0),
        ("steps(5, jump-none)", 0.5, 0.5),
        ("steps(5, jump-none)", 0.8, 1.0),
        ("steps(3, jump-both)", 0.0, 0.25),
        ("steps(3, jump-both)", 0.5, 0.5),
        ("steps(3, jump-both)", 0.99, 0.75),
        ("steps(3, jump-both)", 1.0, 1.0),
        ("step-start", 0.0, 1.0),
        ("step-end", 0.999, 0.0),
    ],
)
def test_css_steps(text: str, x: float, y: float) -> None:
    assert evaluate(parse_ease(text), x) == y


# The CSS keywords at x = 0.25, 0.5, 0.75, computed independently by exact rational bisection
# (fractions.Fraction, 80 halvings) and rounded to 7 places; ease(0.5) = 0.8024034 as browsers give.
@pytest.mark.parametrize(
    ("keyword", "ys"),
    [
        ("ease", (0.4085106, 0.8024034, 0.9604590)),
        ("ease-in", (0.0934647, 0.3153568, 0.6218619)),
        ("ease-out", (0.3781381, 0.6846432, 0.9065353)),
        ("ease-in-out", (0.1291619, 0.5, 0.8708381)),
    ],
)
def test_css_keywords(keyword: str, ys: tuple[float, ...]) -> None:
    ease = parse_ease(keyword)
    for x, y in zip((0.25, 0.5, 0.75), ys, strict=True):
        assert evaluate(ease, x) == pytest.approx(y, abs=2e-7)


def test_cubic_bezier_degenerate_is_linear() -> None:
    for x in np.linspace(0, 1, 101):
        assert evaluate(Ease("cubic-bezier", (0.0, 0.0, 1.0, 1.0)), float(x)) == pytest.approx(x, abs=1e-7)
        assert evaluate(Ease("cubic-bezier", (1 / 3, 1 / 3, 2 / 3, 2 / 3)), float(x)) == pytest.approx(
            x, abs=1e-7
        )


# --------------------------------------------------------------------------- properties


@given(any_ease)
def test_endpoints(ease: Ease) -> None:
    start = evaluate(ease, 0.0)
    if ease.kind == "steps" and ease.params[1] in (1, 3):
        assert start == 1 / (ease.params[0] + (ease.params[1] == 3))
    else:
        assert start == 0.0
    assert evaluate(ease, 1.0) == 1.0


@given(any_ease, st.floats(allow_nan=True, allow_infinity=True))
def test_clamps_any_input(ease: Ease, x: float) -> None:
    y = evaluate(ease, x)
    if math.isnan(x) or x <= 0:
        assert y == evaluate(ease, 0.0)
    elif x >= 1:
        assert y == 1.0
    assert math.isfinite(y)


@given(
    st.sampled_from(
        ("linear", "hold", *(f"{m}-{f}" for f in MONOTONE_FAMILIES for m in ("in", "out", "in-out")))
    ),
    unit,
    unit,
)
def test_monotone_families_never_go_back(name: str, a: float, b: float) -> None:
    ease = Ease(name)
    lo, hi = min(a, b), max(a, b)
    assert evaluate(ease, lo) <= evaluate(ease, hi) + 1e-12
    assert -1e-12 <= evaluate(ease, lo) <= 1 + 1e-12


@given(
    st.one_of(beziers.filter(lambda e: 0 <= e.params[1] <= 1 and 0 <= e.params[3] <= 1), steps), unit, unit
)
def test_css_functions_with_inside_control_points_are_monotone(ease: Ease, a: float, b: float) -> None:
    lo, hi = min(a, b), max(a, b)
    assert evaluate(ease, lo) <= evaluate(ease, hi) + 1e-7


@given(st.sampled_from(FAMILIES), unit)
def test_in_out_is_point_symmetric(family: str, x: float) -> None:
    # Only where 1 - x is exact: near 0, 1 - x rounds to 1 and elastic's tiny Penner step at 0 shows.
    assume(1 - (1 - x) == x)
    ease = Ease(f"in-out-{family}")
    assert evaluate(ease, x) == pytest.approx(1 - evaluate(ease, 1 - x), abs=1e-12)


@given(st.sampled_from(FAMILIES), unit)
def test_out_mirrors_in(family: str, x: float) -> None:
    assert evaluate(Ease(f"out-{family}"), x) == pytest.approx(
        1 - evaluate(Ease(f"in-{family}"), 1 - x), abs=1e-12
    )


@given(beziers, unit)
def test_cubic_bezier_solves_the_curve(ease: Ease, t: float) -> None:
    # Walk the curve by its parameter t, independently of the solver, and ask the solver for y at x(t).
    x1, y1, x2, y2 = ease.params

    def bez(p1: float, p2: float) -> float:
        return 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3

    x, y = bez(x1, x2), bez(y1, y2)
    # Where x(t) is flat, many t share one x and y is not a function of x; skip those.
    slope_x = 3 * (1 - t) ** 2 * x1 + 6 * (1 - t) * t * (x2 - x1) + 3 * t**2 * (1 - x2)
    if slope_x > 1e-3:
        assert evaluate(ease, x) == pytest.approx(y, abs=1e-7)


@given(any_ease, st.lists(st.floats(-0.5, 1.5, allow_nan=False), min_size=1, max_size=50))
def test_array_equals_scalar(ease: Ease, xs: list[float]) -> None:
    arr = evaluate_array(ease, np.array(xs))
    scalar = np.array([evaluate(ease, x) for x in xs])
    assert arr.shape == scalar.shape
    np.testing.assert_allclose(arr, scalar, rtol=0, atol=1e-12)


def test_array_keeps_shape_and_handles_nan() -> None:
    xs = np.array([[0.0, 0.5], [np.nan, 2.0]])
    out = evaluate_array(Ease("in-quad"), xs)
    assert out.shape == (2, 2)
    assert out.tolist() == [[0.0, 0.25], [0.0, 1.0]]
    for keyword, ease in CSS_KEYWORDS.items():
        grid = np.linspace(0, 1, 257)
        np.testing.assert_allclose(
            evaluate_array(ease, grid), [evaluate(ease, float(x)) for x in grid], atol=1e-12, err_msg=keyword
        )


# -------------------------------------------------------------------------------- value_at

S = 1_000_000_000


def test_value_at() -> None:
    cubic = Ease("in-out-cubic")
    assert value_at(0.3, 1.0, cubic, -5, 8 * S) == 0.3
    assert value_at(0.3, 1.0, cubic, 0, 8 * S) == 0.3
    assert value_at(0.3, 1.0, cubic, 2 * S, 8 * S) == pytest.approx(0.3 + 0.7 * 0.0625)
    assert value_at(0.3, 1.0, cubic, 4 * S, 8 * S) == pytest.approx(0.65)
    assert value_at(0.3, 1.0, cubic, 8 * S, 8 * S) == 1.0
    assert value_at(0.3, 1.0, cubic, 9 * S, 8 * S) == 1.0
    # A zero-length fade is a cut at its instant.
    assert value_at(0.3, 1.0, cubic, -1, 0) == 0.3
    assert value_at(0.3, 1.0, cubic, 0, 0) == 1.0
    # Overshoot goes past the end value and back.
    assert value_at(0.0, 10.0, Ease("out-back"), S // 2, S) > 10.0


@given(any_ease, st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.integers(1, 10**12))
def test_value_at_lands_exactly_on_the_ends(ease: Ease, a: float, b: float, duration: int) -> None:
    assert value_at(a, b, ease, duration, duration) == b
    assert value_at(a, b, ease, duration * 2, duration) == b
    if evaluate(ease, 0.0) == 0.0:
        assert value_at(a, b, ease, 0, duration) == a


@given(any_ease)
def test_format_ease_reads_back(ease: Ease) -> None:
    text = format_ease(ease)
    assert parse_ease(text) == ease
    assert evaluate(parse_ease(text), 0.37) == evaluate(ease, 0.37)


def test_format_ease_reads_like_a_show_file() -> None:
    assert format_ease(parse_ease("ease")) == "cubic-bezier(0.25, 0.1, 0.25, 1)"
    assert format_ease(parse_ease("steps(4)")) == "steps(4)"
    assert format_ease(parse_ease("step-start")) == "steps(1, start)"
    assert format_ease(parse_ease("easeOutBack")) == "out-back"
