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
from simulators.devices._wire import BadInput, decode_json
from simulators.devices.app import AppDevice
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
            msg = self._decoded(payload)
            # Bad input (None): the core decodes it again, then drops and counts it.
            out = core.receive(topic, payload, now) if msg is None else core.receive_decoded(topic, msg, now)
            if out:
                self._publish(did, out)
            when = core.due_at()
            old = timers.get(did)
            if old is None or old.when != when or old.cancelled:  # else: the timer stands
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
    """The clock-sync traffic of MQTT headsets in virtual time, as arrays.

    At ten thousand headsets nine messages in ten are pings, pongs and clock models, and carried
    one by one (a JSON body, an event at the broker and one at each end) they cost most of a
    virtual show. The lane computes a whole batch of pings at once, when the controller sends
    it: each ping's trip to its headset (the controller's LAN uplink, kept in order, then the
    headset's own downlink), the headset's clock reading at the instant it arrives (``t2``, from
    a :class:`~simulators.clock.ClockTable`), and its pong's trip back (the headset's uplink, then
    the LAN). Delays are drawn from the same profiles as every other stream message
    (:func:`~simulators.network.stream_delays`, a partition holds a message until it ends), and
    each headset's downlink and uplink stay FIFO. Pongs wait in arrays sorted by arrival until
    the harness takes them (:meth:`take`). A headset that is not connected when a ping leaves
    never gets it; one that disconnects or crashes drops every ping that had not reached it yet.
    Clock models go one by one, through :meth:`AppDevice.receive`, at the instant each arrives.
    What differs from the message path is said in ``docs/simulators.md`` ("The sync lane").

    It implements :class:`controller.core.SyncCarrier`: the controller core binds its rows
    (:meth:`bind`) and hands it pings and models (:meth:`pings`, :meth:`models`); the harness
    takes the pongs that have reached the controller with :meth:`take` and gives them to
    :meth:`ControllerCore.receive_pong_rows`. ``on_pong(t4)`` is called when a pong will reach
    the controller before ``next_take`` (the harness's next poll), so that it can poll earlier.
    """

    _FIELDS = 6  # pending pongs: row, seq, t1, t2, arrival at the headset, t4

    def __init__(self, driver: VirtualDriver, apps: Mapping[str, AppDevice]) -> None:
        self.vt = driver.vt
        self.net = driver.net
        self._apps = apps
        self.on_pong: Callable[[int], None] = lambda _t4: None
        self.next_take: int | None = None
        self._gen = np.random.Generator(np.random.PCG64([self.vt.seed % (1 << 64), 0x51A9E]))
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
        self._pending: I64 = np.zeros((self._FIELDS, 0), dtype=np.int64)
        self._drawn: dict[tuple[Profile, bool], tuple[I64, int]] = {}  # per profile and way: block, next
        self.net.on_presence = self._presence

    def bind(self, ids: Sequence[str]) -> None:
        """Rows of :meth:`pings` index ``ids`` (the controller's clock-sync devices)."""
        n = len(ids)
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
        for did in self._row:
            self._presence(did, self.net.is_connected(did))

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
            return
        # Gone: the pings that had not reached it yet are lost with the connection.
        p = self._pending
        lost = (p[0] == r) & (p[4] >= now)
        if lost.any():
            self.net.dropped += int(lost.sum())
            self._pending = p[:, ~lost]

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
        paths = self._paths
        for i, (r, t) in enumerate(zip(rows.tolist(), at.tolist(), strict=True)):
            until = paths[r].partitioned_until(t)
            if until is not None:
                d[i] += until - t
        return d

    def pings(self, rows: I64, seqs: I64, t1: int) -> None:
        """Send row ``rows[i]`` a ping ``seqs[i]`` stamped ``t1`` (= now), in order."""
        k = rows.size
        if k == 0:
            return
        net = self.net
        net.sent += k
        # The controller's uplink to the broker: one stream, in order.
        left = t1 + self._draw(net.lan.profile, k, up=True)
        left[0] = max(int(left[0]), self._ctl_last_up)
        at = np.maximum.accumulate(left)
        self._ctl_last_up = int(at[-1])
        live = self._live[rows]
        if not live.all():
            net.dropped += int(k - live.sum())  # the broker has no connection to send it on
            rows, seqs, at = rows[live], seqs[live], at[live]
            if rows.size == 0:
                return
        if np.unique(rows).size == rows.size:
            batch = self._trips(rows, seqs, at, t1)
        else:  # the same headset twice: its n-th pings after its (n-1)-th, in order
            seen: dict[int, int] = {}
            nth = np.empty(rows.size, dtype=np.int64)
            for i, r in enumerate(rows.tolist()):
                nth[i] = seen[r] = seen.get(r, -1) + 1
            levels = (nth == j for j in range(int(nth.max()) + 1))
            batch = np.concatenate([self._trips(rows[m], seqs[m], at[m], t1) for m in levels], axis=1)
        merged = np.concatenate([self._pending, batch], axis=1)
        self._pending = merged[:, np.argsort(merged[5], kind="stable")]
        first = int(batch[5].min())
        if self.next_take is None or first < self.next_take:
            self.on_pong(first)

    def _trips(self, rows: I64, seqs: I64, at: I64, t1: int) -> I64:
        """Pings to distinct headsets, at the broker at ``at``: the pending-pong rows of each."""
        arrive = np.maximum(at + self._delays(rows, at, up=False), self._last_down[rows])
        self._last_down[rows] = arrive
        t2 = self._clocks.local(rows, arrive)  # the headset answers at once: t3 = t2
        leave = np.maximum(arrive + self._delays(rows, arrive, up=True), self._last_up[rows])
        self._last_up[rows] = leave
        t4 = leave + self._draw(self.net.lan.profile, rows.size, up=False)
        return np.stack([rows, seqs, np.full(rows.size, t1, dtype=np.int64), t2, arrive, t4])

    def models(self, items: list[tuple[str, str, bytes]], now: int) -> None:
        """Publish each clock model ``(device, topic, payload)`` now, retained."""
        for _, topic, payload in items:
            self.net.retain(topic, payload)  # a headset that reconnects reads it from the broker
        arrive = self._model_arrives
        hits = self.net.lane_down(CONTROLLER, [did for did, _, _ in items], now)
        self.vt.post_batch(
            [
                (hit[0], arrive, (hit[1], did, topic, payload))
                for (did, topic, payload), hit in zip(items, hits, strict=True)
                if hit is not None
            ]
        )

    def _model_arrives(self, c: Any, did: str, topic: str, payload: bytes) -> None:
        if self.net.lane_live(c):
            self._apps[did].receive(topic, payload, self.vt.now)  # a model never changes due_at()

    def take(self, now: int) -> tuple[I64, I64, I64, I64, I64, I64]:
        """The pongs that have reached the controller by ``now``, in order of arrival, as
        arrays ``(rows, seqs, t1, t2, t3, t4)`` (``t3`` is ``t2``: the headset answers at once),
        as :meth:`ControllerCore.receive_pong_rows` takes them."""
        p = self._pending
        i = int(np.searchsorted(p[5], now, side="right"))
        got, self._pending = p[:, :i], p[:, i:]
        if i:
            self.net.delivered += 2 * i  # the ping, then its pong
            self.net.sent += i
            apps = self._app_of
            for r in got[0].tolist():
                app = apps[r]
                assert app is not None
                app.pings += 1
        return got[0], got[1], got[2], got[3], got[3], got[5]

    def next_at(self) -> int | None:
        """When the next pong reaches the controller (None: none in flight)."""
        p = self._pending
        return int(p[5, 0]) if p.shape[1] else None
