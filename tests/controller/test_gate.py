"""The sync gate (controller/gate.py, decided in ControllerCore) and delivery to devices that are
not synced, with literal instants: no loop, no sockets.

The clock-sync service is the real one, fed pongs from devices whose clocks run 5 ms ahead over a
symmetric 2 ms round trip, so a device is synced (or not) exactly when the test says."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from controller import wire
from controller.core import ControllerCore
from controller.delivery import Kind, UdpSend
from controller.engine import Accepted
from controller.osc import decode_packet
from controller.playback import Arm, Go, Load, Rejected, State
from controller.player import Player, PlayerOptions
from controller.sync.service import SyncService
from cues.compiler import compile_show

MS = 1_000_000
S = 1_000_000_000
T0 = 1_763_683_200 * S
OFFSET = 5 * MS

VENUE = """\
venue: gate
name: Gate
zones: [north]
broker: mqtt://127.0.0.1:1
devices:
  - id: "screen-{1..2}"
    kind: screen
    zone: north
    osc: {host: 127.0.0.1, port: "9701+"}
    sync: timetag
    latency: 20ms
  - {id: xr-1, kind: xr, zone: north, mqtt: {}, sync: app}
  - {id: pump, kind: fountain, zone: north, osc: {host: 127.0.0.1, port: 9710}, sync: none, latency: 45ms}
groups:
  screens: "kind:screen"
"""

SHOW = """\
show: Gate
venue: venue.yaml
cues:
  - id: screens
    go: manual
    actions:
      - osc: {targets: screens, address: /scene, args: [1]}
  - id: crowd
    go: manual
    actions:
      - mqtt: {targets: xr-1, topic: "xr/{device}/scene", payload: {scene: lobby}}
      - osc: {targets: pump, address: /on, args: [1]}
