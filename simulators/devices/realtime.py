"""Real-time adapters: the device cores over real UDP sockets, a real MQTT broker, WebSockets.

Each adapter moves bytes between a socket and one core, applies the device's
:class:`~simulators.network.Path` (a received datagram is delivered after its drawn delay, or
not at all; a stream message after its delay, in order), reads true time from an injected clock
(default ``time.time_ns``: on one host the controller's show clock is the same wall clock) and
sleeps until the core's ``due_at()``. No show logic lives here.

Many simulated devices share one event loop (and two cores with the controller), so the loop runs
callbacks late, by milliseconds under a burst. A real device has its own CPU and stamps a packet
when its network stack receives it, so the adapters hand each message to the core with its
*simulated arrival instant* (received + drawn delay), not the instant the shared loop got round to
it, and a pong's ``t3`` is stamped when the adapter really hands it to the network (after any
queueing in the simulator), so the ping maths sees that queueing as hold time, as RFC 5905
intends. What remains is measured, not hidden: :data:`TIMER_LATENESS` records how late the loop
ran the devices' timers (the instants cues fire at), and the report shows it.

* :class:`UdpDisplay`: an :class:`~simulators.devices.osc_display.OscDisplay` on ``127.0.0.1``.
* :class:`MqttApp`: an :class:`~simulators.devices.app.AppDevice` with its own MQTT client id and
  last will (aiomqtt, one asyncio task per device, all on one loop); reconnects with back-off
  after a broker restart.
* :class:`WsApp`: the same core as a WebXR client over ``websockets.asyncio.client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiomqtt
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import WebSocketException

from simulators.devices._wire import BadInput, decode_json, encode_json
from simulators.devices.app import AppDevice
from simulators.devices.messages import Publish
from simulators.devices.osc_display import OscDisplay
from simulators.network import Direction, Path
from venues.broker import BrokerLogin

__all__ = ["TIMER_LATENESS", "Lateness", "MqttApp", "TrueClock", "UdpDisplay", "WsApp", "message_kind"]

log = logging.getLogger(__name__)
TrueClock = Callable[[], int]


class Lateness:
    """How late the event loop ran device timers, in ns (a bounded sample: the latest 100,000)."""

    def __init__(self, keep: int = 100_000) -> None:
        self.samples: deque[int] = deque(maxlen=keep)

    def reset(self) -> None:
        """Forget every sample (a new run)."""
        self.samples.clear()

    def summary(self) -> dict[str, float]:
        """p50, p99 and max lateness in us, and how many timers were measured."""
        x = sorted(self.samples)
        if not x:
            return {"n": 0, "p50_us": 0.0, "p99_us": 0.0, "max_us": 0.0}
        return {
            "n": len(x),
            "p50_us": x[len(x) // 2] / 1000,
            "p99_us": x[min(len(x) - 1, (len(x) * 99) // 100)] / 1000,
            "max_us": x[-1] / 1000,
        }


TIMER_LATENESS = Lateness()
"""Every real-time device timer of this process records its lateness here."""


class _Timer:
    """Calls ``fn`` when the true clock reaches an instant (re-armed on every change)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: TrueClock, fn: Callable[[], None]) -> None:
        self.loop, self.clock, self.fn = loop, clock, fn
        self.when: int | None = None
        self.handle: asyncio.TimerHandle | None = None

    def arm(self, when: int | None) -> None:
        if when == self.when and self.handle is not None:
            return
        self.cancel()
        self.when = when
        if when is not None:
            delay = max(0.0, (when - self.clock()) / 1e9)
            self.handle = self.loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        if self.when is not None:
            TIMER_LATENESS.samples.append(max(0, self.clock() - self.when))
        self.handle = None
        self.when = None
        self.fn()

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.handle = None
        self.when = None


