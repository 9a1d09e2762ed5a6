"""The runtime's side of the live view: keys and the control port take one path (same refusals,
one operator log), the cue list comes from the engine, the outbox figure is what waits now.

A :class:`~controller.runtime.Runtime` is built without ``run()``: its core is started by hand,
and commands go in as the key reader and the control port hand them over."""

from __future__ import annotations

import asyncio
import os
import pty
import termios
from pathlib import Path

from controller.keys import KeyboardControl, Note, Press, RawTerminal, StopShow, ToggleHelp
from controller.mqtt import MqttLink
from controller.playback import Arm, Go, State
from controller.runtime import Runtime, RuntimeOptions
from cues.compiler import compile_show
from simulators.broker import MosquittoBroker
from tests.controller.test_mqtt import _async, _cid, _until

SIM_YARD = Path(__file__).resolve().parents[1] / "data" / "sim" / "sim-yard.yaml"


def _runtime() -> Runtime:
    timeline, venue = compile_show(SIM_YARD)
    rt = Runtime(timeline, venue, RuntimeOptions(view=False, sync=False, control_port=None, go_delay_ms=0))
    rt.player.start(rt.clock.wall_ns())
    return rt


def test_a_key_and_an_osc_command_take_one_path_with_the_same_refusals() -> None:
    rt = _runtime()
    term = RawTerminal(-1)  # never entered: only StopShow would restore it
    rt._on_key(Press("Space", Go(cue=None)), term)
    assert rt.core.state is State.PLAYING
    # At once from the control port: refused as a double-tap by the engine, as a key would be.
    status, reason = rt._on_control(Go(cue=None), ("127.0.0.1", 40000))
    assert status == "error" and "double-tap" in reason
    rt._on_key(Press("Space", Go(cue=None)), term)
    log = rt.view_model().log
    assert [(line.source, line.what, line.ok) for line in log] == [
        ("key Space", "GO", True),
        ("osc 127.0.0.1", "GO", False),
        ("key Space", "GO", False),
    ]
    assert log[0].detail == "-> playing"
    assert log[1].detail.startswith("refused: GO ignored") and log[2].detail.startswith("refused: GO ignored")


def test_every_refusal_says_why_in_the_operator_log() -> None:
    rt = _runtime()
    rt._on_key(Press("A", Arm()), RawTerminal(-1))  # arm while armed is accepted
    rt._on_control(Go(cue="no-such-cue"), ("127.0.0.1", 40000))
    last = rt.view_model().log[-1]
    assert not last.ok and "has no cue 'no-such-cue'" in last.detail and last.what == "GO no-such-cue"


def test_help_unbound_keys_and_ctrl_c() -> None:
    rt = _runtime()
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        term = RawTerminal(slave).__enter__()
        rt._on_key(ToggleHelp(), term)
        assert rt.view_model().help
        rt._on_key(Note("g", "g does nothing: Space is GO"), term)
        line = rt.view_model().log[-1]
        assert line.hint and line.source == "key g"
        assert rt.core.state is State.ARMED  # nothing happened
        rt._on_key(StopShow(), term)
        assert rt._stop.is_set()  # the same request as SIGINT's handler makes
        assert termios.tcgetattr(slave) == before  # the terminal is given back at once
        assert "keys off" in rt.view_model().keys
    finally:
        os.close(master)
        os.close(slave)


def test_bytes_from_the_terminal_reach_the_transport() -> None:
    rt = _runtime()
    control = KeyboardControl()
    term = RawTerminal(-1)
    for data in (b" ", b"\x1b"):
        for intent in control.feed(data, rt.core.state, rt.clock.wall_ns()):
            rt._on_key(intent, term)
    assert rt.core.state is State.PLAYING  # Esc is held until nothing follows it
    for intent in control.expire(rt.core.state, rt.clock.wall_ns()):
        rt._on_key(intent, term)
    assert rt.core.state is State.PANICKED
    for intent in control.feed(b"a", rt.core.state, rt.clock.wall_ns()):
        rt._on_key(intent, term)
    assert rt.core.state is State.ARMED


def test_the_cue_list_comes_from_the_engine() -> None:
    rt = _runtime()
    rows = rt.view_model().cues
    assert [r.cue for r in rows] == [c.id for c in rt.timeline.cues]
    assert rows[0].role == "standby"
    rt._on_key(Press("Space", Go(cue=None)), RawTerminal(-1))
    rows = rt.view_model().cues
    assert rows[0].role == "running" and rows[0].clock is not None
    assert all(r.role == "running" for r in rows)  # one chain: every cue of it is under way


@_async
async def test_the_outbox_figure_is_what_waits_now_not_a_running_total(mosquitto: MosquittoBroker) -> None:
    """Finding 10: the live view's "outbox N waiting" showed the total of messages that ever went
    through the outbox (``MqttStats.queued``), so it only grew; it must be what waits now."""
    rt = _runtime()
    link = MqttLink(mosquitto.url, client_id=_cid("view-outbox"))
    rt.mqtt = link
    for i in range(25):  # not connected yet: every message waits in the outbox
        link.publish(f"test/view-outbox/{i}", b"x", qos=1)
    vm = rt.view_model()
    assert vm.outbox == 25
    task = asyncio.create_task(link.run())
    try:
        await _until(lambda: link.stats.outbox == 0 and link.stats.inflight == 0, what="the outbox drained")
        assert link.stats.queued == 25  # the running total the view used to show
        vm = rt.view_model()
        assert vm.outbox == 0 and vm.unacked == 0
    finally:
        await link.close(timeout=1.0)
        await asyncio.wait_for(task, timeout=10)
