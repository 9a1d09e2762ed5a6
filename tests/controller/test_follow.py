"""A core that follows another's journal and takes over: the same keys as an uninterrupted run,
what was due during the outage reported missed (never fired late), nothing sent twice under a
new key (issue 11). Literal times, no I/O."""

from __future__ import annotations

import dataclasses

import pytest

from controller.core import ControllerCore
from controller.delivery import Kind, MqttPublish, UdpSend
from controller.playback import (
    Arm,
    Go,
    LoadAt,
    Panic,
    Pause,
    PlayheadNext,
    PlayheadPrevious,
    Reset,
    Resume,
    Seek,
    SetRate,
    Stop,
    TogglePause,
)
from controller.playback import Load as LoadCmd
from controller.records import LEFT, RecordError, decode_command, encode_command
from cues.timeline import Go as GoMode
from cues.timeline import MqttSend, OscSend
from tests.controller.test_engine import MS, C, build
from venues.model import MqttEndpoint, Sync

S = 1_000 * MS
T0 = 1_000 * S

# Manual cue "intro" then an auto-follow chain with a cue every second for 12 s, then "outro".
CUES = [
    C("intro", ops=[(0, ("a", "b"), MqttSend("t/{device}", {"v": 0}))]),
    *[
        C(
            f"c{i}",
            go=GoMode.AUTO_FOLLOW,
            pre=S,
            ops=[(0, ("a", "b"), MqttSend("t/{device}", {"v": i})), (0, ("b",), OscSend("/x", (i,)))],
        )
        for i in range(12)
    ],
    C("outro", ops=[(0, ("a",), MqttSend("t/{device}", {"v": 99}))]),
]


def _core(*, live: bool = True) -> ControllerCore:
    timeline, venue = build(CUES)
    apps = tuple(
        dataclasses.replace(d, sync=Sync.APP, mqtt=MqttEndpoint(f"madang/dev/{d.id}")) for d in venue.devices
    )
    venue = dataclasses.replace(venue, devices=apps)
    return ControllerCore(timeline, venue, live=live, journal=True, controller_id="test")


def _keys(items: list[object]) -> set[tuple[str, str, int]]:
    return {
        i.key
        for i in items
        if isinstance(i, UdpSend | MqttPublish) and i.key is not None and i.kind is Kind.CUE
    }


def _play(
    core: ControllerCore, start: int, end: int, step: int = 10 * MS
) -> tuple[list[object], list[dict[str, object]]]:
    """Poll every ``step`` from ``start`` to ``end``: the items sent and the journal records."""
    items: list[object] = []
    records: list[dict[str, object]] = []
    now = start
    while now < end:
        items.extend(core.poll(now))
        got = core.take_records()
        records.extend(got)
        if any(r["k"] == "sent" for r in got):
            records.append({**LEFT, "at": now})  # as the runtime does once the sends left
        now += step
    return items, records


def _live_until(death: int) -> tuple[ControllerCore, list[object], list[dict[str, object]]]:
    core = _core()
    records: list[dict[str, object]] = [core.start_record(T0)]
    core.command(LoadCmd(), T0)
    core.command(Arm(), T0)
    core.command(Go(), T0 + S)
    records.extend(core.take_records())
    items, more = _play(core, T0 + S, death)
    return core, items, records + more


def test_a_journal_replayed_into_a_follower_takes_over_with_the_same_keys() -> None:
    reference = _core()
    reference.command(LoadCmd(), T0)
    reference.command(Arm(), T0)
    reference.command(Go(), T0 + S)
    ref_items, _ = _play(reference, T0 + S, T0 + 20 * S)

    death, back = T0 + 6 * S + 600 * MS, T0 + 6 * S + 700 * MS  # 100 ms without a controller
    _, before, records = _live_until(death)
    follower = _core(live=False)
    for r in records:
        follower.follow(r)
    assert follower.poll(death) == [] or all(not _keys([i]) for i in follower.poll(death))
    report = follower.take_over(back, term=2)
    after, _ = _play(follower, back, T0 + 20 * S)

    # Everything the uninterrupted run sent, the pair sent, under the same keys; nothing new.
    assert _keys(before) | _keys(after) == _keys(ref_items)
    assert report.missed == []  # app cues go out 400 ms ahead: a 100 ms outage misses nothing
    assert report.mismatches == 0 and report.term == 2 and follower.term == 2
    assert report.to_come > 0 and report.done > 0


def test_what_fell_due_during_a_long_outage_is_reported_missed_not_fired_late() -> None:
    death, back = T0 + 4 * S + 10 * MS, T0 + 7 * S + 200 * MS  # ~3 s without a controller
    _, before, records = _live_until(death)
    follower = _core(live=False)
    for r in records:
        follower.follow(r)
    report = follower.take_over(back, term=2)
    after, _ = _play(follower, back, T0 + 20 * S)
    sent_before, sent_after = _keys(before), _keys(after)
    missed = {m.key for m in report.missed}
    assert missed  # the cues due between ~4.4 s and 7.2 s went to nobody
    assert not missed & sent_before and not missed & sent_after  # never fired late
    assert all(death < m.at_ns < back for m in report.missed)
    assert not sent_before & sent_after - {k for k in sent_after if k in sent_before}  # no new keys
    assert report.caught_up == ["a", "b"]  # the devices of the missed cues get catch-up state
    states = [
        i for i in after if isinstance(i, MqttPublish) and b'"state"' in i.payload and i.kind is Kind.STATE
    ]
    assert {s.topic for s in states} == {"madang/cue/dev/a", "madang/cue/dev/b"}
    assert follower.counters["missed_in_outage"] == len(missed)


