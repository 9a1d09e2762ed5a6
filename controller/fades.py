"""Streaming fade maths: the value of a fade at an instant, and the instants its frames are due.

Theory of operation
-------------------
A fade moves a number from ``start`` to ``end`` over ``duration_ns`` along an easing curve. A
device that cannot interpolate gets a stream of frames at the control rate; each frame carries
the value *for the instant it is due* (``value_at`` of the elapsed time), never a value obtained
by counting steps, so a late, dropped or re-anchored frame never accumulates error. The stream
always ends with one exact final frame at the fade's end carrying ``end``.

Easing curves are evaluated by :func:`cues.easing.evaluate` (the same code that validates show
files). Everything here is pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator

from cues.easing import evaluate, value_at
from cues.timeline import NS_PER_S

__all__ = ["evaluate", "frame_instants", "frame_period_ns", "value_at"]

# ``evaluate(ease, x)`` and ``value_at(start, end, ease, elapsed_ns, duration_ns)`` are those of
# :mod:`cues.easing`, re-exported so that the engine and the show file agree on every curve.


def frame_period_ns(rate_hz: float) -> int:
    """The nominal spacing of frames at ``rate_hz`` (at least 1 ns)."""
    if not rate_hz > 0:
        raise ValueError(f"control rate must be > 0 Hz, got {rate_hz}")
    return max(1, round(NS_PER_S / rate_hz))


def frame_instants(base_ns: int, end_ns: int, rate_hz: float, first: int = 0) -> Iterator[tuple[int, int]]:
    """Yield ``(index, instant)`` of the frames from ``base_ns`` until ``end_ns``.

    Frame ``k`` is due at ``base_ns + round(k / rate_hz)`` (no drift accumulates); the last
    frame is always exactly at ``end_ns``. ``first`` resumes the stream at frame ``first``.
    """
    if not rate_hz > 0:
        raise ValueError(f"control rate must be > 0 Hz, got {rate_hz}")
    k = first
    while True:
        at = base_ns + round(k * NS_PER_S / rate_hz)
        if at >= end_ns:
            yield k, end_ns
            return
        yield k, at
        k += 1
