"""The shipped shows, played whole in virtual time: what the audience sees has no visible jumps.

A fade that starts ``from:`` a level other than where the previous cue left a display makes the
display jump at the fade's start. The check is the one an artist would write with the assertion
API (docs/simulators.md): "no facade brightness jumps by more than 0.1 between frames".
"""

from __future__ import annotations

import pytest

from cues.compiler import compile_show
from simulators.assertions import ShowRun
from simulators.harness import limit_headsets, play_virtual, shipped_show


@pytest.mark.parametrize(
    ("venue", "displays"),
    [("han-river", "displays"), ("gwanghwamun", "projectors | facade")],
)
def test_shipped_show_plays_whole_without_brightness_jumps(venue: str, displays: str) -> None:
    timeline, v = compile_show(shipped_show(venue))
    timeline, v = limit_headsets(timeline, v, 1)  # every display, one headset: the displays are the point
    res = play_virtual(timeline, v, profile="lan", seed=3)
    run = ShowRun(timeline, v, res.sim.records(), res.report, res.show_start_ns)
    assert res.report["missed"] == 0
    # (With one headset, a cue counts once it reached two displays; its actions are counted apart.)
    assert res.report["actions_fired"] >= len(timeline.cues) // 2
    assert 0 < res.report["cues_fired"] <= res.report["actions_fired"]
    run.assert_no_jumps(displays, "/brightness", max_step=0.1)