def test_a_second_take_is_replayed_as_the_second_take() -> None:
    core = _core()
    records: list[dict[str, object]] = [core.start_record(T0)]
    core.command(LoadCmd(), T0)
    core.command(Arm(), T0)
    core.command(Go(), T0 + S)
    _, more = _play(core, T0 + S, T0 + 3 * S)
    records += core.take_records() + more
    core.command(Stop(), T0 + 3 * S)
    core.command(Reset(), T0 + 4 * S)
    core.command(Go(), T0 + 5 * S)
    records += core.take_records()
    items2, more = _play(core, T0 + 5 * S, T0 + 7 * S)
    records += more
    assert {k[0] for k in _keys(items2)} == {"show #2"}
    follower = _core(live=False)
    for r in records:
        follower.follow(r)
    follower.take_over(T0 + 7 * S, term=2)
    after, _ = _play(follower, T0 + 7 * S, T0 + 9 * S)
    assert _keys(after) and {k[0] for k in _keys(after)} == {"show #2"}
    assert follower.engine.snapshot.take == 2


def test_a_follower_refuses_commands_and_sends_no_cues() -> None:
    follower = _core(live=False)
    result = follower.command(Go(), T0)
    assert not hasattr(result, "outputs") and "not live" in str(result)
    items = follower.poll(T0)
    assert not _keys(items)
    assert not any(isinstance(i, MqttPublish) and i.kind is Kind.CONTROLLER for i in items)


def test_a_journal_of_another_show_is_refused() -> None:
    follower = _core(live=False)
    with pytest.raises(RecordError, match="not for this one"):
        follower.follow({"k": "start", "at": T0, "show": "other", "hash": "0" * 24, "term": 1})
    follower.follow({"k": "future-kind", "at": T0})  # unknown kinds are skipped


@pytest.mark.parametrize(
    "cmd",
    [
        LoadCmd(),
        Arm(),
        Reset(),
        LoadAt(show_ns=5),
        LoadAt(cue="c1"),
        Go(),
        Go(cue="c2", force=True),
        Pause(),
        Resume(),
        TogglePause(),
        Stop(),
        Seek(show_ns=7),
        Seek(cue="c3"),
        SetRate(rate=1.5),
        Panic(),
        PlayheadNext(),
        PlayheadPrevious(),
    ],
)
def test_every_journalled_command_round_trips(cmd: object) -> None:
    assert decode_command(encode_command(cmd)) == cmd  # type: ignore[arg-type]


def test_a_bad_command_record_is_a_clear_error() -> None:
    with pytest.raises(RecordError, match="unknown command type"):
        decode_command({"type": "Explode"})
    with pytest.raises(RecordError, match="Go"):
        decode_command({"type": "Go", "bogus": 1})


def test_a_controller_that_steps_down_withdraws_what_it_held_and_sends_no_more_cues() -> None:
    core, _, _ = _live_until(T0 + 3 * S)
    core.step_down(T0 + 3 * S, "a higher term")
    items = core.poll(T0 + 3 * S)
    withdrawn = [i for i in items if type(i).__name__ == "Withdraw"]
    assert not core.live and withdrawn
    later, _ = _play(core, T0 + 3 * S, T0 + 20 * S)
    assert not _keys(later)  # it drives nothing any more
    assert "not live" in str(core.command(Go(), T0 + 20 * S))


def test_sends_cut_short_by_the_controller_s_death_are_reported_missed_as_uncertain() -> None:
    """A ``sent`` record with no ``left`` after it: the controller died while sending that poll's
    messages. What of it fell due before the takeover is reported missed, marked uncertain (some
    devices may have it); what is still to come is sent again under its key."""
    death = T0 + 6 * S + 240 * MS
    _, _, records = _live_until(death)
    assert records[-1]["k"] == "left"
    last_sent = max(i for i, r in enumerate(records) if r["k"] == "sent")
    cut = records[: last_sent + 1]  # killed after the journal write, before the sends left
    follower = _core(live=False)
    for r in cut:
        follower.follow(r)
    report = follower.take_over(death + 100 * MS, term=2)
    in_flight = {(s[0], s[1], s[2]) for s in records[last_sent]["sends"]}
    uncertain = {m.key for m in report.missed if m.uncertain}
    assert uncertain and uncertain <= in_flight
    assert all(m.at_ns < death + 100 * MS for m in report.missed)
    whole = _core(live=False)
    for r in records:  # the same journal with its ``left``: nothing uncertain
        whole.follow(r)
    assert not [m for m in whole.take_over(death + 100 * MS, term=2).missed if m.uncertain]
