"""Virtual-time runs take the real message path by default, so they catch a codec regression.

Every ping, pong, clock model and heartbeat crosses the simulated network as the bytes of
docs/protocol.md, encoded by the controller's :mod:`controller.wire` and parsed by the simulated
devices' own implementation of the document (and the other way round). A bug in the controller's
codec then shows up as devices that never sync; the sync lane (opt-in, for ``madang bench sync``)
skips the codec and would not see it, which is why it is not the default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from controller import wire
from cues.compiler import compile_show
from simulators.harness import VirtualResult, limit_headsets, play_virtual, shipped_show

S = 1_000_000_000


def _play(**kw: Any) -> VirtualResult:
    timeline, venue = limit_headsets(*compile_show(shipped_show("han-river")), 12)
    return play_virtual(timeline, venue, profile="lan", seed=4, duration_ns=25 * S, **kw)


def _check_in_sync(res: VirtualResult) -> None:
    """What an integration test of a show asserts: every device synced, every cue fired in sync."""
    assert res.sync.synced_count() == len(res.sync.ids)
    assert res.report["cues_fired"] > 0 and res.report["missed"] == 0
    assert res.report["spread_p99_us"] < 1_000  # ~35 us here


def _ping_with_a_renamed_field(seq: int, t1: int) -> bytes:
    return msgspec.json.encode({"seq": seq, "t_1": t1})


def _pong_t2_read_in_microseconds(kind: str, payload: bytes) -> wire.Report | wire.Malformed:
    msg = _REAL_DECODE(kind, payload)
    if isinstance(msg, wire.Pong):
        return wire.Pong(msg.seq, msg.t1, msg.t2 // 1000, msg.t3)
    return msg


_REAL_DECODE = wire.decode_report
_CORRUPTIONS: dict[str, tuple[str, Callable[..., Any]]] = {
    "ping encoder": ("ping_json", _ping_with_a_renamed_field),
    "pong decoder": ("decode_report", _pong_t2_read_in_microseconds),
}


def test_a_default_virtual_run_takes_the_message_path_and_is_in_sync() -> None:
    res = _play()
    _check_in_sync(res)
    # The headsets answered the pings themselves (the message path; the lane counts its own).
    headsets = [app for app in res.sim.apps.values() if app.device.mqtt is not None]
    assert headsets and all(app.pings > 0 for app in headsets)


@pytest.mark.parametrize("corruption", sorted(_CORRUPTIONS))
def test_a_codec_regression_fails_in_virtual_time(monkeypatch: pytest.MonkeyPatch, corruption: str) -> None:
    name, broken = _CORRUPTIONS[corruption]
    monkeypatch.setattr(wire, name, broken)
    res = _play()
    with pytest.raises(AssertionError):
        _check_in_sync(res)
    # The sync lane skips the codec: the same regression passes there unseen.
    _check_in_sync(_play(sync_lane=True))