class UdpDisplay(asyncio.DatagramProtocol):
    """An OSC display listening on a real UDP socket. ``await start()``; ``address`` once bound."""

    def __init__(
        self,
        core: OscDisplay,
        path: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: TrueClock = time.time_ns,
    ) -> None:
        self.core, self.path, self.host, self.port, self.clock = core, path, host, port, clock
        self.transport: asyncio.DatagramTransport | None = None
        self._timer: _Timer | None = None

    async def start(self) -> tuple[str, int]:
        """Bind the socket; returns ``(host, port)``."""
        loop = asyncio.get_running_loop()
        self._timer = _Timer(loop, self.clock, self._tick)
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, self.port))
        self.transport = transport
        sockname = transport.get_extra_info("sockname")
        self.port = int(sockname[1])
        return (self.host, self.port)

    @property
    def address(self) -> tuple[str, int]:
        """Where the display listens."""
        return (self.host, self.port)

    def close(self) -> None:
        """Close the socket and stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        now = self.clock()
        loop = asyncio.get_running_loop()
        for d in self.path.deliveries(now, Direction.DOWN):
            if d <= 0:
                self._deliver(data, addr, now)
            else:
                loop.call_later(d / 1e9, self._deliver, data, addr, now + d)

    def _deliver(self, data: bytes, addr: object, at: int) -> None:
        out = self.core.receive(data, min(at, self.clock()), addr)
        self._send(out)
        if self._timer is not None:
            self._timer.arm(self.core.due_at())

    def _send(self, out: list[Any]) -> None:
        loop = asyncio.get_running_loop()
        for dg in out:
            for d in self.path.deliveries(self.clock(), Direction.UP):
                if d <= 0:
                    self._sendto(dg.data, dg.to)
                else:
                    loop.call_later(d / 1e9, self._sendto, dg.data, dg.to)

    def _sendto(self, data: bytes, to: Any) -> None:
        if self.transport is not None:
            self.transport.sendto(data, to)

    def _tick(self) -> None:
        self._send(self.core.tick(self.clock()))
        if self._timer is not None:
            self._timer.arm(self.core.due_at())


def message_kind(topic: str, *, sent: bool) -> str:
    """The kind of an app device's MQTT message, for counting what each device costs the brokers
    (docs/protocol.md's topics): received ``in_cue`` (a group topic: ``madang/cue``, its zone or
    kind), ``in_dev`` (``madang/cue/dev/{id}``: late-join catch-up or a cue to this device alone),
    ``in_ping``, ``in_model`` (``/clock``), ``in_state`` (the controller's retained state and its
    keep-alive), ``in_other``; sent ``out_pong``, ``out_fired``, ``out_status``, ``out_other``."""
    if sent:
        last = topic.rsplit("/", 1)[-1]
        return f"out_{last}" if last in ("pong", "fired", "status") else "out_other"
    if topic.startswith("madang/cue/dev/"):
        return "in_dev"
    if topic == "madang/cue" or topic.startswith("madang/cue/"):
        return "in_cue"
    if topic == "madang/controller/state":
        return "in_state"
    last = topic.rsplit("/", 1)[-1]
    if last == "ping":
        return "in_ping"
    if last == "clock":
        return "in_model"
    return "in_other"


class _StreamApp:
    """What the MQTT and WebSocket adapters share: in-order delayed delivery and the timer."""

    def __init__(self, core: AppDevice, path: Path, clock: TrueClock) -> None:
        self.core, self.path, self.clock = core, path, clock
        self.task: asyncio.Task[None] | None = None
        self._timer: _Timer | None = None
        self._last_in = 0
        self._out: asyncio.Queue[Publish] = asyncio.Queue()
        self.connected = asyncio.Event()
        # When a list: every cue message's arrival at the socket, (device, true ns, payload), for
        # fan-out measurements (madang bench ws).
        self.arrivals: list[tuple[str, int, bytes]] | None = None
        # When a dict: every message this device receives and sends, counted by kind
        # (:func:`message_kind`; shared by the devices of one process), for madang bench fanout.
        self.counts: dict[str, int] | None = None

    def _incoming(self, topic: str, payload: bytes) -> None:
        now = self.clock()
        if self.counts is not None:
            k = message_kind(topic, sent=False)
            self.counts[k] = self.counts.get(k, 0) + 1
        if self.arrivals is not None and topic.startswith("madang/cue"):
            self.arrivals.append((self.core.device.id, now, payload))
        at = max(now + self.path.stream_delay(now, Direction.DOWN), self._last_in)
        self._last_in = at
        loop = asyncio.get_running_loop()
        loop.call_later(max(0.0, (at - now) / 1e9), self._deliver, topic, payload, at)

    def _deliver(self, topic: str, payload: bytes, at: int) -> None:
        # The simulated arrival instant (see the module docstring), never in the future.
        self._queue(self.core.receive(topic, payload, min(at, self.clock())))

    def _stamp(self, p: Publish, sent: int | None = None) -> Publish:
        """A pong leaves now (or at true instant ``sent``): stamp ``t3`` with the device clock then
        (protocol.md: "t3 (its own clock just before sending)"), so queueing in the simulator is
        hold time."""
        if not p.topic.endswith("/pong"):
            return p
        try:
            body = decode_json(p.payload)
        except BadInput:
            return p
        t2 = body.get("t2")
        if not isinstance(t2, int):
            return p
        body["t3"] = max(t2, self.core.clock.local(self.clock() if sent is None else sent))
        return Publish(p.topic, encode_json(body), retain=p.retain, qos=p.qos)

    def _queue(self, out: list[Publish]) -> None:
        for p in out:
            self._out.put_nowait(p)
        if self._timer is not None:
            self._timer.arm(self.core.due_at())

    def _tick(self) -> None:
        self._queue(self.core.tick(self.clock()))

    def _start_timer(self) -> None:
        if self._timer is None:
            self._timer = _Timer(asyncio.get_running_loop(), self.clock, self._tick)

    def stop(self) -> None:
        """Stop the device's task (cancels its connection)."""
        if self._timer is not None:
            self._timer.cancel()
        if self.task is not None:
            self.task.cancel()


