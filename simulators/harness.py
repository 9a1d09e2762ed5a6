"""The integration harness: the real controller against a simulated venue, in real or virtual time.

Real time: :func:`play_real` starts (when no broker is given) a private Mosquitto on a free
loopback port, brings the venue to life on real UDP sockets and MQTT connections
(:class:`~simulators.devices.venue.SimulatedVenue`), and runs the real asyncio
:class:`~controller.runtime.Runtime` pointed at the simulated endpoints.

Virtual time: :func:`play_virtual` runs the controller's sans-I/O core
(:class:`~controller.core.ControllerCore`, with the same engine, delivery, clock-sync and wire
code as the runtime, driven by the same :class:`~controller.player.Player`) inside the
simulator's seeded discrete-event clock, so a whole show at ten thousand devices runs in seconds
and gives the same answer for the same seed. Every message crosses the simulated network as the
bytes of docs/protocol.md, unless a run asks for the sync lane (``sync_lane=True``, what
``madang bench sync`` does at ten thousand headsets; see docs/simulators.md).

Only this module joins the two sides; simulated devices never import the controller. The
``madang`` command and the benchmarks that drive it live on the top floor (:mod:`madang`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from controller.core import ControllerCore, Item, ModelBatch, PingBatch, Withdraw
from controller.delivery import Send, UdpSend
from controller.playback import State
from controller.player import Player, PlayerOptions
from controller.runtime import Runtime, RuntimeOptions
from controller.sync.service import SyncService
from controller.telemetry import Telemetry, TelemetrySink
from controller.wire import STATE_TOPIC
from cues.timeline import Fade, Timeline
from simulators.broker import MosquittoBroker
from simulators.devices.realtime import TIMER_LATENESS
from simulators.devices.venue import SimulatedVenue
from simulators.devices.worker import HeadsetSpec, HeadsetWorker
from simulators.report import sync_report, zone_spread
from venues.model import Sync, Venue

__all__ = [
    "FaultHook",
    "VirtualResult",
    "limit_headsets",
    "play_real",
    "play_virtual",
    "shipped_show",
    "show_reached",
    "subset",
]

log = logging.getLogger(__name__)

MS = 1_000_000
S = 1_000_000_000
CONFIG = Path(__file__).resolve().parent.parent / "config"
SHOWS = {"han-river": "han-river-night-bloom.yaml", "gwanghwamun": "gwanghwamun-light-gate.yaml"}


def shipped_show(venue: str) -> Path:
    """The shipped show for a shipped venue name."""
    return CONFIG / "shows" / SHOWS[venue]


def subset(timeline: Timeline, venue: Venue, keep: Iterable[str]) -> tuple[Timeline, Venue]:
    """The show and venue restricted to the devices in ``keep`` (for smaller rehearsals)."""
    ids = set(keep)
    devices = tuple(d for d in venue.devices if d.id in ids)
    groups = {g: tuple(d for d in members if d in ids) for g, members in venue.groups.items()}
    v = dataclasses.replace(venue, devices=devices, groups=groups)
    actions = tuple(
        dataclasses.replace(a, devices=tuple(d for d in a.devices if d in ids))
        for a in timeline.actions
        if any(d in ids for d in a.devices)
    )
    return dataclasses.replace(timeline, actions=actions, device_count=len(devices)), v


def limit_headsets(timeline: Timeline, venue: Venue, n: int | None) -> tuple[Timeline, Venue]:
    """Keep every display and ``n`` app devices (all when ``n`` is None), taken in turn from each
    zone in venue order (the first of each zone, then the second, ...), so a small rehearsal
    still has headsets in every viewing area that a show's zone selectors name."""
    if n is None:
        return timeline, venue
    by_zone: dict[str, list[str]] = {}
    for d in venue.devices:
        if d.sync is Sync.APP:
            by_zone.setdefault(d.zone, []).append(d.id)
    apps = [did for row in itertools.zip_longest(*by_zone.values()) for did in row if did is not None]
    others = [d.id for d in venue.devices if d.sync is not Sync.APP]
    return subset(timeline, venue, others + apps[:n])


def _expected(timeline: Timeline, core: ControllerCore) -> tuple[dict[int, list[str]], dict[int, str]]:
    """Sequence numbers the engine emitted -> their target devices that report keyed fires.

    ``app`` and ``timetag`` devices execute keyed cues, so each fire is attributed to its action;
    on-receipt OSC devices (``echo``/``none``) get plain messages and are left out of *missed*.
    Streamed fade frames carry no key and are left out too (their ramp start counts for ``app``).
    """
    emitted = core.emitted_seqs
    keyed = {d.id for d in core.venue.devices if d.sync in (Sync.APP, Sync.TIMETAG)}
    interp = {d.id for d in core.venue.devices if d.interpolates and d.sync is Sync.APP}
    expected: dict[int, list[str]] = {}
    cue_of: dict[int, str] = {}
    for a in timeline.actions:
        cue_of[a.seq] = a.cue
        if a.seq not in emitted:
            continue
        targets = interp if isinstance(a.op, Fade) else keyed
        devs = [d for d in a.devices if d in targets]
        if devs:
            expected[a.seq] = devs
    return expected, cue_of


