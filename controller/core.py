"""The controller as one sans-I/O core: engine, delivery, clock sync and presence together.

Theory of operation
-------------------
:class:`ControllerCore` owns no socket and reads no clock. Adapters feed it what arrives (operator
commands, MQTT messages and OSC datagrams as bytes, each with the instant it was received:
:meth:`ControllerCore.receive_mqtt`, :meth:`ControllerCore.receive_datagram`) and ask it, with
``now``, what to send. It answers with :class:`~controller.delivery.UdpSend` and
:class:`~controller.delivery.MqttPublish` items, which carry what they are (``kind``, ``key``,
the instant they name, a bundle's timetag) beside their bytes so that no driver parses what the
core produced; with :class:`PingBatch` and :class:`ModelBatch`, the clock sync's pings and models
for many devices at once (a driver turns them into sends with :meth:`ControllerCore.expand`, or
carries them another way); and with :class:`Withdraw` when sends already handed out must not
leave after all (pause, stop, seek). The asyncio runtime (:mod:`controller.runtime`) executes them
on real sockets; the virtual-time harness (:mod:`simulators.harness`) executes them on a simulated
network; both through the same :class:`~controller.player.Player`. So a virtual-time rehearsal
exercises the real decisions and the real encoding.

Sends are released by :meth:`ControllerCore.poll`:

* a send that must merely leave *before* an instant (cue messages, timetagged bundles, pings) is
  released once its ``at_ns`` has come;
* a ``precise`` send (to an on-receipt device) is released up to ``edge_horizon_ns`` early, so
  the adapter can hand it to the firing edge, which emits it at ``at_ns`` to the microsecond.

``next_deadline()`` says when to call ``poll`` again.

The sync gate (:mod:`controller.gate`) is decided here too: :meth:`ControllerCore.readiness` says
whether every device that needs a clock model has a good one, and :meth:`ControllerCore.command`
refuses a GO before READY (with the reason) unless it is forced or the cue's own devices are all
ready. Devices the operator degrades (:meth:`ControllerCore.degrade`) are played on receipt.

Every command the core emits carries its *term* (:attr:`ControllerCore.term`): the cue messages
and timed bundles (through :class:`~controller.delivery.Delivery`, which reads it as it encodes),
the clock models (:meth:`ControllerCore.expand`) and the retained controller state, which also
names the controller (:attr:`ControllerCore.controller_id`). Devices drop a command whose term is
lower than the highest they have seen, so a controller that claims a higher term (a standby
taking over) fences the one it replaces out of every device that has heard from it
(docs/protocol.md, "Controller terms (hot standby)"). Setting :attr:`ControllerCore.term` takes
effect for every message encoded after it; sends already planned keep the term they were encoded
with (a takeover plans what is still to come after claiming its term).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from controller import wire
from controller.delivery import Delivery, Key, Kind, MqttPublish, Send, UdpSend
from controller.engine import (
    Accepted,
    Cancel,
    Engine,
    Fire,
    Frame,
    Output,
    Ramp,
    Result,
    Safe,
    StateSync,
)
from controller.follower import Missed, Shadow, Takeover
from controller.gate import Readiness, SyncGate
from controller.keepalive import StateKeepAlive
from controller.latejoin import SentAhead
from controller.limits import Rates
from controller.osc import OscDecodeError, decode_packet, messages
from controller.playback import Command, Go, Rejected, State
from controller.presence import DeviceHealth, Presence
from controller.records import JOURNALLED, RecordError, cmd_record, decode_command, sent_record, timeline_hash
from controller.topics import device_filters
from cues.timeline import Fade, MqttSend, OscSend, Timeline
from venues.model import Sync, Venue
from venues.names import osc_address_matches
from venues.names import topic_matches as mqtt_topic_matches

__all__ = [
    "DEFAULT_SYNC_BUDGET_NS",
    "ControllerCore",
    "DeviceHealth",
    "Item",
    "ModelBatch",
    "PingBatch",
    "PingSink",
    "Readiness",
    "Takeover",
    "Withdraw",
    "show_slug",
]

log = logging.getLogger(__name__)

MS = 1_000_000
S = 1_000_000_000
LATE_JOIN_EVERY_NS = 1 * S
"""A device gets catch-up state (and its clock sync restarted) at most once this often: a flood of
``ready`` statuses, forged or from a flapping link, cannot amplify into controller traffic."""
DEVICE_RATE_PER_S = 200.0
"""Statuses and fire reports one device may send a second, sustained (a device sends a status
every few seconds and one report per cue). Pongs are not counted against it: each is checked
against the ping it answers, cheaply, and a flood of forgeries on a device's topics must not
starve its real pongs (its clock sync would degrade: ``madang bench fuzz --surface mqtt``)."""
DEVICE_RATE_BURST = 400
"""Statuses and fire reports one device may send at once before :data:`DEVICE_RATE_PER_S` applies."""
SOURCE_RATE_PER_S = 1_000.0
"""UDP datagrams a second, sustained, from one source that is no device's endpoint (an OSC event
sender such as a lighting desk or a fader page), checked before decoding: a flood from one
address costs a table lookup per datagram, not an OSC decode (``madang bench fuzz --surface
osc-device``). A device's own endpoint is limited per device, after decoding."""
SOURCE_RATE_BURST = 2_000
"""Datagrams one such source may send at once before :data:`SOURCE_RATE_PER_S` applies."""
SYNC_RESTART_EVERY_NS = 30 * S
"""A device's clock sync starts over (a status with a new boot instant) at most once this often:
``madang bench fuzz --surface mqtt`` found forged statuses restarting every headset's sync each
second, so that none ever had a model (spread p99 250 ms against 0.3 ms). A real device that
restarts twice within it keeps its old model's samples until they age out of the fit."""
FIRE_MEMORY = 64
"""Fire reports remembered per device to count a repeat once (bounded: a device's last 64)."""
OP_SEQ_MEMORY = 4096
"""Controller ops (catch-up state, safe states) remembered, so a fire report may name one."""
DEFAULT_SYNC_BUDGET_NS = 5 * MS
"""The default sync budget: a device whose cues are predicted to land further than this from
their instant is over budget (docs/operator.md, "The sync gate")."""

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Sends with one of ``keys`` already handed out for after ``after_ns`` must not leave."""

    after_ns: int
    keys: frozenset[Key]


@dataclass(frozen=True, slots=True)
class PingBatch:
    """Pings due at ``at_ns``: ``seqs[i]`` to clock-sync row ``rows[i]``, in order. Turn it into
    sends with :meth:`ControllerCore.expand` (stamped with the instant they leave)."""

    at_ns: int
    rows: I64
    seqs: I64
    precise: ClassVar[bool] = False  # leaves at or after ``at_ns``, not at it to the microsecond


@dataclass(frozen=True, slots=True)
class ModelBatch:
    """Clock models to send at ``at_ns``, retained: row ``rows[i]`` gets the fields of the
    protocol's clock message at ``i`` (docs/protocol.md, "The clock model")."""

    precise: ClassVar[bool] = False
    at_ns: int
    rows: I64
    epoch: I64
    offset_ns: I64
    drift_ppb: I64
    uncertainty_ns: I64

    def take(self, keep: Bools) -> ModelBatch:
        """The models of the rows where ``keep`` is true."""
        return ModelBatch(
            self.at_ns,
            self.rows[keep],
            self.epoch[keep],
            self.offset_ns[keep],
            self.drift_ppb[keep],
            self.uncertainty_ns[keep],
        )


