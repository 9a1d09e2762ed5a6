from __future__ import annotations

import pytest
from pythonosc.osc_message import OscMessage

from simulators.clock import DeviceClock
from simulators.devices import OscDisplay
from simulators.devices._wire import ntp_to_ns
from simulators.record import EXECUTIONS, Recorder
from tests.simulators._helpers import bundle, display, key, msg, timed
from venues.model import Sync

S = 1_000_000_000
T0 = 1_763_694_000 * S
CLOCK = DeviceClock(offset_ns=1_234_567_891, drift_ppm=20.0, epoch_ns=T0)  # 1.23 s ahead, 20 ppm fast


def core(sync: Sync = Sync.TIMETAG) -> OscDisplay:
    return OscDisplay(display(sync=sync), CLOCK, Recorder())


def test_timetag_device_executes_at_its_own_clock_reading_of_the_timetag() -> None:
    d = core()
    local_at = CLOCK.local(T0 + 2 * S)
    out = d.receive(bundle(timed(local_at), msg("/brightness", (0.8, "f"))), T0, ("10.0.0.1", 9000))
    assert out == []
    assert d.params == {"brightness": 0.0}  # not yet
    due = d.due_at()
    assert due is not None and abs(due - (T0 + 2 * S)) <= 1  # NTP fraction rounding: < 1 ns
    d.tick(due - 1)
    assert d.params["brightness"] == 0.0
    d.tick(due)
    assert d.params["brightness"] == pytest.approx(0.8)
    (fire,) = d.recorder.rows(EXECUTIONS)
    assert fire.true_ns == due and fire.param == "/brightness"
    assert abs(fire.local_ns - local_at) <= 1


@pytest.mark.parametrize("sync", [Sync.ECHO, Sync.NONE])
def test_other_devices_execute_bundles_on_receipt(sync: Sync) -> None:
    d = core(sync)
    d.receive(bundle(timed(CLOCK.local(T0 + 5 * S)), msg("/clip", ("intro.mp4", "s"))), T0, None)
    assert d.state["/clip"] == ("intro.mp4",)
    assert d.due_at() is None
    assert d.recorder.rows(EXECUTIONS)[0].true_ns == T0


def test_none_device_shows_what_it_receives_after_its_declared_latency() -> None:
    """The venue's ``latency`` is the device's receipt-to-visible time; Madang sends that early."""
    import dataclasses

    latency = 120_000_000
    d = OscDisplay(dataclasses.replace(display(sync=Sync.NONE), latency_ns=latency), CLOCK, Recorder())
    d.receive(msg("/flow", (0.7, "f")), T0, None)
    d.receive(bundle(1, key("show", 7), msg("/clip", ("jet.mp4", "s"))), T0 + 5, None)
    assert d.state == {} and d.due_at() == T0 + latency
    d.tick(T0 + latency - 1)
    assert d.state == {}
    d.tick(T0 + latency + 5)
    assert d.state == {"/flow": (pytest.approx(0.7),), "/clip": ("jet.mp4",)}
    fires = d.recorder.rows(EXECUTIONS)
    assert [f.true_ns for f in fires] == [T0 + latency, T0 + 5 + latency]


def test_timetag_immediately_and_late_bundles_execute_on_receipt() -> None:
    d = core()
    d.receive(bundle(1, msg("/a", (1, "i"))), T0, None)
    d.receive(bundle(timed(CLOCK.local(T0 - S)), msg("/b", (2, "i"))), T0, None)
    assert d.state == {"/a": (1,), "/b": (2,)}


def test_plain_messages_set_state_and_parameters() -> None:
    d = core()
    d.receive(msg("/colour", (255, "i"), (128, "i"), (0, "i")), T0, None)
    d.receive(msg("/layer/opacity", (0.5, "f")), T0, None)
    assert d.state["/colour"] == (255, 128, 0)
    assert d.params["layer.opacity"] == pytest.approx(0.5)


def test_ping_answer_carries_exact_device_clock_t2_t3() -> None:
    d = core()
    t1 = T0 - 3_000_000
    now = T0 + 123_456_789
    (reply,) = d.receive(msg("/madang/ping", (17, "i"), (t1, "h")), now, ("127.0.0.1", 5555))
    assert reply.to == ("127.0.0.1", 5555)
    pong = OscMessage(reply.data)
    assert pong.address == "/madang/pong"
    assert pong.params == [17, t1, CLOCK.local(now), CLOCK.local(now)]


def test_none_devices_do_not_answer_pings() -> None:
    assert core(Sync.NONE).receive(msg("/madang/ping", (1, "i"), (5, "h")), T0, None) == []


def test_keyed_bundles_execute_once() -> None:
    d = core()
    b = bundle(timed(CLOCK.local(T0 + S)), key("show", 42), msg("/clip", ("bloom.mp4", "s")))
    d.receive(b, T0, ("h", 1))
    d.receive(b, T0 + 1000, ("h", 1))  # a repeat inside the lead window
    fired = d.tick(T0 + 2 * S)
    assert len(d.recorder.rows(EXECUTIONS)) == 1
    row = d.recorder.rows(EXECUTIONS)[0]
    assert (row.key, row.seq) == ("show", 42)
    (report,) = fired
    m = OscMessage(report.data)
    assert m.address == "/madang/fired" and m.params[0] == 42


def test_bad_input_is_dropped_and_counted() -> None:
    d = core()
    assert d.receive(b"\x00garbage", T0, None) == []
    assert d.receive(b"#bundle\x00\x00\x00", T0, None) == []
    assert d.receive(b"x" * 70_000, T0, None) == []
    assert sum(d.dropped.values()) == 3


def test_crash_loses_pending_and_ignores_input_until_boot() -> None:
    d = core()
    d.receive(bundle(timed(CLOCK.local(T0 + S)), msg("/a", (1, "i"))), T0, None)
    d.crash()
    assert d.due_at() is None
    assert d.receive(msg("/b", (1, "i")), T0, None) == [] and "/b" not in d.state
    d.boot()
    d.receive(msg("/b", (1, "i")), T0, None)
    assert "/b" in d.state


def test_ntp_roundtrip_is_within_a_nanosecond() -> None:
    for ns in (0, T0, T0 + 999_999_999, T0 + 1):
        assert abs(ntp_to_ns(timed(ns)) - ns) <= 1
