"""The player: the driving policy the runtime and the virtual-time harness share (literal times)."""

from __future__ import annotations

import dataclasses

from controller import wire
from controller.core import ControllerCore
from controller.delivery import Kind, MqttPublish
from controller.playback import Go, State
from controller.player import Player, PlayerOptions
from controller.telemetry import Telemetry
from cues.timeline import MqttSend, OscSend
from tests.controller.test_engine import MS, C, build
from venues.model import MqttEndpoint, Sync

S = 1_000 * MS
T0 = 1_000 * S


def _player(**opts: object) -> tuple[Player, Telemetry]:
    timeline, venue = build(
        [
            C("one", ops=[(0, ("a",), OscSend("/x", (1,)))]),
            C("two", ops=[(0, ("a", "b"), MqttSend("t/{device}", {"v": 1}))]),
        ]
    )
    # Headset apps over MQTT: an MQTT action reaches them as one timed cue message.
    apps = tuple(
        dataclasses.replace(d, sync=Sync.APP, mqtt=MqttEndpoint(f"madang/dev/{d.id}")) for d in venue.devices
    )
    venue = dataclasses.replace(venue, devices=apps)
    core = ControllerCore(timeline, venue)
    tel = Telemetry(venue)
    player = Player(core, PlayerOptions(**opts), telemetry=tel)  # type: ignore[arg-type]
    player.start(T0)
    return player, tel


def _run(player: Player, until: int) -> int:
    """Poll at each wake-up the player asks for, as a driver would; returns how many polls."""
    now, polls = T0, 0
    while now < until:
        player.poll(now)
        polls += 1
        now = max(player.next_wake(now), now + 1)
    return polls


def test_unattended_go_presses_every_manual_cue_from_its_instant_on() -> None:
    player, _ = _player(auto_go=True, auto_go_from_ns=T0 + 2 * S)
    assert player.wants_go() and player.core.state is State.ARMED
    player.poll(T0 + S)
    assert player.core.state is State.ARMED  # not before auto_go_from_ns
    assert player.next_wake(T0 + S) == T0 + S + 50 * MS  # at most max_wait_ns away
    assert player.next_wake(T0 + 2 * S - 10 * MS) == T0 + 2 * S  # wakes for the first GO
    _run(player, T0 + 10 * S)
    assert player.first_go_ns == T0 + 2 * S
    assert player.show_start_ns == T0 + 2 * S + player.core.engine.go_delay_ns
    assert player.core.engine.snapshot.current_cue == "two"  # the second manual GO was pressed too


def test_without_auto_go_the_show_waits_for_the_operator() -> None:
    player, _ = _player()
    _run(player, T0 + 5 * S)
    assert player.core.state is State.ARMED and player.first_go_ns is None
    player.command(Go(cue=None), T0 + 5 * S)
    assert player.first_go_ns == T0 + 5 * S


def test_play_for_and_exit_at_end() -> None:
    player, _ = _player(auto_go=True, play_for_ns=3 * S)
    player.poll(T0)
    assert player.end_ns == T0 + 3 * S and not player.done(T0 + 3 * S - 1) and player.done(T0 + 3 * S)
    ending, _ = _player(auto_go=True, exit_at_end=True)
    _run(ending, T0 + 30 * S)
    assert ending.core.finished and ending.done(T0 + 30 * S)


def test_sends_note_their_instants_for_telemetry_without_parsing_bytes() -> None:
    player, tel = _player(auto_go=True)
    cues: list[MqttPublish] = []
    now = T0
    while now < T0 + 5 * S:
        cues += [i for i in player.poll(now) if isinstance(i, MqttPublish) and i.kind is Kind.CUE]
        now = max(player.next_wake(now), now + 1)
    assert cues, "an MQTT action for app devices leaves as cue messages"
    assert all(c.due_ns is not None and c.key is not None for c in cues)
    # Fire reports come back through the player, which hands them to telemetry.
    seq = cues[0].key[2] if cues[0].key else -1
    player.receive_mqtt("madang/dev/b/fired", b'{"seq": %d, "local": 5, "synced": false}' % seq, now)
    player.core.receive_mqtt("madang/dev/a/fired", b'{"seq": %d}' % seq, now)  # the core alone: not noted
    assert (tel.acks("a"), tel.acks("b")) == (0, 1)
    assert player.core.take_fired() == [("a", wire.Fired(seq, None, False))]
