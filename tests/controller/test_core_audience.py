"""Audience slots in the core (literal instants, no loop): vacant until a phone takes one, pinged
only while taken, never holding the sync gate; WebSocket devices are pinged like MQTT ones; a
light action reaches the audience as one cue message on a group topic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from controller import wire
from controller.core import ControllerCore, PingBatch
from controller.delivery import Kind, MqttPublish
from controller.playback import Arm, Go, Load
from controller.sync.service import SyncService
from cues.compiler import compile_show

MS = 1_000_000
S = 1_000_000_000
T0 = 1_763_683_200 * S

VENUE = """\
venue: crowd
zones: [north, south]
devices:
  - {id: xr-1, kind: xr, zone: north, ws: {}, sync: app}
audience:
  capacity: 6
  zones: [north, south]
"""

SHOW = """\
show: Crowd
venue: venue.yaml
cues:
  - id: pink
    actions:
      - light: {targets: "kind:phone", color: "#ff2d95"}
"""


def core(tmp_path: Path) -> ControllerCore:
    (tmp_path / "venue.yaml").write_text(VENUE, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(SHOW, encoding="utf-8")
    timeline, venue = compile_show(tmp_path / "show.yaml")
    return ControllerCore(timeline, venue, sync=SyncService(venue))


def pinged(items: list[object], c: ControllerCore) -> set[str]:
    out: set[str] = set()
    for it in items:
        if isinstance(it, PingBatch):
            out.update(s.device for s in c.expand(it, 0) if isinstance(s, MqttPublish) and s.device)
    return out


def status(c: ControllerCore, device: str, state: str, now: int, boot: int = 1) -> None:
    c.receive_mqtt(f"madang/dev/{device}/status", json.dumps({"state": state, "boot": boot}).encode(), now)


def test_slots_are_vacant_until_taken_and_pinged_only_while_taken(tmp_path: Path) -> None:
    c = core(tmp_path)
    assert c.presence_counts(T0)["vacant"] == 6
    first = pinged(c.poll(T0), c)
    assert first == {"xr-1"}  # the WebSocket headset is pinged (its topic root), empty slots are not
    status(c, "aud-00001", "ready", T0 + MS)
    assert "aud-00001" in pinged(c.poll(T0 + 2 * MS), c)
    assert c.presence_counts(T0 + 2 * MS)["vacant"] == 5
    status(c, "aud-00001", "offline", T0 + 3 * S)  # the connection's last will
    assert c.health["aud-00001"].status == "vacant"
    later = set()
    for k in range(1, 40):
        later |= pinged(c.poll(T0 + 3 * S + k * 100 * MS), c)
    assert "aud-00001" not in later and "xr-1" in later


def test_the_audience_never_holds_the_sync_gate(tmp_path: Path) -> None:
    c = core(tmp_path)
    for i in range(1, 7):
        status(c, f"aud-0000{i}", "ready", T0)
    gate = c.readiness(T0)
    assert gate.need == 1  # xr-1 only
    assert "aud" not in " ".join(gate.waiting)


def test_a_light_cue_goes_to_the_audience_as_one_group_message(tmp_path: Path) -> None:
    c = core(tmp_path)
    c.command(Load(), T0)
    c.command(Arm(), T0)
    out: list[MqttPublish] = []
    c.command(Go(force=True), T0)
    for k in range(20):
        out += [i for i in c.poll(T0 + k * 50 * MS) if isinstance(i, MqttPublish) and i.kind is Kind.CUE]
    topics = {p.topic for p in out}
    assert topics == {"madang/cue/kind/phone"}
    body = json.loads(out[0].payload)
    assert body["op"] == {"mqtt": {"topic": "madang/light", "payload": {"color": "#ff2d95"}}}
    assert np.all([p.due_ns == out[0].due_ns for p in out])
    assert wire.CUE_TOPIC in {"madang/cue"}


TAP_SHOW = """\
show: Taps
venue: venue.yaml
cues:
  - id: wait
    on: {mqtt: "madang/audience/north/+/tap", count: 2, timeout: 60s}
    actions:
      - light: {targets: "kind:phone", color: white}
"""


def test_a_cue_waits_for_taps_of_distinct_phones_of_a_zone(tmp_path: Path) -> None:
    (tmp_path / "venue.yaml").write_text(VENUE, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(TAP_SHOW, encoding="utf-8")
    timeline, venue = compile_show(tmp_path / "show.yaml")
    c = ControllerCore(timeline, venue, sync=SyncService(venue))
    c.command(Load(), T0)
    c.command(Arm(), T0)

    def tap(device: str, zone: str, now: int) -> None:
        c.receive_mqtt(f"madang/audience/{zone}/{device}/tap", b"{}", now)
        c.poll(now)

    tap("aud-00001", "north", T0 + S)
    tap("aud-00001", "north", T0 + S + MS)  # the same phone again: counts once
    tap("aud-00004", "south", T0 + S + 2 * MS)  # another zone: not this trigger's
    assert c.engine.snapshot.current_cue is None
    tap("aud-00002", "north", T0 + 2 * S)
    assert c.engine.snapshot.current_cue == "wait"
