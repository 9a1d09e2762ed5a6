"""Controller ops (panic, catch-up state) are executed by devices every time they are sent: each
gets its own key (docs/protocol.md), so a second stop or a second catch-up is not a "repeat"."""

from __future__ import annotations

import json
from pathlib import Path

from controller.core import ControllerCore
from controller.delivery import MqttPublish
from controller.playback import Arm, Go, Load, LoadAt, Stop
from tests.controller.test_core_topics import _core

S = 1_000_000_000


def _ops(core: ControllerCore, now: int, op: str) -> list[dict[str, object]]:
    out = []
    for item in core.poll(now):
        if isinstance(item, MqttPublish) and item.topic.startswith("madang/cue"):
            body = json.loads(item.payload)
            if op in body["op"]:
                out.append(body)
    return out


def test_every_stop_and_every_catch_up_has_a_key_of_its_own(tmp_path: Path) -> None:
    core = _core(tmp_path)
    core.command(Load(), 0)
    core.command(Arm(), 0)
    panics: list[dict[str, object]] = []
    states: list[dict[str, object]] = []
    t = 1 * S
    for _ in range(2):
        core.command(Go(), t)
        core.command(Stop(), t + S)
        panics += _ops(core, t + S, "panic")
        core.command(LoadAt(show_ns=S // 2), t + 2 * S)
        states += _ops(core, t + 2 * S, "state")
        t += 10 * S
    assert len(panics) == 2 and len(states) == 2 * 3  # three app devices, each on its own topic
    keys = [(b["show"], b["cue"], b["seq"]) for b in panics + states]
    assert len(set(keys)) == len(keys)
    seqs = [b["seq"] for b in panics + states]
    assert all(isinstance(s, int) and s < 0 for s in seqs)  # never an action's sequence number
