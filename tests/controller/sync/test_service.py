"""SyncService, the clock-sync surface the controller core uses: pongs in, models and resends out.

Literal times, no loop: each test drives the service the way ControllerCore does (due_pings,
receive_pong, update, clock_message) against devices whose clocks are known exactly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.sync.estimator import warm
from controller.sync.service import SyncService
from venues.loader import load_venue
from venues.model import Venue

T0 = 1_763_694_000_000_000_000
MS = 1_000_000
S = 1_000_000_000

VENUE = """\
venue: sync-test
zones: [a]
devices:
  - {id: "xr-{1..4}", kind: xr, zone: a, mqtt: {}, sync: app}
  - {id: led-1, kind: led, zone: a, osc: {host: 10.0.0.9, port: 9000}, sync: timetag}
  - {id: lamp-1, kind: lamp, zone: a, mqtt: {}, sync: none, latency: 10ms}
groups:
  audience: "kind:xr"
"""

# Device clocks: offset (ns) and drift (ppb) against the show clock; a symmetric 300 us path.
CLOCKS = {"xr-1": (5 * MS, 20_000), "xr-2": (-7 * MS, -35_000), "xr-3": (0, 0), "xr-4": (40 * MS, 5_000)}
CLOCKS["led-1"] = (1_500 * MS, -10_000)


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    warm()


@pytest.fixture
def venue(tmp_path: Path) -> Venue:
    (tmp_path / "sync-test.yaml").write_text(VENUE, encoding="utf-8")
    return load_venue(tmp_path / "sync-test.yaml")


def _device(did: str, t: int) -> int:
    off, drift = CLOCKS[did]
    return t + off + round(drift * (t - T0) / 1e9)


def _drive(sync: SyncService, start: int, end: int, *, answer: set[str] | None = None) -> list[str]:
    """Ping and answer on a 10 ms grid (150 us each way); returns every model send, in order."""
    sent_models: list[str] = []
    inflight: list[tuple[int, str, int, int]] = []  # arrival t4, device, seq, t1
    now = start
    while now <= end:
        for did, seq in sync.due_pings(now):
            if answer is None or did in answer:
                inflight.append((now + 300_000, did, seq, now))
        for item in [i for i in inflight if i[0] <= now]:
            inflight.remove(item)
            t4, did, seq, t1 = item
            t2 = _device(did, t1 + 150_000)
            assert sync.receive_pong(did, seq, t1, t2, t2, t4)
        sent_models.extend(sync.update(now))
        now += 10 * MS
    return sent_models


def test_pings_only_devices_that_answer_and_models_only_for_app_devices(venue: Venue) -> None:
    sync = SyncService(venue, seed=1)
    assert sync.next_deadline() is None  # nothing before the first due_pings
    first = sync.due_pings(T0)
    assert {d for d, _ in first} == {"xr-1", "xr-2", "xr-3", "xr-4", "led-1"}  # not the sync-none lamp
    sent = _drive(sync, T0 + 10 * MS, T0 + 5 * S)
    assert set(sent) == {"xr-1", "xr-2", "xr-3", "xr-4"}  # timetag devices get no clock message
    for did in CLOCKS:
        m = sync.model(did)
        assert m is not None
        assert abs(m.to_device(T0 + 5 * S) - _device(did, T0 + 5 * S)) <= 20_000
    msg = sync.clock_message("xr-2")
    assert msg is not None and set(msg) == {"epoch", "offset_ns", "drift_ppb", "uncertainty_ns"}
    assert sync.synced_count() == 5
    assert sync.ready_fraction(MS, T0 + 5 * S) == 1.0
    assert sync.ready_fraction(1_000, T0 + 5 * S) < 1.0  # a 1 us budget is not met by anyone
    assert sync.over_budget(MS, T0 + 5 * S) == []


def test_bad_pongs_are_dropped_without_touching_the_model(venue: Venue) -> None:
    sync = SyncService(venue, seed=2)
    (did, seq), *_ = sync.due_pings(T0)
    t2 = _device(did, T0 + 150_000)
    assert not sync.receive_pong("nobody", seq, T0, t2, t2, T0 + 300_000)
    assert not sync.receive_pong(did, seq + 1000, T0, t2, t2, T0 + 300_000)  # never sent
    assert not sync.receive_pong(did, seq, T0, t2, t2 - 1, T0 + 300_000)  # t3 < t2
    assert not sync.receive_pong(did, seq, T0, t2, t2, T0 + 11 * S)  # a round trip of 11 s
    assert sync.implausible == 2
    assert sync.receive_pong(did, seq, T0, t2, t2, T0 + 300_000)
    assert not sync.receive_pong(did, seq, T0, t2, t2, T0 + 300_000)  # a duplicate
    assert sync.update(T0 + 300_000) == ([did] if did.startswith("xr") else [])
    assert sync.models.samples.count[sync.models.index(did)] == 1


def test_models_are_resent_on_material_change_or_after_ten_seconds_not_on_every_fit(
    venue: Venue,
) -> None:
    sync = SyncService(venue, seed=3)
    sent = _drive(sync, T0, T0 + 40 * S)
    per = {d: sent.count(d) for d in ("xr-1", "xr-2", "xr-3", "xr-4")}
    fits = sync.planner.matched  # one refit per answered ping, at most
    assert all(n >= 4 for n in per.values())  # first model, changes, and the 10 s resend
    assert sum(per.values()) < fits / 2  # a clean path's model settles: most fits send nothing


def test_reset_forgets_the_device_and_bursts_it_again(venue: Venue) -> None:
    sync = SyncService(venue, seed=4)
    _drive(sync, T0, T0 + 5 * S)
    row = sync.models.index("xr-3")
    sent_before = sync.planner.sent
    sync.reset("xr-3")
    assert sync.model("xr-3") is None and sync.to_device("xr-3", T0) is None
    assert sync.next_deadline() == T0 + 5 * S  # its burst starts at once
    sent = _drive(sync, T0 + 5 * S, T0 + 8 * S)
    assert "xr-3" in sent and sync.model("xr-3") is not None
    assert int(sync.planner.burst_left[row]) < sync.planner.burst
    assert sync.planner.sent > sent_before


def test_a_device_that_stops_answering_loses_readiness_and_is_pinged_fast(venue: Venue) -> None:
    # A perfect path pins a model to the 2 us timestamping floor; a 5 us budget makes the drift's
    # growth visible within minutes.
    sync = SyncService(venue, seed=5, settle_ns=5_000)
    _drive(sync, T0, T0 + 70 * S)
    row = sync.models.index("xr-4")
    assert bool(sync.planner.settled[row])  # settled: pinged every 5 s after the first minute
    assert sync.ready_fraction(5_000, T0 + 70 * S) == 1.0
    _drive(sync, T0 + 70 * S + 10 * MS, T0 + 400 * S, answer={"xr-1", "xr-2", "xr-3", "led-1"})
    # its uncertainty grew with the drift's since its last answer, past the budget
    assert sync.over_budget(5_000, T0 + 400 * S) == ["xr-4"]
    assert not bool(sync.planner.settled[row])
    assert sync.ready_fraction(5_000, T0 + 400 * S) == pytest.approx(4 / 5)
    assert int(sync.planner.next_due[row]) - (T0 + 400 * S) <= 1_300 * MS + 10 * MS  # fast again
