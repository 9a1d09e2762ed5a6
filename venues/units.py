"""Durations in venue files, as integer nanoseconds.

A venue-level duration (``latency: 20ms``) is a number of seconds (``2``, ``0.25``) or a string
with a unit: ``250ms``, ``2s``, ``1.5 s``, ``300us`` (or ``µs``), ``2min``, ``500ns``. Show files
add ``mm:ss.fff``, SMPTE and bars.beats in :mod:`cues.timecode`.

Decimal strings are converted exactly (``0.1s`` is 100,000,000 ns, not a float rounding of it).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Final

__all__ = ["NS_PER_S", "format_duration_ns", "parse_duration_ns"]

NS_PER_S: Final = 1_000_000_000

_UNITS: Final[dict[str, int]] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": NS_PER_S,
    "sec": NS_PER_S,
    "min": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
}
_DURATION_RE: Final = re.compile(r"\s*([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))\s*([a-zµμ]*)\s*\Z")
_EXAMPLES: Final = "like 2s or 250ms (also 1.5 s, 300us, 2min)"
_MAX_NS: Final = 2**63 - 1


def parse_duration_ns(value: object) -> int:
    """A duration in integer nanoseconds from a number of seconds or a string with a unit.

    Raises ``ValueError`` with an explanation for negatives, NaN, infinities, empty strings,
    unknown units and anything else (callers turn it into a positioned finding).
    """
    if isinstance(value, bool):
        raise ValueError(f"got {str(value).lower()}, expected a number of seconds {_EXAMPLES}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"got {value}: a duration cannot be negative")
        return _checked(value * NS_PER_S, value)
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError(f"got NaN, expected a number of seconds {_EXAMPLES}")
        if math.isinf(value):
            raise ValueError(f"got an infinite number, expected a number of seconds {_EXAMPLES}")
        if value < 0:
            raise ValueError(f"got {value}: a duration cannot be negative")
        return _checked(round(Decimal(repr(value)) * NS_PER_S), value)
    if isinstance(value, str):
        return _parse_text(value)
    if value is None:
        raise ValueError(f"no duration given, expected one {_EXAMPLES}")
    raise ValueError(f"got {_kind(value)}, expected a number of seconds {_EXAMPLES}")


def _parse_text(text: str) -> int:
    if not text.strip():
        raise ValueError(f"empty duration, expected one {_EXAMPLES}")
    m = _DURATION_RE.match(text)
    if m is None:
        low = text.strip().lower()
        if low in ("nan", ".nan") or "inf" in low:
            raise ValueError(f"'{text}' is not a finite duration; write one {_EXAMPLES}")
        raise ValueError(f"'{text}' is not a duration; write one {_EXAMPLES}")
    number, unit = m.group(1), m.group(2) or "s"
    scale = _UNITS.get(unit)
    if scale is None:
        raise ValueError(f"unknown unit '{unit}' in '{text}'; use ns, us, ms, s or min")
    try:
        amount = Decimal(number)
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"'{text}' is not a duration; write one {_EXAMPLES}") from None
    if amount < 0:
        raise ValueError(f"'{text}': a duration cannot be negative")
    ns = amount * scale
    if ns != ns.to_integral_value():
        raise ValueError(f"'{text}' is finer than a nanosecond")
    return _checked(int(ns), text)


def _checked(ns: int, given: object) -> int:
    if ns > _MAX_NS:
        raise ValueError(f"{given!r} is too long a duration (more than 292 years)")
    return ns


def _kind(value: object) -> str:
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def format_duration_ns(ns: int) -> str:
    """A compact human spelling that :func:`parse_duration_ns` reads back (``250ms``, ``2s``)."""
    if ns == 0:
        return "0s"
    for unit, scale in (("min", 60 * NS_PER_S), ("s", NS_PER_S), ("ms", 1_000_000), ("us", 1_000)):
        if ns % scale == 0:
            return f"{ns // scale}{unit}"
    if ns >= NS_PER_S:
        return f"{Decimal(ns) / NS_PER_S}s"
    return f"{ns}ns"
