"""Times as artists write them: exact nanoseconds, helpful errors, round trips."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cues.timecode import (
    TempoError,
    TempoMap,
    TempoSegment,
    TimeContext,
    TimeFormatError,
    format_time,
    parse_tempo,
    parse_time_ns,
)
from venues.errors import MadangError, Mark, SourceError

S = 1_000_000_000
NONE = TimeContext()
TEMPO = parse_tempo([{"bar": 1, "bpm": 120, "meter": "4/4"}, {"bar": 33, "bpm": 96}])
BARS = TimeContext(tempo=TEMPO)


# ------------------------------------------------------------------------- accepted forms


@pytest.mark.parametrize(
    ("value", "ns"),
    [
        (0, 0),
        (12, 12 * S),
        (1.5, 1_500_000_000),
        (0.1, 100_000_000),
        (1.1, 1_100_000_000),
        ("250ms", 250_000_000),
        ("2s", 2 * S),
        ("1.5s", 1_500_000_000),
        ("300us", 300_000),
        ("300µs", 300_000),
        ("7ns", 7),
        ("2min", 120 * S),
        ("1h", 3600 * S),
        ("250 ms", 250_000_000),
        (" 2S ", 2 * S),
        ("12", 12 * S),
        ("00:05", 5 * S),
        ("12:34.500", 754_500_000_000),
        ("01:30.5", 90_500_000_000),
        ("90:00", 5400 * S),
        ("1:02:03.250", 3723_250_000_000),
        ("0:00:00.000000001", 1),
    ],
)
def test_accepted_forms(value: object, ns: int) -> None:
    assert parse_time_ns(value, NONE) == ns


def test_smpte_is_exact() -> None:
    assert parse_time_ns("00:10:00:01", TimeContext(fps=30)) == 600_033_333_333
    assert parse_time_ns("01:00:00:00", TimeContext(fps=25)) == 3600 * S
    assert parse_time_ns("00:00:01:12", TimeContext(fps=24)) == 1_500_000_000


def test_smpte_ntsc_non_drop_runs_slow() -> None:
    # 29.97 written with ':' counts 30 labels a second at 30000/1001 frames per second.
    assert parse_time_ns("00:00:01:00", TimeContext(fps=29.97)) == 1_001_000_000
    assert parse_time_ns("00:00:00:01", TimeContext(fps=23.976)) == 41_708_333


def test_smpte_drop_frame() -> None:
    ctx = TimeContext(fps=29.97)
    # The first label after a dropped minute boundary is frame 1800 of the real count.
    assert parse_time_ns("00:01:00;02", ctx) == round(1800 * 1001 * S / 30000)
    # Ten minutes of drop-frame is 17982 real frames: within a frame of wall time.
    assert parse_time_ns("00:10:00;00", ctx) == 17982 * 1001 * S // 30000
    assert parse_time_ns("01:00:00;00", ctx) == 107892 * 1001 * S // 30000
    assert abs(parse_time_ns("01:00:00;00", ctx) - 3600 * S) < 4_000_000
    assert parse_time_ns("00:01:00;04", TimeContext(fps=59.94)) == round(3600 * 1001 * S / 60000)


def test_bar_beat() -> None:
    assert parse_time_ns("1.1", BARS) == 0
    assert parse_time_ns("1.2", BARS) == S // 2
    assert parse_time_ns("9.1", BARS) == 16 * S
    assert parse_time_ns("9.1.240", BARS) == 16 * S + S // 4
    # Bar 33 starts after 32 bars at 120 bpm, then beats are 60/96 s long.
    assert parse_time_ns("33.1", BARS) == 64 * S
    assert parse_time_ns("33.2", BARS) == 64 * S + 625_000_000


def test_tempo_meter_and_inheritance() -> None:
    tempo = parse_tempo([{"bpm": 90, "meter": "3/4"}, {"bar": 5, "meter": "6/8"}, {"bar": 7, "bpm": 180}])
    assert [(s.start_bar, s.bpm, s.meter) for s in tempo.segments] == [
        (1, 90, "3/4"),
        (5, 90, "6/8"),
        (7, 180, "6/8"),
    ]
    ctx = TimeContext(tempo=tempo)
    # 4 bars of 3 beats at 90 bpm = 8 s; then 2 bars of 6 beats at 90 = 8 s; then 1 bar at 180 = 2 s.
    assert parse_time_ns("5.1", ctx) == 8 * S
    assert parse_time_ns("7.1", ctx) == 16 * S
    assert parse_time_ns("8.1", ctx) == 18 * S
    assert parse_tempo({"bpm": 120}).segments == (TempoSegment(1, 120, 4, 4),)
    assert parse_tempo(tempo) is tempo


# ------------------------------------------------------------------------------- errors


def _error(value: object, ctx: TimeContext = NONE) -> TimeFormatError:
    with pytest.raises(TimeFormatError) as info:
        parse_time_ns(value, ctx)
    return info.value


@pytest.mark.parametrize(
    ("value", "ctx", "problem", "hint"),
    [
        (-1, NONE, "negative", "starts at 0"),
        (-0.5, NONE, "negative", "starts at 0"),
        ("-2s", NONE, "negative", "starts at 0"),
        (math.nan, NONE, "finite", "12.5"),
        (math.inf, NONE, "finite", "12.5"),
        ("nan", NONE, "finite", "12.5"),
        ("01:75", NONE, "below 60", "01:15"),
        ("1:60:00", NONE, "minutes must be below 60", "carry"),
        ("00:00:00:30", TimeContext(fps=30), "frame 30", "00 to 29"),
        ("00:00:00:25", TimeContext(fps=25), "frame 25", "00 to 24"),
        ("00:00:01:00", NONE, "frame rate", "fps"),
        ("00:00:01;00", TimeContext(fps=25), "drop-frame", "29.97"),
        ("00:01:00;00", TimeContext(fps=29.97), "skips frames 00 to 01", "00:01:00;02"),
        ("9.1", NONE, "no tempo", "9.1s"),
        ("9.1.240", NONE, "tempo", "tempo:"),
        ("9.5", BARS, "beats 1 to 4", "10.1"),
        ("0.1", BARS, "no bar 0", "1.1"),
        ("9.0", BARS, "beats 1 to 4", "1 to 4"),
        ("9.1.480", BARS, "tick 480", "0 to 479"),
        ("2 furlongs", NONE, "unknown unit 'furlongs'", "ns, us, µs, ms, s, min, h"),
        ("2m", NONE, "unknown unit 'm'", "2min"),
        ("", NONE, "empty", "250ms"),
        ("soon", NONE, "not a time", "mm:ss"),
        (True, NONE, "seconds or a string", "12.5"),
        (None, NONE, "seconds or a string", "12.5"),
        ("1:2:3:4:5", NONE, "not a clock time", "hh:mm:ss:ff"),
    ],
)
def test_errors_say_what_and_what_to_do(value: object, ctx: TimeContext, problem: str, hint: str) -> None:
    err = _error(value, ctx)
    assert isinstance(err, ValueError)
    assert isinstance(err, MadangError)
    assert problem in err.problem
    assert hint in err.hint
    assert repr(value) in str(err)


def test_error_takes_a_source_position() -> None:
    err = _error("9.1").at(Mark("night.yaml", 12, 9))
    assert isinstance(err, SourceError)
    assert str(err).startswith("night.yaml:12:9: time '9.1': ")
    assert err.finding.hint == err.hint


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("fast", "mapping"),
        ([], "empty"),
        ({"bpm": 0}, "positive"),
        ({"bpm": math.inf}, "positive"),
        ({"bpm": "120"}, "number"),
        ({"meter": "4/4"}, "needs bpm"),
        ({"bpm": 120, "meter": "four"}, "beats/unit"),
        ({"bpm": 120, "meter": "4/5"}, "note value"),
        ({"bpm": 120, "meter": "0/4"}, "at least one beat"),
        ({"bpm": 120, "tempo": 3}, "unknown key tempo"),
        ([{"bpm": 120}, {"bpm": 90}], "needs the bar"),
        ([{"bar": 2, "bpm": 120}], "start at bar 1"),
        ([{"bpm": 120}, {"bar": 9, "bpm": 90}, {"bar": 5, "bpm": 80}], "does not come after"),
    ],
)
def test_tempo_errors(value: object, problem: str) -> None:
    with pytest.raises(TempoError) as info:
        parse_tempo(value)
    assert problem in info.value.problem
    assert str(info.value).startswith("tempo ")
    assert info.value.hint


# ------------------------------------------------------------------------------- format


@pytest.mark.parametrize(
    ("ns", "style", "kwargs", "text"),
    [
        (754_500_000_000, "clock", {}, "12:34.500"),
        (5 * S, "clock", {}, "00:05.000"),
        (3723_250_000_000, "clock", {}, "1:02:03.250"),
        (1_999_999_999, "clock", {}, "00:01.999"),
        (-S, "clock", {}, "-00:01.000"),
        (12_500_000_000, "seconds", {}, "12.5s"),
        (3 * S, "seconds", {}, "3s"),
        (1, "seconds", {}, "0.000000001s"),
        (600_033_333_333, "smpte", {"fps": 30}, "00:10:00:01"),
        (3600 * S, "smpte", {"fps": 25}, "01:00:00:00"),
        (60_060_000_000, "smpte", {"fps": 29.97}, "00:01:00;02"),
        (60_060_000_000, "smpte", {"fps": 29.97, "drop_frame": False}, "00:01:00:00"),
        (16_250_000_000, "bars", {"tempo": TEMPO}, "9.1.240"),
    ],
)
def test_format(ns: int, style: str, kwargs: dict[str, object], text: str) -> None:
    assert format_time(ns, style, **kwargs) == text  # type: ignore[arg-type]


def test_format_refuses_what_it_cannot_show() -> None:
    with pytest.raises(ValueError, match="styles are"):
        format_time(0, "beats")
    with pytest.raises(ValueError, match="frame rate"):
        format_time(0, "smpte")
    with pytest.raises(ValueError, match="tempo"):
        format_time(0, "bars")
    with pytest.raises(ValueError, match="drop-frame"):
        format_time(0, "smpte", fps=25, drop_frame=True)


# --------------------------------------------------------------------------- properties

ns_values = st.integers(min_value=0, max_value=48 * 3600 * S)


@given(ns_values)
def test_clock_round_trip_to_the_millisecond(ns: int) -> None:
    back = parse_time_ns(format_time(ns), NONE)
    assert back == ns - ns % 1_000_000


@given(ns_values)
def test_seconds_round_trip_exactly(ns: int) -> None:
    assert parse_time_ns(format_time(ns, "seconds"), NONE) == ns


@given(
    st.integers(min_value=0, max_value=23 * 3600 * S),
    st.sampled_from([23.976, 24, 25, 29.97, 30, 50, 59.94, 60]),
)
def test_smpte_round_trip(ns: int, fps: float) -> None:
    ctx = TimeContext(fps=fps)
    text = format_time(ns, "smpte", fps=fps)
    start = parse_time_ns(text, ctx)
    # The label names the frame that has started at ns, and formats back to itself.
    assert start <= ns
    assert ns - start < S / fps * 1.001 + 1
    assert format_time(start, "smpte", fps=fps) == text
    if fps in (29.97, 59.94):
        ndf = format_time(ns, "smpte", fps=fps, drop_frame=False)
        assert parse_time_ns(ndf, ctx) == start


@given(st.integers(min_value=0, max_value=107_891))
def test_drop_frame_labels_count_every_frame_once(frame: int) -> None:
    ctx = TimeContext(fps=29.97)
    ns = round(Fraction(frame * 1001 * S, 30000))
    text = format_time(ns, "smpte", fps=29.97)
    assert parse_time_ns(text, ctx) == ns
    assert format_time(round(Fraction((frame + 1) * 1001 * S, 30000)), "smpte", fps=29.97) != text


bar_beats = st.tuples(
    st.integers(min_value=1, max_value=200), st.integers(min_value=1, max_value=4), st.integers(0, 479)
)


@given(bar_beats)
def test_bars_round_trip(bbt: tuple[int, int, int]) -> None:
    text = "{}.{}.{}".format(*bbt)
    ns = parse_time_ns(text, BARS)
    assert format_time(ns, "bars", tempo=TEMPO) == text


@given(bar_beats, bar_beats)
def test_bars_are_monotonic(a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    na = parse_time_ns("{}.{}.{}".format(*a), BARS)
    nb = parse_time_ns("{}.{}.{}".format(*b), BARS)
    assert (a < b) == (na < nb)


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_seconds_are_monotonic_and_exact(a_ms: int, b_ms: int) -> None:
    a = parse_time_ns(f"{a_ms // 1000}.{a_ms % 1000:03d}s", NONE)
    b = parse_time_ns(f"{b_ms}ms", NONE)
    assert a == a_ms * 1_000_000
    assert (a < b) == (a_ms < b_ms)
    assert parse_time_ns(a_ms / 1000, NONE) == a


@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59), st.integers(0, 29))
def test_smpte_monotonic_in_its_label(h: int, m: int, s: int, f: int) -> None:
    ctx = TimeContext(fps=30)
    here = parse_time_ns(f"{h:02d}:{m:02d}:{s:02d}:{f:02d}", ctx)
    exact = Fraction(((h * 60 + m) * 60 + s) * 30 + f, 30) * S
    assert abs(here - exact) <= Fraction(1, 2)


def test_tempo_map_direct_construction_validates() -> None:
    with pytest.raises(TempoError):
        TempoMap(())
    with pytest.raises(TempoError):
        TempoMap((TempoSegment(1, -5),))