# --------------------------------------------------------------------------------- virtual time


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
        carried = np.array([d in sim.apps and venue.device(d).mqtt is not None for d in sync.ids])
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
                    lane.models(m.rows, m.epoch, m.offset_ns, m.drift_ppb, m.uncertainty_ns, m.at_ns)
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

    def step() -> None:
        pending["next"] = None
        now = vt.now
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
    expected, cue_of = _expected(timeline, core)
    report = sync_report(sim.records(), expected=expected, cue_of=cue_of, devices=len(venue.devices))
    report["profile"] = profile
    report["seed"] = seed
    report["mode"] = "virtual"
    start = player.show_start_ns or go_at + core.engine.go_delay_ns
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return VirtualResult(sim, core, player, sync, report, events, wall, int(start), cpu)


# --------------------------------------------------------------------------------- real time

FaultHook = Callable[[SimulatedVenue, Runtime], Coroutine[Any, Any, None]]
"""An async callback of :func:`play_real` that injects faults into a running show."""


async def show_reached(rt: Runtime, show_ns: int, *, timeout_s: float = 60.0) -> int:
    """Wait (real time) until the runtime's show time has reached ``show_ns``; returns it.

    For :func:`play_real` fault hooks. Raises ``TimeoutError`` after ``timeout_s``.
    """
    async with asyncio.timeout(timeout_s):
        while True:
            snap = rt.core.engine.snapshot
            pos = snap.show_ns
            if pos is not None and snap.state is State.PLAYING and snap.running:
                # The snapshot is as of the engine's last poll (which can be most of a cue's
                # lookahead ago): extrapolate to now at the transport's rate.
                pos += int((rt.clock.wall_ns() - snap.now) * snap.rate)
            if pos is not None and pos >= show_ns and snap.state is not State.ARMED:
                return pos
            await asyncio.sleep(0.005)


