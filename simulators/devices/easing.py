"""Easing curves, evaluated by the device itself when it runs a fade (protocol.md, ``fade`` op).

Written independently of :mod:`cues.easing` on purpose: a simulated device is a second
implementation of the protocol, so a disagreement between the two shows up in tests.
Names are those of show files: ``linear``; ``in-``/``out-``/``in-out-`` + ``quad``, ``cubic``,
``quart``, ``quint``, ``sine``, ``expo``, ``circ``, ``back``, ``elastic``, ``bounce`` (Penner);
``cubic-bezier`` with params ``x1, y1, x2, y2`` (CSS); ``steps`` with params ``n, jump``
(``jump`` 0 = jump-end, 1 = jump-start, as in CSS ``steps()``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

__all__ = ["ease", "ease_names"]

_C1 = 1.70158
_C2 = _C1 * 1.525
_C3 = _C1 + 1.0
_C4 = 2.0 * math.pi / 3.0
_C5 = 2.0 * math.pi / 4.5


def _bounce_out(x: float) -> float:
    n1, d1 = 7.5625, 2.75
    if x < 1 / d1:
        return n1 * x * x
    if x < 2 / d1:
        x -= 1.5 / d1
        return n1 * x * x + 0.75
    if x < 2.5 / d1:
        x -= 2.25 / d1
        return n1 * x * x + 0.9375
    x -= 2.625 / d1
    return n1 * x * x + 0.984375


def _elastic_in(x: float) -> float:
    if x in (0.0, 1.0):
        return x
    return float(-(2.0 ** (10 * x - 10)) * math.sin((x * 10 - 10.75) * _C4))


_IN: dict[str, Callable[[float], float]] = {
    "quad": lambda x: x * x,
    "cubic": lambda x: x**3,
    "quart": lambda x: x**4,
    "quint": lambda x: x**5,
    "sine": lambda x: 1 - math.cos(x * math.pi / 2),
    "expo": lambda x: 0.0 if x == 0 else float(2.0 ** (10 * x - 10)),
    "circ": lambda x: 1 - math.sqrt(max(0.0, 1 - x * x)),
    "back": lambda x: _C3 * x**3 - _C1 * x * x,
    "elastic": _elastic_in,
    "bounce": lambda x: 1 - _bounce_out(1 - x),
}


def _out(f: Callable[[float], float]) -> Callable[[float], float]:
    return lambda x: 1 - f(1 - x)


def _in_out(f: Callable[[float], float]) -> Callable[[float], float]:
    return lambda x: f(2 * x) / 2 if x < 0.5 else 1 - f(2 - 2 * x) / 2


_CURVES: dict[str, Callable[[float], float]] = {"linear": lambda x: x}
for _name, _f in _IN.items():
    _CURVES[f"in-{_name}"] = _f
    _CURVES[f"out-{_name}"] = _out(_f)
    _CURVES[f"in-out-{_name}"] = _in_out(_f)


def ease_names() -> tuple[str, ...]:
    """Every curve name this device understands (besides ``cubic-bezier`` and ``steps``)."""
    return tuple(_CURVES)


def _bezier(x: float, x1: float, y1: float, x2: float, y2: float) -> float:
    # Solve x(t) = x by bisection (monotone for x1, x2 in [0, 1]), then return y(t).
    def coord(t: float, a: float, b: float) -> float:
        return 3 * a * (1 - t) ** 2 * t + 3 * b * (1 - t) * t * t + t**3

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if coord(mid, x1, x2) < x:
            lo = mid
        else:
            hi = mid
    return coord((lo + hi) / 2, y1, y2)


def ease(kind: str, params: Sequence[float], x: float) -> float:
    """The eased progress for linear progress ``x`` (clamped to [0, 1]); unknown kinds are linear
    (a device must not crash a show for a curve it does not know)."""
    x = 0.0 if x <= 0 else 1.0 if x >= 1 else x
    f = _CURVES.get(kind)
    if f is not None:
        return f(x)
    if kind == "cubic-bezier" and len(params) == 4:
        return _bezier(x, *params)
    if kind == "steps" and params:
        n = max(1, int(params[0]))
        jump_start = len(params) > 1 and int(params[1]) == 1
        k = math.floor(x * n) + (1 if jump_start else 0)
        return min(1.0, k / n) if x < 1 else 1.0
    return x
