"""Driving device cores in virtual time: the same cores as in real time, over a VirtualNetwork.

:class:`VirtualDriver` owns a :class:`~simulators.vtime.VirtualTime` and a
:class:`~simulators.vtime.VirtualNetwork`, plugs every core into it (OSC displays as datagram
endpoints named by device id, app devices as pub/sub clients with their last will), reschedules
each core's :meth:`tick` at its ``due_at()``, and offers the controller side as
:class:`VirtualController`: send OSC to a device, publish, subscribe, receive.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from simulators.clock import ClockTable
from simulators.devices._wire import BadInput, decode_json, encode_json
from simulators.devices.app import HEARTBEAT_NS, AppDevice
from simulators.devices.messages import Datagram, Publish
from simulators.devices.osc_display import OscDisplay
from simulators.network import Path, Profile, stream_delays
from simulators.vtime import Handle, VirtualNetwork, VirtualTime

__all__ = ["CONTROLLER", "SyncLane", "VirtualController", "VirtualDriver"]

CONTROLLER = "controller"  # the controller's endpoint name on the virtual network
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
_DECODE_CACHE = 1024  # decoded payloads kept (a fan-out's deliveries come close together)
_DRAW_BLOCK = 8192  # the sync lane's delays drawn ahead per profile and way


class VirtualController:
    """The controller's side of a virtual venue: what a controller adapter calls.

    ``send_osc(device_id, data)`` sends a datagram to a display; replies arrive at
    ``on_datagram(device_id, data, true_now)``. ``publish`` / ``subscribe`` talk to the virtual
    broker; messages arrive at ``on_message(topic, payload, true_now)``. Set the two callbacks
    before running time.
    """

    def __init__(self, net: VirtualNetwork) -> None:
        self.net = net
        self.on_datagram: Callable[[str, bytes, int], None] = lambda _s, _d, _t: None
        self.on_message: Callable[[str, bytes, int], None] = lambda _t, _p, _n: None
        net.attach(CONTROLLER, self._datagram)
        net.connect(CONTROLLER, self._message)

    @property
    def now(self) -> int:
        """True (= show clock) now."""
        return self.net.vt.now

    def _datagram(self, src: str, data: bytes, now: int) -> None:
        self.on_datagram(src, data, now)

    def _message(self, topic: str, payload: bytes, now: int) -> None:
        self.on_message(topic, payload, now)

    def send_osc(self, device_id: str, data: bytes) -> None:
        """Send one OSC datagram to a display now."""
        self.net.send_datagram(CONTROLLER, device_id, data)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish on the virtual broker now."""
        self.net.publish(CONTROLLER, topic, payload, retain=retain)

    def subscribe(self, filter_: str) -> None:
        """Subscribe to a topic filter (``+``/``#`` allowed)."""
        self.net.subscribe(CONTROLLER, filter_)


