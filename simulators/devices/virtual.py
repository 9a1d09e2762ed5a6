"""Driving device cores in virtual time: the same cores as in real time, over a VirtualNetwork.

:class:`VirtualDriver` owns a :class:`~simulators.vtime.VirtualTime` and a
:class:`~simulators.vtime.VirtualNetwork`, plugs every core into it (OSC displays as datagram
endpoints named by device id, app devices as pub/sub clients with their last will), reschedules
each core's :meth:`tick` at its ``due_at()``, and offers the controller side as
:class:`VirtualController`: send OSC to a device, publish, subscribe, receive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulators.devices._wire import BadInput, decode_json
from simulators.devices.app import AppDevice
from simulators.devices.messages import Datagram, Publish
from simulators.devices.osc_display import OscDisplay
from simulators.network import Path
from simulators.vtime import Handle, VirtualNetwork, VirtualTime

__all__ = ["CONTROLLER", "VirtualController", "VirtualDriver"]

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