Item = Send | PingBatch | ModelBatch | Withdraw
"""What :meth:`ControllerCore.poll` hands a driver."""


class PingSink(Protocol):
    """The clock-sync service as the core uses it (implemented in :mod:`controller.sync`).

    Devices are rows: indices into :attr:`ids`, so that ten thousand pings a second cost array
    operations, not a tuple each.
    """

    @property
    def ids(self) -> Sequence[str]:
        """The pinged devices; a row is an index into this."""
        ...

    def due_rows(self, now: int) -> tuple[I64, I64]:
        """The rows to ping now and the ``seq`` of each ping."""
        ...

    def receive_pong(self, device: str, seq: int, t1: int, t2: int, t3: int, t4: int) -> bool:
        """A pong arrived; False when it was dropped (unknown seq, stale, implausible)."""
        ...

    def receive_pong_rows(self, rows: I64, seqs: I64, t1: I64, t2: I64, t3: I64, t4: I64) -> Bools:
        """:meth:`receive_pong` for arrays of pongs in order of receipt; which were kept."""
        ...

    def update_rows(self, now: int) -> I64:
        """Re-estimate models with new samples; returns the rows whose clock message should go out."""
        ...

    def model_rows(self, rows: I64) -> tuple[I64, I64, I64, I64]:
        """The clock-model messages of ``rows`` (each has a model): ``epoch``, ``offset_ns``,
        ``drift_ppb`` and ``uncertainty_ns`` arrays (docs/protocol.md, "The clock model")."""
        ...

    def to_device(self, device: str, ref_ns: int) -> int | None: ...

    def to_ref(self, device: str, local_ns: int) -> int | None: ...

    def one_way_ns(self, device: str) -> int | None: ...

    def lead_ns(self, device: str) -> int | None: ...

    def predicted_errors_ns(self, now: int) -> npt.NDArray[np.float64]:
        """Each row's predicted fire error (ns; ``inf`` while not settled): the sync gate's input."""
        ...

    def predicted_error_ns(self, device: str, at_ns: int) -> int | None:
        """One device's predicted fire error for a cue at ``at_ns``; None while not settled."""
        ...

    def receipt_error_ns(self, device: str) -> int | None:
        """How far a cue sent on receipt is predicted to land from its instant; None unmeasured."""
        ...

    def reset(self, device: str) -> None:
        """The device rebooted: forget its samples and start a new burst."""
        ...

    def leave(self, device: str) -> None:
        """The device is gone for good (an audience slot its phone left): stop pinging it."""
        ...

    def next_deadline(self) -> int | None:
        """When the next ping falls due."""
        ...

    def queued(self) -> int:
        """Devices that joined and wait for their first ping (a global ping cap holds them)."""
        ...


