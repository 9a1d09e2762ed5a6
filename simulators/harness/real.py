"""The real controller against a simulated venue in real time: :func:`play_real`.

It starts (when no broker is given) a private Mosquitto on a free loopback port, brings the venue
to life on real UDP sockets and MQTT connections (:class:`~simulators.devices.venue.SimulatedVenue`),
and runs the real asyncio :class:`~controller.runtime.Runtime` pointed at the simulated endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from controller.core import DEFAULT_SYNC_BUDGET_NS
from controller.playback import State
from controller.runtime import Runtime, RuntimeOptions
from cues.timeline import Timeline
from simulators.broker import MosquittoBroker
from simulators.devices.realtime import TIMER_LATENESS
from simulators.devices.venue import SimulatedVenue, SimulatorError
from simulators.devices.worker import HeadsetSpec, HeadsetWorker
from simulators.harness.shows import expected_fires
from simulators.network import profile_names
from simulators.record import Recorder
from simulators.report import sync_report, zone_spread
from simulators.topology import Topology
from venues.broker import BrokerLogin, parse_broker_url
from venues.errors import MadangError
from venues.model import Sync, Venue

__all__ = ["FaultHook", "Interrupted", "play_real", "show_reached"]

log = logging.getLogger(__name__)


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
    sync_budget_us: float = DEFAULT_SYNC_BUDGET_NS / 1000,
    control_allow: list[str] | None = None,
    ready_timeout_s: float | None = 60.0,
    degrade: list[str] | None = None,
    on_exit: str = "safe",
    handle_signals: bool = False,
    journal_dir: Path | None = None,
    web: Mapping[str, Any] | None = None,
    arrivals: bool = False,
    access: Mapping[str, Any] | None = None,
    broker_login: BrokerLogin | None = None,
    device_passwords: Mapping[str, str] | None = None,
    ping_rate: int | None = None,
    topology: Topology | None = None,
    device_brokers: Mapping[str, str] | None = None,
    headset_processes: int = 1,
) -> tuple[dict[str, Any], SimulatedVenue, Runtime]:
    """Play on a real-time simulated venue over real sockets and a real broker; returns the report.

    ``duration_s`` is seconds of show, counted from the first GO (the devices' connection and
    clock-sync settling before it are not counted); ``go_delay_ms``, ``rate``, ``sync_budget_us``,
    ``control_allow``, ``ready_timeout_s`` and ``degrade`` are the runtime's options of those names
    (``madang run``'s flags). Every GO that is not the operator's (``go``, ``auto_go``) waits for
    the sync gate's READY (:mod:`controller.gate`); one that waits ``ready_timeout_s`` in vain
    ends the run with the runtime's exit code 3. ``journal_dir``: keep the run's journal there
    (none by default: a rehearsal's simulated venue cannot be resumed).

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

    Every process it starts (the broker, the headset process) is ended before it returns or
    raises, whatever happened. ``handle_signals`` (the ``madang`` command): SIGINT and SIGTERM
    stop the show cleanly (``on_exit``: the devices' safe states, or ``"hold"``) and the report is
    made as usual; one before the show started raises :class:`Interrupted` once everything is
    ended.

    ``web``: the runtime's web options (``web_port``, ``web_host``, ``web_origins``,
    ``web_media``; RuntimeOptions). A venue with WebSocket devices gets the web server on a free
    port when none is given; its simulated WebXR clients connect to it once the runtime runs (in
    the headset process too: ``settle["ws_connect_s"]`` says how long they took).

    ``access``: the runtime's ``access``, ``access_configured`` and ``control_passcode`` options
    (who may drive over the control port; RuntimeOptions).
    ``broker_login``: the controller's login to ``broker_url`` (an ACL'd broker of
    ``madang broker-config``: user in the URL, password, TLS files); ``device_passwords``: each
    simulated MQTT device's password (the ``secrets`` file), with which it logs in as its id,
    verifying a TLS broker with ``broker_login.ca``.

    ``headset_processes``: how many child processes share the MQTT headsets (round-robin), when
    they run in a child (thousands of headsets keep one child's loop late: madang bench fanout).
    ``report["device_msgs"]``: every message the MQTT headsets received and sent, by kind
    (:func:`simulators.devices.realtime.message_kind`).

    ``arrivals``: keep every cue message's arrival at each app device's socket, as
    ``report["arrivals"]``: ``(device, true ns, payload)`` (fan-out measurements).

    ``topology``: play past one broker (:func:`simulators.topology.start_topology`, started and
    stopped by the caller): the controller connects to its hub and each device to its zone's leaf
    (:meth:`~simulators.topology.Topology.device_brokers`); a fault hook's
    ``sim.restart_broker()`` restarts the hub (Mosquitto topologies). ``device_brokers``: device
    id -> broker URL, instead of (or over) the topology's assignment.
    """
    if profile not in profile_names():  # before any process starts
        known = ", ".join(profile_names())
        raise SimulatorError(f"no network profile {profile!r}", f"choose one of: {known}")
    interrupt = _Interrupt() if handle_signals else None
    broker: MosquittoBroker | None = None
    worker: HeadsetWorker | None = None
    ws_worker: HeadsetWorker | None = None  # the WebXR clients, when in a process of their own
    more_workers: list[HeadsetWorker] = []  # headset_processes > 1: the other MQTT headset children
    counts: dict[str, int] = {}  # the in-process headsets' messages by kind
    sim: SimulatedVenue | None = None
    rt: Runtime | None = None
    settle: dict[str, Any] = {}  # how long the devices were given to sync before the first GO
    played = False
    try:
        if interrupt is not None:
            interrupt.install()
        brokers: dict[str, str] = {}
        fault_broker: Any = None
        if topology is not None:
            broker_url = broker_url or topology.hub_url
            brokers = topology.device_brokers(venue.devices)
            fault_broker = topology.hub_broker  # restart_broker(): the hub (not owned: not closed)
        brokers.update(device_brokers or {})
        if broker_url is None:
            broker = MosquittoBroker()
            broker.start()
            broker_url = broker.url
        web_opts = dict(web or {})
        ws_paths = sorted({d.ws.path for d in venue.devices if d.ws and d.mqtt is None and not d.pooled})
        if ws_paths and web_opts.get("web_port") is None:
            web_opts["web_port"] = 0
        if ws_paths and web_opts.get("web_port") == 0:
            web_opts["web_port"] = _free_tcp_port()  # the simulated clients need it before it is bound
        ws_url = f"ws://127.0.0.1:{web_opts['web_port']}{ws_paths[0]}" if ws_paths else None
        sim = SimulatedVenue(
            venue,
            mode="real",
            profile=profile,
            seed=seed,
            broker_url=broker_url,
            broker=broker or fault_broker,
            ws_url=ws_url,
            device_passwords=device_passwords,
            broker_ca=None if broker_login is None else broker_login.ca,
            device_brokers=brokers,
        )
        TIMER_LATENESS.reset()
        seen: list[tuple[str, int, bytes]] = []
        mqtt_apps = [did for did, app in sim.apps.items() if app.device.mqtt is not None]
        ws_apps = [did for did, app in sim.apps.items() if app.device.mqtt is None and ws_url is not None]
        if headset_process is None:
            headset_process = faults is None and len(mqtt_apps) + len(ws_apps) >= 200
        address = parse_broker_url(broker_url)

        def spec(did: str) -> HeadsetSpec:
            own = parse_broker_url(sim_.broker_for(did))
            return HeadsetSpec(
                sim_.apps[did].device,
                sim_.clocks[did],
                sim_.paths[did],
                sim_.login(did),
                own.tls,
                None if own == address else (own.host, own.port),
            )

        def spawn(ids: list[str], ws: str | None) -> HeadsetWorker:
            specs = [spec(did) for did in ids]
            for did in ids:
                del sim_.apps[did]  # the child runs them (same clocks and paths); sim.clocks keeps them
            w = HeadsetWorker(specs, address.host, address.port, ws_url=ws, arrivals=arrivals)
            w.start()
            return w

        sim_ = sim
        if headset_process and mqtt_apps:
            k = max(1, min(headset_processes, len(mqtt_apps)))
            worker = spawn(mqtt_apps[0::k], None)
            more_workers.extend(spawn(mqtt_apps[i::k], None) for i in range(1, k))
        if headset_process and ws_apps:  # a process of their own: they connect later (below)
            ws_worker = spawn(ws_apps, ws_url)
        log.info(
            "simulated venue processes",
            extra={
                "broker_pid": None if broker is None else broker.pid,
                "headset_pid": None if worker is None else worker.pid,
                "webxr_pid": None if ws_worker is None else ws_worker.pid,
            },
        )
        await sim.start_async()
        for stream in sim._streams.values():
            stream.counts = counts
            if arrivals:
                stream.arrivals = seen
        await sim.wait_connected(timeout_s=60, ws=False)  # WebSocket clients: once the runtime serves
        for w in (worker, *more_workers):
            if w is not None:
                await w.wait_connected()
        rt = Runtime(
            timeline,
            venue,
            RuntimeOptions(
                broker_url=broker_url,
                broker_login=broker_login,
                endpoints=sim.endpoints(),
                auto_go=False,
                go=go and not auto_go,  # auto_go presses the first GO too, once devices settled
                view=view,
                control_port=control_port,
                exit_at_end=exit_at_end,
                # A safety net only: the show is cut duration_s after the first GO (below).
                max_seconds=None if duration_s is None else duration_s + 10 * settle_s + 120.0,
                go_delay_ms=go_delay_ms,
                rate=rate,
                sync_budget_us=sync_budget_us,
                ping_rate=ping_rate,
                control_allow=control_allow,
                **dict(access or {}),
                ready_timeout_s=ready_timeout_s,
                degrade=list(degrade or []),
                on_exit=on_exit,
                journal_dir=journal_dir,
                **web_opts,
            ),
        )
        if interrupt is not None:
            interrupt.runtime = rt
        run = rt
        sim_ = sim

        async def cut_after_go() -> None:
            if duration_s is None:
                return
            while run.core.state in (State.IDLE, State.LOADED, State.ARMED):
                await asyncio.sleep(0.01)
            await asyncio.sleep(duration_s)
            run.request_stop()

        async def delayed_auto_go() -> None:
            # Give the devices settle_s to connect and answer their ping bursts; from then on the
            # player presses GO (auto_go) once the sync gate is READY, as it does for go=True.
            # Note how long it took and how the venue stood at the first GO.
            t0 = time.monotonic()
            await asyncio.sleep(settle_s)
            run.player.auto_go = auto_go
            while run.player.first_go_ns is None and run.player.failure is None:
                await asyncio.sleep(0.02)
            now = run.clock.wall_ns() if run.player.first_go_ns is None else run.player.first_go_ns
            gate = run.core.readiness(now)
            sync = run.sync
            settle.update(
                {
                    "waited_s": round(time.monotonic() - t0, 2),
                    "synced": 0 if sync is None else sync.synced_count(),
                    "over_budget": gate.not_ready,
                    "pinged": sum(1 for d in venue.devices if d.sync in (Sync.APP, Sync.TIMETAG, Sync.ECHO)),
                    "budget_us": gate.budget_ns / 1000,
                    "ready": gate.ready,
                }
            )

        async def ws_connected() -> None:
            # The child's WebXR clients need the runtime's server: they connect once it runs.
            assert ws_worker is not None
            t0 = time.monotonic()
            await ws_worker.wait_connected()
            settle["ws_connect_s"] = round(time.monotonic() - t0, 3)

        connecting = asyncio.create_task(ws_connected()) if ws_worker is not None else None
        task = asyncio.create_task(delayed_auto_go())
        cut = asyncio.create_task(cut_after_go())
        hook: asyncio.Task[None] | None = None
        if faults is not None:
            hook = asyncio.create_task(faults(sim_, run), name="faults")
        played = True
        try:
            await rt.run()
        finally:
            if interrupt is not None:
                interrupt.teardown = True  # later signals are noted: the teardown is bounded
                interrupt.install()
            task.cancel()
            cut.cancel()
            if connecting is not None and not connecting.done():
                connecting.cancel()
        await asyncio.sleep(0.5)  # the last fires and reports land
        if hook is not None:
            if not hook.done():
                hook.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hook
    except asyncio.CancelledError:
        if interrupt is None or interrupt.signal is None:
            raise
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
    finally:
        try:
            for w in more_workers:
                with contextlib.suppress(Exception):  # each child ends whatever the others did
                    await _stop_children(w, None, None, records=played, recorder=sim)
            if ws_worker is not None:
                await _stop_children(ws_worker, None, None, records=played, recorder=sim)
        finally:
            await _stop_children(worker, sim, broker, records=played)
        if interrupt is not None:
            interrupt.remove()
    if rt is None or sim is None:
        assert interrupt is not None and interrupt.signal is not None
        raise Interrupted(interrupt.signal)
    expected, cue_of = expected_fires(timeline, rt.core)
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
    workers = [w for w in (worker, ws_worker, *more_workers) if w is not None]
    for w in workers:
        for kind, n in w.counts.items():
            counts[kind] = counts.get(kind, 0) + n
    report["device_msgs"] = dict(sorted(counts.items()))
    if arrivals:
        report["arrivals"] = [*seen, *(a for w in workers for a in w.arrivals)]
    return report, sim, rt


class Interrupted(MadangError, RuntimeError):
    """A signal stopped :func:`play_real` before the show started: nothing was played (every
    process it had started was ended)."""

    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(sig)
        self.signal = sig

    def __str__(self) -> str:
        return (
            f"{self.signal.name} before the show started: nothing was played; "
            "every process it started has ended"
        )


class _Interrupt:
    """SIGINT and SIGTERM for :func:`play_real` (``handle_signals``): before the runtime runs,
    the first one cancels the setup (its ``finally`` ends every process); while it runs, the
    runtime's own handlers stop the show; after, during the teardown, they are noted and
    ignored (the teardown is bounded)."""

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.signal: signal.Signals | None = None
        self.runtime: Runtime | None = None
        self.teardown = False

    def install(self) -> None:
        for sig in self._SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self.loop.add_signal_handler(sig, self._on_signal, sig)

    def remove(self) -> None:
        for sig in self._SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self.loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.signal is not None or self.teardown:
            log.warning("%s: already stopping; the simulated venue is shutting down", sig.name)
            return
        self.signal = sig
        if self.runtime is not None:
            log.warning("%s: stopping the show", sig.name)
            self.runtime.request_stop()
        elif self.task is not None:
            log.warning("%s: stopping before the show started", sig.name)
            self.task.cancel()


async def _stop_children(
    worker: HeadsetWorker | None,
    sim: SimulatedVenue | None,
    broker: MosquittoBroker | None,
    *,
    records: bool,
    recorder: SimulatedVenue | None = None,
) -> None:
    """End every process and socket :func:`play_real` started, each step whatever the others did
    (``recorder``: whose recorder takes the worker's records, when not ``sim``'s)."""
    try:
        if worker is not None:
            if records:
                owner = recorder or sim
                recorder_ = owner.recorder if owner is not None else Recorder()
                TIMER_LATENESS.samples.extend(await worker.stop(recorder_))
            else:
                await worker.abort()
    finally:
        try:
            if sim is not None:
                await sim.stop_async()
        finally:
            if broker is not None:
                broker.close()  # stopped, and its folder (configuration, log) removed


def _free_tcp_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (just now)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_true_offsets(rows: list[dict[str, Any]], sim: SimulatedVenue, at: int) -> list[dict[str, Any]]:
    """Each telemetry row with ``offset_err_us``: the controller's offset estimate minus the
    simulated clock's true offset at the same instant (only a simulator can know this)."""
    for r in rows:
        clock = sim.clocks.get(r["device"])
        off = r.get("offset_us")
        r["offset_err_us"] = None if clock is None or off is None else off - (clock.local(at) - at) / 1000
    return rows
