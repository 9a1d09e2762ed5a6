"""The real controller in seeded virtual time: :func:`play_virtual`.

It runs the controller's sans-I/O core (:class:`~controller.core.ControllerCore`, with the same
engine, delivery, clock-sync and wire code as the runtime, driven by the same
:class:`~controller.player.Player`) inside the simulator's discrete-event clock, so a whole show
at ten thousand devices runs in seconds and gives the same answer for the same seed. Every message
crosses the simulated network as the bytes of docs/protocol.md, unless a run asks for the sync
lane (``sync_lane=True``, what ``madang bench sync`` does at ten thousand headsets; see
docs/simulators.md)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.core import ControllerCore, Item, ModelBatch, PingBatch, Withdraw
from controller.delivery import Send, UdpSend
from controller.playback import Go, State
from controller.player import Player, PlayerOptions
from controller.sync.service import SyncService
from controller.telemetry import Telemetry, TelemetrySink
from controller.wire import STATE_TOPIC
from cues.timeline import Timeline
from simulators.devices.venue import SimulatedVenue
from simulators.harness.shows import expected_fires
from simulators.report import sync_report
from venues.model import Venue

__all__ = ["VirtualResult", "play_virtual"]

MS = 1_000_000
S = 1_000_000_000
# The runtime's ping tick (SyncService's default ``tick_ns``): pings leave in bursts this far apart.
_RUNTIME_TICK_NS: int = (SyncService.__init__.__kwdefaults__ or {}).get("tick_ns", 2 * MS)


@dataclass
class VirtualResult:
    """What a virtual-time run leaves: the simulated venue (records) and the controller core."""

    sim: SimulatedVenue
    core: ControllerCore
    player: Player
    sync: SyncService
    report: dict[str, Any]
    events: int
    wall_s: float
    show_start_ns: int  # true instant of show time 0: the first GO plus the engine's GO delay
    cpu_s: float = 0.0  # process CPU time of the run (time.process_time), beside wall_s


def play_virtual(
    timeline: Timeline,
    venue: Venue,
    *,
    profile: str = "wifi",
    seed: int = 0,
    duration_ns: int | None = None,
    settle_ns: int = 3 * S,
    go_delay_ns: int = 250 * MS,
    auto_go: bool = True,
    poll_quantum_ns: int = MS,
    on_start: Callable[[SimulatedVenue], None] | None = None,
    sync_lane: bool = False,
    sync_quantum_ns: int | None = None,
    telemetry: bool = True,
    go_force_after_ns: int | None = None,
) -> VirtualResult:
    """Play ``timeline`` on a simulated ``venue`` in seeded virtual time; deterministic per seed.

    The devices get ``settle_ns`` to connect and sync their clocks before the first GO. The run
    ends when the show has played to its end, or after ``duration_ns`` of show.

    The controller core is polled on a grid of ``poll_quantum_ns`` (1 ms), as a busy asyncio loop
    would batch its wake-ups: everything that arrived within one quantum is handled by one poll.
    Without it every message received costs a poll of its own (at ten thousand devices, about
    ten thousand a second of show). Receive instants stay exact (each message is stamped when it
    arrives), pings are stamped when they leave, and precise sends are handed out
    ``edge_horizon_ns`` (30 ms) ahead and executed at their exact instant, so the grid only
    delays the controller's reactions (catch-up state, event triggers) by less than one quantum.

    ``sync_lane``: carry the headsets' clock-sync traffic (pings, pongs, models) on the simulators'
    sync lane (:class:`~simulators.devices.virtual.SyncLane`: arrays, not JSON bodies and events)
    instead of the message path; off by default, so that a run exercises the controller's own
    encoding and parsing of every message. ``telemetry``: keep the controller's per-device
    telemetry (``result.player.telemetry``), as the runtime does.

    ``sync_quantum_ns`` (``None``: the poll quantum) is the grid of the clock sync's traffic when
    it rides the sync lane: pings fall due on it (the planner's tick, 2 ms in the runtime), and
    the lane's pongs, heartbeats and models are taken on it. Over Wi-Fi, where each ping is
    jittered by +-300 ms anyway, 50 ms left the figures of ``madang bench sync`` as they were
    and saved a fifth of its cost at ten thousand headsets (docs/benchmarks.md).

    ``go_force_after_ns``: an unattended GO that the sync gate has held this long is pressed
    forced, as an operator does when the gate names a handful of devices out of a crowd (on
    ``wifi-crowded`` some of a few thousand devices are always predicted over the budget, so an
    all-device gate is never READY; at ten thousand on ``wifi`` a manual cue mid-show can wait
    minutes for the last one); ``report["go"]``: how many GOs were forced and the most devices
    that still held the gate at one. ``None``: the player's own rule (it waits its
    ``ready_timeout_ns``, 60 s, then fails the run and presses nothing more).
    """
    quantum = max(1, poll_quantum_ns)
    t0 = time.perf_counter()
    c0 = time.process_time()
    sim = SimulatedVenue(venue, mode="virtual", profile=profile, seed=seed)
    sim.start()
    if on_start is not None:
        on_start(sim)  # e.g. schedule faults: sim.vt.call_at(t, sim.reboot, "xr-0001", 2 * S)
    vt = sim.vt
    assert vt is not None
    vc = sim.controller
    sq = quantum if sync_quantum_ns is None else max(quantum, sync_quantum_ns)
    sync = SyncService(venue, seed=seed, **({} if sync_quantum_ns is None else {"tick_ns": sq}))
    tel = Telemetry(venue) if telemetry else None
    sink = None if tel is None else TelemetrySink(sync, tel)
    core = ControllerCore(timeline, venue, sync=sink or sync, go_delay_ns=go_delay_ns)
    go_at = vt.now + settle_ns
    player = Player(
        core,
        PlayerOptions(auto_go=auto_go, auto_go_from_ns=go_at, play_for_ns=duration_ns),
        telemetry=tel,
        sync=sink,
    )
    endpoint_of = {did: core.delivery.endpoint(venue.device(did)) for did in sim.displays}
    device_at = {ep: did for did, ep in endpoint_of.items() if ep is not None}
    for f in core.subscriptions():  # the devices' reports (their venue mqtt.base), then triggers
        vc.subscribe(f)
    pending: dict[str, Any] = {"next": None}
    lane = sim.sync_lane() if sync_lane else None
    carried = np.zeros(len(sync.ids), dtype=np.bool_)
    if lane is not None:
        lane.bind(sync.ids)
        # A batch on the sync grid holds the pings of grid/tick of the runtime's ticks: its queue
        # on the controller's uplink is theirs, not one burst 25 times larger (SyncLane.ping_bursts).
        lane.ping_bursts = max(1, sq // _RUNTIME_TICK_NS)
        # Headsets (MQTT) and phones (WebSocket: the same messages in the envelope, docs/protocol.md)
        carried = np.array([d in sim.apps for d in sync.ids], dtype=np.bool_)
        status_topic = {d.id: f"{d.topic_root}/status" for d in venue.devices}

    def execute(item: Send) -> None:
        if isinstance(item, UdpSend):
            vc.send_osc(device_at.get(item.addr, item.device), item.data)
        elif lane is not None and item.topic == STATE_TOPIC:
            lane.controller_state(item.payload, vt.now, retain=item.retain)
        else:
            vc.publish(item.topic, item.payload, retain=item.retain)

    def send(item: Send, now: int) -> None:
        if item.at_ns > now:
            vt.call_at(item.at_ns, execute, item)
        else:
            execute(item)

    def release(items: list[Item], now: int) -> None:
        if lane is not None:
            # The lane takes its headsets' pings and models first, as it always has (before the
            # poll's other sends): the rows it does not carry go out below, in their place.
            rest: list[Item] = []
            for item in items:
                if isinstance(item, PingBatch):
                    mine = carried[item.rows]
                    lane.pings(item.rows[mine], item.seqs[mine], item.at_ns)
                    item = PingBatch(item.at_ns, item.rows[~mine], item.seqs[~mine])
                elif isinstance(item, ModelBatch):
                    mine = carried[item.rows]
                    m = item.take(mine)
                    lane.models(
                        m.rows, m.epoch, m.offset_ns, m.drift_ppb, m.uncertainty_ns, m.at_ns, core.term
                    )
                    item = item.take(~mine)
                rest.append(item)
            items = rest
        for item in items:
            if isinstance(item, Withdraw):
                continue  # virtual sends are scheduled below only when due; nothing to recall
            if isinstance(item, PingBatch | ModelBatch):
                for s in core.expand(item, now):
                    send(s, now)
            else:
                send(item, now)

    def wake(at: int) -> None:
        at = -(-max(at, vt.now) // quantum) * quantum  # the next grid instant at or after ``at``
        nxt = pending["next"]
        if nxt is not None and nxt.when <= at and not nxt.cancelled:
            return
        if nxt is not None:
            nxt.cancel()
        pending["next"] = vt.call_at(at, step)
        if lane is not None:
            lane.next_take = at

    go_info: dict[str, Any] = {"forced": 0, "not_ready": 0, "held_since": None}

    def force_held_go(now: int) -> None:
        """The operator's hand: a GO the gate has held ``go_force_after_ns`` is pressed forced."""
        if go_force_after_ns is None or not player.waiting_for_gate:
            go_info["held_since"] = None
            return
        since = go_info["held_since"]
        if since is None:
            go_info["held_since"] = now
        elif now - since >= go_force_after_ns:
            go_info["held_since"] = None
            go_info["forced"] += 1
            go_info["not_ready"] = max(go_info["not_ready"], core.readiness(now).not_ready)
            player.command(Go(cue=None, force=True), now)

    def step() -> None:
        pending["next"] = None
        now = vt.now
        force_held_go(now)
        if lane is not None and now % sq == 0:  # the lane's traffic is taken on the sync grid
            lane.next_take = None
            pongs = lane.take(now)
            if pongs[0].size:
                core.receive_pongs(*pongs)
            for did, payload, at in lane.take_alive(now):
                player.receive_mqtt(status_topic[did], payload, at)
        release(player.poll(now), now)
        cand = max(player.next_wake(now), now + 1)
        if lane is not None:
            pong = lane.next_at()
            if pong is not None:
                cand = min(cand, -(-pong // sq) * sq)
        wake(cand)

    def on_message(topic: str, payload: bytes, now: int) -> None:
        player.receive_mqtt(topic, payload, now)
        wake(now)

    def on_datagram(src: str, data: bytes, now: int) -> None:
        player.receive_datagram(data, endpoint_of.get(src) or ("virtual", 0), now)
        wake(now)

    vc.on_message = on_message
    vc.on_datagram = on_datagram
    if lane is not None:
        lane.on_pong = lambda t4: wake(-(-t4 // sq) * sq)
    now = vt.now
    player.start(now)
    wake(now)
    events = 0
    horizon = timeline.duration_ns + settle_ns + 30 * S if duration_ns is None else duration_ns + settle_ns
    limit = vt.now + horizon + 10 * S
    while vt.now < limit:
        events += sim.run_until(min(limit, vt.now + S))
        if player.end_ns is not None and vt.now >= player.end_ns:
            break
        if core.finished and player.end_ns is None and core.state is State.STOPPED:
            sim.run_until(vt.now + 2 * S)  # let the last fires land
            break
    expected, cue_of = expected_fires(timeline, core)
    report = sync_report(sim.records(), expected=expected, cue_of=cue_of, devices=len(venue.devices))
    report["profile"] = profile
    report["seed"] = seed
    report["mode"] = "virtual"
    report["go"] = {"forced": go_info["forced"], "not_ready": go_info["not_ready"]}
    start = player.show_start_ns or go_at + core.engine.go_delay_ns
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return VirtualResult(sim, core, player, sync, report, events, wall, int(start), cpu)