async def play_real(
    timeline: Timeline,
    venue: Venue,
    *,
    profile: str = "lan",
    seed: int = 0,
    broker_url: str | None = None,
    duration_s: float | None = None,
    auto_go: bool = True,
    go: bool = False,
    view: bool = False,
    control_port: int | None = 0,
    exit_at_end: bool = True,
    settle_s: float = 2.0,
    faults: FaultHook | None = None,
    go_delay_ms: float = 250.0,
    headset_process: bool | None = None,
    rate: float = 1.0,
    sync_budget_us: float = 1000.0,
    control_allow: list[str] | None = None,
) -> tuple[dict[str, Any], SimulatedVenue, Runtime]:
    """Play on a real-time simulated venue over real sockets and a real broker; returns the report.

    ``duration_s`` is seconds of show, counted from the first GO (the devices' connection and
    clock-sync settling before it are not counted); ``go_delay_ms``, ``rate``, ``sync_budget_us``
    and ``control_allow`` are the runtime's options of those names (``madang run``'s flags).

    ``headset_process``: run the MQTT headsets in a child process
    (:class:`~simulators.devices.worker.HeadsetWorker`), so that the controller does not share an
    event loop with them, as it would not in a venue. By default this is done when there are 200
    or more of them and no fault hook (faults need the devices in this process).

    ``faults``, when given, is started as a task beside the controller once it runs; it receives
    the simulated venue and the runtime and may inject faults at show instants, e.g.::

        async def crash_xr2(sim, rt):
            await show_reached(rt, 2_500_000_000)
            sim.reboot("xr-2", after_ns=2_000_000_000)

    An exception it raises is raised again once the show has ended (so a test sees it).
    """
    broker: MosquittoBroker | None = None
    if broker_url is None:
        broker = MosquittoBroker()
        broker.start()
        broker_url = broker.url
    sim = SimulatedVenue(venue, mode="real", profile=profile, seed=seed, broker_url=broker_url, broker=broker)
    TIMER_LATENESS.reset()
    settle: dict[str, Any] = {}  # how long the devices were given to sync before the first GO
    worker: HeadsetWorker | None = None
    mqtt_apps = [did for did, app in sim.apps.items() if app.device.mqtt is not None]
    if headset_process is None:
        headset_process = faults is None and len(mqtt_apps) >= 200
    if headset_process and mqtt_apps:
        specs = [HeadsetSpec(sim.apps[did].device, sim.clocks[did], sim.paths[did]) for did in mqtt_apps]
        for did in mqtt_apps:
            del sim.apps[did]  # the child runs them (same clocks and paths); sim.clocks keeps them
        url = urlsplit(broker_url)
        worker = HeadsetWorker(specs, url.hostname or "127.0.0.1", url.port or 1883)
        worker.start()
    try:
        await sim.start_async()
        await sim.wait_connected(timeout_s=60)
        if worker is not None:
            await worker.wait_connected()
        rt = Runtime(
            timeline,
            venue,
            RuntimeOptions(
                broker_url=broker_url,
                endpoints=sim.endpoints(),
                auto_go=False,
                go=go,
                view=view,
                control_port=control_port,
                exit_at_end=exit_at_end,
                # A safety net only: the show is cut duration_s after the first GO (below).
                max_seconds=None if duration_s is None else duration_s + 10 * settle_s + 120.0,
                go_delay_ms=go_delay_ms,
                rate=rate,
                sync_budget_us=sync_budget_us,
                control_allow=control_allow,
            ),
        )

        async def cut_after_go() -> None:
            if duration_s is None:
                return
            while rt.core.state in (State.IDLE, State.LOADED, State.ARMED):
                await asyncio.sleep(0.01)
            await asyncio.sleep(duration_s)
            rt.request_stop()

        async def delayed_auto_go() -> None:
            # Let the devices answer their ping bursts: GO once nearly every device that can be
            # synced has a clock model (or after 10x the settle time, whatever the count), then
            # once nearly every model is within the sync budget, or after settle_s plus 10 ms per
            # pinged device (the join bursts of a large venue queue up behind each other, and the
            # first models are fitted on those queued round trips).
            t0 = time.monotonic()
            await asyncio.sleep(settle_s)
            sync = rt.sync
            want = sum(1 for d in venue.devices if d.sync in (Sync.APP, Sync.TIMETAG, Sync.ECHO))
            deadline = time.monotonic() + 9 * settle_s
            while sync is not None and sync.synced_count() < 0.98 * want and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            deadline = time.monotonic() + settle_s + want / 100
            budget = rt.telemetry.budget_ns
            while (
                sync is not None
                and len(sync.over_budget(budget, rt.clock.wall_ns())) > 0.02 * want
                and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.2)
            now = rt.clock.wall_ns()
            settle.update(
                {
                    "waited_s": round(time.monotonic() - t0, 2),
                    "synced": 0 if sync is None else sync.synced_count(),
                    "over_budget": 0 if sync is None else len(sync.over_budget(budget, now)),
                    "pinged": want,
                    "budget_us": budget / 1000,
                }
            )
            rt.player.auto_go = auto_go

        task = asyncio.create_task(delayed_auto_go())
        cut = asyncio.create_task(cut_after_go())
        hook: asyncio.Task[None] | None = None
        if faults is not None:
            hook = asyncio.create_task(faults(sim, rt), name="faults")
        await rt.run()
        task.cancel()
        cut.cancel()
        await asyncio.sleep(0.5)  # the last fires and reports land
        if hook is not None:
            if not hook.done():
                hook.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hook
    finally:
        if worker is not None:
            TIMER_LATENESS.samples.extend(await worker.stop(sim.recorder))
        await sim.stop_async()
        if broker is not None:
            broker.stop()
    expected, cue_of = _expected(timeline, rt.core)
    report = sync_report(sim.records(), expected=expected, cue_of=cue_of, devices=len(venue.devices))
    report.update({"profile": profile, "seed": seed, "mode": "real"})
    ctl = rt.report()
    report["telemetry"] = _with_true_offsets(ctl.pop("telemetry"), sim, ctl["telemetry_at"])
    report["zones"] = zone_spread(sim.records(), {d.id: d.zone for d in venue.devices})
    # How late the shared event loop ran the simulated devices' timers (not counted in the spread).
    report["sim_timer_lateness"] = TIMER_LATENESS.summary()
    report["settle"] = settle
    report["headset_process"] = worker is not None
    report["controller"] = ctl
    return report, sim, rt


def _with_true_offsets(rows: list[dict[str, Any]], sim: SimulatedVenue, at: int) -> list[dict[str, Any]]:
    """Each telemetry row with ``offset_err_us``: the controller's offset estimate minus the
    simulated clock's true offset at the same instant (only a simulator can know this)."""
    for r in rows:
        clock = sim.clocks.get(r["device"])
        off = r.get("offset_us")
        r["offset_err_us"] = None if clock is None or off is None else off - (clock.local(at) - at) / 1000
    return rows
