"""The pytest plugin and the assertion API, used as their documentation says.

The ``simulated_venue`` fixture comes from the ``madang`` pytest11 entry point (nothing imports it
here). Each assertion is checked passing and failing, and a failure must read as what the
audience would have seen: which devices, showing what, when.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simulators import pytest_plugin
from simulators.assertions import ShowAssertionError, ShowRun
from simulators.harness import shipped_show
from venues.errors import MadangError

pytest_plugins = ["pytester"]

SIM_YARD = Path(__file__).resolve().parents[1] / "data" / "sim" / "sim-yard.yaml"
HAN_RIVER = shipped_show("han-river")


@pytest.fixture
def yard(simulated_venue: Callable[..., ShowRun]) -> ShowRun:
    """The short test show on its small venue (virtual time, lan): a scene every 2 s."""
    return simulated_venue(SIM_YARD, seed=1)


def test_documented_example(simulated_venue: Callable[..., Any]) -> None:
    # The example of simulators/pytest_plugin.py and simulators/assertions.py, as written there.
    run = simulated_venue(HAN_RIVER, profile="wifi", seed=7, duration="01:00", devices=200)
    assert isinstance(run, ShowRun)
    run.assert_shows("00:50", "zone:banpo & kind:xr", "scene", {"scene": "welcome", "area": "B"})
    run.assert_no_jumps("kind:facade", "/brightness", max_step=0.05)
    run.assert_spread("headsets-ready", under_us=5_000)
    # devices=200 took headsets from every zone, and every display.
    assert len(run.devices("kind:xr")) == 200
    assert {run.venue.device(d).zone for d in run.devices("kind:xr")} == {"yeouido", "banpo", "ttukseom"}
    assert run.devices("kind:barge") == ("barge-1", "barge-2", "barge-3", "barge-4")


def test_fixture_is_the_plugins() -> None:
    assert "simulated_venue" in pytest_plugin.__all__
    assert "madang_broker" in pytest_plugin.__all__


def test_assert_shows_passes_and_shown_at_reads_the_scene(yard: ShowRun) -> None:
    yard.assert_shows("00:01", "audience", "scene", {"scene": "lobby"})
    yard.assert_shows("00:05", "zone:south & kind:xr", "scene", {"scene": "bloom"})
    yard.assert_shows("00:09", "xr-1", "scene", {"scene": "finale"})
    yard.assert_shows("00:03", "displays", "/scene", 2.0)
    assert yard.shown_at("00:05", "xr-4", "scene") == {"scene": "bloom"}
    assert yard.shown_at("00:05", "disp-t1", "/scene") == 3.0
    assert yard.shown_at("00:05", "xr-4", "video") is None  # the show never sets it


def test_assert_shows_failure_names_devices_and_what_they_show(yard: ShowRun) -> None:
    with pytest.raises(ShowAssertionError) as err:
        yard.assert_shows("00:05", "audience", "scene", {"scene": "moon"})
    text = str(err.value)
    assert text.startswith(
        "by 00:05.000 audience should show scene = {'scene': 'moon'}: 6 of 6 devices failed:\n"
    )
    for d in ("xr-1", "xr-2", "xr-3", "xr-4", "xr-5", "xr-6"):
        assert f"\n  {d} shows {{'scene': 'bloom'}}" in text
    assert err.value.failures[0] == "xr-1 shows {'scene': 'bloom'}"
    assert err.value.total == 6
    assert isinstance(err.value, AssertionError) and isinstance(err.value, MadangError)


def test_assert_shows_of_something_never_set_says_none(yard: ShowRun) -> None:
    with pytest.raises(ShowAssertionError, match=r"1 of 1 devices failed:\n  xr-3 shows None$"):
        yard.assert_shows("00:05", "xr-3", "video", {"clip": "bloom.mp4"})


def test_long_failure_lists_ten_and_counts_the_rest(simulated_venue: Callable[..., Any]) -> None:
    run = simulated_venue(HAN_RIVER, profile="lan", seed=2, duration="00:10", devices=36)
    with pytest.raises(ShowAssertionError) as err:
        run.assert_shows("00:05", "audience", "scene", {"scene": "welcome"})
    text = str(err.value)
    assert "36 of 36 devices failed" in text
    assert text.count(" shows {'scene': 'lobby'}") == 10
    assert text.rstrip().endswith("... and 26 more")


def test_assert_no_jumps_passes_on_a_fade_and_fails_on_a_step(yard: ShowRun) -> None:
    # open fades every display's brightness 0 -> 0.5 over 1 s in 50 Hz frames (0.01 a frame).
    yard.assert_no_jumps("displays", "/brightness", max_step=0.05)
    with pytest.raises(ShowAssertionError) as err:
        yard.assert_no_jumps("displays", "/brightness", max_step=0.001)
    text = str(err.value)
    assert text.startswith("/brightness on displays must not jump by more than 0.001: 4 of 4 devices failed")
    assert re.search(r"\n  disp-t1 jumped 0\.0\d\d -> 0\.0\d\d at 00:00\.\d{3}", text), text


def test_assert_spread_passes_and_fails_readably(yard: ShowRun) -> None:
    yard.assert_spread("river", under_us=5_000)
    got = yard.spread_us("river")
    assert 0 <= got < 5_000
    assert yard.spread_us("river", "range_us") >= yard.spread_us("river", "max_us")
    with pytest.raises(ShowAssertionError) as err:
        yard.assert_spread("river", under_us=0.001, stat="max_us")
    assert str(err.value).startswith("the spread of cue 'river' (max_us) should be under 0 us")
    assert re.search(r"it was \d+ us", str(err.value))
    with pytest.raises(ShowAssertionError, match=r"cue 'nosuch' never fired on two or more devices"):
        yard.assert_spread("nosuch", under_us=1_000)


def test_plugin_in_a_fresh_project(pytester: pytest.Pytester) -> None:
    """Another project's tests get the fixtures from the installed entry point alone."""
    pytester.makepyfile(
        test_show=textwrap.dedent(
            f"""
            def test_passes(simulated_venue):
                run = simulated_venue({str(SIM_YARD)!r}, seed=3)
                run.assert_shows("00:07", "audience", "scene", {{"scene": "moon"}})

            def test_fails(simulated_venue):
                run = simulated_venue({str(SIM_YARD)!r}, seed=3)
                run.assert_shows("00:07", "zone:north & kind:xr", "scene", {{"scene": "lobby"}})
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ShowAssertionError: by 00:07.000 zone:north & kind:xr should show scene = *"
            "3 of 3 devices failed*",
            "*xr-1 shows {'scene': 'moon'}*",
        ]
    )
