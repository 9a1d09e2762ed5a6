"""The WebSocket hub: a device on a WebSocket gets exactly what an MQTT device with its id would.

Theory of operation
-------------------
The core decides nothing for WebSocket devices that it does not decide for MQTT ones: it hands
the runtime :class:`~controller.delivery.MqttPublish` items (cue messages on group topics, pings
and clock models under each device's topic root, the retained controller state), and takes what
devices say as ``(topic, payload, received)`` (:meth:`~controller.core.ControllerCore.receive_mqtt`).
The hub is the broker for the devices that connect here (docs/protocol.md, "WebSocket"):

* **Subscriptions.** A session (one connection, one device) is subscribed to the topics an MQTT
  device of that id subscribes to (:func:`device_topics`): ``madang/cue``, its zone's, its
  kind's and its own cue topics, its ``ping`` and ``clock``, and the controller state. The
  index is exact topic -> sessions: every lookup is one dictionary read.
* **Retained.** The last retained payload of every topic (the controller state, each device's
  clock model) is kept and written to a session as it attaches, as a broker would.
* **Fan-out off the firing path.** :meth:`WsHub.publish` only appends to a queue and wakes the
  hub's own task, which encodes each message *once*, envelope ``{"topic","payload"}`` and
  WebSocket frame alike (a server's frames are unmasked: the same bytes serve every connection,
  :func:`text_frame`), and writes it to each subscriber's transport without awaiting anything,
  yielding to the loop whenever it has held it for ``slice_ns`` (0.5 ms): a cue to 2,000 phones
  never holds the loop for more than that (websockets' own ``broadcast`` to 1,000 holds it
  7-9 ms). Pings are stamped as they are written (``t1`` is the instant they leave, RFC 5905),
  not when queued.
* **Backpressure.** A session whose transport holds more than ``max_buffer`` bytes not yet sent
  is a phone that cannot keep up: it is cut (aborted, counted as ``slow``), never waited for.
* **Input is hostile.** Every frame is rate-limited per session (a token bucket), bounded
  (docs/protocol.md "Limits": 64 KiB, JSON nesting 32, strings 4 KiB), parsed as the envelope,
  and checked against what the device may publish (its own topic root, or a topic that names it
  as one whole level, like ``madang/audience/{zone}/{id}/tap``); anything else is dropped and
  counted by reason (:attr:`HubStats.dropped`), logged once per reason, never raised.
* **Presence.** A session that closes is its device's last will: ``{"state": "offline"}`` on its
  ``status`` topic goes to the core, unless a newer connection of the same device replaced it.

The hub owns no socket: it writes through a :class:`Peer` (the server's adapter of a
``websockets`` connection), so its rules are tested with any transport.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from controller import wire
from controller.clock import Clock
from controller.delivery import Kind, MqttPublish, restamp
from controller.topics import device_topics
from venues.model import Device

__all__ = [
    "MAX_DEPTH",
    "MAX_FRAME",
    "MAX_STRING",
    "WILL",
    "HubStats",
    "Peer",
    "RateLimit",
    "Session",
    "WsHub",
    "device_topics",
    "envelope",
    "text_frame",
]

log = logging.getLogger(__name__)

MAX_FRAME = wire.MAX_PAYLOAD  # docs/protocol.md, "Limits"
MAX_DEPTH = 32
MAX_STRING = 4 * 1024
WILL = b'{"state":"offline"}'
"""What a closed connection says for its device (docs/protocol.md: "The connection closing is its
last will")."""

Deliver = Callable[[str, bytes, int], None]
"""Where frames from devices go: ``(topic, payload, received_ns)``, like an MQTT message."""


class Peer(Protocol):
    """One connection as the hub writes to it (the server adapts a websockets connection)."""

    def write(self, frame: bytes) -> None:
        """Queue one WebSocket frame, as built by :func:`text_frame`, on the transport; never
        blocks, never raises."""
        ...

    def buffered(self) -> int:
        """Bytes written but not yet sent (the transport's write buffer)."""
        ...

    def abort(self, reason: str) -> None:
        """Cut the connection now (no closing handshake): it is too slow or misbehaves."""
        ...


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: ``per_s`` frames a second on average, bursts of up to ``burst``."""

    per_s: float
    burst: float

    def take(self, state: list[float], now: int) -> bool:
        """Spend one token of ``state`` (``[tokens, last_ns]``) at ``now``; False when empty."""
        tokens = min(self.burst, state[0] + (now - state[1]) * self.per_s / 1e9)
        state[1] = now
        if tokens < 1.0:
            state[0] = tokens
            return False
        state[0] = tokens - 1.0
        return True


FRAMES = RateLimit(per_s=40.0, burst=80.0)
"""Frames a device may send: pongs (up to 10 a second), status, fire reports, taps."""
TAPS = RateLimit(per_s=4.0, burst=4.0)
"""Taps and votes a device may send (the rest are dropped and counted as ``tap_rate``)."""


_enc = msgspec.json.Encoder()


def envelope(topic: str, payload: bytes) -> bytes:
    """The text of a message's frame: ``{"topic":...,"payload":...}`` (``payload`` is JSON)."""
    return b'{"topic":' + _enc.encode(topic) + b',"payload":' + payload + b"}"


def text_frame(text: bytes) -> bytes:
    """A complete, unfragmented WebSocket text frame (RFC 6455 section 5.2) as a server sends it:
    unmasked and without extensions (no compression), so the same bytes serve every connection.
    Built once per message, written to each transport as is: the fan-out's cost per connection
    is one ``transport.write``."""
    n = len(text)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 1 << 16:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return head + text


class _Envelope(msgspec.Struct):
    topic: str
    payload: msgspec.Raw = msgspec.Raw(b"null")


_env_dec = msgspec.json.Decoder(_Envelope)
_any_dec = msgspec.json.Decoder()


def _too_deep_or_long(body: Any) -> str | None:
    """``too_deep`` or ``string_too_long`` when a decoded value breaks a limit (iterative)."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                return "string_too_long"
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return "too_deep"
            items: Iterable[Any] = value.values() if isinstance(value, dict) else value
            if isinstance(value, dict):
                for k in value:
                    if len(k) > MAX_STRING:
                        return "string_too_long"
            stack.extend((v, depth + 1) for v in items)
    return None


@dataclass
class HubStats:
    """What the hub did, for the report and the operator (counters only grow)."""

    connected: int = 0  # sessions open now
    peak: int = 0
    attached: int = 0
    replaced: int = 0  # a newer connection of the same device took over
    slow: int = 0  # cut: the transport buffered more than max_buffer
    frames_in: int = 0
    frames_out: int = 0
    messages: int = 0  # publishes that had at least one subscriber here
    dropped: Counter[str] = field(default_factory=Counter)  # frames in, by reason
    taps: Counter[str] = field(default_factory=Counter)  # taps and votes accepted, by zone

    def as_dict(self) -> dict[str, Any]:
        """The counters as plain JSON values."""
        return {
            "connected": self.connected,
            "peak": self.peak,
            "attached": self.attached,
            "replaced": self.replaced,
            "slow": self.slow,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "messages": self.messages,
            "dropped": dict(self.dropped),
            "taps": dict(self.taps),
        }


class Session:
    """One connection of one device (see :meth:`WsHub.attach`)."""

    __slots__ = ("_frames", "_taps", "closed", "device", "peer", "replaced", "root", "topics")

    def __init__(self, device: Device, peer: Peer, topics: tuple[str, ...], now: int) -> None:
        self.device = device
        self.peer = peer
        self.topics = topics
        self.root = device.topic_root
        self.closed = False
        self.replaced = False  # its will is not to be said (replaced, said already, or shutdown)
        self._frames = [FRAMES.burst, float(now)]
        self._taps = [TAPS.burst, float(now)]


class WsHub:
    """The broker side of the WebSocket transport (see the module docstring).

    ``deliver(topic, payload, received_ns)`` gets every accepted frame and every last will (the
    runtime passes it to the player, as an MQTT message). Run :meth:`run` as a task; call
    :meth:`publish` for every MqttPublish the core hands out; :meth:`attach` and :meth:`detach`
    as connections come and go.
    """

    def __init__(
        self,
        deliver: Deliver,
        *,
        clock: Clock,
        chunk: int = 16,
        slice_ns: int = 500_000,
        max_buffer: int = 256 * 1024,
        frames: RateLimit = FRAMES,
        taps: RateLimit = TAPS,
    ) -> None:
        self.deliver = deliver
        self.clock = clock
        self.chunk = chunk  # writes between two looks at the clock
        self.slice_ns = slice_ns  # the longest the fan-out holds the loop before yielding
        self.max_buffer = max_buffer
        self.frames = frames
        self.tap_limit = taps
        self.stats = HubStats()
        self.sessions: dict[str, Session] = {}  # by device id
        self._subs: dict[str, dict[Session, None]] = {}  # topic -> sessions (ordered set)
        self._retained: dict[str, bytes] = {}
        self._queue: deque[tuple[MqttPublish, int]] = deque()  # (item, handed over: monotonic ns)
        # For messages to two or more sessions: from hand-over to the last write (ns), latest first.
        self.fanout_ns: deque[int] = deque(maxlen=10_000)
        self._wake = asyncio.Event()
        self._logged: set[str] = set()
        self.idle = asyncio.Event()  # set while the queue is empty (tests, shutdown)
        self.idle.set()

    # -- connections -------------------------------------------------------------------------

    def attach(self, device: Device, peer: Peer, now: int) -> Session:
        """A connection of ``device`` is open: subscribe it, write the retained messages of its
        topics (controller state, its clock model), and return its session. An older
        connection of the same device is cut (it will not say ``offline``)."""
        old = self.sessions.get(device.id)
        if old is not None and not old.closed:
            old.replaced = True
            self.stats.replaced += 1
            self._drop_session(old)
            old.peer.abort("replaced by a newer connection of the same device")
        s = Session(device, peer, device_topics(device), now)
        self.sessions[device.id] = s
        for t in s.topics:
            self._subs.setdefault(t, {})[s] = None
        st = self.stats
        st.attached += 1
        st.connected = len(self.sessions)
        st.peak = max(st.peak, st.connected)
        for t in s.topics:
            payload = self._retained.get(t)
            if payload is not None:
                peer.write(text_frame(envelope(t, payload)))
                st.frames_out += 1
        log.info("WebSocket device connected", extra={"device": device.id})
        return s

    def detach(self, session: Session, now: int) -> None:
        """The connection ended: unsubscribe it and, unless a newer one replaced it (or its will
        was already delivered), deliver its last will (``offline`` on its status topic)."""
        self._drop_session(session)
        if session.replaced:
            return
        session.replaced = True  # said once
        self.deliver(f"{session.root}/status", WILL, now)
        log.info("WebSocket device disconnected", extra={"device": session.device.id})

    def _drop_session(self, s: Session) -> None:
        if s.closed:
            return
        s.closed = True
        for t in s.topics:
            subs = self._subs.get(t)
            if subs is not None:
                subs.pop(s, None)
                if not subs:
                    del self._subs[t]
        if self.sessions.get(s.device.id) is s:
            del self.sessions[s.device.id]
        self.stats.connected = len(self.sessions)

    # -- out ---------------------------------------------------------------------------------

    def publish(self, item: MqttPublish) -> bool:
        """Hand over one publish of the core (never blocks: the hub's task sends it). Returns
        True when it has a subscriber here."""
        if item.retain:
            self._retained[item.topic] = item.payload
        if item.topic not in self._subs:
            return False
        self._queue.append((item, self.clock.monotonic_ns()))
        self.idle.clear()
        self._wake.set()
        return True

    def retained(self, topic: str) -> bytes | None:
        """The last retained payload of ``topic`` (None: none yet)."""
        return self._retained.get(topic)

    async def run(self) -> None:
        """The fan-out task (see the module docstring); runs until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._drain()

    async def _drain(self) -> None:
        clock = self.clock
        written = 0
        since = clock.monotonic_ns()
        while self._queue:
            item, handed = self._queue.popleft()
            subs = self._subs.get(item.topic)
            if not subs:
                continue
            self.stats.messages += 1
            ping = item.kind is Kind.PING
            frame = b"" if ping else text_frame(envelope(item.topic, item.payload))
            for s in list(subs):
                if s.closed:
                    continue
                peer = s.peer
                if peer.buffered() > self.max_buffer:
                    self._slow(s)
                    continue
                if ping:
                    frame = text_frame(envelope(item.topic, restamp(item, clock.wall_ns())))
                peer.write(frame)
                written += 1
                if written % self.chunk == 0 and clock.monotonic_ns() - since > self.slice_ns:
                    # Held the loop a slice's worth: let it (and the firing edge) breathe.
                    self.stats.frames_out += written
                    written = 0
                    await asyncio.sleep(0)
                    since = clock.monotonic_ns()
            if len(subs) > 1:
                self.fanout_ns.appendleft(clock.monotonic_ns() - handed)
        self.stats.frames_out += written
        self.idle.set()

    def _slow(self, s: Session) -> None:
        self.stats.slow += 1
        self._note("slow", s.device.id, f"cut: more than {self.max_buffer:,} bytes waiting to be sent")
        s.peer.abort("too slow: the messages waiting for it passed the limit")
        self.detach(s, self.clock.wall_ns())

    # -- in ----------------------------------------------------------------------------------

    def receive(self, session: Session, frame: str | bytes, now: int) -> None:
        """One frame from a device, received at ``now``: checked (see the module docstring),
        then delivered as ``(topic, payload, now)``. Never raises."""
        st = self.stats
        st.frames_in += 1
        if session.closed:
            return
        if not self.frames.take(session._frames, now):
            self._drop("rate", session)
            return
        size = len(frame)
        if size > MAX_FRAME:
            self._drop("too_large", session)
            return
        try:
            env = _env_dec.decode(frame)
        except msgspec.DecodeError:
            self._drop("malformed", session)
            return
        opens = (
            frame.count("{") + frame.count("[")
            if isinstance(frame, str)
            else (frame.count(b"{") + frame.count(b"["))
        )
        if opens > MAX_DEPTH or size > MAX_STRING:  # only then can a limit be broken
            try:
                why = _too_deep_or_long(_any_dec.decode(frame))
            except (msgspec.DecodeError, RecursionError):
                why = "too_deep"
            if why is not None:
                self._drop(why, session)
                return
        topic = env.topic
        if not self._may_publish(session, topic):
            self._drop("not_allowed", session)
            return
        if _is_tap(topic):
            if not self.tap_limit.take(session._taps, now):
                self._drop("tap_rate", session)
                return
            st.taps[session.device.zone] += 1
        self.deliver(topic, bytes(env.payload), now)

    @staticmethod
    def _may_publish(session: Session, topic: str) -> bool:
        """A device publishes under its own topic root, or on a topic naming it as one level."""
        if not topic or len(topic) > 1024 or "+" in topic or "#" in topic or "\x00" in topic:
            return False
        if topic.startswith(session.root + "/"):
            return True
        return session.device.id in topic.split("/")

    def _drop(self, reason: str, session: Session) -> None:
        self.stats.dropped[reason] += 1
        self._note(reason, session.device.id, "dropped a frame")

    def _note(self, reason: str, device: str, text: str) -> None:
        if reason not in self._logged:  # once per reason: a flood must not flood the log too
            self._logged.add(reason)
            log.warning("WebSocket: %s (%s)", text, reason, extra={"device": device, "reason": reason})

    # -- end ---------------------------------------------------------------------------------

    def close_all(self, reason: str) -> None:
        """Cut every connection (the controller is stopping); no last wills are delivered."""
        for s in list(self.sessions.values()):
            s.replaced = True  # the controller goes: nobody to tell
            self._drop_session(s)
            s.peer.abort(reason)

    def subscribers(self, topic: str) -> int:
        """How many sessions a publish to ``topic`` reaches now."""
        return len(self._subs.get(topic, ()))

    def topic_counts(self) -> Mapping[str, int]:
        """Sessions per topic (for tests and the report)."""
        return {t: len(s) for t, s in self._subs.items()}


def _is_tap(topic: str) -> bool:
    """An audience tap or vote (docs/protocol.md, "The audience")."""
    return topic.startswith("madang/audience/") and ("/tap" in topic or "/vote/" in topic)
