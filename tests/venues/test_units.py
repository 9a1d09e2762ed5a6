"""venues.units: venue-level durations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from venues.units import NS_PER_S, format_duration_ns, parse_duration_ns


@pytest.mark.parametrize(
    ("value", "ns"),
    [
        (2, 2 * NS_PER_S),
        (0, 0),
        (0.25, 250_000_000),
        (0.1, 100_000_000),
        ("250ms", 250_000_000),
        ("2s", 2 * NS_PER_S),
        ("1.5 s", 1_500_000_000),
        ("300us", 300_000),
        ("300µs", 300_000),
        ("2min", 120 * NS_PER_S),
        ("100ns", 100),
        ("0.1s", 100_000_000),
        ("3", 3 * NS_PER_S),
        (" 20ms ", 20_000_000),
    ],
)
def test_parses(value: object, ns: int) -> None:
    assert parse_duration_ns(value) == ns


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (-1, "negative"),
        (-0.5, "negative"),
        ("-2s", "negative"),
        (math.nan, "NaN"),
        (math.inf, "infinite"),
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "not a duration"),
        ("inf", "not a finite duration"),
        ("2 parsecs", "unknown unit 'parsecs'"),
        ("1.5ns", "finer than a nanosecond"),
        ([1, 2], "got a list, expected a number of seconds like 2s or 250ms"),
        (True, "got true"),
        (None, "no duration"),
        (10**20, "too long"),
    ],
)
def test_refuses_with_an_explanation(value: object, words: str) -> None:
    with pytest.raises(ValueError, match=None) as ei:
        parse_duration_ns(value)
    assert words in str(ei.value)


@given(st.integers(min_value=0, max_value=10**15))
def test_format_round_trips(ns: int) -> None:
    assert parse_duration_ns(format_duration_ns(ns)) == ns
