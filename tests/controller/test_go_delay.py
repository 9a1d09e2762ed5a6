"""GO latency: a triggered sequence starts ``go_delay_ns`` after its trigger, so its first
actions can still be sent ahead of their instant (docs/operator.md)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from controller.engine import Accepted, Engine, Fire
from controller.playback import Arm, Go, Load, Seek
from cues.timeline import OscSend
from tests.controller.test_engine import MS, C, build


def _sends(result: object, more: Sequence[object]) -> list[int]:
    outs = list(result.outputs) if isinstance(result, Accepted) else []
    return [o.at for o in [*outs, *more] if isinstance(o, Fire)]


def _engine(delay: int) -> Engine:
    tl, venue = build([C("one", ops=[(0, ("a",), OscSend("/x", (1,))), (100 * MS, ("b",), OscSend("/y"))])])
    e = Engine(tl, venue, go_delay_ns=delay, lookahead_ns=10_000 * MS)
    e.command(Load(), 0)
    e.command(Arm(), 0)
    return e


def test_go_fires_after_the_configured_delay() -> None:
    e = _engine(250 * MS)
    r = e.command(Go(), 1_000 * MS)
    assert isinstance(r, Accepted)
    assert _sends(r, e.poll(1_000 * MS)) == [1_250 * MS, 1_350 * MS]


def test_zero_delay_fires_at_the_press() -> None:
    e = _engine(0)
    r = e.command(Go(), 1_000 * MS)
    assert _sends(r, e.poll(1_000 * MS)) == [1_000 * MS, 1_100 * MS]


def test_seek_mid_sequence_continues_without_the_delay() -> None:
    e = _engine(250 * MS)
    e.command(Go(), 0)
    e.poll(0)
    r = e.command(Seek(show_ns=50 * MS), 2_000 * MS)
    # The remaining action (nominal 100 ms) comes 50 ms after the seek, not 300 ms.
    assert _sends(r, e.poll(2_000 * MS)) == [2_050 * MS]


def test_negative_delay_is_refused() -> None:
    tl, venue = build([C("one")])
    with pytest.raises(ValueError, match="go_delay_ns"):
        Engine(tl, venue, go_delay_ns=-1)