class ControllerCore:
    """Everything the controller decides, sans I/O. See the module docstring."""

    def __init__(
        self,
        timeline: Timeline,
        venue: Venue,
        *,
        show_id: str | None = None,
        endpoints: Mapping[str, tuple[str, int]] | None = None,
        sync: PingSink | None = None,
        lookahead_ns: int = 600 * MS,
        app_lead_ns: int = 400 * MS,
        timetag_lead_ns: int = 150 * MS,
        edge_horizon_ns: int = 30 * MS,
        control_rate_hz: float = 50.0,
        debounce_ns: int = 250 * MS,
        go_delay_ns: int = 250 * MS,
        state_every_ns: int = 5 * S,  # a keep-alive: every change is published at once anyway
        sync_budget_ns: int = DEFAULT_SYNC_BUDGET_NS,
        term: int = 1,
        controller_id: str = "",
        live: bool = True,
        journal: bool = False,
        min_timetag_lead_ns: int = 0,
    ) -> None:
        self.term = term  # which controller is in charge: a takeover claims a higher one
        # A hot-standby pair's web servers (http://host:port, this one first), named in the
        # controller state so WebSocket devices know where to reconnect (the runtime sets it).
        self.web_addresses: tuple[str, ...] = ()
        self.controller_id = controller_id  # named in the retained controller state
        self.timeline = timeline
        self._cue_devices: dict[str, tuple[Timeline, frozenset[str]]] = {}
        # A core that is not live follows another controller's journal (follow) and drives
        # nothing but its own pings, until take_over (docs/standby.md).
        self.live = live
        self.journal = journal  # keep journal records for take_records (the runtime writes them)
        self._records: list[dict[str, object]] = []
        self.shadow = Shadow()
        self._followed = 0
        self._mismatches = 0
        self._last_record_ns: int | None = None
        self.last_takeover: Takeover | None = None
        self.venue = venue
        self.show_id = show_id or _slug(timeline.show)
        self.sync = sync
        self.engine = Engine(
            timeline,
            venue,
            lookahead_ns=lookahead_ns,
            control_rate_hz=control_rate_hz,
            debounce_ns=debounce_ns,
            go_delay_ns=go_delay_ns,
        )
        self.gate = SyncGate(venue, sync, budget_ns=sync_budget_ns)
        self.delivery = Delivery(
            venue,
            self.show_id,
            models=sync,
            app_lead_ns=app_lead_ns,
            timetag_lead_ns=timetag_lead_ns,
            endpoints=endpoints,
            budget_ns=sync_budget_ns,
            degraded=self.gate.degraded,
            term=lambda: self._term,
            min_timetag_lead_ns=min_timetag_lead_ns,
        )
        self.edge_horizon_ns = edge_horizon_ns
        self.presence = Presence(d.id for d in venue.devices)
        self.health: dict[str, DeviceHealth] = self.presence.health
        # Audience slots: vacant until a phone takes one (docs/venues.md, "The audience").
        self._pooled = frozenset(d.id for d in venue.devices if d.pooled)
        for slot in self._pooled:
            self.health[slot].status = "vacant"
        # The audience present, by zone: slots a phone holds now (what a share trigger counts).
        self._present: dict[str, set[str]] = {}
        if venue.audience is not None:
            self._present = {z: set() for z in venue.audience.zones}
        # By clock-sync row, for receive_pongs.
        self._health_by_row = [self.health[d] for d in sync.ids] if sync is not None else []
        # Each device's MQTT topic root (its venue ``mqtt.base``, or madang/dev/{id}), both ways.
        self.root: dict[str, str] = {d.id: d.topic_root for d in venue.devices}
        self.by_root: dict[str, str] = {r: did for did, r in self.root.items()}
        self.by_endpoint: dict[tuple[str, int], str] = {}
        for d in venue.devices:
            ep = self.delivery.endpoint(d)
            if ep is not None:
                self.by_endpoint[ep] = d.id
        self._pending: list[tuple[int, int, Send | PingBatch | ModelBatch]] = []
        self._fired: list[tuple[str, wire.Fired]] = []
        # MQTT cues and ramps planned (and so perhaps sent ahead) whose instant may still be to
        # come: a device that reconnects inside their lead gets them again (_late_join).
        self._ahead = SentAhead()
        self._withdrawn: list[Withdraw] = []
        self._tie = itertools.count()
        self.emitted_seqs: set[int] = set()  # action seqs the engine has emitted (for reports)
        # Whom each emitted action seq targets (a fire report from another device is untrue), and
        # the action's device tuple last added for it (the same object every time: added once).
        self._seq_devices: dict[int, set[str]] = {}
        self._seq_from: dict[int, tuple[str, ...]] = {}
        # Controller ops' seqs (negative, _op_key) recently issued: a fire report may name one.
        self._op_seqs: dict[int, None] = {}
        # Per device, the (show, seq) of its recent fire reports: a repeat is counted once.
        self._acked: dict[str, dict[tuple[str | None, int], None]] = {}
        self._acked_take = 1
        self._late_join_at: dict[str, int] = {}  # device -> last catch-up sent (rate-limited)
        self._sync_restart_at: dict[str, int] = {}  # device -> last clock-sync restart (rate-limited)
        self.late_join_every_ns = LATE_JOIN_EVERY_NS
        # Reports per device (pongs, statuses, fire reports): a forged flood on one device's topics
        # is dropped past this, counted; the table holds at most the venue's devices.
        self.device_rates = Rates(DEVICE_RATE_PER_S, DEVICE_RATE_BURST, keys=max(1, len(venue.devices)))
        # Datagrams per source that is no device's endpoint, before decoding; 4,096 sources.
        self.source_rates = Rates(SOURCE_RATE_PER_S, SOURCE_RATE_BURST, keys=4096)
        self._triggers = {
            t: tuple({c.trigger.pattern for c in timeline.cues if c.trigger and c.trigger.transport == t})
            for t in ("mqtt", "osc")
        }
        self._trigger_memo: dict[tuple[str, str], bool] = {}
        self._trigger_memo_max = 4 * len(venue.devices) + 4096
        self._keep_alive = StateKeepAlive(state_every_ns)
        self._op_us = 0  # the last controller op's key (see _op_key)
        self.counters: dict[str, int] = {
            "outputs": 0,
            "sends": 0,
            "withdrawn": 0,
            "pongs": 0,
            "pongs_dropped": 0,
            "fired": 0,
            "bad_messages": 0,
            "events": 0,
            "late_joins": 0,
            "resent_ahead": 0,
            "osc_malformed": 0,
            "gate_refused": 0,  # GOs refused by the sync gate
            "degraded_sends": 0,  # cues to timetag devices sent on receipt (no settled model)
            "missed_in_outage": 0,  # keyed actions due while no controller was live (take_over)
            # Forged or stale input the core can tell (docs/security-controls.md, "Bounds"):
            "fired_implausible": 0,  # fire reports naming no seq, a seq never sent, or another take
            "fired_duplicate": 0,  # a device's repeat of a fire report it already made
            "fired_untargeted": 0,  # a fire report of an action sent, but not to the reporting device
            "osc_unsolicited": 0,  # datagrams from no device's endpoint while no OSC trigger listens
            "late_joins_limited": 0,  # ready statuses within LATE_JOIN_EVERY_NS of a catch-up
            "unknown_device": 0,  # device reports (pong/status/fired) on a topic of no device
            "events_ignored": 0,  # messages that match no event trigger of the show
            "device_rate_limited": 0,  # reports of one device past DEVICE_RATE_PER_S
            "source_rate_limited": 0,  # datagrams of a non-device source past SOURCE_RATE_PER_S
            "sync_restarts_limited": 0,  # reboots within SYNC_RESTART_EVERY_NS of the last one
            "taps_absent": 0,  # taps for a share trigger from phones not present (not counted)
        }

    # -- the term ----------------------------------------------------------------------------

    @property
    def term(self) -> int:
        """The term this controller drives under (a positive integer, 1 by default). Every cue
        message, timed bundle key, clock model and controller state encoded from now on carries
        it; devices drop what comes with a lower term than the highest they have seen."""
        return self._term

    @term.setter
    def term(self, term: int) -> None:
        """Claim ``term`` (from 1 to :data:`controller.wire.MAX_TERM`): it applies to every message
        encoded from now on (sends already planned keep theirs). Lowering it is allowed but
        useless: devices that heard the higher one drop whatever comes under a lower one.
        ValueError for a term that is not one."""
        self._term = wire.check_term(term)

    # -- operator ----------------------------------------------------------------------------

    def command(self, cmd: Command, now: int) -> Result:
        """An operator command; its immediate outputs are planned for the next :meth:`poll`.

        A GO before the sync gate is READY is refused with the reason (:meth:`gate_refusal`). A
        core that is not live refuses every command: the live controller decides."""
        if not self.live:
            return Rejected(
                "this controller is not live (it follows the live one): send commands to the live "
                "controller, or wait for a takeover",
                self.engine.state,
                cmd,
            )
        if isinstance(cmd, Go):
            refused = self.gate_refusal(cmd, now)
            if refused is not None:
                self.counters["gate_refused"] += 1
                return refused
        result = self.engine.command(cmd, now)
        if isinstance(result, Accepted):
            if self.journal and isinstance(cmd, JOURNALLED):
                self._records.append(cmd_record(cmd, now, str(result.state), self.engine.snapshot.take))
            self._plan(result.outputs, now)
            self._audience_sync(now)
            self._publish_state(now, force=True)
        return result

    # -- the sync gate ------------------------------------------------------------------------

    def readiness(self, now: int, devices: Iterable[str] | None = None) -> Readiness:
        """The sync gate at ``now``: READY or not, with counts and the worst device
        (:class:`~controller.gate.Readiness`); for every device, or only ``devices``."""
        return self.gate.readiness(now, devices)

    def cue_devices(self, cue: str) -> frozenset[str]:
        """The devices a cue's own actions target.

        Kept per timeline and cue: an unattended GO held by the sync gate asks on every poll, and
        at a hundred thousand devices building the set each time cost more than the show."""
        tl = self.timeline
        hit = self._cue_devices.get(cue)
        if hit is not None and hit[0] is tl:
            return hit[1]
        out = frozenset(d for a in tl.actions_by_cue.get(cue, ()) for d in a.devices)
        self._cue_devices[cue] = (tl, out)
        return out

    def gate_refusal(self, go: Go, now: int) -> Rejected | None:
        """Why the sync gate refuses this GO at ``now``, or None: a GO goes ahead when it is
        forced, when the venue is READY, or when the devices of the cue it starts are all ready
        (the transport's own rules are the engine's to apply)."""
        if go.force or self.engine.state not in (State.ARMED, State.PLAYING):
            return None
        whole = self.gate.readiness(now)
        if whole.ready:
            return None
        cue = go.cue or self.engine.snapshot.standby_cue
        if cue is None or cue not in self.timeline.cue_by_id:
            return None  # the engine says what is wrong with it
        if self.gate.readiness(now, self.cue_devices(cue)).ready:
            return None
        return Rejected(whole.reason(), self.engine.state, go)

    def degrade(self, devices: Iterable[str]) -> list[str]:
        """Play these devices on receipt from now on (the operator's choice, when one cannot
        sync): they stop holding the sync gate. Returns the ids the venue does not know."""
        devices = list(devices)
        unknown = self.gate.degrade(devices)
        known = [d for d in devices if d not in unknown]
        if self.journal and known:
            self._records.append({"k": "degrade", "devices": known})
        if self.gate.degraded:
            log.warning(
                "devices degraded: played on receipt",
                extra={"devices": sorted(self.gate.degraded)[:20], "count": len(self.gate.degraded)},
            )
        return unknown

    @property
    def state(self) -> State:
        """The transport state."""
        return self.engine.state

    @property
    def finished(self) -> bool:
        """True once the show has played to its end (or was stopped) and nothing is left to send."""
        return self.engine.state in (State.STOPPED, State.PANICKED) and not self._pending

    # -- time --------------------------------------------------------------------------------

    def poll(self, now: int) -> list[Item]:
        """Everything to send (or withdraw) as of ``now``, in order. Call again at
        :meth:`next_deadline`."""
        if self.live:
            deadline = self.engine.next_deadline()
            if deadline is not None and deadline <= now:
                self._plan(self.engine.poll(now), now)
            self._audience_sync(now)  # a share trigger armed since: how many are present
        if self.sync is not None:
            self._sync_tick(now)
        if self.live:
            self._publish_state(now)
        out: list[Item] = list(self._withdrawn)
        self._withdrawn.clear()
        horizon = now + self.edge_horizon_ns
        pend = self._pending
        while pend and pend[0][0] <= horizon:
            at, _, send = pend[0]
            if at > now and not send.precise:
                # A non-precise send further out than now waits; precise ones behind it may not.
                break
            heapq.heappop(pend)
            out.append(send)
        if pend and any(s.precise and a <= horizon for a, _, s in pend[:64]):
            # Rare: a precise send queued behind a later non-precise one; release it too.
            keep: list[tuple[int, int, Send | PingBatch | ModelBatch]] = []
            for item in pend:
                if item[2].precise and item[0] <= horizon:
                    out.append(item[2])
                else:
                    keep.append(item)
            heapq.heapify(keep)
            self._pending = keep
        self.counters["sends"] += sum(
            s.rows.size if isinstance(s, PingBatch | ModelBatch) else 1
            for s in out
            if not isinstance(s, Withdraw)
        )
        if self.journal:
            self._note_sent(out, now)
        return out

    # -- the journal -------------------------------------------------------------------------

    def _note_sent(self, out: Sequence[Item], now: int) -> None:
        """One ``sent`` record for the keyed sends of this poll (controller.records)."""
        keyed: dict[Key, tuple[int, list[str]]] = {}
        for s in out:
            if isinstance(s, UdpSend | MqttPublish) and s.key is not None:
                due = s.due_ns if s.due_ns is not None else s.at_ns
                target = s.device if isinstance(s, UdpSend) else s.topic
                prev = keyed.get(s.key)
                if prev is None:
                    keyed[s.key] = (due, [target])
                else:
                    prev[1].append(target)
        if keyed:
            self._records.append(
                sent_record(now, [(k[0], k[1], k[2], due, targets) for k, (due, targets) in keyed.items()])
            )

    def start_record(self, now: int) -> dict[str, object]:
        """The ``start`` record of a run (controller.records): the show, its fingerprint, this
        controller and its term, and the engine settings a replay must share."""
        return {
            "k": "start",
            "at": now,
            "show": self.show_id,
            "hash": timeline_hash(self.timeline),
            "controller": self.controller_id,
            "term": self.term,
            "go_delay_ns": self.engine.go_delay_ns,
            "lookahead_ns": self.engine.lookahead_ns,
        }

    def take_records(self) -> list[dict[str, object]]:
        """The journal records made since the last call, oldest first (commands, events,
        degrades, sends), to be written *before* the sends of the same poll leave."""
        out, self._records = self._records, []
        return out

    def follow(self, record: dict[str, object]) -> None:
        """Apply one journal record of the live controller (this core is not live): the engine
        replays commands and events at their instants, ``sent`` records tell the shadow what
        went on the wire (controller.follower). Raises RecordError for a record of another
        show or with bad fields; unknown kinds are skipped."""
        kind = record.get("k")
        at = record.get("at")
        if at is not None and not isinstance(at, int):
            raise RecordError(f"a {kind} record's 'at' must be an integer, got {at!r:.40}")
        if isinstance(at, int):
            self._last_record_ns = at if self._last_record_ns is None else max(self._last_record_ns, at)
        self._followed += 1
        if kind == "start":
            want = timeline_hash(self.timeline)
            if record.get("hash") != want:
                raise RecordError(
                    f"the journal was written for show {record.get('show')!r} ({record.get('hash')}), "
                    f"not for this one ({self.show_id!r}, {want}): resume with the same show and venue"
                )
            term = record.get("term")
            if isinstance(term, int):
                self.term = max(self.term, term)
            go_delay = record.get("go_delay_ns")
            if isinstance(go_delay, int) and go_delay != self.engine.go_delay_ns:
                log.warning("replaying with the journal's GO delay", extra={"go_delay_ns": go_delay})
                self.engine.go_delay_ns = go_delay
        elif kind == "cmd":
            assert isinstance(at, int)
            cmd = decode_command(record.get("cmd"))
            self._shadow_poll(at)
            result = self.engine.command(cmd, at)
            if isinstance(result, Accepted):
                self.shadow.note(result.outputs)
            want_state, want_take = record.get("state"), record.get("take")
            take = self.engine.snapshot.take
            if not isinstance(result, Accepted) or str(result.state) != want_state or take != want_take:
                self._mismatches += 1
                log.warning(
                    "the replay of a journalled command ended differently",
                    extra={
                        "command": record.get("cmd"),
                        "want": [want_state, want_take],
                        "got": [str(self.engine.state), take],
                    },
                )
                if isinstance(want_take, int) and want_take != take:
                    self.engine.set_take(want_take)  # the keys must be the live controller's
        elif kind == "event":
            assert isinstance(at, int)
            self._shadow_poll(at)
            present = record.get("present")
            self.shadow.note(
                self.engine.receive_event(
                    str(record.get("transport")), str(record.get("name")), str(record.get("sender", "")), at,
                    present=present if isinstance(present, int) else None,
                )
            )
        elif kind == "audience":
            assert isinstance(at, int)
            present, gone = record.get("present"), record.get("gone", [])
            if not isinstance(present, int) or not isinstance(gone, list):
                raise RecordError(
                    f"an audience record needs present (an integer) and gone (a list), got {record!r:.80}"
                )
            self._shadow_poll(at)
            self.shadow.note(self.engine.receive_audience(present, [str(g) for g in gone], at))
        elif kind == "degrade":
            devices = record.get("devices")
            if isinstance(devices, list):
                self.gate.degrade(str(d) for d in devices)
        elif kind == "sent":
            sends = record.get("sends")
            if not isinstance(sends, list):
                raise RecordError("a sent record needs a list of sends")
            self.shadow.begin_sent()
            for s in sends:
                if not (
                    isinstance(s, list) and len(s) >= 4 and isinstance(s[2], int) and isinstance(s[3], int)
                ):
                    raise RecordError(
                        f"a sent record's send must be [show, cue, seq, due, targets], got {s!r:.80}"
                    )
                self.shadow.note_sent((str(s[0]), str(s[1]), s[2]), s[3])
        elif kind == "left":
            self.shadow.note_left()
        elif kind == "term":
            term = record.get("term")
            if isinstance(term, int):
                self.term = max(self.term, term)
            if isinstance(at, int):
                # That takeover dealt with everything due before it (sent, or reported missed
                # then): a later takeover must not report an earlier outage's misses again.
                self._shadow_poll(at)
                self.shadow.prune(at)
        elif kind == "checkpoint":
            before = record.get("settled_before")
            if isinstance(before, int):
                self.shadow.settled_before = before
        if isinstance(at, int) and self._followed % 256 == 0:
            # Produce the outputs due by now first: pruning the sent keys of outputs the engine
            # has not produced yet would report them missed at the takeover.
            self._shadow_poll(at)
            self.shadow.prune(at - 30 * S)

    def step_down(self, now: int, reason: str) -> None:
        """Stop driving at once: another controller holds a higher term (it took over while this
        one was cut off from its standby). Everything handed out for later is withdrawn, nothing
        keyed is sent from now on; pings go on (docs/standby.md)."""
        if not self.live:
            return
        self.live = False
        keys = frozenset(
            s.key for _, _, s in self._pending if isinstance(s, UdpSend | MqttPublish) and s.key is not None
        )
        self._pending = [item for item in self._pending if isinstance(item[2], PingBatch)]
        heapq.heapify(self._pending)
        held = self.engine.snapshot
        if keys:
            self._withdrawn.append(Withdraw(now, keys))
        log.warning(
            "stepped down: this controller no longer drives the devices",
            extra={"reason": reason, "term": self.term, "state": str(held.state)},
        )

    def _shadow_poll(self, now: int) -> None:
        deadline = self.engine.next_deadline()
        if deadline is not None and deadline <= now:
            self.shadow.note(self.engine.poll(now))

    def take_over(self, now: int, term: int) -> Takeover:
        """Become live at ``now`` under ``term`` (claimed through the witness by the caller):
        what is still to come is sent under its own keys, what was due while no controller was
        live is reported missed and its devices get the catch-up state (controller.follower)."""
        self._shadow_poll(now)
        self.term = term
        self.live = True
        to_come, missed, uncertain, done = self.shadow.split(now)
        report = Takeover(
            at_ns=now,
            term=term,
            replayed=self._followed,
            done=done,
            to_come=sum(1 for o in to_come if isinstance(o, Fire | Ramp)),
            mismatches=self._mismatches,
            last_record_ns=self._last_record_ns,
        )
        # An action that has no send on this venue (no endpoint for its op) went to nobody anyway.
        missed = [o for o in missed if self._sends(o, o.devices, o.at)]
        for o in missed:
            report.missed.append(Missed(o.key, o.at, o.devices))
        for o in uncertain:
            report.missed.append(Missed(o.key, o.at, o.devices, uncertain=True))
        report.missed.sort(key=lambda m: (m.at_ns, m.key[2]))
        missed = [*missed, *uncertain]
        self.counters["missed_in_outage"] += len(missed)
        self._plan(to_come, now)
        devices = sorted({d for o in missed for d in o.devices})
        show_ns = self.engine.position_at(now)
        if devices and show_ns is not None:
            for device in devices:
                st = self.engine.state_for_device(device, show_ns)
                key = self._op_key("state", now)
                self._queue(self.delivery.state(device, st.params, st.osc, st.mqtt, now, key), None)
            report.caught_up = devices
        if self.journal:
            self._records.append({"k": "term", "at": now, "term": term, "controller": self.controller_id})
        self._publish_state(now, force=True)
        self.last_takeover = report
        log.warning(
            "took over the show",
            extra={
                "term": term,
                "missed": len(missed),
                "done": done,
                "to_come": report.to_come,
                "state": str(self.engine.state),
            },
        )
        return report

    def next_deadline(self) -> int | None:
        """When :meth:`poll` next has something to do (show clock); None when nothing is scheduled."""
        cands: list[int] = []
        d = self.engine.next_deadline()
        if d is not None:
            cands.append(d)
        if self._pending:
            at, _, send = self._pending[0]
            cands.append(at - self.edge_horizon_ns if send.precise else at)
        if self._withdrawn:
            return 0
        if self.sync is not None:
            p = self.sync.next_deadline()
            if p is not None:
                cands.append(p)
        keep_alive = self._keep_alive.next_ns(self.engine.state)
        if keep_alive is not None:
            cands.append(keep_alive)
        return min(cands) if cands else None

    # -- planning ----------------------------------------------------------------------------

    def _queue(self, sends: Iterable[Send | PingBatch | ModelBatch], key: Key | None) -> None:
        for s in sends:
            if key is not None and isinstance(s, UdpSend | MqttPublish) and s.key is None:
                s = replace(s, key=key)
            if isinstance(s, UdpSend) and s.degraded and s.kind is Kind.CUE:
                self.counters["degraded_sends"] += 1
            heapq.heappush(self._pending, (s.at_ns, next(self._tie), s))

    def _plan(self, outputs: Iterable[Output], now: int) -> None:
        dl = self.delivery
        safes: list[Safe] = []  # consecutive Safe outputs, planned together (see _plan_safe)
        for o in outputs:
            self.counters["outputs"] += 1
            if isinstance(o, Safe):
                safes.append(o)
                continue
            if safes:
                self._plan_safe(safes, now)
                safes = []
            if isinstance(o, Fire | Ramp | Frame):
                self._emitted(o.key[2], o.action.devices)
            if isinstance(o, Ramp) or (isinstance(o, Fire) and isinstance(o.op, MqttSend)):
                self._ahead.note(o, now)
            if isinstance(o, Fire | Frame | Ramp):
                self._queue(self._sends(o, o.devices, now), o.key)
            elif isinstance(o, StateSync):
                st = o.state
                key = self._op_key("state", now)
                self._queue(dl.state(o.device, st.params, st.osc, st.mqtt, max(now, o.at), key), None)
            elif isinstance(o, Cancel):
                self._cancel(o)
        if safes:
            self._plan_safe(safes, now)

    def _emitted(self, seq: int, devices: tuple[str, ...]) -> None:
        """Note that action ``seq`` went to ``devices`` (fire reports are checked against both)."""
        self.emitted_seqs.add(seq)
        if self._seq_from.get(seq) is devices:
            return
        self._seq_from[seq] = devices
        got = self._seq_devices.get(seq)
        if got is None:
            self._seq_devices[seq] = set(devices)
        else:
            got.update(devices)

    def _sends(self, o: Fire | Frame | Ramp, devices: Sequence[str], now: int) -> list[Send]:
        """What one engine output becomes on the wire for ``devices``, by their capabilities."""
        dl = self.delivery
        if isinstance(o, Frame):
            fade = o.action.op
            address = fade.address if isinstance(fade, Fade) else None
            topic = fade.topic if isinstance(fade, Fade) else None
            return dl.frame(o.key, o.at, devices, o.param, o.value, address, topic, now)
        if isinstance(o, Ramp):
            return dl.ramp(
                o.key, o.at, o.show_ns, devices, o.param, o.start, o.end, o.duration_ns, o.ease, now
            )
        op = o.op
        if isinstance(op, OscSend):
            return dl.osc(o.key, o.at, devices, op.address, op.args, now)
        if isinstance(op, MqttSend):
            return dl.mqtt(o.key, o.at, o.show_ns, devices, op.topic, op.payload, op.qos, op.retain, now)
        return []

    def _op_key(self, what: str, now: int) -> Key:
        """The key of a controller op (catch-up ``state``, ``safe``/panic): devices execute a key
        once, so every op gets its own, a negative ``seq`` (never an action's) from the instant in
        microseconds, strictly increasing, so that a second stop, a second seek or a controller
        restarted mid-show are never taken for a repeat (docs/protocol.md, "Cues")."""
        self._op_us = max(self._op_us + 1, now // 1000)
        self._op_seqs[-self._op_us] = None
        if len(self._op_seqs) > OP_SEQ_MEMORY:
            del self._op_seqs[next(iter(self._op_seqs))]
        return (self.show_id, what, -self._op_us)

    def _plan_safe(self, safes: list[Safe], now: int) -> None:
        """Safe states for many devices at once: the engine emits one :class:`Safe` per device,
        but ``app`` devices share group topics, so a stop or panic of the whole venue must be one
        ``panic`` on ``madang/cue``, not one publish per headset."""
        key = self._op_key("safe", now)
        by_at: dict[int, list[str]] = {}
        for o in safes:
            by_at.setdefault(max(now, o.at), []).append(o.device)
        for at, devices in by_at.items():
            self._queue(self.delivery.safe(devices, at, key), None)

    def _cancel(self, c: Cancel) -> None:
        if not c.keys:
            return
        self._ahead.cancel(c.keys, c.at)
        before = len(self._pending)
        self._pending = [
            item
            for item in self._pending
            if not (isinstance(item[2], UdpSend | MqttPublish) and item[2].key in c.keys and item[0] > c.at)
        ]
        heapq.heapify(self._pending)
        self.counters["withdrawn"] += before - len(self._pending)
        self._withdrawn.append(Withdraw(c.at, c.keys))

    # -- controller state (retained) ---------------------------------------------------------

    def state_message(self, now: int, term: int | None = None) -> bytes:
        """The retained controller state at ``now`` (docs/protocol.md), at ``term`` (default: the
        current one; a hot standby's claim names the term it claims)."""
        snap = self.engine.snapshot
        return wire.controller_state_json(
            state=str(snap.state),
            show=self.show_id,
            cue=snap.current_cue,
            standby=snap.standby_cue,
            show_ns=self.engine.position_at(now),
            at=now,
            rate=snap.rate,
            seq=self._keep_alive.seq,
            term=self._term if term is None else term,
            controller=self.controller_id,
            web=self.web_addresses,
        )

    def _publish_state(self, now: int, *, force: bool = False) -> None:
        snap = self.engine.snapshot
        if not self._keep_alive.due(snap.state, now, force=force):
            return
        body = self.state_message(now)
        publish = MqttPublish(
            at_ns=now, topic=wire.STATE_TOPIC, payload=body, kind=Kind.CONTROLLER, qos=1, retain=True
        )
        self._queue([publish], None)

    # -- receiving ---------------------------------------------------------------------------

    def receive_mqtt(self, topic: str, payload: bytes, now: int) -> None:
        """A message from the broker, received at ``now`` (subscribe to :meth:`subscriptions`).
        Device reports are decoded by :mod:`controller.wire`; anything else is an event a cue
        may wait for. What is malformed is counted, never raised."""
        if len(payload) > wire.MAX_PAYLOAD:
            self.counters["bad_messages"] += 1
            return
        root, _, kind = topic.rpartition("/")
        triggered = self._matches_trigger("mqtt", topic)
        if kind in wire.DEVICE_REPORTS:
            device = self.by_root.get(root)
            if device is not None:
                self._report(device, wire.decode_report(kind, payload), now, pong=kind == "pong")
                return
            if not triggered:  # a report from no device of the venue: not an event either
                self.counters["unknown_device"] += 1
                return
        if not triggered:
            self.counters["events_ignored"] += 1
            return
        if self.live and self.engine.state in (State.ARMED, State.PLAYING):
            self.counters["events"] += 1
            self._event("mqtt", topic, topic, now)

    def _matches_trigger(self, transport: str, name: str) -> bool:
        """Whether ``name`` matches an event trigger of the show (only those are events)."""
        # Kept per name: every heartbeat and report asks, and a device's topics are few
        # (bounded: a flood of new names only clears the memo).
        key = (transport, name)
        hit = self._trigger_memo.get(key)
        if hit is not None:
            return hit
        match = mqtt_topic_matches if transport == "mqtt" else osc_address_matches
        out = any(match(p, name) for p in self._triggers[transport])
        if len(self._trigger_memo) >= self._trigger_memo_max:
            self._trigger_memo.clear()
        self._trigger_memo[key] = out
        return out

    def _event(self, transport: str, name: str, sender: str, now: int) -> None:
        """An event to the engine's triggers; journalled while a trigger listens (a replay
        counts it the same way). For an audience share trigger, a tap counts only from a phone
        present in the trigger's zone, and goes with how many are present."""
        present: int | None = None
        trig = self.engine.audience_trigger
        if trig is not None and transport == "mqtt" and mqtt_topic_matches(trig.pattern, name):
            zone, device = name.split("/")[2:4]
            if device not in self._present.get(zone, ()):
                self.counters["taps_absent"] += 1
                return
            self._audience_sync(now)  # a share reached by fewer present starts before this tap
            present = self.present_audience(trig.zone)
        if self.journal and self.engine.listening:
            rec: dict[str, object] = {"k": "event", "at": now, "transport": transport, "name": name,
                                      "sender": sender}
            if present is not None:
                rec["present"] = present
            self._records.append(rec)
        self._plan(self.engine.receive_event(transport, name, sender, now, present=present), now)

    # -- the audience present ----------------------------------------------------------------

    def present_audience(self, zone: str | None = None) -> int:
        """How many audience slots a phone holds now: in ``zone``, or in the whole pool."""
        if zone is not None:
            return len(self._present.get(zone, ()))
        return sum(len(p) for p in self._present.values())

    def _audience_presence(self, device: str, now: int) -> None:
        """An audience slot's presence may have changed: keep the present sets, and tell a
        listening share trigger of its zone (a phone gone takes its tap with it)."""
        zone = self.venue.by_id[device].zone
        here = self.health[device].status in ("ready", "alive")
        present = self._present.setdefault(zone, set())
        if here == (device in present):
            return
        if here:
            present.add(device)
        else:
            present.discard(device)
        trig = self.engine.audience_trigger
        if trig is not None and trig.zone in (None, zone):
            self._audience_sync(now, gone=() if here else (device,))

    def _audience_sync(self, now: int, gone: tuple[str, ...] = ()) -> None:
        """Tell the listening audience share trigger (if any) how many phones are present now
        (journalled: a replay counts the same); it may start its cue."""
        trig = self.engine.audience_trigger
        if trig is None or not self.live:
            return
        present = self.present_audience(trig.zone)
        if present == self.engine.audience_present and not gone:
            return
        if self.journal:
            self._records.append({"k": "audience", "at": now, "present": present, "gone": list(gone)})
        self._plan(self.engine.receive_audience(present, gone, now), now)

    def device_filters(self) -> list[str]:
        """What to subscribe to for every device's pongs, status and fire reports (QoS 0)."""
        devices = self.venue.devices
        return [f for kind in wire.DEVICE_REPORTS for f in device_filters(devices, kind)]

    def subscriptions(self) -> list[str]:
        """Every MQTT filter a driver subscribes to for this show (QoS 0): the devices' reports
        (:meth:`device_filters`), then the show's MQTT event triggers."""
        triggers = [
            c.trigger.pattern
            for c in self.timeline.cues
            if c.trigger is not None and c.trigger.transport == "mqtt"
        ]
        return [*self.device_filters(), *triggers]

    def receive_datagram(self, data: bytes, source: tuple[str, int], now: int) -> bool:
        """A UDP datagram from ``source``, received at ``now``: OSC pongs and fire reports from a
        device's endpoint, or events. A datagram that is not OSC is counted and dropped; one from
        no device's endpoint while no OSC trigger listens is dropped undecoded (``osc_unsolicited``),
        and so is one from a source that is no device's endpoint past :data:`SOURCE_RATE_PER_S`
        (``source_rate_limited``). Returns True when something was taken in (a report, an event):
        only then has the core anything new to say (a driver need not wake up for the rest)."""
        device = self.by_endpoint.get(source)
        if device is None and not self._triggers["osc"]:
            self.counters["osc_unsolicited"] += 1  # nobody could have sent it to us: not parsed
            return False
        if device is None and not self.source_rates.allow(source, now):
            self.counters["source_rate_limited"] += 1
            return False
        try:
            packet = decode_packet(data)
        except OscDecodeError:
            self.counters["bad_messages"] += 1
            self.counters["osc_malformed"] += 1
            return False
        took = False
        for msg in messages(packet):
            report = wire.decode_osc_report(msg.address, msg.args) if device is not None else None
            if report is not None and device is not None:
                self._report(device, report, now, pong=msg.address == wire.OSC_PONG)
                took = True
            elif not self._matches_trigger("osc", msg.address):
                self.counters["events_ignored"] += 1
            elif self.live and self.engine.state in (State.ARMED, State.PLAYING):
                self.counters["events"] += 1
                sender = device or f"{source[0]}:{source[1]}"
                self._event("osc", msg.address, sender, now)
                took = True
        return took

    def receive_pongs(self, rows: I64, seqs: I64, t1: I64, t2: I64, t3: I64, received: I64) -> None:
        """Pongs already decoded into arrays, by clock-sync row (:attr:`PingSink.ids`), in order
        of receipt (``received``: each's arrival): for a driver that gathers them in bulk."""
        if self.sync is None or rows.size == 0:
            return
        ok = self.sync.receive_pong_rows(rows, seqs, t1, t2, t3, received)
        kept = int(ok.sum())
        self.counters["pongs"] += kept
        self.counters["pongs_dropped"] += int(rows.size) - kept
        by_row = self._health_by_row
        for r, now in zip(rows.tolist(), received.tolist(), strict=True):
            h = by_row[r]
            h.last_seen_ns = now
            if h.status == "unknown":
                h.status = "alive"

    def take_fired(self) -> Sequence[tuple[str, wire.Fired]]:
        """The fire reports received since the last call, with their devices, oldest first (for
        telemetry: :class:`~controller.player.Player` takes them)."""
        if not self._fired:
            return ()
        out, self._fired = self._fired, []
        return out

    def _report(self, device: str, msg: wire.Report | wire.Malformed, now: int, *, pong: bool) -> None:
        if not pong and not self.device_rates.allow(device, now):
            self.counters["device_rate_limited"] += 1
            return
        if isinstance(msg, wire.Malformed):
            if msg.parsed:
                self.presence.seen(device, now)
            self.counters["pongs_dropped" if pong and msg.parsed else "bad_messages"] += 1
            return
        if isinstance(msg, wire.Pong):
            sync = self.sync
            ok = sync is not None and sync.receive_pong(device, msg.seq, msg.t1, msg.t2, msg.t3, now)
            self.counters["pongs" if ok else "pongs_dropped"] += 1
            self.presence.answered(device, now)
        elif isinstance(msg, wire.Status):
            vacant = device in self._pooled and self.health[device].status == "vacant"
            ready, rebooted = self.presence.receive_status(device, msg, now)
            if device in self._pooled:
                rebooted = self._pool_presence(device, ready, vacant) or rebooted
                self._audience_presence(device, now)
            if ready and (self._late_join_ok() or (rebooted and self.sync is not None)):
                last = self._late_join_at.get(device)
                if last is not None and now - last < self.late_join_every_ns:
                    self.counters["late_joins_limited"] += 1  # a flood of statuses, forged or not
                    return
                self._late_join_at[device] = now
            if ready and self._late_join_ok():
                # Every (re)connection mid-show gets catch-up state (docs/protocol.md); clock sync
                # starts over only when the device really restarted (a new boot instant).
                self._late_join(device, now, rebooted=rebooted)
            elif ready and rebooted and self.sync is not None:
                self._restart_sync(device, now)  # not playing: no catch-up, but its sync starts over
        else:
            why = self._implausible(device, msg)
            if why is not None:
                self.counters[why] += 1
                return
            self.presence.seen(device, now).fired += 1
            self.counters["fired"] += 1
            self._fired.append((device, msg))
            if len(self._fired) > 100_000:  # nobody takes them: keep the newest
                del self._fired[:50_000]

    def _implausible(self, device: str, msg: wire.Fired) -> str | None:
        """Why a fire report cannot be true (the counter to bump), or None: it must name a seq this
        controller sent (an action's, or a recent op's), an action's only from a device it was
        sent to, of the current take when it names the show, and a device's repeat of a report
        is counted once."""
        seq = msg.seq
        if seq is None or (seq not in self.emitted_seqs if seq >= 0 else seq not in self._op_seqs):
            return "fired_implausible"
        if seq >= 0 and device not in self._seq_devices.get(seq, ()):
            return "fired_untargeted"  # a cue sent, but not to this device: it cannot have fired it
        take = self.engine.snapshot.take
        if msg.show is not None:
            show_key = self.timeline.show if take == 1 else f"{self.timeline.show} #{take}"
            if msg.show != show_key and msg.show != self.show_id:
                return "fired_implausible"
        if take != self._acked_take:  # a new take reuses the seqs: forget the old reports
            self._acked.clear()
            self._acked_take = take
        seen = self._acked.setdefault(device, {})
        key = (msg.show, seq)
        if key in seen:
            return "fired_duplicate"
        seen[key] = None
        if len(seen) > FIRE_MEMORY:
            del seen[next(iter(seen))]
        return None

    def _pool_presence(self, device: str, ready: bool, vacant: bool) -> bool:
        """An audience slot (venues.model.AudiencePool) was taken (``ready``) or left. A slot
        taken while vacant starts its clock sync (with a burst: returns True, and the caller
        resets it); one that says ready again keeps it unless the phone restarted (a new boot);
        a slot left is vacant and no longer pinged."""
        if ready:
            return vacant
        h = self.health[device]
        if h.status == "offline":
            h.status = "vacant"
            if self.sync is not None:
                self.sync.leave(device)
        return False

    def _late_join_ok(self) -> bool:
        return self.live and self.engine.state in (State.PLAYING, State.PAUSED)

    def _restart_sync(self, device: str, now: int) -> None:
        """A device says it restarted: its clock sync starts over, at most once every
        :data:`SYNC_RESTART_EVERY_NS` (a forged status cannot keep a device from ever settling)."""
        assert self.sync is not None
        last = self._sync_restart_at.get(device)
        if last is not None and now - last < SYNC_RESTART_EVERY_NS:
            self.counters["sync_restarts_limited"] += 1
            return
        self._sync_restart_at[device] = now
        self.sync.reset(device)

    def _late_join(self, device: str, now: int, *, rebooted: bool) -> None:
        """A device (re)joined mid-show: restart its clock sync and send it the state it should show."""
        if rebooted and self.sync is not None:
            self._restart_sync(device, now)
        show_ns = self.engine.position_at(now)
        if show_ns is None:
            return
        st = self.engine.state_for_device(device, show_ns)
        self.counters["late_joins"] += 1
        log.info(
            "device joined mid-show; sending catch-up state",
            extra={"device": device, "show_ns": show_ns},
        )
        self._queue(
            self.delivery.state(device, st.params, st.osc, st.mqtt, now, self._op_key("state", now)), None
        )
        # What went out ahead to its groups and is still to fire, it gets again on its own
        # (controller.latejoin); it deduplicates by key, so a copy it did get is harmless.
        for o in self._ahead.for_device(device, now):
            sends = self._sends(o, [device], now)
            self.counters["resent_ahead"] += len(sends)
            self._queue(sends, o.key)

    # -- clock sync --------------------------------------------------------------------------

    def _sync_tick(self, now: int) -> None:
        assert self.sync is not None
        rows, seqs = self.sync.due_rows(now)
        if rows.size:
            self._queue([PingBatch(now, rows, seqs)], None)
        rows = self.sync.update_rows(now)
        if rows.size and self.live:  # a follower keeps its models; the live controller's stand
            self._queue([ModelBatch(now, rows, *self.sync.model_rows(rows))], None)

    def expand(self, batch: PingBatch | ModelBatch, t1: int) -> list[Send]:
        """The sends of a batch, each to its device by its capability: a ping over OSC to a
        ``timetag`` or ``echo`` device with an endpoint, else over MQTT; a clock model over MQTT,
        retained. Pings are stamped ``t1`` (a driver that can, re-stamps each as it leaves:
        :func:`~controller.delivery.restamp`)."""
        assert self.sync is not None
        ids = self.sync.ids
        out: list[Send] = []
        if isinstance(batch, PingBatch):
            for row, seq in zip(batch.rows.tolist(), batch.seqs.tolist(), strict=True):
                device = ids[row]
                dev = self.venue.device(device)
                ep = self.delivery.endpoint(dev)
                if dev.sync in (Sync.TIMETAG, Sync.ECHO) and ep is not None:
                    data = wire.ping_osc(seq, t1)
                    out.append(
                        UdpSend(at_ns=batch.at_ns, device=device, addr=ep, data=data, kind=Kind.PING, seq=seq)
                    )
                elif dev.mqtt is not None or dev.ws is not None:  # WebSocket: the same topics
                    out.append(
                        MqttPublish(
                            at_ns=batch.at_ns,
                            topic=f"{self.root[device]}/{wire.PING_LEVEL}",
                            payload=wire.ping_json(seq, t1),
                            kind=Kind.PING,
                            device=device,
                            seq=seq,
                        )
                    )
            return out
        each = zip(
            batch.rows.tolist(),
            batch.epoch.tolist(),
            batch.offset_ns.tolist(),
            batch.drift_ppb.tolist(),
            batch.uncertainty_ns.tolist(),
            strict=True,
        )
        for row, e, o, d, u in each:
            device = ids[row]
            out.append(
                MqttPublish(
                    at_ns=batch.at_ns,
                    topic=f"{self.root[device]}/{wire.CLOCK_LEVEL}",
                    payload=wire.clock_json(e, o, d, u, term=self._term),
                    kind=Kind.CLOCK,
                    qos=1,
                    retain=True,
                    device=device,
                )
            )
        return out

    # -- telemetry ---------------------------------------------------------------------------

    def presence_counts(self, now: int, *, offline_after_ns: int = 12 * S) -> dict[str, int]:
        """Counts for the operator: online, late (no news for a while), offline, unknown."""
        return self.presence.counts(now, offline_after_ns=offline_after_ns)


def show_slug(name: str) -> str:
    """A show's id on the wire and on disk: lower case, runs of other characters as one '-'."""
    return _slug(name)


def _slug(name: str) -> str:
    dashed = "".join(ch if ch.isalnum() else "-" for ch in name.lower())
    slug = "-".join(p for p in dashed.split("-") if p)
    return slug or "show"
