"""The asyncio runtime: plays a compiled show to real devices over OSC/UDP and MQTT.

Theory of operation
-------------------
Everything that decides lives in :class:`~controller.core.ControllerCore`, driven by the
:class:`~controller.player.Player` that the virtual-time harness uses too; this module only moves
bytes and sleeps. One *pump* task asks the player, with the show clock's ``now``, what to send,
and executes each item:

* a :class:`~controller.delivery.UdpSend` marked ``precise`` is handed to the
  :class:`~controller.edge.FiringEdge` thread, which writes it to its socket at the instant to
  the microsecond; others go out at once from the receiving socket (so pongs come back to it);
* a :class:`~controller.delivery.MqttPublish` goes to the :class:`~controller.mqtt.MqttLink`
  outbox (never blocks; queued while the broker is away);
* a :class:`~controller.core.PingBatch` or :class:`~controller.core.ModelBatch` is expanded by
  the core into one send per device, executed as above;
* a :class:`~controller.core.Withdraw` cancels what the edge still holds for those keys.

Then it sleeps until the player's next wake-up, or until something arrives (an MQTT message, an
OSC datagram, an operator command), whichever is first. Pings are re-stamped with the send instant
just before they leave (:func:`~controller.delivery.restamp`), so ``t1`` is as close to the wire
as this process can make it.

The view, the control port and the MQTT link run beside the pump; none of them can delay a send
that the firing edge holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections import defaultdict, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from controller import wire
from controller.access import ENV, Access, Role
from controller.clock import Clock, SystemClock
from controller.control import ControlPort, Query, passcode_required
from controller.core import DEFAULT_SYNC_BUDGET_NS, ControllerCore, Item, ModelBatch, PingBatch, Withdraw
from controller.delivery import Key, Kind, UdpSend, restamp
from controller.dmx import DmxOutput
from controller.dmxout import DmxDriver
from controller.edge import FiringEdge, Handle
from controller.engine import Accepted
from controller.failover import FailoverPolicy
from controller.follower import Takeover
from controller.journal import JournalError, LastRun, ShowJournal, last_run
from controller.keys import (
    ESC_TIMEOUT_NS,
    Intent,
    KeyboardControl,
    Press,
    RawTerminal,
    StopShow,
    ToggleHelp,
    in_background,
    is_terminal,
)
from controller.mqtt import MqttLink, Publish, controller_will
from controller.outputs import write_text
from controller.pair import Pair
from controller.playback import Command, Go, Pause, Rejected, Seek, SetRate, State, Stop
from controller.player import Player, PlayerOptions
from controller.records import LEFT, RecordError
from controller.tcio import TimecodeIO, TimecodeOptions
from controller.telemetry import Telemetry, TelemetrySink, TelemetrySync
from controller.udp import Datagram, DirectUdpSender, UdpReceiver
from controller.view import LogLine, ViewModel, cue_rows, render
from controller.web import WebFront
from controller.web.console import PRESENCE_CODES, SYNC_CODES, ConsoleDesk, ConsoleHooks, DeviceGrid
from controller.web.devkeys import DeviceKeys
from controller.web.mdns import Advertiser, MdnsError, interfaces_for
from controller.web.oscquery import OscQueryServer
from cues.timeline import Timeline
from venues.broker import BrokerLogin
from venues.errors import MadangError
from venues.model import Venue

__all__ = ["EXIT_MODES", "EXIT_STRANDED", "Runtime", "RuntimeOptions"]

log = logging.getLogger(__name__)

MS = 1_000_000
S = 1_000_000_000

EXIT_MODES = ("safe", "hold")
"""What a run that ends before the show does (a signal, ``--go --exit-at-end`` at a manual GO, a
time limit, a crash) leaves on the devices: ``safe``, every device's safe state (Stop);
``hold``, each device keeps what it shows now (Pause: fades freeze, cues sent ahead are
withdrawn). See docs/operator.md, "Ending a run"."""

_LOOPBACK_ALLOW = ("127.0.0.0/8", "::1/128")
"""The control port's default allowlist."""

EXIT_STRANDED = 3
"""Exit code of ``--go --exit-at-end`` when the show came to rest at a manual GO that nothing
presses (use ``--go-all``)."""


@dataclass
class RuntimeOptions:
    """How to run a show; the command line fills this."""

    broker_url: str | None = None
    # The broker login (password, TLS files; docs/security.md): controller.mqtt.broker_login.
    broker_login: BrokerLogin | None = None
    control_port: int | None = 53000
    control_allow: list[str] | None = None
    control_passcode: str = "auto"  # controller.control.PASSCODE_MODES (docs/operator.md, "Passcodes")
    go: bool = False
    exit_at_end: bool = False
    view: bool = True
    rate: float = 1.0
    sync: bool = True
    endpoints: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    client_id: str | None = None
    report_path: Path | None = None
    auto_go: bool = False  # press GO at every manual cue (unattended rehearsals, the demo)
    max_seconds: float | None = None  # stop after this long (demo)
    go_delay_ms: float = 250.0  # a GO takes effect this long after the press (see docs/operator.md)
    sync_budget_us: float = DEFAULT_SYNC_BUDGET_NS / 1000  # predicted fire error over this: over budget
    ping_rate: int | None = None  # pings a second across all devices (None: no cap); --ping-rate
    ready_timeout_s: float | None = 60.0  # --go / auto GO wait this long for READY, then the run fails
    degrade: list[str] = field(default_factory=list)  # devices played on receipt from the start
    on_exit: str = "safe"  # what devices are left showing when the run ends early: EXIT_MODES
    journal_dir: Path | None = None  # the show's journal folder (None: no journal)
    resume: bool = False  # carry on the show its journal says was live (needs journal_dir)
    resume_wait_s: float = 3.0  # on resume, wait this long for the broker before taking over
    standby_of: str | None = None  # follow this primary (tcp://HOST:PORT) as its hot standby
    standby_port: int | None = None  # serve a hot standby on this TCP port while live
    claim_timeout_s: float = 10.0  # a pair's primary waits this long for its term to be confirmed
    heartbeat_ms: float = 25.0  # a pair's heartbeat interval, both ways
    missed_heartbeats: int = 4  # the standby takes over after this many intervals of silence
    # The web server (controller.web): WebSocket devices, the audience page. None: off.
    web_port: int | None = None  # 0: any free port
    web_port_fallback: bool = False  # the port is a default: when taken, take any free one (warned)
    web_host: str = "127.0.0.1"
    web_origins: list[str] = field(default_factory=list)  # browser origins allowed besides same-origin
    web_media: Mapping[str, Path | str] = field(default_factory=dict)  # crowd images: name -> file
    # The WebSocket devices' keys (device id -> key, the secrets file of madang broker-config):
    # a device must present its own to connect (controller.web.devkeys). None: open.
    web_device_keys: Mapping[str, str] | None = None
    # The browser console (controller.web.console) on the web port: the two roles' tokens from
    # these files, else $MADANG_OPERATOR_TOKEN / $MADANG_VIEWER_TOKEN, else generated and printed.
    console: bool = True
    operator_token_file: Path | None = None
    viewer_token_file: Path | None = None
    # A hot-standby pair's phones (docs/standby.md): this controller's web address as phones reach
    # it (http://10.0.0.2:8080; None: the server's own), told to the peer; and the peer's, when
    # given rather than learned over the link.
    web_url: str | None = None
    web_peer: str | None = None
    # OSCQuery (controller.web.oscquery; docs/oscquery.md): the control namespace as a JSON tree
    # on this TCP port (0: any free one), announced over mDNS unless mdns is False. None: off.
    oscquery_port: int | None = None
    mdns: bool = True
    # Timecode chase and generation (controller.tcio, docs/timecode.md). None: off.
    timecode: TimecodeOptions | None = None


