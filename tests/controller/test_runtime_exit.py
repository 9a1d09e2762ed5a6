"""What a run that ends early leaves on the devices (``--on-exit``), without sockets: the
runtime's last transport command, read back from the core."""

from __future__ import annotations

import pytest

from controller.playback import Go, State
from controller.runtime import EXIT_MODES, Runtime, RuntimeOptions
from cues.timeline import OscSend
from tests.controller.test_engine import MS, C, build

S = 1_000 * MS
T0 = 1_000 * S


def _playing(on_exit: str) -> Runtime:
    first, later = OscSend("/x", (1,)), OscSend("/y", (2,))
    timeline, venue = build([C("one", ops=[(0, ("a",), first), (20 * S, ("a",), later)])])
    rt = Runtime(timeline, venue, RuntimeOptions(sync=False, view=False, control_port=None, on_exit=on_exit))
    rt.player.start(T0)
    rt.player.command(Go(), T0)
    rt.player.poll(T0 + S)
    assert rt.core.state is State.PLAYING
    return rt


@pytest.mark.parametrize(("on_exit", "left"), [("safe", State.STOPPED), ("hold", State.PAUSED)])
def test_a_run_ended_early_sends_safe_states_or_holds(on_exit: str, left: State) -> None:
    rt = _playing(on_exit)
    rt._leave_devices(T0 + 2 * S)
    assert rt.core.state is left
    assert on_exit in EXIT_MODES
