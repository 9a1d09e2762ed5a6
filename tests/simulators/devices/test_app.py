from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from simulators.clock import DeviceClock
from simulators.devices import AppDevice
from simulators.devices.messages import Publish
from simulators.record import EXECUTIONS, Recorder
from tests.simulators._helpers import headset

S = 1_000_000_000
T0 = 1_763_694_000 * S
CLOCK = DeviceClock(offset_ns=-40_000_000, drift_ppm=-30.0, epoch_ns=T0)


def j(obj: object) -> bytes:
    return json.dumps(obj).encode()


def cue(seq: int, at: int, op: Mapping[str, object], cue_id: str = "bloom") -> bytes:
    return j({"show": "night", "cue": cue_id, "seq": seq, "at": at, "show_ns": 0, "op": op})


def model_for(clock: DeviceClock) -> bytes:
    # A perfect model: offset at epoch and drift (ppb) of the true clock.
    return j({"epoch": T0, "offset_ns": clock.local(T0) - T0, "drift_ppb": clock.drift_ppt // 1000})


def dev() -> AppDevice:
    d = AppDevice(headset(), CLOCK, Recorder())
    d.connect(T0)
    return d


def payloads(out: list[Publish], topic: str) -> list[dict[str, object]]:
    return [json.loads(p.payload) for p in out if p.topic == topic]


def test_connect_announces_ready_and_subscribes_to_protocol_topics() -> None:
    d = AppDevice(headset(), CLOCK, Recorder())
    subs = d.subscriptions()
    assert {
        "madang/cue",
        "madang/cue/zone/north",
        "madang/cue/kind/headset",
        "madang/cue/dev/xr-0001",
    } <= set(subs)
    assert "madang/dev/xr-0001/ping" in subs and "madang/dev/xr-0001/clock" in subs
    (ready,) = d.connect(T0)
    assert ready.retain and ready.topic == "madang/dev/xr-0001/status"
    assert json.loads(ready.payload)["state"] == "ready"
    assert json.loads(d.will().payload) == {"state": "offline"} and d.will().retain


def test_ping_answer_uses_device_clock() -> None:
    d = dev()
    now = T0 + 7 * S
    (pong,) = d.receive("madang/dev/xr-0001/ping", j({"seq": 3, "t1": T0}), now)
    assert pong.topic == "madang/dev/xr-0001/pong"
    assert json.loads(pong.payload) == {"seq": 3, "t1": T0, "t2": CLOCK.local(now), "t3": CLOCK.local(now)}


def test_cue_fires_at_its_mapped_local_instant() -> None:
    d = dev()
    d.receive("madang/dev/xr-0001/clock", model_for(CLOCK), T0)
    at = T0 + 10 * S
    op = {"mqtt": {"topic": "xr/{device}/scene", "payload": {"scene": "lotus", "seat": "{seat}"}}}
    assert d.receive("madang/cue", cue(1, at, op), T0 + S) == []
    due = d.due_at()
    # The heartbeat comes first (5 s); the cue is due where the device's clock reads the model's local.
    assert due == T0 + 5 * S
    d.tick(due)
    due = d.due_at()
    assert due is not None and abs(due - at) <= 2  # a perfect model: fires within ns of true `at`
    out = d.tick(due)
    assert d.state["xr/xr-0001/scene"] == {"scene": "lotus", "seat": "A12"}
    assert d.state_by_leaf["scene"] == {"scene": "lotus", "seat": "A12"}
    (report,) = payloads(out, "madang/dev/xr-0001/fired")
    assert report["seq"] == 1 and report["synced"] is True
    (row,) = d.recorder.rows(EXECUTIONS)
    assert row.true_ns == due and row.key == "bloom" and row.param == "xr/xr-0001/scene"


def test_without_a_model_cues_execute_on_receipt_unsynced() -> None:
    d = dev()
    out = d.receive("madang/cue/dev/xr-0001", cue(1, T0 + 60 * S, {"mqtt": {"topic": "t", "payload": 1}}), T0)
    assert d.state["t"] == 1
    assert payloads(out, "madang/dev/xr-0001/fired")[0]["synced"] is False


def test_repeats_are_deduplicated_by_show_cue_seq() -> None:
    d = dev()
    m = cue(5, T0, {"mqtt": {"topic": "t", "payload": 1}})
    d.receive("madang/cue", m, T0)
    d.receive("madang/cue/zone/north", m, T0 + 1)
    assert len(d.recorder.rows(EXECUTIONS)) == 1
    d.receive("madang/cue", cue(5, T0, {"mqtt": {"topic": "t", "payload": 2}}, cue_id="other"), T0 + 2)
    assert len(d.recorder.rows(EXECUTIONS)) == 2


def test_fade_ramps_follow_the_easing_in_device_time() -> None:
    d = dev()
    d.receive("madang/dev/xr-0001/clock", model_for(CLOCK), T0)
    ease = {"kind": "in-out-cubic", "params": []}
    op = {"fade": {"param": "brightness", "from": 0.0, "to": 1.0, "duration_ns": 4 * S, "ease": ease}}
    d.receive("madang/cue", cue(9, T0 + S, op), T0)
    start = d.due_at()
    assert start is not None
    d.tick(start)
    assert d.param_at("brightness", start) == pytest.approx(0.0)
    mid = CLOCK.true_of(d.ramps["brightness"].local_start + 2 * S)
    assert d.param_at("brightness", mid) == pytest.approx(0.5, abs=1e-6)
    quarter = CLOCK.true_of(d.ramps["brightness"].local_start + S)
    assert d.param_at("brightness", quarter) == pytest.approx(4 * 0.25**3, abs=1e-6)
    d.tick(start + 5 * S)
    assert d.params["brightness"] == 1.0 and not d.ramps


def test_fade_from_null_starts_at_the_current_value() -> None:
    d = dev()
    op = {
        "fade": {"param": "volume", "from": None, "to": 1.0, "duration_ns": 2 * S, "ease": {"kind": "linear"}}
    }
    d.receive("madang/cue", cue(1, T0, op), T0)  # no model: starts on receipt
    assert d.param_at("volume", T0) == pytest.approx(0.2)
    assert d.param_at("volume", CLOCK.true_of(CLOCK.local(T0) + S)) == pytest.approx(0.6)


def test_state_catch_up_applies_on_receipt() -> None:
    d = dev()
    st = {"state": {"params": {"brightness": 0.8}, "mqtt": {"xr/{device}/scene": {"scene": "lotus"}}}}
    d.receive("madang/cue/dev/xr-0001", cue(100, T0 + 99 * S, st, cue_id="catch-up"), T0)
    assert d.params["brightness"] == 0.8
    assert d.state["xr/xr-0001/scene"] == {"scene": "lotus"}
    assert d.recorder.rows(EXECUTIONS)[0].what == "state"


def test_panic_cancels_pending_cues_and_goes_safe_now() -> None:
    d = dev()
    d.receive("madang/dev/xr-0001/clock", model_for(CLOCK), T0)
    d.receive("madang/cue", cue(1, T0 + 10 * S, {"mqtt": {"topic": "t", "payload": 1}}), T0)
    d.receive("madang/cue", cue(2, T0, {"state": {"params": {"brightness": 1.0}}}), T0)
    d.receive("madang/cue", cue(3, T0 + 99 * S, {"panic": {}}, cue_id="panic"), T0 + S)
    assert d.params == {"brightness": 0.0, "volume": 0.2}
    d.tick(T0 + 20 * S)
    assert "t" not in d.state
    assert [r.what for r in d.recorder.rows(EXECUTIONS)] == ["state", "panic"]


def test_heartbeat_every_five_seconds() -> None:
    d = dev()
    assert d.due_at() == T0 + 5 * S
    (alive,) = d.tick(T0 + 5 * S)
    assert json.loads(alive.payload)["state"] == "alive" and alive.retain
    assert d.due_at() == T0 + 10 * S


@pytest.mark.parametrize(
    "payload",
    [
        b"{",
        b"[1]",
        b'{"show": 1}',
        b"x" * 70_000,
        j({"a": "s" * 5000}),
        b"[" * 40 + b"]" * 40,
        j({"show": "s", "cue": "c", "seq": 1, "at": 0, "op": {"launch": {}}}),
    ],
)
def test_bad_messages_are_dropped_and_counted(payload: bytes) -> None:
    d = dev()
    assert d.receive("madang/cue", payload, T0) == []
    assert sum(d.dropped.values()) == 1 and len(d.recorder.rows(EXECUTIONS)) == 0


def test_crash_forgets_everything() -> None:
    d = dev()
    d.receive("madang/dev/xr-0001/clock", model_for(CLOCK), T0)
    d.receive("madang/cue", cue(1, T0 + 10 * S, {"mqtt": {"topic": "t", "payload": 1}}), T0)
    d.crash()
    assert d.model is None and d.due_at() is None
    assert d.receive("madang/cue", cue(2, T0, {"mqtt": {"topic": "t", "payload": 1}}), T0) == []
    d.connect(T0 + S)
    d.receive("madang/cue", cue(1, T0, {"mqtt": {"topic": "t", "payload": 1}}), T0 + S)
    assert d.state["t"] == 1  # the dedup memory was lost too