class Runtime:
    """One show, one venue, played on real sockets. ``await run()``; ``request_stop()`` ends it."""

    @property
    def paired(self) -> bool:
        """One of a hot-standby pair: the standby (``standby_of``) or a primary serving one."""
        return self.opts.standby_of is not None or self.opts.standby_port is not None

    def __init__(
        self, timeline: Timeline, venue: Venue, options: RuntimeOptions, *, clock: Clock | None = None
    ) -> None:
        self.timeline = timeline
        self.venue = venue
        self.opts = options
        self.clock: Clock = clock or SystemClock()
        self.telemetry = Telemetry(venue, budget_ns=round(options.sync_budget_us * 1000))
        inner = _make_sync(venue, options.ping_rate) if options.sync else None
        # The core sees the service through the telemetry sink, which records accepted pongs.
        self.sync: TelemetrySync | None = None if inner is None else TelemetrySink(inner, self.telemetry)
        self.controller_id = options.client_id or f"madang-{os.uname().nodename}-{os.getpid()}"
        self.core = ControllerCore(
            timeline,
            venue,
            sync=self.sync,
            endpoints=options.endpoints,
            go_delay_ns=round(options.go_delay_ms * MS),
            sync_budget_ns=round(options.sync_budget_us * 1000),
            controller_id=self.controller_id,
            # A resumed controller follows its journal until it takes over; one of a pair
            # follows (or waits) until the witness confirms its term (controller.pair).
            live=not (options.resume or self.paired),
            journal=options.journal_dir is not None or options.standby_of is not None,
            # One of a pair sends timed bundles further ahead than a takeover takes (detection,
            # the claim's round trip, the window), so none falls due in the gap unsent.
            min_timetag_lead_ns=round(options.heartbeat_ms * MS) * options.missed_heartbeats + 60 * MS
            if self.paired
            else 0,
        )
        self.pair: Pair | None = None
        self._started_show = False  # player.start ran (a pair's primary starts once live)
        self.journal: ShowJournal | None = None
        self.last_run: LastRun | None = None  # what the journal said when this run began
        self.takeover: Takeover | None = None
        self._degrade(options.degrade)
        self.player = Player(
            self.core,
            PlayerOptions(
                auto_go=options.auto_go,
                exit_at_end=options.exit_at_end,
                ready_timeout_ns=_ns_or_none(options.ready_timeout_s),
                end_at_standby=options.go and not options.auto_go,
            ),
            telemetry=self.telemetry,
            sync=self.sync,
        )
        self.edge = FiringEdge(self.clock, sender=DirectUdpSender())
        self.dmx: DmxDriver | None = None  # the venue's DMX universes (docs/dmx.md), opened by run()
        self.mqtt: MqttLink | None = None
        self.udp: UdpReceiver | None = None
        self.control: ControlPort | None = None
        self.web: WebFront | None = None
        self.oscquery: OscQueryServer | None = None
        self._mdns: Advertiser | None = None
        self.console: ConsoleDesk | None = None
        self._console_task: asyncio.Task[None] | None = None
        # Read the console's tokens now: a bad token file fails the run before anything plays.
        token_files = {Role.OPERATOR: options.operator_token_file, Role.VIEWER: options.viewer_token_file}
        self._generated = {role: token_files[role] is None and not os.environ.get(ENV[role]) for role in Role}
        # The control port asks for the same secrets as passcodes when one is configured or it is
        # open beyond loopback (controller.control.passcode_required; docs/operator.md, "Passcodes").
        self._control_allow = list(options.control_allow or _LOOPBACK_ALLOW)
        self._control_passcode = options.control_port is not None and passcode_required(
            options.control_passcode, self._control_allow, not all(self._generated.values())
        )
        console = options.console and options.web_port is not None
        self.access = Access.configured(token_files) if console or self._control_passcode else None
        self._wake = asyncio.Event()
        self.timecode: TimecodeIO | None = None
        self._stop = asyncio.Event()
        self._handles: dict[Key, list[Handle]] = defaultdict(list)
        # Precise MQTT sends waiting on the loop's timer, by key, so a Withdraw cancels them too.
        self._timers: dict[Key, list[asyncio.TimerHandle]] = defaultdict(list)
        self._errors: list[str] = []
        self._summary: tuple[int, Any] | None = None  # (when, TelemetrySummary) for the view
        self._oplog: deque[LogLine] = deque(maxlen=200)  # what the operator did, what was refused
        self._help = False  # the live view shows the key help
        self._keys_off = ""  # why keys are not read ("" while they are)
        self.exit_code = 0
        self.started_ns = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the show to stop cleanly (devices to their safe state, broker disconnect)."""
        self._stop.set()
        self._wake.set()

    async def run(self) -> int:
        """Play until the end (``exit_at_end``), a stop request or a signal; returns an exit code."""
        self.open_journal()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
        if self.sync is not None:
            # Compile (or load from cache) every Numba kernel now: no JIT pause may land on a cue.
            await loop.run_in_executor(None, _warm_sync)
        self.udp = await UdpReceiver.open(self._on_datagram, local_addr=("0.0.0.0", 0), clock=self.clock)
        for d in self.venue.devices:
            ep = self.core.delivery.endpoint(d)
            if ep is not None:
                self.edge.sender.name_endpoint(ep, d.id)
        self.edge.start()
        tasks: list[asyncio.Task[Any]] = []
        dmx = DmxOutput(self.venue)
        if not dmx.empty:
            self.dmx = DmxDriver(
                dmx, lambda: self.core.engine, self.edge, self.clock, live=lambda: self.core.live
            )
            tasks.append(asyncio.create_task(self.dmx.run(), name="dmx"))
        url = self.opts.broker_url or self.venue.broker
        standby = self.opts.standby_of is not None
        self.mqtt = MqttLink(
            url,
            client_id=self.opts.client_id or f"madang-controller-{os.getpid()}",
            # A standby has no last will on the state topic: it would overwrite the live one's.
            will=None if standby else controller_will(self._offline_state()),
            clock=self.clock.wall_ns,
            keepalive=2 if self.paired else 10,  # a pair notices a dead broker within seconds
            login=self.opts.broker_login,
        )
        for topic_filter in self.core.subscriptions():  # device reports, then event triggers
            self.mqtt.subscribe(topic_filter, 0)
        self.mqtt.on_message(self._on_mqtt)
        if self.paired:
            self.pair = Pair(
                self.controller_id,
                self.mqtt,
                follow=self.opts.standby_of,
                serve=None if self.opts.standby_port is None else f"tcp://0.0.0.0:{self.opts.standby_port}",
                term=self.core.term if self.last_run is None else max(self.core.term, self.last_run.term),
                state_payload=lambda term: self.core.state_message(self.clock.wall_ns(), term),
                go_live=self._go_live,
                step_down=self._step_down,
                on_records=self._follow_records,
                on_reset=self._primary_reset,
                show_clock=self.clock.wall_ns,
                policy=FailoverPolicy(
                    heartbeat_ns=round(self.opts.heartbeat_ms * MS), missed=self.opts.missed_heartbeats
                ),
            )
            if self.opts.resume and self.last_run is not None:
                self.pair.remember(self.last_run.records)
        tasks.append(asyncio.create_task(self.mqtt.run(), name="mqtt"))
        if self.opts.control_port is not None:
            try:
                self.control = await ControlPort.open(
                    self._on_control,
                    port=self.opts.control_port,
                    allow=self.opts.control_allow,
                    clock=self.clock.monotonic_ns,
                    access=self._control_access(),
                )
            except OSError as err:
                raise ControlPortError(self.opts.control_port, str(err)) from err
            if self.opts.oscquery_port is not None:
                await self._open_oscquery(self.control)
        if self.opts.web_port is not None:
            await self._open_web()
            if self.pair is not None and self.web is not None:
                self.web.live = lambda: self.core.live
                self.pair.web = _audience_ws(self.opts.web_url or self.web.server.base_url(), self.venue)
                tasks.append(asyncio.create_task(self._web_peers(), name="web-peers"))
        if self.opts.timecode is not None:
            self.timecode = self.opts.timecode.open(self.player, self.clock.wall_ns, self._wake.set)
            await self.timecode.open()
        if self.opts.view:
            tasks.append(asyncio.create_task(self._view(), name="view"))
        try:
            if self.pair is not None:
                await self.pair.start()
                if self.opts.standby_of is None:
                    await self._await_claim()
            elif self.opts.resume:
                await self._resume()
            else:
                now = self.clock.wall_ns()
                self.started_ns = now
                if self.journal is not None:
                    self.journal.write([self.core.start_record(now)], now)
                self.player.start(now, rate=self.opts.rate, go=self.opts.go)  # GO once the gate is READY
                self._started_show = True
                log.info(
                    "show armed",
                    extra={
                        "show": self.timeline.show,
                        "venue": self.venue.id,
                        "devices": len(self.venue.devices),
                    },
                )
            await self._pump()
        finally:
            await self._shutdown(tasks)
        self._gate_failed()
        return self.exit_code

    # -- the journal -------------------------------------------------------------------------

    def open_journal(self) -> None:
        """Open the show's journal (``journal_dir``): for ``resume``, read it and replay it into
        the core (which follows until :meth:`_resume` takes over); else archive the last one and
        start a new one. Raises JournalError with what to do."""
        folder = self.opts.journal_dir
        if folder is None or self.journal is not None:
            if self.opts.resume and folder is None:
                raise JournalError(Path("."), "--resume needs a journal", "leave out --no-journal")
            return
        from controller.journal import JOURNAL_FILE

        self.last_run = last_run(folder / JOURNAL_FILE)
        lr = self.last_run
        if self.opts.resume:
            if not lr.records:
                raise JournalError(
                    folder / JOURNAL_FILE, "holds nothing to resume", "run the show without --resume"
                )
            if lr.dropped:
                log.warning(
                    "journal: a torn or corrupt tail was ignored",
                    extra={"bytes": lr.dropped, "reason": lr.reason},
                )
            for i, record in enumerate(lr.records):
                try:
                    self.core.follow(record)
                except RecordError as err:
                    raise JournalError(
                        folder / JOURNAL_FILE,
                        f"record {i + 1}: {err}",
                        "resume with the show and venue that wrote it",
                    ) from err
        self.journal = ShowJournal(folder, fresh=not self.opts.resume)
        if not self.opts.resume and lr.live:
            log.warning(
                "the last run of this show was cut short while %s (cue %s); it was kept as %s. "
                "To carry it on instead, stop this run and start it again with --resume",
                lr.state,
                lr.cue,
                self.journal.archived,
            )
            self._note_error(f"last run cut short while {lr.state}: restart with --resume to carry it on")

    async def _resume(self) -> None:
        """``--resume``: reconnect, then take over at now with a higher term: what is to come is
        sent under its own keys, what fell due while no controller was live is reported missed
        (controller.follower)."""
        assert self.mqtt is not None
        deadline = time.monotonic() + self.opts.resume_wait_s
        while not self.mqtt.connected and time.monotonic() < deadline and not self._stop.is_set():
            await asyncio.sleep(0.005)
        now = self.clock.wall_ns()
        self.started_ns = now
        self._note_takeover(self.core.take_over(now, self.core.term + 1), now, "journal")

    def _note_takeover(self, report: Takeover, now: int, how: str) -> None:
        """A resume (``how``: journal) or a standby's takeover (pair): the log line the operator
        (and ``madang bench failover``) reads, and the operator log."""
        self.takeover = report
        missed = len(report.missed)
        log.warning(
            "resumed the show at %s (%s): %d cue action(s) fell due while no controller was live and "
            "are reported missed (not fired late); %d still to come",
            str(self.core.state),
            "as the standby" if how == "pair" else "from the journal",
            missed,
            report.to_come,
            extra={
                "term": report.term,
                "outage_ns": report.as_dict()["outage_ns"],
                "missed": [m.as_dict() for m in report.missed[:20]],
            },
        )
        self._note_operator(
            now,
            how,
            "live" if how == "pair" else "resume",
            True,
            f"term {report.term}, {missed} missed in the outage, {report.to_come} to come",
        )

    # -- the hot-standby pair ----------------------------------------------------------------

    def _not_live_reason(self) -> str:
        st = self.role_state()
        pair = st.get("pair") or {}
        if st["role"] == "standby":
            return (
                f"this controller is the hot standby of {pair.get('peer') or pair.get('following')}: "
                "it drives nothing while the primary lives; send GO, stop or panic to the live controller"
            )
        return f"this controller is not live ({st['role']}): send commands to the live controller"

    def _left(self, now: int) -> None:
        """The sends of this poll all left: a journal (and a standby) reading a ``sent`` record
        without this after it knows the controller died mid-way (controller.follower)."""
        left = {**LEFT, "at": now}
        if self.journal is not None:
            self.journal.write([left], now)
        if self.pair is not None:
            self.pair.publish([left])

    def _offline_state(self) -> bytes:
        return wire.offline_state_json(term=self.core.term, controller=self.controller_id)

    async def _await_claim(self) -> None:
        """A pair's primary drives only once the witness confirmed its term (controller.pair)."""
        assert self.pair is not None
        try:
            await asyncio.wait_for(self.pair.live_event.wait(), self.opts.claim_timeout_s)
        except TimeoutError:
            st = self.pair.status()
            raise PairError(
                f"the broker did not confirm this controller's term within {self.opts.claim_timeout_s:g} s "
                f"(role {st['pair_role']}: {st['reason']})",
                "check --broker, or that no other controller of this show is live",
            ) from None

    def _go_live(self, term: int) -> None:
        """The pair's witness confirmed ``term``: take over (a standby, a resumed or fenced
        primary) or, for a new primary, start the show."""
        now = self.clock.wall_ns()
        if self.core.live:
            self.core.term = term
        else:
            report = self.core.take_over(now, term)
            if self.opts.resume or self.opts.standby_of is not None or self._started_show:
                self._note_takeover(report, now, "pair")
        if self.opts.resume:
            self.started_ns = now
        elif not self._started_show and self.opts.standby_of is None:
            self.started_ns = now
            if self.journal is not None:
                self.journal.write([self.core.start_record(now)], now)
            self.player.start(now, rate=self.opts.rate, go=self.opts.go)
            log.info("show armed", extra={"show": self.timeline.show, "term": term})
        self._started_show = True
        self._wake.set()

    def _step_down(self, reason: str) -> None:
        """A higher term holds (or this primary is cut off from both its standby and the broker):
        stop driving now; what the edge holds is withdrawn at the next poll."""
        now = self.clock.wall_ns()
        self.core.step_down(now, reason)
        self._note_operator(now, "pair", "step down", False, reason)
        self._note_error(f"not live: {reason}")
        if self.web is not None:
            # Its phones and WebSocket devices move on to the live controller of their list.
            self.web.hub.close_all("this controller stepped down; reconnect to the live one")
        self._wake.set()

    def _follow_records(self, records: list[dict[str, Any]]) -> None:
        """A standby: the primary's journal records, in order: replayed, and kept in our own
        journal (a resume of this controller reads it)."""
        if self.core.live:
            return  # live since: records from a deposed primary are not ours to follow
        for record in records:
            try:
                self.core.follow(record)
            except RecordError as err:
                self._note_error(f"cannot follow the primary: {err}")
                log.error("cannot follow the primary's journal: %s", err)
                self.exit_code = 1
                self.request_stop()
                return
            if record.get("k") == "end":
                log.warning("the primary ended the run cleanly; the standby ends too")
                self.request_stop()
        if self.journal is not None:
            self.journal.write(records, self.clock.wall_ns())

    def _primary_reset(self) -> None:
        self._note_error("the primary began a new run: restart this standby to follow it")
        log.error("the primary began a new run; this standby cannot follow it: restart the standby")
        self.exit_code = 1
        self.request_stop()

    def _on_signal(self, sig: signal.Signals) -> None:
        """SIGINT or SIGTERM: end the run cleanly, leaving the devices as ``on_exit`` says."""
        if self._stop.is_set():
            log.warning("%s: already stopping", sig.name)
            return
        log.warning(
            "%s: stopping the show (%s)",
            sig.name,
            "devices to their safe state" if self.opts.on_exit == "safe" else "devices hold what they show",
        )
        self.request_stop()

    def _leave_devices(self, now: int) -> None:
        """The run ends: Stop (safe states) or, with ``on_exit="hold"``, Pause what plays."""
        state = self.core.state
        if self.opts.on_exit == "hold":
            if state is State.PLAYING:
                self.core.command(Pause(), now)
            return
        if state not in (State.STOPPED, State.PANICKED, State.IDLE):
            self.core.command(Stop(), now)

    def _note_stranded(self) -> None:
        """``--go --exit-at-end`` ended at a manual GO: say so and exit with EXIT_STRANDED."""
        cue = self.player.stranded_at
        if cue is None:
            return
        self.exit_code = EXIT_STRANDED
        log.error(
            "the show stopped at cue %r: it waits for a manual GO and --go pressed only the first; "
            "run with --go-all to press every GO, or leave out --exit-at-end to press them yourself",
            cue,
            extra={"show": self.timeline.show, "cue": cue, "exit_code": EXIT_STRANDED},
        )

    async def _shutdown(self, tasks: list[asyncio.Task[Any]]) -> None:
        now = self.clock.wall_ns()
        live = self.core.live  # a standby (or a deposed primary) leaves the devices alone
        if live:
            self._leave_devices(now)
        # Flush the safe states and the final controller state now, ignoring leads (holding: only
        # what is due now, so no event trigger's timeout is run ahead of its time).
        items = self.core.poll(now + (10 * S if self.opts.on_exit == "safe" else 0))
        records = self.core.take_records()
        if self.journal is not None:
            self.journal.write(records, now)
        for item in items:
            self._execute(item, now, immediate=True)
        if any(r.get("k") == "sent" for r in records):
            self._left(now)
        end = {"k": "end", "at": now, "state": str(self.core.state)}
        if self.journal is not None:
            self.journal.close(end=end if live or not self.paired else None)
        if self.pair is not None:
            if live:
                self.pair.publish([*records, end])  # the standby ends with us, no takeover
                await asyncio.sleep(0.05)  # let the link carry it before the bye
            await self.pair.close()
        if self.timecode is not None:
            await self.timecode.close()
        if self.control is not None:
            self.control.close()
        await self._close_oscquery()
        if self._console_task is not None:
            self._console_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._console_task
        if self.console is not None:
            self.console.close_all()
        if self.web is not None:
            await self.web.close()
        if self.mqtt is not None:
            final = [Publish(wire.STATE_TOPIC, self._offline_state(), 1, True)] if live else []
            await self.mqtt.close(final=final)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.dmx is not None:
            self.dmx.close()  # a last frame (safe after a stop or panic), then the sACN stream ends
        self.edge.stop()
        if self.udp is not None:
            self.udp.close()
        if self.opts.report_path is not None:
            write_text(self.opts.report_path, json.dumps(self.report(), indent=2) + "\n", "report")
        log.info("show ended", extra={"show": self.timeline.show, "counters": self.core.counters})

    # -- the pump ----------------------------------------------------------------------------

    async def _pump(self) -> None:
        max_ns = None if self.opts.max_seconds is None else int(self.opts.max_seconds * S)
        player = self.player
        while not self._stop.is_set():
            now = self.clock.wall_ns()
            if self.timecode is not None:
                self.timecode.poll(now)  # the chase's dropout and loss, before the show moves on
            items = player.poll(now)
            records = self.core.take_records()
            if self.journal is not None:
                self.journal.write(records, now)  # before any of them leaves
            if self.pair is not None and records:
                self.pair.publish(records)
            for item in items:
                self._execute(item, now)
            if any(r.get("k") == "sent" for r in records):
                self._left(now)
            self._push_updates()
            if player.done(now):
                log.info("show complete; exiting", extra={"show": self.timeline.show})
                self._note_stranded()
                break
            if max_ns is not None and now - self.started_ns >= max_ns:
                break
            wait = (player.next_wake(now) - self.clock.wall_ns()) / S
            self._wake.clear()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
            else:
                await asyncio.sleep(0)

    def _execute(self, item: Item, now: int, *, immediate: bool = False) -> None:
        if isinstance(item, Withdraw):
            for key in item.keys:
                for h in self._handles.pop(key, ()):
                    self.edge.cancel(h)
                for th in self._timers.pop(key, ()):
                    th.cancel()
            return
        if isinstance(item, PingBatch | ModelBatch):
            for send in self.core.expand(item, self.clock.wall_ns()):
                self._execute(send, now, immediate=immediate)
            return
        if isinstance(item, UdpSend):
            data = restamp(item, self.clock.wall_ns()) if item.kind is Kind.PING else item.data
            if item.precise and not immediate and item.at_ns > now:
                mono = item.at_ns - (self.clock.wall_ns() - self.clock.monotonic_ns())
                h = self.edge.schedule_sends(mono, [(data, item.addr)])
                if item.key is not None:
                    hs = self._handles[item.key]
                    hs.append(h)
                    if len(hs) > 4096:
                        del hs[:2048]
            else:
                assert self.udp is not None
                self.udp.send(data, item.addr)
            return
        assert self.mqtt is not None
        if self.web is not None and self.web.publish(item):
            return  # for a device that only a WebSocket reaches (the hub stamps pings itself)
        payload = restamp(item, self.clock.wall_ns()) if item.kind is Kind.PING else item.payload
        if item.precise and not immediate and item.at_ns > now + MS:
            loop = asyncio.get_running_loop()
            th = loop.call_later(
                (item.at_ns - now) / S, self.mqtt.publish, item.topic, payload, item.qos, item.retain
            )
            if item.key is not None:
                ths = self._timers[item.key]
                ths[:] = [t for t in ths if not t.cancelled() and t.when() > loop.time()]
                ths.append(th)
        else:
            self.mqtt.publish(item.topic, payload, item.qos, item.retain)

    # -- inputs ------------------------------------------------------------------------------

    def _command(self, cmd: Command, *, source: str = "runtime") -> tuple[str, Any]:
        """Every operator command, from any surface (``source``: a key, an OSC sender, ``--go``),
        goes through here: the same refusals, the same log and operator log."""
        now = self.clock.wall_ns()
        result = self.player.command(cmd, now)
        if not self.core.live and not isinstance(result, Accepted):
            result = Rejected(self._not_live_reason(), self.core.state, cmd)
        self._wake.set()
        snap = self.core.engine.snapshot
        if isinstance(result, Accepted):
            log.info(
                "transport command",
                extra={
                    "command": type(cmd).__name__,
                    "state": str(result.state),
                    "cue": snap.current_cue,
                    "source": source,
                },
            )
            self._note_operator(now, source, cmd, True, f"-> {result.state}")
            return "ok", {"state": str(result.state), "cue": snap.current_cue, "standby": snap.standby_cue}
        log.warning(
            "transport command refused",
            extra={"command": type(cmd).__name__, "reason": result.reason, "source": source},
        )
        self._note_operator(now, source, cmd, False, f"refused: {result.reason}")
        return "error", result.reason

    async def _open_oscquery(self, control: ControlPort) -> None:
        """``--oscquery PORT``: serve the control port's namespace (docs/oscquery.md) and announce
        it over mDNS; a network without multicast gets a warning, the server still runs."""
        assert self.opts.oscquery_port is not None
        interfaces = interfaces_for(self._control_allow)  # loopback only: served and announced there
        self.oscquery = OscQueryServer(
            name=f"Madang {self.timeline.show}",
            osc_port=control.port,
            cues=[c.id for c in self.timeline.cues],
            state=self._state_data,
            host="0.0.0.0" if interfaces is None else interfaces[0],
            port=self.opts.oscquery_port,
            allow=self._control_allow,
            access=control.access,
        )
        try:
            await self.oscquery.start()
        except OSError as err:
            raise OscQueryPortError(self.opts.oscquery_port, str(err)) from err
        print(f"madang: OSCQuery http://127.0.0.1:{self.oscquery.port}/ (OSC to UDP {control.port})",
              file=sys.stderr)
        if not self.opts.mdns:
            return
        self._mdns = Advertiser(
            self.oscquery.name,
            oscquery_port=self.oscquery.port,
            osc_port=control.port,
            interfaces=interfaces,
        )
        try:
            await self._mdns.start()
        except MdnsError as err:
            self._mdns = None
            log.warning("OSCQuery is not announced over mDNS (%s); give surfaces its address", err)

    async def _close_oscquery(self) -> None:
        if self._mdns is not None:
            try:
                await self._mdns.close()
            except OSError as err:
                log.warning("mDNS goodbye failed: %s", err)
            self._mdns = None
        if self.oscquery is not None:
            await self.oscquery.close()

    def _control_access(self) -> Access | None:
        """The control port's passcodes (the console's two secrets), or None when it asks for none
        (:func:`~controller.control.passcode_required`). Secrets madang generated are printed once."""
        if not self._control_passcode:
            if self.opts.control_passcode == "off" and self._control_allow != list(_LOOPBACK_ALLOW):
                log.warning(
                    "the control port admits sources beyond loopback without a passcode "
                    "(--control-passcode off): anyone there may GO or panic the show",
                    extra={"allow": self._control_allow},
                )
            return None
        assert self.access is not None
        log.info("the control port asks for a passcode (/connect)", extra={"allow": self._control_allow})
        for role in Role:
            if self._generated[role]:
                print(
                    f"madang: control port {role} passcode (generated; give --{role}-token-file or "
                    f"${ENV[role]} to choose it): {self.access.secret(role)}",
                    file=sys.stderr,
                    flush=True,
                )
        return self.access

    def _on_control(self, cmd: Command | Query, source: tuple[str, int]) -> tuple[str, Any]:
        if isinstance(cmd, Query):
            if cmd.what == "state":
                # The sync gate's counts change with every pong: in the reply, not in the pushed
                # updates (those carry transport and playhead changes only).
                return "ok", {**self._state_data(), "sync": self.readiness_state(), "role": self.role_state()}
            return "error", f"unknown query {cmd.what}"
        return self._command(cmd, source=f"osc {source[0]}")

    def _state_data(self) -> dict[str, Any]:
        """The transport as the control port's ``/state`` reply and ``/update/state`` carry it."""
        snap = self.core.engine.snapshot
        return {
            "state": str(snap.state),
            "cue": snap.current_cue,
            "standby": snap.standby_cue,
            "show_ns": snap.show_ns,
            "rate": snap.rate,
            "running": [self.timeline.sequences[i].cues[0] for i in snap.running],
            "waiting_for": snap.waiting_for,
            "take": snap.take,
        }

    def _push_updates(self) -> None:
        """Feedback: subscribed surfaces get every transport and playhead change, whatever made it
        (a key, a surface, the show itself); the port pushes only what changed."""
        if self.control is not None and len(self.control.subscriptions):
            self.control.update(self._state_data())
        if self.oscquery is not None and self.oscquery.listening:
            self.oscquery.update(self._state_data())

    def _on_mqtt(self, topic: str, payload: bytes, rx_ns: int) -> None:
        self.player.receive_mqtt(topic, payload, rx_ns)
        self._wake.set()

    def _on_datagram(self, dg: Datagram) -> None:
        # The pump wakes only for what the core took in: a flood of hostile datagrams, dropped
        # and counted, costs no pass of the pump each (madang bench fuzz --surface osc-device).
        if self.player.receive_datagram(dg.data, dg.addr, dg.rx_wall_ns):
            self._wake.set()

    # -- the sync gate -----------------------------------------------------------------------

    def _degrade(self, devices: list[str]) -> None:
        """``--degrade``: device ids or venue group names (``all``: every device, unless the venue
        has a group of that name), played on receipt from the start."""
        ids: list[str] = []
        for name in devices:
            if name == "all" and name not in self.venue.groups:
                ids.extend(d.id for d in self.venue.devices)
            else:
                ids.extend(self.venue.groups.get(name, (name,)))
        unknown = self.core.degrade(ids)
        if unknown:
            raise UnknownDeviceError(unknown, self.venue.id)

    def _gate_failed(self) -> None:
        """An unattended GO waited for READY in vain: say which devices, exit non-zero."""
        failure = self.player.failure
        if failure is None:
            return
        log.error(str(failure), extra={"devices": list(failure.readiness.waiting)})
        self._note_error(str(failure))
        self.exit_code = GATE_TIMEOUT_EXIT

    def readiness_state(self) -> dict[str, Any]:
        """The sync gate now, for ``/state`` and the report (:meth:`Readiness.as_dict`)."""
        return self.core.readiness(self.clock.wall_ns()).as_dict()

    def _note_error(self, text: str) -> None:
        self._errors.append(text)
        del self._errors[:-20]

    def _note_operator(
        self, now: int, source: str, what: Command | str, ok: bool, detail: str, *, hint: bool = False
    ) -> None:
        """One line of the operator log (the live view shows the last few)."""
        name = what if isinstance(what, str) else _command_name(what)
        clock = time.strftime("%H:%M:%S", time.localtime(now / S))
        self._oplog.append(LogLine(clock, source, name, ok, detail, hint))

    # -- keys --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _keyboard(self) -> Iterator[None]:
        """Read the operator's keys from the terminal on stdin while the live view runs
        (controller/keys.py): raw mode, restored on every way out of the ``with``."""
        fd = sys.stdin.fileno() if sys.stdin is not None else -1
        if fd < 0 or not is_terminal(fd):
            self._keys_off = "keys off: stdin is not a terminal; use the OSC control port"
            yield
            return
        if in_background(fd):
            self._keys_off = "keys off: madang runs in the background; use the OSC control port"
            yield
            return
        loop = asyncio.get_running_loop()
        control = KeyboardControl()
        timer: list[asyncio.TimerHandle] = []
        term = RawTerminal(fd, out_fd=2 if is_terminal(2) else None)

        def deliver(intents: list[Intent]) -> None:
            for intent in intents:
                self._on_key(intent, term)

        def expire() -> None:
            timer.clear()
            deliver(control.expire(self.core.state, self.clock.wall_ns()))

        def readable() -> None:
            try:
                data = os.read(fd, 1024)
            except OSError as err:
                data = b""
                log.warning("cannot read keys from the terminal", extra={"error": str(err)})
            if not data:  # the terminal is gone (hang-up): the show goes on, keys are off
                loop.remove_reader(fd)
                term.restore()
                self._keys_off = "keys off: the terminal closed; use the OSC control port"
                return
            for th in timer:
                th.cancel()
            timer.clear()
            deliver(control.feed(data, self.core.state, self.clock.wall_ns()))
            if control.pending:
                timer.append(loop.call_later(ESC_TIMEOUT_NS / S, expire))

        with term:
            loop.add_reader(fd, readable)
            try:
                yield
            finally:
                loop.remove_reader(fd)
                for th in timer:
                    th.cancel()

    def _on_key(self, intent: Intent, term: RawTerminal) -> None:
        """One key's intent: a command down the control port's path, the help, or the exit."""
        now = self.clock.wall_ns()
        if isinstance(intent, Press):
            self._command(intent.command, source=f"key {intent.label}")
        elif isinstance(intent, ToggleHelp):
            self._help = not self._help
        elif isinstance(intent, StopShow):
            self._note_operator(now, "key Ctrl-C", "exit", True, "ending the show (as SIGINT)")
            log.info("Ctrl-C: ending the show", extra={"show": self.timeline.show})
            term.restore()  # the terminal is the operator's again: a second Ctrl-C is a plain SIGINT
            self._keys_off = "keys off: ending the show"
            self.request_stop()
        else:
            self._note_operator(now, f"key {intent.label}", "", False, intent.text, hint=True)

    # -- operator view -----------------------------------------------------------------------

    def view_model(self) -> ViewModel:
        """A snapshot for the live view (and tests)."""
        now = self.clock.wall_ns()
        snap = self.core.engine.snapshot
        pres = self.core.presence_counts(now)
        lat = self.edge.lateness_ns()
        mstats = self.mqtt.stats if self.mqtt is not None else None
        if self._summary is None or now - self._summary[0] >= S:
            # At most once a second: the worst-device search reads every over-budget model.
            self._summary = (now, self.telemetry.summary(self.sync, now))
        tel = self._summary[1]
        gate = self.core.readiness(now)
        return ViewModel(
            timecode="" if self.timecode is None else self.timecode.view_text(),
            show=self.timeline.show,
            venue=self.venue.name,
            state=str(snap.state),
            show_ns=self.core.engine.position_at(now) or 0,
            duration_ns=self.timeline.duration_ns,
            rate=snap.rate,
            current_cue=snap.current_cue or "",
            standby_cue=snap.standby_cue or "",
            running=[self.timeline.sequences[i].cues[0] for i in snap.running],
            cues=cue_rows(
                self.timeline,
                snap.standby_cue,
                self.core.engine.cue_clocks(now),
                self.core.engine.trigger_progress(now),
                self.telemetry.cue_spread(),
            ),
            debounced=snap.debounced,
            devices=len(self.venue.devices),
            online=pres["online"] + pres["unknown"],
            late=pres["late"],
            offline=pres["offline"],
            synced=tel.synced,
            pinged=tel.pinged,
            over_budget=tel.over_budget,
            budget_us=self.telemetry.budget_ns / 1000,
            worst=list(tel.worst),
            ready=gate.ready,
            ready_text=gate.label + (f" · {gate.queued:,} queued for their first sync" if gate.queued else "")
            if gate.ready
            else f"{gate.label}: {gate.summary()}",
            acks=self.telemetry.total_acks(),  # live: the summary above is up to a second old
            broker=self.mqtt.url if self.mqtt is not None else "",
            broker_connected=bool(self.mqtt and self.mqtt.connected),
            outbox=mstats.outbox if mstats is not None else 0,
            unacked=mstats.inflight if mstats is not None else 0,
            sends=self.core.counters["sends"],
            send_errors=0,
            lateness_p99_us=float(np.percentile(lat, 99) / 1000) if len(lat) else None,
            fire_error_p99_us=tel.fire_error_p99_us,
            control_port=self.control.port if self.control is not None else None,
            control_denied=self.control.stats.denied if self.control is not None else 0,
            control_malformed=self.control.stats.malformed if self.control is not None else 0,
            errors=list(self._errors),
            log=list(self._oplog),
            keys=self._keys_off,
            help=self._help,
            role=self.role_text(),
            role_live=self.core.live,
        )

    def role_state(self) -> dict[str, Any]:
        """Which controller this is, for ``/state`` and the report: ``id``, ``term``, ``live``,
        ``role`` (``live``, ``resumed``, ``took-over``; not live: ``following``, ``standby``,
        ``deposed``, ...), ``journal`` (its path, or None); for one of a hot-standby pair also the
        pair's status (controller.pair: the peer, whether the standby is in step...)."""
        role = "live" if self.core.live else "following"
        if self.takeover is not None and self.core.live:
            role = "took-over" if self.opts.standby_of is not None else "resumed"
        out: dict[str, Any] = {
            "id": self.controller_id,
            "term": self.core.term,
            "live": self.core.live,
            "role": role,
            "journal": None if self.journal is None else str(self.journal.path),
        }
        if self.pair is not None:
            pair = self.pair.status()
            if not self.core.live:
                out["role"] = pair["pair_role"]
            out["pair"] = pair
        return out

    def role_text(self) -> str:
        """The role as the live view's title shows it."""
        st = self.role_state()
        pair = st.get("pair")
        if st["live"]:
            text = f"LIVE · term {st['term']}"
        elif pair is not None and st["role"] == "standby":
            step = "in step" if pair.get("in_step") else f"{pair.get('lag') or '?'} records behind"
            alive = "primary alive" if pair.get("peer_alive") else "PRIMARY SILENT"
            text = f"STANDBY of {pair.get('peer') or pair.get('following')} · {step} · {alive}"
        else:
            text = f"NOT LIVE ({st['role']}) · term {st['term']}"
        if st["live"] and pair is not None:
            standbys = pair.get("standbys") or []
            if standbys:
                ok = all(s["in_step"] for s in standbys)
                text += f" · standby {standbys[0]['controller']} {'in step' if ok else 'BEHIND'}"
            elif pair.get("serving"):
                text += " · NO STANDBY"
        if st["role"] in ("resumed", "took-over") and self.takeover is not None:
            text += f" · {st['role']}, {len(self.takeover.missed)} missed in the outage"
        if self.journal is None:
            text += " · no journal"
        return text

    async def _view(self) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console(stderr=True)
        with (
            self._keyboard(),
            Live(render(self.view_model()), console=console, refresh_per_second=4, transient=False) as live,
        ):
            try:
                while True:
                    await asyncio.sleep(0.25)
                    live.update(render(self.view_model()))
            finally:
                live.update(render(self.view_model()))  # the last frame shows how the show ended

    def report(self) -> dict[str, Any]:
        """The post-show report: counters and per-device telemetry (``telemetry``: one row per
        device, worst first, columns :data:`controller.telemetry.COLUMNS`, as of ``telemetry_at``)."""
        lat = self.edge.lateness_ns()
        now = self.clock.wall_ns()
        rows = self.telemetry.rows(self.sync, now)
        return {
            "show": self.timeline.show,
            "venue": self.venue.id,
            "counters": dict(self.core.counters),
            "telemetry_at": now,
            "sync_budget_us": self.telemetry.budget_ns / 1000,
            "sync_gate": self.readiness_state(),
            "pings": self.sync.ping_stats() if isinstance(self.sync, TelemetrySink) else None,
            "gate_failed": None if self.player.failure is None else str(self.player.failure),
            "degraded": self.telemetry.degraded_total(),
            "go_delay_ms": self.core.engine.go_delay_ns / MS,
            "synced": sum(1 for r in rows if r["synced"]),
            "over_budget": sum(1 for r in rows if r["over_budget"]),
            "acks": self.telemetry.total_acks(),
            "telemetry": rows,
            "edge_lateness_p50_us": float(np.percentile(lat, 50) / 1000) if len(lat) else None,
            "edge_lateness_p99_us": float(np.percentile(lat, 99) / 1000) if len(lat) else None,
            "control": None
            if self.control is None
            else {
                "accepted": self.control.stats.accepted,
                "rejected": self.control.stats.rejected,
                "denied": self.control.stats.denied,
                "malformed": self.control.stats.malformed,
                "oversize": self.control.stats.oversize,
                "rate_limited": self.control.stats.rate_limited,
                "passcode": self.control.access is not None,
                "unauthenticated": self.control.stats.unauthenticated,
                "view_only": self.control.stats.view_only,
                "bad_passcode": self.control.stats.bad_passcode,
                "passcode_blocked": self.control.stats.passcode_blocked,
                "sessions": len(self.control.sessions),
                "updates_sent": self.control.stats.updates_sent,
                "updates_dropped": self.control.stats.updates_dropped,
                "subscribers": len(self.control.subscriptions),
            },
            "oscquery": None if self.oscquery is None else self.oscquery.report(),
            "osc_malformed_received": self.core.counters["osc_malformed"],
            "role": self.role_state(),
            "journal": None if self.journal is None else str(self.journal.path),
            "resumed": None if self.takeover is None else self.takeover.as_dict(),
            "web": None
            if self.web is None
            else {**self.web.report(), "console": None if self.console is None else self.console.report()},
        }

    # -- the web (controller.web) ------------------------------------------------------------

    async def _web_peers(self) -> None:
        """Keep the welcome's list of the other controller's audience address current (learned
        over the pair's link, or ``--web-peer``), and let its pages open our sockets."""
        while True:
            assert self.web is not None and self.pair is not None
            peer = self.pair.peer_web or (
                _audience_ws(self.opts.web_peer, self.venue) if self.opts.web_peer else ""
            )
            if peer and self.web.others != [peer]:
                self.web.others = [peer]
                self.web.allow_peer(peer)
                own = urlsplit(self.pair.web)
                other = urlsplit(peer)
                self.core.web_addresses = tuple(
                    f"{'https' if u.scheme == 'wss' else 'http'}://{u.netloc}" for u in (own, other)
                )
                log.info("the other controller's audience address", extra={"url": peer})
            await asyncio.sleep(0.2)

    async def _open_web(self) -> None:
        """Serve the venue's WebSocket devices and the audience page; print the URLs."""
        assert self.opts.web_port is not None
        self.web = WebFront(
            self.venue,
            self._on_mqtt,  # a frame is an MQTT message that came another way
            clock=self.clock,
            host=self.opts.web_host,
            port=self.opts.web_port,
            origins=self.opts.web_origins,
            media=self.opts.web_media,
            show=self.core.show_id,
            device_keys=None if self.opts.web_device_keys is None else DeviceKeys(self.opts.web_device_keys),
        )
        self._say_device_keys()
        if self.opts.console and self.access is not None:
            self._open_console()
        try:
            await self.web.start()
        except OSError as err:
            if not self.opts.web_port_fallback:
                self.web = None
                raise WebPortError(self.opts.web_port, str(err)) from err
            log.warning("web port %d is taken (%s): serving on any free port", self.opts.web_port, err)
            self.web.server.port = 0
            await self.web.start()
        for title, url in self.web.urls().items():
            if title != "console":
                print(f"madang: web {title} {url}", file=sys.stderr, flush=True)
        if self.console is not None:
            self._console_task = asyncio.create_task(self.console.run(), name="console")
            self._print_console_urls()

    def _say_device_keys(self) -> None:
        """One line at start: whether WebSocket devices must present their key."""
        ws = [d.id for d in self.venue.devices if d.ws is not None and not d.pooled]
        if not ws:
            return
        keys = self.opts.web_device_keys
        if keys is None:
            print(
                f"madang: WebSocket devices are open ({len(ws):,}): any connection naming a device speaks "
                "for it; give --device-secrets FILE (madang broker-config) to require each device's key",
                file=sys.stderr,
                flush=True,
            )
            return
        missing = [d for d in ws if d not in keys]
        print(
            f"madang: WebSocket devices need their key: {len(ws) - len(missing):,} of {len(ws):,} have one",
            file=sys.stderr,
            flush=True,
        )
        if missing:
            log.warning(
                "WebSocket devices without a key in the secrets file cannot connect: %s "
                "(regenerate it with madang broker-config)",
                ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""),
            )

    def _open_console(self) -> None:
        """The browser console's routes on the web server (controller.web.console)."""
        assert self.web is not None and self.access is not None
        self.console = ConsoleDesk(
            self.venue,
            self.access,
            ConsoleHooks(
                command=lambda cmd, source: self._command(cmd, source=source),
                note=lambda source, what, ok, detail: self._note_operator(
                    self.clock.wall_ns(), source, what, ok, detail
                ),
                view=self.view_model,
                grid=self.device_grid,
            ),
            clock=self.clock,
        )
        self.console.add_routes(self.web.server)

    def _print_console_urls(self) -> None:
        """The console's two URLs, each with its role's token in the fragment (never sent to the
        server, so never in an access log). A token madang did not generate (a file, the
        environment) is not printed: the operator has it."""
        assert self.web is not None and self.access is not None
        base = self.web.server.base_url() + "/console"
        for role in Role:
            if self._generated[role]:
                url = f"{base}#token={self.access.secret(role)}"
            else:
                url = f"{base}#token=<the {role} token you gave>"
            print(f"madang: console {role} {url}", file=sys.stderr, flush=True)

    def device_grid(self) -> DeviceGrid:
        """Every device's presence and clock sync now, one character each in venue order
        (the console's grid; controller.web.console.PRESENCE_CODES and SYNC_CODES)."""
        now = self.clock.wall_ns()
        states = self.core.presence.states(now)
        presence = "".join(PRESENCE_CODES[states[d.id]] for d in self.venue.devices)
        sync = self.sync
        if sync is None:
            return DeviceGrid(presence, SYNC_CODES["none"] * len(self.venue.devices))
        pinged = set(sync.ids)
        over = set(sync.over_budget(self.telemetry.budget_ns, now))
        codes = []
        for d in self.venue.devices:
            if d.id not in pinged:
                codes.append(SYNC_CODES["none"])
            elif sync.model(d.id) is None:
                codes.append(SYNC_CODES["waiting"])
            elif d.id in over:
                codes.append(SYNC_CODES["over"])
            else:
                codes.append(SYNC_CODES["ok"])
        return DeviceGrid(presence, "".join(codes))