class VirtualDriver:
    """Plugs device cores into virtual time and network. See the module docstring."""

    def __init__(self, vt: VirtualTime, net: VirtualNetwork) -> None:
        self.vt = vt
        self.net = net
        self.controller = VirtualController(net)
        self._timers: dict[str, Handle] = {}
        self.before_message: Callable[[str, int], None] | None = None
        """Called with ``(device, now)`` before an app device handles a message (a sync lane
        applies the clock models that reached it by then)."""
        self._decode_cache: dict[int, tuple[bytes, dict[str, Any] | None]] = {}

    # -- OSC displays ---------------------------------------------------------------------------
    def add_display(self, core: OscDisplay, path: Path) -> None:
        """Put a display on the network behind ``path``."""
        did = core.device.id

        def on_datagram(src: str, data: bytes, now: int) -> None:
            self._send_datagrams(did, core.receive(data, now, src))
            self._reschedule(did, core.due_at(), self._tick_display, core)

        self.net.attach(did, on_datagram, path)

    def _send_datagrams(self, did: str, out: list[Datagram]) -> None:
        for d in out:
            self.net.send_datagram(did, str(d.to), d.data)

    def _tick_display(self, core: OscDisplay) -> None:
        did = core.device.id
        self._timers.pop(did, None)
        self._send_datagrams(did, core.tick(self.vt.now))
        self._reschedule(did, core.due_at(), self._tick_display, core)

    # -- app devices ----------------------------------------------------------------------------
    def add_app(self, core: AppDevice, path: Path) -> None:
        """Put an app device on the network behind ``path`` and connect it to the broker now."""
        self.net.attach(core.device.id, None, path)
        self.connect_app(core)

    def connect_app(self, core: AppDevice) -> None:
        """(Re)connect an app device: last will, subscriptions, ``ready``."""
        did = core.device.id
        will = core.will()
        timers = self._timers

        def on_message(topic: str, payload: bytes, now: int) -> None:
            hook = self.before_message
            if hook is not None:
                hook(did, now)
            msg = self._decoded(payload)
            # Bad input (None): the core decodes it again, then drops and counts it.
            out = core.receive(topic, payload, now) if msg is None else core.receive_decoded(topic, msg, now)
            if out:
                self._publish(did, out)
            when = core.due_at()
            old = timers.get(did)
            if old is None:
                if when is not None:
                    timers[did] = self.vt.call_at(when, self._tick_app, core)
            elif old.when != when or old.cancelled:  # else: the timer stands
                self._reschedule(did, when, self._tick_app, core)

        self.net.connect(did, on_message, will=(will.topic, will.payload))
        for f in core.subscriptions():
            self.net.subscribe(did, f)
        self._publish(did, core.connect(self.vt.now))
        self._reschedule(did, core.due_at(), self._tick_app, core)

    def _decoded(self, payload: bytes) -> dict[str, Any] | None:
        """``payload`` decoded, once for every device it reaches (``None``: bad input).

        The virtual broker hands the same bytes object to every subscriber of a publish, so the
        cache is keyed by identity; it holds the bytes, so an identity cannot be reused meanwhile.
        """
        hit = self._decode_cache.get(id(payload))
        if hit is not None and hit[0] is payload:
            return hit[1]
        try:
            msg: dict[str, Any] | None = decode_json(payload)
        except BadInput:
            msg = None
        cache = self._decode_cache
        if len(cache) >= _DECODE_CACHE:
            cache.clear()
        cache[id(payload)] = (payload, msg)
        return msg

    def _publish(self, did: str, out: list[Publish]) -> None:
        for p in out:
            self.net.publish(did, p.topic, p.payload, retain=p.retain)

    def _tick_app(self, core: AppDevice) -> None:
        did = core.device.id
        self._timers.pop(did, None)
        self._publish(did, core.tick(self.vt.now))
        self._reschedule(did, core.due_at(), self._tick_app, core)

    # -- timers ---------------------------------------------------------------------------------
    def _reschedule(self, did: str, when: int | None, fn: Callable[..., object], core: object) -> None:
        old = self._timers.get(did)
        if old is not None:
            if old.when == when and not old.cancelled:
                return
            old.cancel()
            del self._timers[did]
        if when is not None:
            self._timers[did] = self.vt.call_at(when, fn, core)

    def cancel_timer(self, did: str) -> None:
        """Forget a device's pending tick (it crashed)."""
        old = self._timers.pop(did, None)
        if old is not None:
            old.cancel()


