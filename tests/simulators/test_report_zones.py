"""Per-zone spread and on-receipt counts of the sync report, from literal instants."""

from __future__ import annotations

import pytest

from simulators.record import Recorder
from simulators.report import ZONE_BANDS_US, sync_report, zone_spread

US = 1_000
T0 = 1_763_683_200_000_000_000


def _rec() -> Recorder:
    r = Recorder()
    # cue 1 fired by a, b (north) and c, d (south); c arrived after its instant and fired on receipt.
    for dev, off_us in (("a", 0), ("b", 100), ("c", 3_000), ("d", 200)):
        r.record(r.register(dev), "cue", "bloom", 1, "p", T0 + off_us * US, 0)
    for dev, off_us in (("a", -400_000), ("b", -380_000), ("c", 3_000), ("d", -390_000)):
        r.record(r.register(dev), "rx", "bloom", 1, "", T0 + off_us * US, 0)
    return r


def test_zone_spread_is_distance_from_the_whole_cues_median() -> None:
    zones = zone_spread(_rec(), {"a": "north", "b": "north", "c": "south", "d": "south"})
    # The cue's median over all four devices is 150 us: a 150, b 50, c 2850, d 50.
    assert set(zones) == {"north", "south"}
    assert zones["north"]["devices"] == 2 and zones["north"]["fires"] == 2
    assert zones["north"]["max_us"] == pytest.approx(150)
    assert zones["south"]["max_us"] == pytest.approx(2_850)
    assert len(zones["south"]["hist"]) == len(ZONE_BANDS_US)
    # 50 us falls in the first band (< 100 us), 2,850 us in the 2-5 ms band.
    assert zones["south"]["hist"][0] == 1 and zones["south"]["hist"][ZONE_BANDS_US.index(2_000.0)] == 1
    assert sum(zones["north"]["hist"]) == 2


def test_devices_without_a_zone_and_empty_records() -> None:
    assert zone_spread(Recorder(), {}) == {}
    zones = zone_spread(_rec(), {"a": "north"})
    assert zones["north"]["fires"] == 1 and zones[""]["fires"] == 3


def test_on_receipt_counts_devices_that_fired_when_the_cue_arrived() -> None:
    rep = sync_report(_rec())
    assert rep["cues"][0]["on_receipt"] == 1
    assert rep["on_receipt"] == 1
    assert rep["cues"][0]["t_s"] == 0.0
