"""Driving device cores in virtual time: the same cores as in real time, over a VirtualNetwork.

:class:`VirtualDriver` owns a :class:`~simulators.vtime.VirtualTime` and a
:class:`~simulators.vtime.VirtualNetwork`, plugs every core into it (OSC displays as datagram
endpoints named by device id, app devices as pub/sub clients with their last will), reschedules
each core's :meth:`tick` at its ``due_at()``, and offers the controller side as
:class:`VirtualController`: send OSC to a device, publish, subscribe, receive.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from typing import Any

from simulators.devices._wire import BadInput, decode_json
from simulators.devices.app import AppDevice
from simulators.devices.messages import Datagram, Publish
from simulators.devices.osc_display import OscDisplay
from simulators.network import Path
from simulators.vtime import Handle, VirtualNetwork, VirtualTime

__all__ = ["CONTROLLER", "SyncLane", "VirtualController", "VirtualDriver"]

CONTROLLER = "controller"  # the controller's endpoint name on the virtual network
_DECODE_CACHE = 1024  # decoded payloads kept (a fan-out's deliveries come close together)


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
    """The clock-sync traffic of MQTT headsets in virtual time, without a message per hop.

    At ten thousand headsets nine messages in ten are pings, pongs and clock models, and carried
    one by one (a JSON body, an event at the broker and one at each end) they cost most of a
    virtual show. The lane moves them over the same simulated paths, with the same stream delay
    draws and the same FIFO per connection (:meth:`VirtualNetwork.lane_down`,
    :meth:`~VirtualNetwork.lane_reply`), and runs the same device logic at the instant each one
    arrives: :meth:`AppDevice.answer_ping` stamps the pong in the headset's own clock, a clock
    model goes through :meth:`AppDevice.receive_decoded`. A headset that is off or disconnected
    when the message arrives does not answer. What differs from the message path is said in
    ``docs/simulators.md`` ("The sync lane").

    It implements :class:`controller.core.SyncCarrier`: the controller core hands it pings and
    models (:meth:`pings`, :meth:`models`), and the harness takes the pongs that have reached the
    controller with :meth:`take` and gives them to :meth:`ControllerCore.receive_pong`.
    ``on_pong(t4)`` is called when a pong will reach the controller before ``next_take``
    (the harness's next poll), so that it can poll earlier.
    """

    def __init__(self, driver: VirtualDriver, apps: Mapping[str, AppDevice]) -> None:
        self.vt = driver.vt
        self.net = driver.net
        self._apps = apps
        self._inbox: list[tuple[int, str, int, int, int]] = []  # (t4, device, seq, t1, t2)
        self.on_pong: Callable[[int], None] = lambda _t4: None
        self.next_take: int | None = None

    def pings(self, items: list[tuple[str, int]], t1: int) -> None:
        """Send each ``(device, seq)`` a ping stamped ``t1`` (= now)."""
        arrive = self._ping_arrives
        hits = self.net.lane_down(CONTROLLER, [did for did, _ in items], t1)
        batch: list[tuple[int, Callable[..., object], tuple[Any, ...]]] = [
            (hit[0], arrive, (hit[1], did, seq, t1))
            for (did, seq), hit in zip(items, hits, strict=True)
            if hit is not None
        ]
        self.vt.post_batch(batch)

    def _ping_arrives(self, c: Any, did: str, seq: int, t1: int) -> None:
        core = self._apps[did]
        if not core.alive:
            self.net.lane_live(c)  # counted, delivered to a dead app or dropped
            return
        now = self.vt.now
        t4 = self.net.lane_reply(c, now)
        if t4 is None:
            return
        heapq.heappush(self._inbox, (t4, did, seq, t1, core.answer_ping(now)))
        nxt = self.next_take
        if nxt is None or t4 < nxt:
            self.on_pong(t4)

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

    def take(self, now: int) -> list[tuple[str, int, int, int, int, int]]:
        """The pongs that have reached the controller by ``now``: ``(device, seq, t1, t2, t3, t4)``
        in order of arrival (``t3`` equals ``t2``: the headset answers at once), as
        :meth:`ControllerCore.receive_pongs` takes them."""
        inbox = self._inbox
        out: list[tuple[str, int, int, int, int, int]] = []
        pop = heapq.heappop
        while inbox and inbox[0][0] <= now:
            t4, did, seq, t1, t2 = pop(inbox)
            out.append((did, seq, t1, t2, t2, t4))
        return out

    def next_at(self) -> int | None:
        """When the next pong reaches the controller (None: none in flight past the broker)."""
        return self._inbox[0][0] if self._inbox else None