GATE_TIMEOUT_EXIT = 3
"""The exit code of a run whose unattended GO never saw READY (docs/operator.md)."""


class UnknownDeviceError(MadangError, KeyError):
    """``--degrade`` named a device or group the venue does not have."""

    def __init__(self, names: list[str], venue: str) -> None:
        super().__init__(names, venue)
        self.names = names
        self.venue = venue

    def __str__(self) -> str:
        return (
            f"--degrade: venue {self.venue!r} has no device or group {', '.join(map(repr, self.names))}; "
            "name device ids or groups as the venue file spells them (madang check VENUE lists them)"
        )


class PairError(MadangError, RuntimeError):
    """A controller of a hot-standby pair could not become live (its term was not confirmed)."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason, hint)
        self.reason = reason
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.reason}: {self.hint}"


class _PortError(MadangError, OSError):
    """A port of the runtime could not be opened: ``what`` it is and the options to try."""

    what = ""
    instead = ""

    def __init__(self, port: int, reason: str) -> None:
        super().__init__(port, reason)
        self.port = port
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot open the {self.what} {self.port}: {self.reason}; {self.instead}"


class ControlPortError(_PortError):
    """The control port could not be opened."""

    what = "OSC control port"
    instead = "pick another with --control-port N, or --control-port 0 for any free port"


class WebPortError(_PortError):
    """The web server could not listen on its port."""

    what = "web port"
    instead = "pick another with --web-port N, --web-port 0 for any free port, or -1 for none"


class OscQueryPortError(_PortError):
    """The OSCQuery server could not listen on its port."""

    what = "OSCQuery port"
    instead = "pick another with --oscquery N, or --oscquery 0 for any free port"


def _command_name(cmd: Command) -> str:
    """A command as the operator log names it: ``GO``, ``GO bloom``, ``forced GO``, ``seek 60 s``."""
    if isinstance(cmd, Go):
        what = "forced GO" if cmd.force else "GO"
        return f"{what} {cmd.cue}" if cmd.cue else what
    if isinstance(cmd, Seek):
        return f"seek {cmd.cue}" if cmd.cue is not None else f"seek {(cmd.show_ns or 0) / S:g} s"
    if isinstance(cmd, SetRate):
        return f"rate {cmd.rate:g}"
    name = type(cmd).__name__
    return "".join(" " + c.lower() if c.isupper() else c for c in name).strip()


def _ns_or_none(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * S)


def _audience_ws(base: str, venue: Venue) -> str:
    """``http://host:port`` (or a ws:// address) as the audience socket's ``ws://host:port/path``."""
    parts = urlsplit(base if "//" in base else f"http://{base}")
    scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
    path = venue.audience.path if venue.audience is not None else "/audience/ws"
    return f"{scheme}://{parts.netloc}{path}"


def _make_sync(venue: Venue, ping_rate: int | None) -> TelemetrySync | None:
    try:
        from controller.sync.service import SyncService
    except ImportError:
        return None
    # Each controller pings in its own block of seqs (2**24 each, below 2**30: OSC carries 31
    # bits), so the two of a pair do not take each other's pongs for answers.
    return SyncService(venue, seq_base=(secrets.randbelow(63) + 1) << 24, max_ping_rate=ping_rate)


def _warm_sync() -> None:
    try:
        from controller.sync.estimator import warm
    except ImportError:
        return
    warm()
