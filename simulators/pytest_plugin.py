"""The Madang pytest plugin: test a show against a simulated venue.

Installed with the ``madang`` distribution (entry point ``pytest11``), so any project's tests get:

``simulated_venue``
    A function ``simulated_venue(show, *, profile="lan", seed=0, duration=None, devices=None,
    venue=None)`` that plays the show in seeded virtual time against its simulated venue and
    returns a :class:`~simulators.assertions.ShowRun` to assert on.

``madang_broker``
    A private Mosquitto on a free loopback port for the session (real-time tests); stopped by PID.

Example::

    def test_welcome_reaches_banpo(simulated_venue):
        run = simulated_venue("config/shows/han-river-night-bloom.yaml", profile="wifi", seed=7,
                              duration="01:00", devices=200)
        run.assert_shows("00:50", "zone:banpo & kind:xr", "scene", {"scene": "welcome", "area": "B"})
        run.assert_no_jumps("kind:facade", "/brightness", max_step=0.05)
        run.assert_spread("headsets-ready", under_us=5_000)

(``devices=200`` keeps every display and 200 headsets, taken in turn from each zone.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["madang_broker", "simulated_venue"]


@pytest.fixture(scope="session")
def madang_broker() -> Iterator[Any]:
    """A private Mosquitto for the test session (needs ``mosquitto`` on the PATH)."""
    from simulators.broker import MosquittoBroker

    broker = MosquittoBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def simulated_venue() -> Callable[..., Any]:
    """Play a show in virtual time against its simulated venue; returns a ShowRun."""

    def play(
        show: str | Path,
        *,
        profile: str = "lan",
        seed: int = 0,
        duration: str | float | None = None,
        devices: int | None = None,
        venue: str | Path | None = None,
    ) -> Any:
        from cues.compiler import compile_show
        from cues.timecode import TimeContext, parse_time_ns
        from simulators.assertions import ShowRun
        from simulators.harness import limit_headsets, play_virtual

        timeline, v = compile_show(Path(show), venue_path=Path(venue) if venue else None)
        timeline, v = limit_headsets(timeline, v, devices)
        dur = None if duration is None else parse_time_ns(duration, TimeContext())
        res = play_virtual(timeline, v, profile=profile, seed=seed, duration_ns=dur)
        return ShowRun(timeline, v, res.sim.records(), res.report, res.show_start_ns)

    return play
