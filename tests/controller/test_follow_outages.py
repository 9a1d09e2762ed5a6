"""A show that loses its controller more than once (``madang bench failover`` kills it twenty
times): each takeover reports what fell due in *its* outage, not again what earlier takeovers
already reported, and a long journal (pruned as it is replayed) misses nothing. Literal times."""

from __future__ import annotations

import dataclasses

from controller.core import ControllerCore
from controller.playback import Arm, Go
from controller.playback import Load as LoadCmd
from cues.timeline import Go as GoMode
from cues.timeline import MqttSend
from tests.controller.test_engine import MS, C, build
from tests.controller.test_follow import T0, S, _core, _keys, _live_until, _play
from venues.model import MqttEndpoint, Sync


def _follow(records: list[dict[str, object]]) -> ControllerCore:
    follower = _core(live=False)
    for r in records:
        follower.follow(r)
    return follower


def test_a_second_takeover_does_not_report_the_first_outage_again() -> None:
    death1, back1 = T0 + 4 * S + 10 * MS, T0 + 7 * S + 200 * MS  # ~3 s: cues missed
    _, _, records = _live_until(death1)
    first = _follow(records)
    report1 = first.take_over(back1, term=2)
    assert report1.missed
    death2, back2 = T0 + 9 * S + 600 * MS, T0 + 9 * S + 700 * MS  # 100 ms: nothing missed
    _, more = _play(first, back1, death2)
    second = _follow(records + more)
    report2 = second.take_over(back2, term=3)
    assert report2.missed == []  # not the first outage's misses again
    assert second.counters["missed_in_outage"] == 0
    assert report2.to_come > 0 and report2.mismatches == 0


def _long_core(*, live: bool = True) -> ControllerCore:
    """A cue every 250 ms for 60 s, on two headsets."""
    cues = [
        C("intro", ops=[(0, ("a", "b"), MqttSend("t/{device}", {"v": 0}))]),
        *[
            C(
                f"c{i}",
                go=GoMode.AUTO_FOLLOW,
                pre=S // 4,
                ops=[(0, ("a", "b"), MqttSend("t/{device}", {"v": i}))],
            )
            for i in range(240)
        ],
    ]
    timeline, venue = build(cues)
    apps = tuple(
        dataclasses.replace(d, sync=Sync.APP, mqtt=MqttEndpoint(f"madang/dev/{d.id}")) for d in venue.devices
    )
    return ControllerCore(
        timeline, dataclasses.replace(venue, devices=apps), live=live, journal=True, controller_id="test"
    )


def test_a_long_journal_pruned_while_replayed_reports_nothing_missed_for_a_short_outage() -> None:
    live = _long_core()
    records: list[dict[str, object]] = [live.start_record(T0)]
    live.command(LoadCmd(), T0)
    live.command(Arm(), T0)
    live.command(Go(), T0 + S)
    records += live.take_records()
    death, back = T0 + 45 * S + 600 * MS, T0 + 45 * S + 700 * MS  # 100 ms without a controller
    before, more = _play(live, T0 + S, death, step=20 * MS)
    records += more
    assert len(records) > 256  # the replay prunes what settled more than 30 s before
    follower = _long_core(live=False)
    for r in records:
        follower.follow(r)
    report = follower.take_over(back, term=2)
    after, _ = _play(follower, back, T0 + 50 * S, step=20 * MS)
    assert report.missed == []  # app cues go out 400 ms ahead: a 100 ms outage misses nothing
    assert report.to_come > 0
    assert _keys(after) - _keys(before)  # and the show goes on
