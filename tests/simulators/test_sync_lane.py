"""The virtual-time sync lane (simulators/devices/virtual.py SyncLane): pings, pongs and clock
models of MQTT headsets carried without a message per hop. It must run the same device logic
at the instant each message arrives, keep each connection FIFO, drop what reaches a dead or
disconnected headset, and give the controller what the message path would."""

from __future__ import annotations

import json

import pytest

from controller.sync.service import SyncService
from cues.compiler import compile_show
from cues.timeline import Timeline
from simulators.devices.app import ClockModel
from simulators.devices.venue import SimulatedVenue
from simulators.harness import limit_headsets, play_virtual, shipped_show
from venues.model import Venue

S = 1_000_000_000
MS = 1_000_000


@pytest.fixture(scope="module")
def small() -> tuple[Timeline, Venue]:
    timeline, venue = compile_show(shipped_show("han-river"))
    return limit_headsets(timeline, venue, 6)


def _started(venue: Venue, seed: int = 3) -> SimulatedVenue:
    sim = SimulatedVenue(venue, mode="virtual", profile="wifi", seed=seed)
    sim.start()
    sim.run_until(sim.now + S)  # connected and subscribed
    return sim


def test_a_pong_carries_the_headsets_own_reading_between_send_and_receipt(
    small: tuple[Timeline, Venue],
) -> None:
    _, venue = small
    sim = _started(venue)
    lane = sim.sync_lane()
    did = next(iter(sim.apps))
    t1 = sim.now
    lane.pings([(did, 7), (did, 8)], t1)
    assert lane.take(sim.now + 10 * S) == []  # nothing has moved yet: the pings are in flight
    sim.run_until(t1 + 2 * S)
    pongs = lane.take(sim.now)
    assert [p[:3] for p in pongs] == [(did, 7, t1), (did, 8, t1)]
    clock = sim.clocks[did]
    for _, _, _, t2, t3, t4 in pongs:
        assert t3 == t2
        # t2 is the headset's clock at the instant the ping reached it: after t1, before t4,
        # at least a Wi-Fi floor (2 ms) from each end.
        arrived = clock.true_of(t2)
        assert t1 + 2 * MS <= arrived <= t4 - 2 * MS
        assert clock.local(arrived) == t2
    assert pongs[0][3] <= pongs[1][3]  # one connection, in order
    assert sim.apps[did].pings == 2
    assert lane.next_at() is None


def test_a_dead_or_disconnected_headset_does_not_answer(small: tuple[Timeline, Venue]) -> None:
    _, venue = small
    sim = _started(venue)
    lane = sim.sync_lane()
    a, b = list(sim.apps)[:2]
    assert sim.net is not None
    dropped = sim.net.dropped
    lane.pings([(a, 1), (b, 1)], sim.now)
    sim.crash(a)  # before the ping arrives: the broker drops it at the dead connection
    sim.run_until(sim.now + 2 * S)
    assert [p[0] for p in lane.take(sim.now)] == [b]
    assert sim.net.dropped == dropped + 1
    lane.pings([(a, 2)], sim.now)  # to a headset that is gone: the broker has no one to send it to
    sim.run_until(sim.now + 2 * S)
    assert lane.take(sim.now) == [] and sim.apps[a].pings == 0


def test_a_clock_model_is_applied_when_it_arrives_and_kept_retained(small: tuple[Timeline, Venue]) -> None:
    _, venue = small
    sim = _started(venue)
    lane = sim.sync_lane()
    did = next(iter(sim.apps))
    app = sim.apps[did]
    msg = {"epoch": sim.now, "offset_ns": 1234, "drift_ppb": -5, "uncertainty_ns": 800}
    topic = f"{app.base}/clock"
    payload = json.dumps(msg).encode()
    lane.models([(did, topic, payload)], sim.now)
    assert app.model is None  # not before it arrives
    assert sim.net is not None and sim.net.retained(topic) == payload
    sim.run_until(sim.now + S)
    assert app.model == ClockModel(msg["epoch"], 1234, -5, 800)
    # A model the headset cannot read is dropped and counted by the headset, as on the wire.
    lane.models([(did, topic, b'{"epoch": "soon"}')], sim.now)
    sim.run_until(sim.now + S)
    assert app.model == ClockModel(msg["epoch"], 1234, -5, 800)
    assert app.dropped["bad_clock"] == 1


def test_the_lane_and_the_message_path_give_the_same_show(small: tuple[Timeline, Venue]) -> None:
    timeline, venue = small
    runs = {
        lane: play_virtual(timeline, venue, seed=7, duration_ns=60 * S, sync_lane=lane)
        for lane in (True, False)
    }
    lane, wire = runs[True], runs[False]
    assert lane.core.counters["carried"] > 0 and wire.core.counters["carried"] == 0
    assert lane.report["cues_fired"] == wire.report["cues_fired"] > 0
    assert lane.report["missed"] == wire.report["missed"] == 0
    services = [r.core.sync for r in (lane, wire)]
    assert all(isinstance(s, SyncService) for s in services)
    sync = [s for s in services if isinstance(s, SyncService)]
    assert all(s.synced_count() == len(s.models) for s in sync)
    # Wi-Fi, six headsets: ~0.5 ms either way (the draws are the same per path, their order
    # differs a little, so the figures may differ a little).
    p99 = [r.report["spread_p99_us"] for r in (lane, wire)]
    assert max(p99) < 1_000 and abs(p99[0] - p99[1]) <= 0.25 * p99[1]
    # The same pings are due (the planner is seeded), and as many are answered within loss.
    sent = [s.planner.sent for s in sync]
    assert abs(sent[0] - sent[1]) <= 0.02 * sent[1]
    pongs = [r.core.counters["pongs"] for r in (lane, wire)]
    assert abs(pongs[0] - pongs[1]) <= 0.02 * pongs[1]
    assert lane.events < wire.events  # no event at the broker and none for the pong's arrival