class SyncLane:
    """The routine traffic of MQTT headsets in virtual time, as arrays: clock-sync pings, pongs
    and models, and the ``alive`` heartbeats.

    At ten thousand headsets nineteen messages in twenty are these, and carried one by one (a
    JSON body, an event at the broker and one at each end) they cost most of a virtual show.
    The lane computes a whole batch at once, when it is sent: each ping's trip to its headset
    (the controller's LAN uplink, kept in order, then the headset's own downlink), the headset's
    clock reading at the instant it arrives (``t2``, from a
    :class:`~simulators.clock.ClockTable`), and its pong's trip back (the headset's uplink, then
    the LAN); each clock model's trip, the same way down; each heartbeat's trip up. Delays are
    drawn from the same profiles as every other stream message
    (:func:`~simulators.network.stream_delays`, a partition holds a message until it ends), and
    each headset's downlink and uplink stay FIFO among the lane's messages. A headset that is
    not connected when a message leaves never gets it; one that disconnects or crashes drops
    every ping and model that had not reached it yet.

    Pongs and heartbeats wait in arrays sorted by arrival until the harness takes them
    (:meth:`take`, :meth:`take_alive`). A model takes effect at the instant it reaches its
    headset: the lane sets it before anything else the headset receives from then on
    (:attr:`VirtualDriver.before_message`) and at each :meth:`take`. Heartbeats start on each
    connection as :meth:`AppDevice.tick` would start them (the lane takes them over with
    :meth:`AppDevice.hand_over_heartbeats`). What differs from the message path is said in
    ``docs/simulators.md`` ("The sync lane").

    The harness binds it to the controller's clock-sync rows (:meth:`bind`) and hands it the
    rows of the core's ping and model batches that it carries (:meth:`pings`, :meth:`models`,
    see :func:`simulators.harness.play_virtual`); the harness takes the pongs that have reached
    the controller with :meth:`take` and gives them to :meth:`ControllerCore.receive_pongs`, and
    the heartbeats with :meth:`take_alive`, as the status messages the controller receives.
    ``on_pong(t4)`` is called when a pong will reach the controller before ``next_take`` (the
    harness's next poll), so that it can poll earlier.
    """

    _FIELDS = 6  # pending pongs: row, seq, t1, t2, arrival at the headset, t4
    _MODEL_FIELDS = 7  # pending models: row, arrival at the headset, epoch, offset_ns, drift_ppb,
    # uncertainty_ns, term

    def __init__(self, driver: VirtualDriver, apps: Mapping[str, AppDevice]) -> None:
        self.vt = driver.vt
        self.net = driver.net
        self._apps = apps
        self.on_pong: Callable[[int], None] = lambda _t4: None
        self.next_take: int | None = None
        self.ping_bursts = 1
        """How many of the runtime's ping bursts one batch of :meth:`pings` stands for: on a sync
        grid coarser than the runtime's tick (``play_virtual(sync_quantum_ns=...)``), a batch
        holds the pings of grid/tick ticks, and on one FIFO stream the last of 500 pings sent at
        once would wait for the slowest of 500 delays, a queue the runtime never builds (its
        bursts are 25 times smaller). The pings keep their true ``t1``; only the queue is the
        runtime's. docs/simulators.md, "The sync lane"."""
        self._gen = np.random.Generator(np.random.PCG64([self.vt.seed % (1 << 64), 0x51A9E]))
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._app_of: list[AppDevice | None] = []
        self._paths: list[Path] = []
        self._profiles: list[Profile] = []
        self._profile_of: I64 = np.zeros(0, dtype=np.int64)
        self._live: Bools = np.zeros(0, dtype=np.bool_)
        self._last_down: I64 = np.zeros(0, dtype=np.int64)
        self._last_up: I64 = np.zeros(0, dtype=np.int64)
        self._clocks = ClockTable(0)
        self._ctl_last_up = 0
        self._pending: I64 = _empty(self._FIELDS)
        self._models: I64 = _empty(self._MODEL_FIELDS)
        self._latest: I64 = _empty(5)  # per row (a column): the last model sent (with its term), retained
        self._has_latest: Bools = np.zeros(0, dtype=np.bool_)
        self._beat_due: I64 = np.zeros(0, dtype=np.int64)  # per row: next heartbeat (_NEVER: none)
        self._beats: I64 = _empty(3)  # pending heartbeats: row, arrival at the controller, sent
        self._states: I64 = _empty(3)  # pending controller states: row, arrival, index into _state_msgs
        self._state_msgs: list[dict[str, Any]] = []
        self._names: frozenset[str] = frozenset()
        self._drawn: dict[tuple[Profile, bool], tuple[I64, int]] = {}  # per profile and way: block, next
        self._cut: Bools = np.zeros(0, dtype=np.bool_)  # per row: its path has partitions
        self._answered: I64 = np.zeros(0, dtype=np.int64)  # per row: pings answered
        self._cuts_seen = -1
        self.net.on_presence = self._presence
        driver.before_message = self._settle

    def bind(self, ids: Sequence[str]) -> None:
        """Rows of :meth:`pings` index ``ids`` (the controller's clock-sync devices); the lane
        takes over the heartbeats of the headsets among them."""
        n = len(ids)
        self._ids = list(ids)
        self._row = {did: r for r, did in enumerate(ids) if did in self._apps}
        self._app_of = [self._apps.get(did) for did in ids]
        self._paths = [self.net.path_of(did) for did in ids]
        kinds: dict[Profile, int] = {}
        self._profile_of = np.array(
            [kinds.setdefault(p.profile, len(kinds)) for p in self._paths], dtype=np.int64
        )
        self._profiles = list(kinds)
        self._live = np.zeros(n, dtype=np.bool_)
        self._last_down = np.zeros(n, dtype=np.int64)
        self._last_up = np.zeros(n, dtype=np.int64)
        self._clocks = ClockTable(n)
        self._latest = np.zeros((5, n), dtype=np.int64)
        self._has_latest = np.zeros(n, dtype=np.bool_)
        self._beat_due = np.full(n, _NEVER, dtype=np.int64)
        self._names = frozenset(self._row)
        self._cuts_seen = -1
        self._answered = np.zeros(n, dtype=np.int64)
        for did, r in self._row.items():
            self._presence(did, self.net.is_connected(did))
            app = self._apps[did]
            nxt = app.hand_over_heartbeats()
            self._beat_due[r] = _NEVER if nxt is None or not self._live[r] else nxt

    def _presence(self, did: str, connected: bool) -> None:
        r = self._row.get(did)
        if r is None:
            return
        app = self._app_of[r]
        assert app is not None
        now = self.vt.now
        self._live[r] = connected  # a crash disconnects (SimulatedVenue.crash)
        if connected:
            self._clocks.set(r, app.clock, now)  # it may have rebooted with a stepped clock
            self._beat_due[r] = now + HEARTBEAT_NS  # as AppDevice.connect starts them
            if self._has_latest[r]:
                # The broker holds the last model sent, retained: the headset reads it when it
                # subscribes, right after this (the lane writes it only when someone can read it).
                e, o, d, u, t = self._latest[:, r].tolist()
                body = {"epoch": e, "offset_ns": o, "drift_ppb": d, "uncertainty_ns": u}
                if t:
                    body["term"] = t
                self.net.retain(f"{app.base}/clock", encode_json(body))
            return
        self._beat_due[r] = _NEVER
        # Gone: the pings, models and states that had not reached it yet are lost with the
        # connection; one that had, and was not yet applied, takes effect (a clean disconnect
        # keeps it).
        self.flush_models(now - 1)
        lost = 0
        for name, when in (("_pending", 4), ("_models", 1), ("_states", 1)):
            p: I64 = getattr(self, name)
            gone = (p[0] == r) & (p[when] >= now)
            if gone.any():
                lost += int(gone.sum())
                setattr(self, name, p[:, ~gone])
        self.net.dropped += lost

    def _draw(self, p: Profile, n: int, *, up: bool) -> I64:
        """The next ``n`` stream delays of profile ``p`` one way, from blocks drawn ahead."""
        block, i = self._drawn.get((p, up), (np.zeros(0, dtype=np.int64), 0))
        if i + n > block.size:
            block, i = np.concatenate([block[i:], stream_delays(self._gen, p, max(n, _DRAW_BLOCK), up=up)]), 0
        self._drawn[p, up] = (block, i + n)
        return block[i : i + n].copy()

    def _delays(self, rows: I64, at: I64, *, up: bool) -> I64:
        """One stream delay per row, each from its own path's profile, held by partitions."""
        if len(self._profiles) == 1:
            d = self._draw(self._profiles[0], rows.size, up=up)
        else:
            kinds = self._profile_of[rows]
            d = np.zeros(rows.size, dtype=np.int64)
            for k in np.unique(kinds).tolist():
                sel = kinds == k
                d[sel] = self._draw(self._profiles[k], int(sel.sum()), up=up)
        if self._cuts_seen != Path.cuts:  # a partition was set somewhere since last looked
            self._cuts_seen = Path.cuts
            self._cut = np.array([p.has_partitions for p in self._paths], dtype=np.bool_)
        cut = np.flatnonzero(self._cut[rows])
        paths = self._paths
        for i in cut.tolist():
            t = int(at[i])
            until = paths[int(rows[i])].partitioned_until(t)
            if until is not None:
                d[i] += until - t
        return d

    def _uplink(self, k: int, now: int, bursts: int = 1) -> I64:
        """When ``k`` messages the controller sends now, in order, reach the broker.

        ``bursts`` > 1: the ``k`` messages stand for that many bursts which the runtime would
        have sent on its own tick, spread over the sync grid's quantum (:attr:`ping_bursts`);
        each burst keeps its order behind the one before it only where their delays overlap,
        as bursts a tick apart would."""
        left = now + self._draw(self.net.lan.profile, k, up=True)
        left[0] = max(int(left[0]), self._ctl_last_up)
        if bursts <= 1 or k <= 1:
            at: I64 = np.maximum.accumulate(left)
        else:
            # The FIFO within each burst only: a message waits for those sent just before it,
            # not for the slowest of the whole grid's batch.
            size = -(-k // bursts)
            at = left.copy()
            for i in range(0, k, size):
                at[i : i + size] = np.maximum.accumulate(left[i : i + size])
        self._ctl_last_up = int(at.max())
        return at

    def _hop(self, rows: I64, at: I64, *, up: bool) -> I64:
        """When messages sent at ``at`` reach the other end of each headset's own path: the
        broker (``up``, from headsets ``rows``) or the headsets ``rows``; FIFO per headset and way."""
        last = self._last_up if up else self._last_down
        if np.unique(rows).size == rows.size:
            out: I64 = np.maximum(at + self._delays(rows, at, up=up), last[rows])
            last[rows] = out
            return out
        # The same headset twice: its n-th message after its (n-1)-th, in order.
        out = np.empty(rows.size, dtype=np.int64)
        for m in _levels(rows):
            out[m] = self._hop(rows[m], at[m], up=up)
        return out

    def pings(self, rows: I64, seqs: I64, t1: int) -> None:
        """Send row ``rows[i]`` a ping ``seqs[i]`` stamped ``t1`` (= now), in order."""
        k = rows.size
        if k == 0:
            return
        net = self.net
        net.sent += k
        at = self._uplink(k, t1, self.ping_bursts)  # the controller's uplink: one stream, in order
        live = self._live[rows]
        if not live.all():
            net.dropped += int(k - live.sum())  # the broker has no connection to send it on
            rows, seqs, at = rows[live], seqs[live], at[live]
            if rows.size == 0:
                return
        arrive = self._hop(rows, at, up=False)
        t2 = self._clocks.local(rows, arrive)  # the headset answers at once: t3 = t2
        leave = self._hop(rows, arrive, up=True)
        t4 = leave + self._draw(net.lan.profile, rows.size, up=False)
        batch = np.stack([rows, seqs, np.full(rows.size, t1, dtype=np.int64), t2, arrive, t4])
        self._pending = _merge(self._pending, batch, 5)
        first = int(t4.min())
        if self.next_take is None or first < self.next_take:
            self.on_pong(first)

    def models(
        self,
        rows: I64,
        epoch: I64,
        offset_ns: I64,
        drift_ppb: I64,
        uncertainty_ns: I64,
        now: int,
        term: int = 0,
    ) -> None:
        """Send row ``rows[i]`` its clock model now (the fields of the protocol's clock message,
        under the controller's ``term``; ``0``: none), retained; it takes effect when it reaches
        the headset, which drops it if the term is below the highest it has seen."""
        k = rows.size
        if k == 0:
            return
        net = self.net
        net.sent += k
        at = self._uplink(k, now)  # on the controller's uplink, in order with its pings
        fields = np.stack([epoch, offset_ns, drift_ppb, uncertainty_ns, np.full(k, term, dtype=np.int64)])
        self._latest[:, rows] = fields
        self._has_latest[rows] = True
        live = self._live[rows]
        if not live.all():
            net.dropped += int(k - live.sum())
            rows, at, fields = rows[live], at[live], fields[:, live]
            if rows.size == 0:
                return
        arrive = self._hop(rows, at, up=False)
        self._models = _merge(self._models, np.concatenate([np.stack([rows, arrive]), fields]), 1)

    def _settle(self, _did: str, now: int) -> None:
        """Before a headset handles a message at ``now``: every model and controller state that
        has reached its headset by then takes effect (in one pass; both wait sorted by arrival)."""
        m, st = self._models, self._states
        if (m.shape[1] and m[1, 0] <= now) or (st.shape[1] and st[1, 0] <= now):
            self.flush_models(now)

    def _apply(self, got: I64) -> None:
        apps = self._app_of
        for r, at, e, o, d, u, t in zip(*(a.tolist() for a in got), strict=True):
            app = apps[r]
            assert app is not None
            if app.alive:
                app.set_model(e, o, d, u, t, at)
        self.net.delivered += got.shape[1]

    def controller_state(self, payload: bytes, now: int, *, retain: bool) -> None:
        """The controller publishes its state (``madang/controller/state``, to every headset) now:
        the lane carries it to its connected headsets, which take it when it arrives (its term
        raises their floor, or it is dropped as stale); the broker delivers it to every other
        subscriber and keeps it retained."""
        net = self.net
        net.publish(CONTROLLER, "madang/controller/state", payload, retain=retain, skip=self._names)
        rows = np.flatnonzero(self._live)
        try:
            msg = decode_json(payload)
        except BadInput:
            return  # the headsets would drop and count it; the controller never sends one
        if rows.size == 0:
            return
        net.sent += rows.size - 1  # (publish counted one)
        at = np.full(rows.size, int(self._uplink(1, now)[0]), dtype=np.int64)
        arrive = self._hop(rows, at, up=False)
        self._state_msgs.append(msg)
        k = len(self._state_msgs) - 1
        batch = np.stack([rows, arrive, np.full(rows.size, k, dtype=np.int64)])
        self._states = _merge(self._states, batch, 1)

    def _apply_states(self, got: I64) -> None:
        apps, msgs = self._app_of, self._state_msgs
        for r, at, k in zip(got[0].tolist(), got[1].tolist(), got[2].tolist(), strict=True):
            app = apps[r]
            assert app is not None
            if app.alive:
                app.receive_controller_state(msgs[k], at)
        self.net.delivered += got.shape[1]

    def flush_models(self, now: int) -> None:
        """Apply every model and controller state that has reached its headset by ``now``
        (:meth:`take` does it too)."""
        got, self._states = _arrived(self._states, 1, now)
        if got.shape[1]:
            self._apply_states(got)
            if self._states.shape[1] == 0:
                self._state_msgs.clear()
        got, self._models = _arrived(self._models, 1, now)
        if got.shape[1]:
            self._apply(got)

    def take(self, now: int) -> tuple[I64, I64, I64, I64, I64, I64]:
        """The pongs that have reached the controller by ``now``, in order of arrival, as
        arrays ``(rows, seqs, t1, t2, t3, t4)`` (``t3`` is ``t2``: the headset answers at once),
        as :meth:`ControllerCore.receive_pongs` takes them. The models that have reached
        their headsets by ``now`` are applied first."""
        self.flush_models(now)
        got, self._pending = _arrived(self._pending, 5, now)
        i = got.shape[1]
        if i:
            self.net.delivered += 2 * i  # the ping, then its pong
            self.net.sent += i
            np.add.at(self._answered, got[0], 1)
        return got[0], got[1], got[2], got[3], got[3], got[5]

    def answered(self, did: str) -> int:
        """How many of the lane's pings headset ``did`` has answered (counted when the pong
        reaches the controller; on the message path :attr:`AppDevice.pings` counts them)."""
        r = self._row.get(did)
        return 0 if r is None else int(self._answered[r])

    def take_alive(self, now: int) -> list[tuple[str, bytes, int]]:
        """The heartbeats that have reached the controller by ``now``, in order of arrival: each
        headset, its ``alive`` status message (the bytes :class:`AppDevice` would publish on its
        ``status`` topic) and the instant it arrives, for the controller to receive as any
        other MQTT message.

        Each connected headset sends one every ``HEARTBEAT_NS`` (5 s) from when it connected,
        at that exact instant, up its own path (a partition holds it); they are computed here,
        once their instant has come."""
        due = np.flatnonzero(self._beat_due <= now)
        while due.size:
            sent = self._beat_due[due]
            arrive = self._hop(due, sent, up=True) + self._draw(self.net.lan.profile, due.size, up=False)
            self._beats = _merge(self._beats, np.stack([due, arrive, sent]), 1)
            self._beat_due[due] = sent + HEARTBEAT_NS
            self.net.sent += due.size
            due = np.flatnonzero(self._beat_due <= now)
        got, self._beats = _arrived(self._beats, 1, now)
        if got.shape[1] == 0:
            return []
        self.net.delivered += got.shape[1]
        ids, apps = self._ids, self._app_of
        local = self._clocks.local(got[0], got[2]).tolist()
        out: list[tuple[str, bytes, int]] = []
        for r, at, t in zip(got[0].tolist(), got[1].tolist(), local, strict=True):
            app = apps[r]
            assert app is not None
            out.append((ids[r], app.status_message("alive", t), at))
        return out

    def next_at(self) -> int | None:
        """When the controller should next look (None: nothing in flight or due): the next pong
        or heartbeat to reach it, or the next heartbeat to leave."""
        nxt = [int(self._pending[5, 0])] if self._pending.shape[1] else []
        if self._beats.shape[1]:
            nxt.append(int(self._beats[1, 0]))
        if self._beat_due.size:
            due = int(self._beat_due.min())
            if due != _NEVER:
                nxt.append(due)
        return min(nxt) if nxt else None


_NEVER = np.iinfo(np.int64).max


def _empty(fields: int) -> I64:
    return np.zeros((fields, 0), dtype=np.int64)


def _merge(pending: I64, batch: I64, key: int) -> I64:
    """``batch`` merged into ``pending`` (both sorted by row ``key``; ties keep pending first)."""
    if pending.shape[1] == 0:
        out: I64 = batch[:, np.argsort(batch[key], kind="stable")]
        return out
    merged = np.concatenate([pending, batch], axis=1)
    out = merged[:, np.argsort(merged[key], kind="stable")]
    return out  # noqa: RET504 (typed for mypy)


def _arrived(pending: I64, key: int, now: int) -> tuple[I64, I64]:
    """``pending`` (sorted by row ``key``, an arrival) split into what has arrived by ``now``
    and the rest."""
    i = int(np.searchsorted(pending[key], now, side="right"))
    return pending[:, :i], pending[:, i:]


def _levels(rows: I64) -> list[Bools]:
    """Masks over ``rows``: the first occurrence of each row, the second, and so on."""
    seen: dict[int, int] = {}
    nth = np.empty(rows.size, dtype=np.int64)
    for i, r in enumerate(rows.tolist()):
        nth[i] = seen[r] = seen.get(r, -1) + 1
    return [nth == j for j in range(int(nth.max()) + 1)]