"""


@pytest.fixture
def core(tmp_path: Path) -> ControllerCore:
    (tmp_path / "venue.yaml").write_text(VENUE, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(SHOW, encoding="utf-8")
    timeline, venue = compile_show(tmp_path / "show.yaml")
    c = ControllerCore(timeline, venue, sync=SyncService(venue))
    c.command(Load(), T0)
    c.command(Arm(), T0)
    return c


def _sync(core: ControllerCore, devices: Iterable[str], start: int, *, rounds: int = 40) -> int:
    """Answer every ping to ``devices`` for ``rounds`` ticks of 100 ms from ``start``; the end."""
    sync = core.sync
    assert sync is not None
    want = set(devices)
    now = start
    for _ in range(rounds):
        rows, seqs = sync.due_rows(now)
        for r, seq in zip(rows.tolist(), seqs.tolist(), strict=True):
            device = sync.ids[r]
            if device in want:
                t2 = now + MS + OFFSET  # 1 ms each way, the device's clock 5 ms ahead
                sync.receive_pong(device, seq, now, t2, t2, now + 2 * MS)
        sync.update_rows(now)
        now += 100 * MS
    return now


def test_go_before_ready_is_refused_with_the_reason(core: ControllerCore) -> None:
    gate = core.readiness(T0)
    assert not gate.ready and gate.need == 3 and gate.unsettled == 3  # the `none` pump never holds it
    r = core.command(Go(), T0)
    assert isinstance(r, Rejected)
    assert core.state is State.ARMED and core.counters["gate_refused"] == 1
    reason = str(r)
    assert "NOT READY" in reason and "3 of 3 devices not ready (3 not yet synced)" in reason
    assert "worst: " in reason and "no settled clock model" in reason
    assert "--degrade" in reason and "/go/force" in reason  # what to do


def test_a_forced_go_is_accepted_before_ready(core: ControllerCore) -> None:
    assert isinstance(core.command(Go(force=True), T0), Accepted)
    assert core.state is State.PLAYING


def test_go_is_accepted_when_the_cues_own_devices_are_ready(core: ControllerCore) -> None:
    now = _sync(core, ["screen-1", "screen-2"], T0)  # the headset never answers
    assert not core.readiness(now).ready
    assert core.readiness(now, core.cue_devices("screens")).ready
    assert isinstance(core.command(Go(cue="crowd"), now), Rejected)  # its headset is not ready
    assert isinstance(core.command(Go(), now), Accepted)  # "screens" stands by: its screens are


def test_ready_once_every_device_is_synced_or_degraded(core: ControllerCore) -> None:
    now = _sync(core, ["screen-1", "screen-2"], T0)
    assert core.degrade(["xr-1", "nobody"]) == ["nobody"]
    gate = core.readiness(now)
    assert gate.ready and gate.need == 2 and gate.degraded == 1 and gate.label == "READY"
    assert isinstance(core.command(Go(cue="crowd"), now), Accepted)


def test_an_unsettled_model_does_not_open_the_gate(core: ControllerCore) -> None:
    now = _sync(core, ["screen-1", "screen-2", "xr-1"], T0, rounds=1)  # one pong each at most
    assert not core.readiness(now + 300 * MS).ready


def _cue_sends(core: ControllerCore, now: int, until: int) -> list[UdpSend]:
    out: list[UdpSend] = []
    t = now
    while t <= until:
        out.extend(s for s in core.poll(t) if isinstance(s, UdpSend) and s.kind is Kind.CUE)
        t += 10 * MS
    return out


def test_an_unsynced_timetag_device_is_sent_on_receipt_never_a_guessed_timetag(core: ControllerCore) -> None:
    assert isinstance(core.command(Go(force=True), T0), Accepted)
    due = T0 + core.engine.go_delay_ns
    sends = _cue_sends(core, T0, due)
    assert sorted(s.device for s in sends) == ["screen-1", "screen-2"]
    for s in sends:
        assert s.degraded and s.precise and s.timetag is None and s.due_ns == due
        assert s.at_ns == due - 20 * MS  # early by the venue's latency: it has no measured delay
        bundle = decode_packet(s.data)
        assert bundle.timetag == wire.NTP_IMMEDIATELY  # OSC 1.0 "immediately", not a guess
    assert core.counters["degraded_sends"] == 2


def test_a_synced_timetag_device_gets_the_instant_in_its_own_clock(core: ControllerCore) -> None:
    now = _sync(core, ["screen-1", "screen-2", "xr-1"], T0)
    assert core.readiness(now).ready
    assert isinstance(core.command(Go(), now), Accepted)
    due = now + core.engine.go_delay_ns
    sends = _cue_sends(core, now, due)
    assert sorted(s.device for s in sends) == ["screen-1", "screen-2"]
    for s in sends:
        assert not s.degraded and not s.precise and s.timetag is not None
        assert abs(wire.ntp_to_ns(s.timetag) - (due + OFFSET)) < 50_000  # the device's clock
    assert core.counters["degraded_sends"] == 0


def test_unattended_go_waits_for_ready(core: ControllerCore) -> None:
    player = Player(core, PlayerOptions(ready_timeout_ns=30 * S))
    player._go_pending = True  # as start(go=True) leaves it (the show is already armed)
    player.poll(T0)
    assert core.state is State.ARMED and player.waiting_for_gate
    now = _sync(core, ["screen-1", "screen-2", "xr-1"], T0)
    player.poll(now)
    assert core.state is State.PLAYING and player.first_go_ns == now and player.failure is None


def test_unattended_go_that_never_sees_ready_fails_the_run_naming_the_devices(core: ControllerCore) -> None:
    player = Player(core, PlayerOptions(ready_timeout_ns=30 * S))
    player._go_pending = True
    now = _sync(core, ["xr-1", "screen-1"], T0)  # screen-2 never answers
    player.poll(now)
    assert not player.done(now)
    player.poll(now + 30 * S)
    assert core.state is State.ARMED and player.done(now + 30 * S)
    message = str(player.failure)
    assert "not READY after 30 s" in message and "waiting for: screen-2." in message
    assert "--degrade" in message and "--ready-timeout" in message
