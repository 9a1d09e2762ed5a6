"""Times as artists write them, turned into exact integer nanoseconds, and back.

Theory of operation
-------------------
A show file may write a time in any of these forms (YAML gives numbers or strings):

=====================  ==========================================================
``12`` / ``1.5``       a YAML number: seconds
``"250ms"``, ``"2s"``  a number with a unit: ``ns``, ``us``/``µs``, ``ms``, ``s``,
``"1.5s"``, ``"2min"`` ``min``, ``h`` (a space before the unit is allowed)
``"mm:ss"``            minutes and seconds, ``"mm:ss.fff"`` with a fraction
``"h:mm:ss.fff"``      hours, minutes, seconds
``"hh:mm:ss:ff"``      SMPTE timecode; needs ``fps``. ``"hh:mm:ss;ff"`` is
                       drop-frame (29.97 and 59.94 fps only)
``"9.1"``              bar 9, beat 1 against the show's tempo map
``"9.1.240"``          bar 9, beat 1, tick 240 (480 ticks per beat)
=====================  ==========================================================

Bars and beats are 1-based as musicians count them, so ``"1.1"`` is the instant 0. A tempo
segment's ``bpm`` counts the beats of its meter (the ``4`` of ``3/4``, the ``8`` of ``6/8``).

Every conversion is exact: numbers are read through their decimal text into
:class:`fractions.Fraction`, and only the final instant is rounded (to the nearest nanosecond,
halves up). So ``"00:10:00:01"`` at 30 fps is exactly ``600_033_333_333`` and nothing drifts
over a two-hour show.

A string with one dot and no unit (``"9.1"``) is a bar.beat position when the show has a tempo;
without one it is an error telling the artist to write ``9.1s``, because a YAML author who
quoted it most likely did not mean 9.1 seconds.

Errors are :class:`TimeFormatError` (a :class:`~venues.errors.SourceError`, so also a
``ValueError``) with the offending value, what is wrong and what to write instead; the compiler
attaches the source position with :meth:`TimeFormatError.at`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from venues.errors import Mark, SourceError

__all__ = [
    "TICKS_PER_BEAT",
    "UNITS",
    "TempoError",
    "TempoMap",
    "TempoSegment",
    "TimeContext",
    "TimeFormatError",
    "format_time",
    "parse_tempo",
    "parse_time_ns",
]

NS_PER_S = 1_000_000_000
TICKS_PER_BEAT = 480

#: Units accepted after a number, with their length in nanoseconds.
UNITS: Mapping[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": NS_PER_S,
    "min": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
}
_UNIT_LIST = ", ".join(UNITS)

_STYLES = ("clock", "smpte", "bars", "seconds")


class TimeFormatError(SourceError):
    """A time, tempo or timecode that cannot be read.

    Fields: ``value`` (what was written), ``problem`` (what is wrong), ``hint`` (what to write
    instead) and ``mark`` (where, once the compiler has attached it with :meth:`at`).
    """

    def __init__(self, value: object, problem: str, hint: str = "", mark: Mark | None = None) -> None:
        super().__init__(mark, f"time {value!r}: {problem}", hint)
        self.value = value
        self.problem = problem
        self.hint = hint

    def at(self, mark: Mark | None) -> TimeFormatError:
        """The same error located at ``mark`` in a source file."""
        return type(self)(self.value, self.problem, self.hint, mark)


class TempoError(TimeFormatError):
    """A ``tempo:`` entry of a show file that cannot be read."""

    def __init__(self, value: object, problem: str, hint: str = "", mark: Mark | None = None) -> None:
        super().__init__(value, problem, hint, mark)
        # The message names the tempo, not a time.
        self.finding = type(self.finding)(mark, f"tempo {value!r}: {problem}", hint)


# --------------------------------------------------------------------------------------------
# Tempo maps


@dataclass(frozen=True, slots=True)
class TempoSegment:
    """From bar ``start_bar`` (1-based) on: ``bpm`` beats of ``1/beat_unit`` per minute,
    ``beats_per_bar`` beats in a bar."""

    start_bar: int
    bpm: float
    beats_per_bar: int = 4
    beat_unit: int = 4

    @property
    def beat_s(self) -> Fraction:
        """The exact length of one beat, in seconds."""
        return Fraction(60) / _exact(self.bpm)

    @property
    def meter(self) -> str:
        """The meter as written, ``"3/4"``."""
        return f"{self.beats_per_bar}/{self.beat_unit}"


@dataclass(frozen=True, slots=True)
class TempoMap:
    """One or more tempo segments, the first starting at bar 1, in increasing bar order.

    Build it with :func:`parse_tempo` from a show file, or directly from segments.
    """

    segments: tuple[TempoSegment, ...]

    def __post_init__(self) -> None:
        if not self.segments:
            raise TempoError([], "a tempo map needs at least one segment", "write tempo: {bpm: 120}")
        if self.segments[0].start_bar != 1:
            raise TempoError(
                self.segments[0].start_bar,
                "the first tempo segment must start at bar 1",
                "give the first entry bar: 1 (or leave bar out)",
            )
        for prev, seg in zip(self.segments, self.segments[1:], strict=False):
            if seg.start_bar <= prev.start_bar:
                raise TempoError(
                    seg.start_bar,
                    f"tempo segment at bar {seg.start_bar} does not come after bar {prev.start_bar}",
                    "list tempo changes in increasing bar order",
                )
        for seg in self.segments:
            _check_bpm(seg.bpm)
            _check_meter(seg.beats_per_bar, seg.beat_unit, seg.meter)

    def _starts_s(self) -> list[Fraction]:
        """Exact start of every segment, in seconds."""
        out = [Fraction(0)]
        for prev, seg in zip(self.segments, self.segments[1:], strict=False):
            out.append(out[-1] + (seg.start_bar - prev.start_bar) * prev.beats_per_bar * prev.beat_s)
        return out

    def seconds_at(self, bar: int, beat: int = 1, tick: int = 0) -> Fraction:
        """The exact instant, in seconds, of ``bar.beat.tick`` (bar and beat 1-based)."""
        text = f"{bar}.{beat}.{tick}"
        if bar < 1:
            raise TimeFormatError(text, f"there is no bar {bar}", "bars count from 1: the show starts at 1.1")
        starts = self._starts_s()
        index = max(i for i, s in enumerate(self.segments) if s.start_bar <= bar)
        seg = self.segments[index]
        if not 1 <= beat <= seg.beats_per_bar:
            raise TimeFormatError(
                text,
                f"bar {bar} is in {seg.meter}, so it has beats 1 to {seg.beats_per_bar}, not {beat}",
                f"write a beat from 1 to {seg.beats_per_bar}, or the next bar: {bar + 1}.1",
            )
        if not 0 <= tick < TICKS_PER_BEAT:
            raise TimeFormatError(
                text,
                f"tick {tick} is outside a beat",
                f"ticks run from 0 to {TICKS_PER_BEAT - 1} ({TICKS_PER_BEAT} per beat)",
            )
        beats = (bar - seg.start_bar) * seg.beats_per_bar + (beat - 1) + Fraction(tick, TICKS_PER_BEAT)
        return starts[index] + beats * seg.beat_s

    def ns_at(self, bar: int, beat: int = 1, tick: int = 0) -> int:
        """The instant of ``bar.beat.tick`` in integer nanoseconds (nearest)."""
        return _round_ns(self.seconds_at(bar, beat, tick))

    def position_at(self, ns: int) -> tuple[int, int, int]:
        """``(bar, beat, tick)`` in force at ``ns`` (the tick that has started, not the nearest).

        Exact inverse of :meth:`ns_at`: ``position_at(ns_at(b, e, t)) == (b, e, t)``.
        """
        if ns < 0:
            raise TimeFormatError(ns, "a bar.beat position cannot be negative", "use a time at or after 0")
        # ns is rounded to the nearest nanosecond, so the true instant lies within half a
        # nanosecond of it: taking the floor at ns + 1/2 recovers the tick exactly (a tick is
        # far longer than a nanosecond).
        t = (Fraction(ns) + Fraction(1, 2)) / NS_PER_S
        starts = self._starts_s()
        index = max(i for i, s in enumerate(starts) if s <= t)
        seg = self.segments[index]
        ticks = math.floor((t - starts[index]) / seg.beat_s * TICKS_PER_BEAT)
        beats, tick = divmod(ticks, TICKS_PER_BEAT)
        bars, beat0 = divmod(beats, seg.beats_per_bar)
        return seg.start_bar + bars, beat0 + 1, tick


def parse_tempo(value: object) -> TempoMap:
    """Read a show file's ``tempo:``.

    Either one segment, ``{bpm: 120, meter: 4/4}`` (meter defaults to 4/4), or a list of them
    with the bar each starts at: ``[{bar: 1, bpm: 120, meter: 4/4}, {bar: 33, bpm: 96}]``.
    A later entry keeps the previous bpm and meter unless it gives its own. An existing
    :class:`TempoMap` is returned as is.
    """
    if isinstance(value, TempoMap):
        return value
    if isinstance(value, Mapping):
        entries: Sequence[object] = [value]
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        entries = value
    else:
        raise TempoError(
            value,
            "a tempo is a mapping or a list of mappings",
            "write tempo: {bpm: 120, meter: 4/4} or a list of {bar: 33, bpm: 96}",
        )
    if not entries:
        raise TempoError(value, "the tempo list is empty", "write tempo: {bpm: 120, meter: 4/4}")
    segments: list[TempoSegment] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise TempoError(entry, "each tempo entry is a mapping", "write {bar: 33, bpm: 96, meter: 3/4}")
        unknown = sorted(str(k) for k in entry if k not in ("bar", "bpm", "meter"))
        if unknown:
            raise TempoError(
                dict(entry), f"unknown key {', '.join(unknown)}", "a tempo entry has bar, bpm and meter"
            )
        prev = segments[-1] if segments else None
        bar = entry.get("bar", 1 if i == 0 else None)
        if bar is None:
            raise TempoError(dict(entry), "a tempo change needs the bar it starts at", "add bar: 33")
        if isinstance(bar, bool) or not isinstance(bar, int):
            raise TempoError(dict(entry), f"bar {bar!r} is not a whole number", "write bar: 33")
        bpm = entry.get("bpm", prev.bpm if prev else None)
        if bpm is None:
            raise TempoError(dict(entry), "the first tempo entry needs bpm", "add bpm: 120")
        _check_bpm(bpm)
        assert isinstance(bpm, int | float)
        meter = entry.get("meter")
        if meter is None:
            beats, unit = (prev.beats_per_bar, prev.beat_unit) if prev else (4, 4)
        else:
            beats, unit = _parse_meter(meter)
        segments.append(TempoSegment(bar, bpm, beats, unit))
    return TempoMap(tuple(segments))


def _check_bpm(bpm: object) -> None:
    if isinstance(bpm, bool) or not isinstance(bpm, int | float):
        raise TempoError(bpm, "bpm must be a number", "write bpm: 120")
    if not math.isfinite(bpm) or bpm <= 0:
        raise TempoError(bpm, "bpm must be a positive number", "write bpm: 120")


def _check_meter(beats: int, unit: int, text: object) -> None:
    if beats < 1:
        raise TempoError(text, "a bar needs at least one beat", "write meter: 4/4")
    if unit < 1 or unit & (unit - 1):
        raise TempoError(text, f"the beat unit {unit} is not a note value", "use 1, 2, 4, 8, 16 or 32: 6/8")


def _parse_meter(meter: object) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", meter) if isinstance(meter, str) else None
    if m is None:
        raise TempoError(meter, "a meter is written beats/unit", "write meter: 4/4 or 6/8")
    beats, unit = int(m.group(1)), int(m.group(2))
    _check_meter(beats, unit, meter)
    return beats, unit


# --------------------------------------------------------------------------------------------
# Parsing times


@dataclass(frozen=True, slots=True)
class TimeContext:
    """What a show file declares that changes how times read: SMPTE ``fps`` and ``tempo``.

    ``fps`` 29.97 (or 59.94, 23.976) is the NTSC rate 30000/1001 (60000/1001, 24000/1001);
    timecode written with ``;`` before the frames is drop-frame.
    """

    fps: float | None = None
    tempo: TempoMap | None = None


_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_RE_UNIT = re.compile(rf"{_NUMBER}\s*([a-zµ]+)")
_RE_PLAIN = re.compile(_NUMBER)
_RE_BARS = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
_RE_CLOCK2 = re.compile(r"(\d+):(\d{1,2}(?:\.\d+)?)")
_RE_CLOCK3 = re.compile(r"(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)")
_RE_SMPTE = re.compile(r"(\d{1,2})([:;])(\d{2})([:;])(\d{2})([:;])(\d{2,3})")


def parse_time_ns(value: object, ctx: TimeContext | None = None) -> int:
    """A time from a show file as exact integer nanoseconds (see the module doc for forms).

    Raises :class:`TimeFormatError` (a ``ValueError``) saying what is wrong and what to write.
    """
    ctx = ctx or TimeContext()
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TimeFormatError(
            value, "a time is a number of seconds or a string", 'write 12.5, "250ms", "01:30.000" or "9.1"'
        )
    if isinstance(value, int):
        _check_sign(value, value)
        return value * NS_PER_S
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TimeFormatError(value, "not a finite number", "write a time in seconds such as 12.5")
        _check_sign(value, value)
        return _round_ns(_exact(value))
    return _parse_text(value, ctx)


def _parse_text(value: str, ctx: TimeContext) -> int:
    text = value.strip().lower()
    if not text:
        raise TimeFormatError(value, "empty time", 'write 12.5, "250ms" or "01:30.000"')
    if text.startswith("-"):
        raise TimeFormatError(value, "times cannot be negative", "show time starts at 0")
    if text in ("nan", "inf", "+inf", "infinity", ".nan", ".inf"):
        raise TimeFormatError(value, "not a finite number", "write a time in seconds such as 12.5")

    if m := _RE_BARS.fullmatch(text):
        return _parse_bars(value, m, ctx)
    if m := _RE_PLAIN.fullmatch(text):
        # A bare number in a string: seconds, as it would be unquoted.
        return _round_ns(Fraction(m.group(1)))
    if m := _RE_UNIT.fullmatch(text):
        unit = m.group(2)
        if unit not in UNITS:
            raise TimeFormatError(
                value, f"unknown unit {unit!r}", f"units are {_UNIT_LIST}; write e.g. 250ms, 1.5s or 2min"
            )
        return _round_ns(Fraction(m.group(1)) * UNITS[unit] / NS_PER_S)
    if m := _RE_SMPTE.fullmatch(text):
        return _parse_smpte(value, m, ctx)
    if m := _RE_CLOCK3.fullmatch(text):
        hours, minutes, seconds = int(m.group(1)), int(m.group(2)), Fraction(m.group(3))
        _check_clock_part(value, minutes, "minutes", "h:mm:ss")
        _check_clock_part(value, seconds, "seconds", "h:mm:ss")
        return _round_ns(hours * 3600 + minutes * 60 + seconds)
    if m := _RE_CLOCK2.fullmatch(text):
        minutes, seconds = int(m.group(1)), Fraction(m.group(2))
        _check_clock_part(value, seconds, "seconds", "mm:ss")
        return _round_ns(minutes * 60 + seconds)
    if re.fullmatch(r"[\d.:;]+", text) and (":" in text or ";" in text):
        raise TimeFormatError(
            value,
            "not a clock time or a timecode",
            'write "mm:ss", "mm:ss.fff", "h:mm:ss.fff" or SMPTE "hh:mm:ss:ff"',
        )
    if re.fullmatch(r"[\d.]+\s*[a-zµ]*", text):
        raise TimeFormatError(value, "not a number", 'write e.g. 12.5, "250ms" or "9.1.240" (bar.beat.tick)')
    raise TimeFormatError(
        value,
        "not a time",
        f'write seconds (12.5), a number with a unit ({_UNIT_LIST}: "250ms"), "mm:ss.fff", '
        'SMPTE "hh:mm:ss:ff" or bar.beat "9.1"',
    )


def _check_sign(value: object, number: float) -> None:
    if number < 0:
        raise TimeFormatError(value, "times cannot be negative", "show time starts at 0")


def _check_clock_part(value: str, part: Fraction | int, name: str, form: str) -> None:
    if part >= 60:
        raise TimeFormatError(
            value,
            f"{name} must be below 60 in {form}",
            "carry into the next field: 00:75 is written 01:15",
        )


def _parse_bars(value: str, m: re.Match[str], ctx: TimeContext) -> int:
    if ctx.tempo is None:
        if m.group(3) is None:
            raise TimeFormatError(
                value,
                "reads as bar.beat, but the show has no tempo",
                f"for seconds write {value.strip()}s or leave the quotes off; "
                "for bars add tempo: {bpm: 120, meter: 4/4} to the show",
            )
        raise TimeFormatError(
            value,
            "a bar.beat.tick position needs a tempo",
            "add tempo: {bpm: 120, meter: 4/4} to the show",
        )
    tick = int(m.group(3)) if m.group(3) is not None else 0
    try:
        return ctx.tempo.ns_at(int(m.group(1)), int(m.group(2)), tick)
    except TimeFormatError as e:
        raise TimeFormatError(value, e.problem, e.hint) from None


def _rate(fps: float) -> tuple[Fraction, int]:
    """``(exact frames per second, nominal frames per second)``: 29.97 -> (30000/1001, 30)."""
    nominal = round(fps)
    if fps != nominal and abs(fps - nominal * 1000 / 1001) < 0.005:
        return Fraction(nominal * 1000, 1001), nominal
    return _exact(fps), math.ceil(fps)


def _check_fps(value: object, fps: float | None) -> float:
    if fps is None:
        raise TimeFormatError(
            value, "SMPTE timecode needs a frame rate", "add fps: 25 (or 24, 29.97, 30, ...) to the show"
        )
    if isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0:
        raise TimeFormatError(value, f"fps {fps!r} is not a frame rate", "write fps: 25")
    return fps


def _drop_per_minute(nominal: int) -> int:
    # SMPTE 12M drop-frame: 2 frame numbers per minute at 30 nominal, 4 at 60, except
    # every tenth minute, keeps 29.97 timecode within 3.6 ms a day of the wall clock.
    return nominal // 15


def _parse_smpte(value: str, m: re.Match[str], ctx: TimeContext) -> int:
    fps = _check_fps(value, ctx.fps)
    hours, minutes, seconds, frames = int(m.group(1)), int(m.group(3)), int(m.group(5)), int(m.group(7))
    drop = ";" in (m.group(2), m.group(4), m.group(6))
    rate, nominal = _rate(fps)
    if minutes >= 60 or seconds >= 60:
        raise TimeFormatError(value, "minutes and seconds must be below 60 in hh:mm:ss:ff", "carry over")
    if frames >= nominal:
        raise TimeFormatError(
            value,
            f"frame {frames} does not exist at {fps:g} fps",
            f"frames run from 00 to {nominal - 1:02d}; carry into the seconds",
        )
    label = ((hours * 60 + minutes) * 60 + seconds) * nominal + frames
    if drop:
        if rate.denominator != 1001 or nominal not in (30, 60):
            raise TimeFormatError(
                value,
                f"drop-frame timecode (';') does not exist at {fps:g} fps",
                "drop-frame is for 29.97 and 59.94 fps; write ':' before the frames",
            )
        dropped = _drop_per_minute(nominal)
        total_minutes = hours * 60 + minutes
        if seconds == 0 and frames < dropped and total_minutes % 10 != 0:
            first = f"{hours:02d}:{minutes:02d}:00;{dropped:02d}"
            raise TimeFormatError(
                value,
                f"drop-frame skips frames 00 to {dropped - 1:02d} at the start of each minute "
                "except every tenth",
                f"the minute starts at {first}",
            )
        label -= dropped * (total_minutes - total_minutes // 10)
    return _round_ns(label / rate)


# --------------------------------------------------------------------------------------------
# Formatting times


def format_time(
    ns: int,
    style: str = "clock",
    *,
    fps: float | None = None,
    drop_frame: bool | None = None,
    tempo: TempoMap | None = None,
) -> str:
    """Show an instant or a duration as an operator reads it.

    - ``"clock"``: ``"12:34.500"`` (mm:ss.fff), ``"1:02:03.250"`` when there are hours; the
      milliseconds are truncated, as a clock shows them.
    - ``"smpte"``: ``"00:10:00:01"`` at ``fps``; drop-frame (``"00:01:00;02"``) by default at
      29.97 and 59.94, or as ``drop_frame`` says.
    - ``"bars"``: ``"9.1.240"`` (bar.beat.tick) against ``tempo``.
    - ``"seconds"``: ``"12.5s"``, exact to the nanosecond.

    Each form reads back with :func:`parse_time_ns` to the same instant (to the millisecond for
    ``"clock"``, to the frame for ``"smpte"``, to the tick for ``"bars"``).
    """
    if style not in _STYLES:
        raise ValueError(f"unknown time style {style!r}; styles are {', '.join(_STYLES)}")
    if style == "bars":
        if tempo is None:
            raise ValueError('format_time(..., "bars") needs tempo=')
        bar, beat, tick = tempo.position_at(ns)
        return f"{bar}.{beat}.{tick}"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if style == "seconds":
        whole, frac = divmod(ns, NS_PER_S)
        return f"{sign}{whole}.{frac:09d}".rstrip("0").rstrip(".") + "s"
    if style == "smpte":
        return sign + _format_smpte(ns, _check_fps(ns, fps), drop_frame)
    ms = ns // 1_000_000
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    if hours:
        return f"{sign}{hours}:{minutes:02d}:{seconds:02d}.{millis:03d}"
    return f"{sign}{minutes:02d}:{seconds:02d}.{millis:03d}"


def _format_smpte(ns: int, fps: float, drop_frame: bool | None) -> str:
    rate, nominal = _rate(fps)
    drop_ok = rate.denominator == 1001 and nominal in (30, 60)
    drop = drop_ok if drop_frame is None else drop_frame
    if drop and not drop_ok:
        raise ValueError(f"drop-frame timecode does not exist at {fps:g} fps")
    # As for ticks: floor at ns + 1/2 gives back the frame that was parsed.
    frame = math.floor((Fraction(ns) + Fraction(1, 2)) * rate / NS_PER_S)
    if drop:
        dropped = _drop_per_minute(nominal)
        per_ten = 10 * 60 * nominal - 9 * dropped  # real frames in ten minutes
        per_minute = 60 * nominal - dropped  # real frames in a minute that drops
        tens, rem = divmod(frame, per_ten)
        # The first minute of each ten keeps all its labels; the other nine skip `dropped`.
        skipped = 0 if rem < 60 * nominal else dropped * ((rem - 60 * nominal) // per_minute + 1)
        frame += 9 * dropped * tens + skipped
    frames_per_hour = 3600 * nominal
    hours, rest = divmod(frame, frames_per_hour)
    minutes, rest = divmod(rest, 60 * nominal)
    seconds, frames = divmod(rest, nominal)
    sep = ";" if drop else ":"
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{sep}{frames:02d}"


# --------------------------------------------------------------------------------------------
# Exact numbers


def _exact(x: float) -> Fraction:
    """The number the decimal text of ``x`` says: 0.1 -> 1/10, not the nearest binary double."""
    if isinstance(x, int):
        return Fraction(x)
    return Fraction(repr(x))


def _round_ns(seconds: Fraction) -> int:
    """Seconds to the nearest nanosecond, halves up (instants here are never negative)."""
    return math.floor(seconds * NS_PER_S + Fraction(1, 2))