class MqttApp(_StreamApp):
    """An app device with its own MQTT connection (client id = device id, last will = offline).

    ``start()`` creates its task; ``crash()`` drops the TCP connection without DISCONNECT (so the
    broker publishes the will) and stops; the owner may call ``start()`` again to reboot.
    ``login``: the user name and password it presents (a venue's device identity from
    ``madang broker-config``) and the CA that verifies the broker when ``tls``.
    """

    def __init__(
        self,
        core: AppDevice,
        path: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        clock: TrueClock = time.time_ns,
        keepalive: int = 10,
        login: BrokerLogin | None = None,
        tls: bool = False,
    ) -> None:
        super().__init__(core, path, clock)
        self.host, self.port, self.keepalive = host, port, keepalive
        self.login = login or BrokerLogin()
        self._tls: ssl.SSLContext | None = None
        if tls:
            self._tls = ssl.create_default_context(cafile=self.login.ca)
            if self.login.cert:
                self._tls.load_cert_chain(self.login.cert, self.login.key)
        self._client: aiomqtt.Client | None = None
        self._last_up = 0
        self.send_errors = 0

    def start(self) -> None:
        """Connect (and keep reconnecting) in a background task on the running loop."""
        self._out = asyncio.Queue()
        self.connected = asyncio.Event()
        self._start_timer()
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"mqtt-{self.core.device.id}")

    async def _run(self) -> None:
        core = self.core
        will = core.will()
        backoff = 0.2
        while True:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=core.device.id,
                    will=aiomqtt.Will(will.topic, will.payload, qos=1, retain=True),
                    keepalive=self.keepalive,
                    clean_session=True,
                    username=self.login.username,
                    password=self.login.password,
                    tls_context=self._tls,
                ) as client:
                    self._client = client
                    # A thousand devices share this loop: take messages straight from paho's
                    # callback (aiomqtt's iterator costs a queue and a task switch per message)
                    # and keep paho from formatting a log record for every packet.
                    paho_client = client._client
                    paho_client.disable_logger()
                    paho_client.on_message = self._on_paho_message
                    await client.subscribe([(f, 0) for f in core.subscriptions()])
                    self._queue(core.connect(self.clock()))
                    self.connected.set()
                    backoff = 0.2
                    await client._disconnected
                    raise aiomqtt.MqttError("disconnected")
            except aiomqtt.MqttError as e:
                self.connected.clear()
                self._client = None
                log.info(
                    "MQTT connection lost; reconnecting", extra={"device": core.device.id, "error": str(e)}
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _on_paho_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self._incoming(msg.topic, bytes(msg.payload))

    def _queue(self, out: list[Publish]) -> None:
        """Send each message after its drawn uplink delay, in order (a TCP stream)."""
        if out:
            now = self.clock()
            loop = asyncio.get_running_loop()
            for p in out:
                d = self.path.stream_delay(now, Direction.UP)
                at = max(now + d, self._last_up)
                self._last_up = at
                loop.call_later((at - now) / 1e9, self._emit, p, at - now)
        if self._timer is not None:
            self._timer.arm(self.core.due_at())

    def _emit(self, p: Publish, network_ns: int) -> None:
        client = self._client
        if client is None or not self.core.alive:
            return  # disconnected or crashed: lost, as on a device
        # The message reaches the broker now, having spent network_ns on the (simulated) way:
        # it left the device network_ns ago, whatever the loop's lateness (see the module docstring).
        p = self._stamp(p, self.clock() - network_ns)
        info = client._client.publish(p.topic, p.payload, p.qos, p.retain)
        if info.rc != 0:
            self.send_errors += 1
        elif self.counts is not None:
            k = message_kind(p.topic, sent=True)
            self.counts[k] = self.counts.get(k, 0) + 1

    def crash(self) -> None:
        """Die without a DISCONNECT: the broker notices the dropped TCP connection and publishes
        the last will (MQTT 3.1.1 section 3.1.2.5)."""
        client = self._client
        self._client = None
        if client is not None:
            # aiomqtt has no "abort" API. paho's own close path unregisters the socket from the
            # loop before closing it (no DISCONNECT is sent), which is what a crash looks like.
            paho_client = client._client
            if isinstance(paho_client._sock, socket.socket):
                with contextlib.suppress(OSError):
                    paho_client._sock.shutdown(socket.SHUT_RDWR)
            paho_client._sock_close()
        self.core.crash()
        self.stop()


class WsApp(_StreamApp):
    """An app device as a WebXR client: ``ws://host:port/ws?device={id}[&key={key}]``, JSON envelopes.

    A hot-standby pair's controller state names both controllers' web servers (``web``): the
    client keeps them and, when its connection closes, tries the next one (docs/protocol.md,
    "WebSocket": two controllers)."""

    def __init__(
        self,
        core: AppDevice,
        path: Path,
        url: str,
        *,
        clock: TrueClock = time.time_ns,
        key: str | None = None,
    ) -> None:
        super().__init__(core, path, clock)
        sep = "&" if "?" in url else "?"
        # ``key``: the device's key from the venue's secrets file, when the controller asks for it.
        self.url = f"{url}{sep}device={core.device.id}" + (f"&key={quote(key, safe='')}" if key else "")
        self.urls = [self.url]  # where to connect, in turn (the controller state may add some)
        self._at = 0

    def start(self) -> None:
        """Connect (and keep reconnecting) in a background task on the running loop."""
        self._out = asyncio.Queue()
        self.connected = asyncio.Event()
        self._start_timer()
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"ws-{self.core.device.id}")

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            self.url = self.urls[self._at % len(self.urls)]
            try:
                async with ws_connect(self.url, max_size=64 * 1024) as ws:
                    self._queue(self.core.connect(self.clock()))
                    self.connected.set()
                    backoff = 0.2
                    sender = asyncio.create_task(self._sender(ws))
                    try:
                        async for frame in ws:
                            self._frame(frame if isinstance(frame, bytes) else frame.encode())
                    finally:
                        sender.cancel()
            except (OSError, WebSocketException) as e:
                self.connected.clear()
                log.info(
                    "WebSocket lost; reconnecting", extra={"device": self.core.device.id, "error": str(e)}
                )
            self._at += 1  # the next controller's server (the same when there is one)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _frame(self, data: bytes) -> None:
        try:
            env = decode_json(data)
        except BadInput as e:
            self.core.dropped[e.reason] += 1
            return
        topic, payload = env.get("topic"), env.get("payload")
        if not isinstance(topic, str):
            self.core.dropped["bad_envelope"] += 1
            return
        if topic == "madang/controller/state" and isinstance(payload, dict):
            self._learn(payload.get("web"))
        self._incoming(topic, encode_json(payload))

    def _learn(self, web: object) -> None:
        """The pair's web servers (``http://host:port``) as this client's socket addresses,
        the one connected now first."""
        if not isinstance(web, list) or not all(isinstance(u, str) for u in web) or len(web) > 8:
            return
        me = urlsplit(self.url)
        known = []
        for u in web:
            there = urlsplit(u)
            if there.netloc:
                scheme = "wss" if there.scheme == "https" else "ws"
                known.append(urlunsplit((scheme, there.netloc, me.path, me.query, "")))
        urls = [self.url, *[u for u in known if urlsplit(u).netloc != me.netloc]]
        if urls != self.urls:
            self.urls, self._at = urls, 0

    async def _sender(self, ws: Any) -> None:
        while True:
            p = self._stamp(await self._out.get())
            d = self.path.stream_delay(self.clock(), Direction.UP)
            if d > 0:
                await asyncio.sleep(d / 1e9)
            body = b'{"topic":' + encode_json(p.topic) + b',"payload":' + p.payload + b"}"
            await ws.send(body.decode())

    def crash(self) -> None:
        """Drop the connection (its close is the WebXR client's last will) and lose state."""
        self.core.crash()
        self.stop()
