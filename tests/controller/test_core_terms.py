"""The core stamps its term on every command it emits, and a new term applies to the next message
encoded (docs/protocol.md, "Controller terms (hot standby)"): cue messages, the ``/madang/key``
of timed bundles, clock models and the retained controller state. Pings carry none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from controller import wire
from controller.core import ControllerCore, ModelBatch, PingBatch
from controller.delivery import Kind, MqttPublish, Send, UdpSend
from controller.osc import decode_packet, messages
from controller.playback import Arm, Go, Load
from controller.sync.service import SyncService
from cues.compiler import compile_show

S = 1_000_000_000
T0 = 1_763_694_000 * S

VENUE = """\
venue: terms
zones: [north]
safe:
  xr: {brightness: 0}
devices:
  - {id: xr-1, kind: xr, zone: north, mqtt: {}, sync: app}
  - {id: led-1, kind: display, zone: north, osc: {host: 127.0.0.1, port: 9701}, sync: timetag}
"""

SHOW = """\
show: Terms
venue: terms.yaml
cues:
  - id: one
    actions:
      - mqtt: {targets: xr-1, topic: "xr/{device}/scene", payload: {scene: one}}
      - osc: {targets: led-1, address: /scene, args: [1]}
  - id: two
    actions:
      - mqtt: {targets: xr-1, topic: "xr/{device}/scene", payload: {scene: two}}
      - osc: {targets: led-1, address: /scene, args: [2]}
"""


def _core(tmp_path: Path, **kw: object) -> ControllerCore:
    (tmp_path / "terms.yaml").write_text(VENUE, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(SHOW, encoding="utf-8")
    timeline, venue = compile_show(tmp_path / "show.yaml")
    return ControllerCore(timeline, venue, sync=SyncService(venue), **kw)  # type: ignore[arg-type]


def _sends(core: ControllerCore, now: int) -> list[Send]:
    """Everything the core hands out by ``now`` (a second ahead: cues go out a lead early)."""
    out: list[Send] = []
    for item in core.poll(now + S):
        if isinstance(item, PingBatch):
            out.extend(core.expand(item, now))
        elif isinstance(item, MqttPublish | UdpSend):
            out.append(item)
    return out


def _terms(sends: list[Send]) -> dict[str, set[object]]:
    """The terms each kind of command carried: cue messages, keys, controller states."""
    got: dict[str, set[object]] = {"cue": set(), "key": set(), "state": set(), "ping": set()}
    for s in sends:
        if isinstance(s, MqttPublish) and s.topic.startswith(wire.CUE_TOPIC):
            got["cue"].add(json.loads(s.payload)["term"])
        elif isinstance(s, MqttPublish) and s.topic == wire.STATE_TOPIC:
            got["state"].add(json.loads(s.payload)["term"])
        elif isinstance(s, MqttPublish) and s.kind is Kind.PING:
            got["ping"].add(json.loads(s.payload).get("term"))
        elif isinstance(s, UdpSend) and s.kind is Kind.CUE:
            (key, _) = messages(decode_packet(s.data))
            assert key.address == wire.OSC_KEY
            got["key"].add(key.args[2])
        elif isinstance(s, UdpSend) and s.kind is Kind.PING:
            got["ping"].add(len(messages(decode_packet(s.data))[0].args) > 2 or None)
    return got


def test_a_new_term_reaches_the_next_cue_key_state_and_clock_model(tmp_path: Path) -> None:
    core = _core(tmp_path, controller_id="madang-a")
    assert core.term == 1
    core.command(Load(), T0)
    core.command(Arm(), T0)
    core.command(Go(force=True), T0)
    first = _sends(core, T0)
    assert _terms(first) == {"cue": {1}, "key": {1}, "state": {1}, "ping": {None}}
    states = [
        json.loads(s.payload) for s in first if isinstance(s, MqttPublish) and s.topic == wire.STATE_TOPIC
    ]
    assert states and all(st["controller"] == "madang-a" for st in states)

    core.term = 3  # a takeover claims a higher term: the very next messages carry it
    later = T0 + 10 * S
    core.command(Go(force=True), later)
    second = _sends(core, later)
    assert _terms(second) == {"cue": {3}, "key": {3}, "state": {3}, "ping": {None}}
    models = ModelBatch(
        later,
        np.array([0], dtype=np.int64),
        np.array([later], dtype=np.int64),
        np.array([-5], dtype=np.int64),
        np.array([40], dtype=np.int64),
        np.array([1000], dtype=np.int64),
    )
    (clock,) = core.expand(models, later)
    assert isinstance(clock, MqttPublish) and clock.kind is Kind.CLOCK
    assert json.loads(clock.payload) == {
        "epoch": later,
        "offset_ns": -5,
        "drift_ppb": 40,
        "uncertainty_ns": 1000,
        "term": 3,
    }


def test_the_term_is_given_at_construction_and_checked(tmp_path: Path) -> None:
    core = _core(tmp_path, term=7, controller_id="b")
    core.command(Load(), T0)
    core.command(Arm(), T0)
    state = [s for s in _sends(core, T0) if isinstance(s, MqttPublish) and s.topic == wire.STATE_TOPIC]
    assert state and {json.loads(s.payload)["term"] for s in state} == {7}
    for bad in (0, -2, wire.MAX_TERM + 1, True):
        with pytest.raises(ValueError, match="a controller term is an integer from 1"):
            core.term = bad
    assert core.term == 7
    with pytest.raises(ValueError, match="a controller term"):
        _core(tmp_path, term=0)
