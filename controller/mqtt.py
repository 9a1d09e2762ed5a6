"""The controller's MQTT link: one reconnecting connection with an ordered, bounded outbox.

Theory of operation
-------------------
aiomqtt 2.x gives one connection per ``async with Client(...)`` and does not reconnect.
:class:`MqttLink` wraps it into something a show can lean on:

* :meth:`MqttLink.run` (run it as a task) connects, restores every subscription, flushes the
  outbox, and waits for the connection to drop; then it retries with exponential backoff and
  jitter (:func:`backoff_delay`) until :meth:`MqttLink.close`. Each connection is a fresh aiomqtt
  client with a clean session: the link, not the broker, holds the state that must survive.
* :meth:`MqttLink.publish` never blocks and never raises for a broker that is down. When the
  link is up and nothing is waiting, the message goes straight to the socket (paho writes it on
  the next turn of the event loop). Otherwise it joins the *outbox*, which the flusher drains in
  order, a batch per loop turn, waiting while paho still has bytes it could not write (so the
  process never piles up an unbounded backlog inside paho).
* QoS 1/2 messages stay owned by the link until the broker acknowledges them (PUBACK / PUBCOMP).
  When the connection drops, every unacknowledged one goes back to the *front* of the outbox, in
  its original order, and is sent again after the reconnect: at-least-once, never silently lost.
  Devices deduplicate by the idempotency key of docs/protocol.md.
* QoS 0 messages are at-most-once: kept in order while the link is down, but one already handed
  to a connection that then dies may be lost.
* The outbox is bounded (``outbox_limit``). When full, the oldest QoS 0 message is dropped to make
  room (counted in ``dropped_outbox_full``; WARNING once per episode). If the outbox holds only
  QoS >= 1 messages, the *new* message is refused and counted (``dropped_qos_outbox_full`` for
  QoS >= 1, logged at ERROR once per episode, with a summary when the episode ends).

Receive path: the link replaces aiomqtt's message queue with a paho ``on_message`` hook, so the
receive timestamp (the injected ``clock``, ``time.time_ns`` by default: the show clock) is taken
as the packet is parsed, before any queue. Payloads over 64 KiB are dropped and counted, as
docs/protocol.md requires; callback exceptions are logged and counted, never propagated.

Nagle's algorithm is disabled (``TCP_NODELAY``) on the client socket through aiomqtt's
``socket_options``: neither paho nor Mosquitto's client side does it, and small cue messages
otherwise wait 35-42 ms for an ACK that never hurries.

Credentials and TLS (docs/security.md, "Broker: TLS and credentials"): the URL may name a user
(``mqtts://madang-controller@host:8883``) and :class:`~venues.broker.BrokerLogin` brings the
password and the TLS files. :func:`broker_login` resolves them from a password file or the
environment (never the URL, never a log line) and the link builds its TLS context when it is
created, so a missing or unreadable file fails before the show, with the option to fix. A broker
that refuses the login (bad user name or password, not authorised) is logged as an ERROR once per
outage: retrying will not help until the operator fixes the credentials.

Call every method from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from controller.topics import TopicError, validate_filter, validate_topic
from venues.broker import PASSWORD_ENV, BrokerFiles, BrokerLogin, BrokerUrlError
from venues.broker import parse_broker_url as parse_broker_address
from venues.errors import MadangError

__all__ = [
    "CONTROLLER_STATE_TOPIC",
    "MAX_RECEIVE_PAYLOAD",
    "OFFLINE_PAYLOAD",
    "BrokerLoginError",
    "MqttLink",
    "MqttStats",
    "MqttUrlError",
    "Publish",
    "Receiver",
    "backoff_delay",
    "broker_login",
    "controller_will",
    "parse_broker_url",
]

log = logging.getLogger(__name__)

CONTROLLER_STATE_TOPIC = "madang/controller/state"
"""Retained controller state (docs/protocol.md, "Controller state and late join")."""
OFFLINE_PAYLOAD = b'{"state": "offline"}'
"""The last will payload, retained on :data:`CONTROLLER_STATE_TOPIC`."""
MAX_RECEIVE_PAYLOAD = 64 * 1024
"""Received payloads larger than this are dropped and counted (docs/protocol.md, "Limits")."""

Receiver = Callable[[str, bytes, int], None]
"""``callback(topic, payload, received_ns)``; ``received_ns`` is read from the link's clock."""

_BURST = 1024  # messages sent straight to paho per loop turn before the outbox takes over
_BATCH = 256  # messages the flusher hands to paho per loop turn
_WINDOW = 256  # QoS >= 1 messages awaiting acknowledgement at once
_CONNECT_TIMEOUT_S = 5.0
_VALID_TOPIC_CACHE = 65536


MqttUrlError = BrokerUrlError
"""A ``--broker`` URL the link cannot use (:class:`venues.broker.BrokerUrlError`)."""


@dataclass
class BrokerLoginError(MadangError, ValueError):
    """The broker login cannot be put together: a password with no user, a user with no password,
    an unreadable password, certificate or key file. ``what`` names the setting, ``reason`` the
    fault, ``hint`` what to do. Never holds the password itself."""

    what: str
    reason: str
    hint: str = ""

    def __post_init__(self) -> None:
        Exception.__init__(self, self.what, self.reason)

    def __str__(self) -> str:
        hint = f"; {self.hint}" if self.hint else ""
        return f"broker login: {self.what}: {self.reason}{hint}"


def parse_broker_url(url: str) -> tuple[str, int]:
    """``mqtt://[USER@]host[:port]`` or ``mqtts://...`` (or ``tcp://``, ``ssl://``, bare
    ``host[:port]``) -> ``(host, port)``; see :func:`venues.broker.parse_broker_url`."""
    address = parse_broker_address(url)
    return address.host, address.port


def _read_password(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BrokerLoginError(
            f"password file {path}", f"cannot be read ({exc.strerror or exc})", "check the path and its mode"
        ) from None
    password = text.rstrip("\r\n")
    if not password:
        raise BrokerLoginError(f"password file {path}", "is empty", "write the password on its first line")
    if "\n" in password:
        raise BrokerLoginError(
            f"password file {path}", "holds more than one line", "write only the password, on one line"
        )
    return password


def broker_login(
    url: str, files: BrokerFiles | None = None, *, environ: Mapping[str, str] | None = None
) -> BrokerLogin:
    """The login for ``url``: its user name, the password from ``files.password_file`` or else
    the environment variable ``MADANG_BROKER_PASSWORD``, and the TLS files.

    Raises :class:`BrokerLoginError` when a password has no user to go with (or a user no
    password), a password file cannot be read, or TLS files are named for a plain ``mqtt://``
    URL; :class:`venues.broker.BrokerUrlError` for a URL that holds a password.
    """
    address = parse_broker_address(url)
    files = files or BrokerFiles()
    env = os.environ if environ is None else environ
    password: str | None = None
    if files.password_file:
        password = _read_password(files.password_file)
    elif env.get(PASSWORD_ENV):
        password = env[PASSWORD_ENV]
    if password is not None and address.username is None:
        raise BrokerLoginError(
            "password",
            "a password is given but the broker URL names no user",
            f"put the user in the URL: {address.url.replace('://', '://USER@', 1)}",
        )
    if address.username is not None and password is None:
        raise BrokerLoginError(
            f"user {address.username!r}",
            "the broker URL names a user but no password is given",
            f"give it with --broker-password-file FILE (mode 0600) or in {PASSWORD_ENV}",
        )
    if not address.tls and (files.ca or files.cert or files.key):
        raise BrokerLoginError(
            "TLS files",
            f"a CA, certificate or key is given but {address.url} is plain TCP",
            "use mqtts://HOST:8883 for TLS",
        )
    if bool(files.cert) != bool(files.key):
        raise BrokerLoginError(
            "client certificate",
            "a certificate needs its private key (and a key its certificate)",
            "give both --broker-cert and --broker-key",
        )
    return BrokerLogin(address.username, password, files.ca, files.cert, files.key)


def tls_context(login: BrokerLogin) -> ssl.SSLContext:
    """The client TLS context: verify the broker against ``login.ca`` (or the system's CAs) and
    its host name; present ``login.cert``/``login.key`` when given. Raises
    :class:`BrokerLoginError` naming the file that cannot be loaded."""
    try:
        context = ssl.create_default_context(cafile=login.ca)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerLoginError(
            f"CA file {login.ca}", f"cannot be loaded ({exc})", "give a PEM CA certificate"
        ) from None
    if login.cert:
        try:
            context.load_cert_chain(login.cert, login.key)
        except (OSError, ssl.SSLError) as exc:
            raise BrokerLoginError(
                f"client certificate {login.cert} / key {login.key}",
                f"cannot be loaded ({exc})",
                "give the PEM certificate and its unencrypted PEM private key",
            ) from None
    return context


def _login_refused(exc: aiomqtt.MqttError) -> bool:
    """Whether the broker's CONNACK refused the login: MQTT 3.1.1 return codes 4 (bad user name
    or password) and 5 (not authorised), MQTT 5 reason codes 134 and 135."""
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    return value in (4, 5, 134, 135)


def backoff_delay(attempt: int, base: float, cap: float, u: float) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based): exponential, capped, with jitter.

    The ceiling ``min(cap, base * 2**attempt)`` is jittered to ``[ceiling/2, ceiling)`` by
    ``u`` in ``[0, 1)`` ("equal jitter"), so a thousand clients cut off by the same broker restart
    do not all come back in the same millisecond, and none waits longer than ``cap``.
    """
    ceiling = min(cap, base * (2.0 ** min(attempt, 62)))
    return ceiling / 2.0 + u * ceiling / 2.0


def controller_will(payload: bytes = OFFLINE_PAYLOAD) -> tuple[str, bytes, int, bool]:
    """The controller's last will: ``{"state": "offline"}``, QoS 1, retained, on the state topic."""
    return (CONTROLLER_STATE_TOPIC, payload, 1, True)


@dataclass(frozen=True, slots=True)
class Publish:
    """One message to publish (used for :meth:`MqttLink.close`'s ``final`` messages)."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True, slots=True)
class MqttStats:
    """A snapshot of the link's counters (totals since creation) and gauges (now).

    ``published``: handed to a live connection. ``acked``: QoS >= 1 acknowledged by the broker.
    ``queued``: went through the outbox. ``dropped_outbox_full``: QoS 0 dropped because the
    outbox was full. ``dropped_qos_outbox_full``: QoS >= 1 refused because the outbox was full of
    QoS >= 1. ``resent``: QoS >= 1 put back in the outbox unacknowledged after a drop.
    ``reconnects``: successful connections after the first. ``connect_failures``: failed attempts.
    ``received``: messages delivered to callbacks. ``oversize``: received payloads over 64 KiB.
    ``bad_topic``: publishes refused for an invalid topic, and received topics that are not UTF-8.
    ``callback_errors``: exceptions raised by receive callbacks. ``client_warnings``: warnings
    from aiomqtt/paho counted instead of logged (for example aiomqtt's pending-calls warning).
    """

    published: int
    acked: int
    queued: int
    dropped_outbox_full: int
    dropped_qos_outbox_full: int
    resent: int
    reconnects: int
    connect_failures: int
    received: int
    oversize: int
    bad_topic: int
    callback_errors: int
    client_warnings: int
    outbox: int
    inflight: int
    connected: bool


class _Entry:
    """A message owned by the link until it is written (QoS 0) or acknowledged (QoS >= 1)."""

    __slots__ = ("dead", "payload", "qos", "retain", "seq", "topic")

    def __init__(self, seq: int, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        self.seq = seq
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dead = False  # dropped from the outbox while still in the deque (lazy removal)


@dataclass(slots=True)
class _Counters:
    """The mutable totals behind :class:`MqttStats`."""

    published: int = 0
    acked: int = 0
    queued: int = 0
    dropped_outbox_full: int = 0
    dropped_qos_outbox_full: int = 0
    resent: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    received: int = 0
    oversize: int = 0
    bad_topic: int = 0
    callback_errors: int = 0
    client_warnings: int = 0


class _CountClientWarnings(logging.Filter):
    """Turns aiomqtt's per-call 'pending publish calls' warnings into a counter."""

    def __init__(self, counters: _Counters) -> None:
        super().__init__()
        self._counters = counters

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and "pending" in record.msg:
            self._counters.client_warnings += 1
            return False
        return True


class MqttLink:
    """A reconnecting MQTT 3.1.1 connection with an ordered, bounded outbox.

    Create it, register :meth:`subscribe` filters and :meth:`on_message` callbacks at any time,
    start ``asyncio.create_task(link.run())``, and :meth:`publish` freely: nothing blocks or
    raises because the broker is away. End with ``await link.close(final=[...])``.

    ``url`` is ``mqtt://[USER@]host[:port]`` or ``mqtts://...`` (TLS); ``login`` brings the
    password and TLS files (:func:`broker_login`). ``will`` is ``(topic, payload, qos, retain)``, see
    :func:`controller_will`. ``backoff`` is ``(first, cap)`` in seconds. ``clock`` gives the
    receive timestamps in integer nanoseconds; ``rng`` drives the backoff jitter (seed it in
    tests). ``nodelay=False`` leaves Nagle's algorithm on (for measurements only).
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        will: tuple[str, bytes, int, bool] | None = None,
        keepalive: int = 10,
        outbox_limit: int = 100_000,
        backoff: tuple[float, float] = (0.1, 5.0),
        clock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
        nodelay: bool = True,
        login: BrokerLogin | None = None,
    ) -> None:
        address = parse_broker_address(url)
        self._host, self._port = address.host, address.port
        self.url = address.url
        self._login = login or BrokerLogin(address.username)
        if self._login.username is None and address.username is not None:
            self._login = replace(self._login, username=address.username)
        self._tls: ssl.SSLContext | None = tls_context(self._login) if address.tls else None
        self._logged_refusal = False
        if will is not None:
            validate_topic(will[0])
        if outbox_limit < 1:
            raise ValueError(f"outbox_limit must be at least 1, got {outbox_limit}")
        self.client_id = client_id
        self._will = will
        self._keepalive = keepalive
        self._limit = outbox_limit
        self._backoff = backoff
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._nodelay = nodelay

        self._outbox: deque[_Entry] = deque()
        self._q0: deque[_Entry] = deque()  # the QoS 0 entries of the outbox, oldest first
        self._size = 0  # live entries in the outbox
        self._inflight: dict[int, _Entry] = {}  # paho mid -> QoS >= 1 entry awaiting its ack
        self._seq = 0
        self._subs: dict[str, int] = {}
        self._callbacks: list[Receiver] = []
        self._flagged: list[Callable[[str, bytes, int, bool], None]] = []  # with the retain flag
        self._session_callbacks: list[Callable[[bool], None]] = []
        self._valid_topics: set[str] = set()
        self._c = _Counters()

        self._client: aiomqtt.Client | None = None  # set while connected and subscribed
        self._paho: paho.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._burst = 0
        self._wake = asyncio.Event()
        self._window_open = asyncio.Event()
        self._closing = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = False
        self._ever_connected = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Log-once state per episode (an outage, or a spell of a full outbox).
        self._warned_q0 = False
        self._warned_q1 = False
        self._episode_q0 = 0
        self._episode_q1 = 0
        self._logged_bad: set[str] = set()
        self._logged_oversize = False
        self._logged_callback = False

        self._wire_log = logging.getLogger(f"{__name__}.wire.{client_id}")
        for old in [f for f in self._wire_log.filters if isinstance(f, _CountClientWarnings)]:
            self._wire_log.removeFilter(old)
        self._wire_log.addFilter(_CountClientWarnings(self._c))

    # -- public surface ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while connected with every subscription restored."""
        return self._client is not None

    @property
    def stats(self) -> MqttStats:
        """A snapshot of the counters; see :class:`MqttStats`."""
        return MqttStats(
            **asdict(self._c), outbox=self._size, inflight=len(self._inflight), connected=self.connected
        )

    @property
    def tcp_nodelay(self) -> bool | None:
        """Whether the live socket has ``TCP_NODELAY`` set; ``None`` when not connected."""
        sock = self._socket()
        if sock is None:
            return None
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def on_message(self, callback: Receiver) -> None:
        """Call ``callback(topic, payload, received_ns)`` for every message received.

        Callbacks run on the event loop's thread, inside the socket read: keep them short (hand
        work to a queue). An exception is logged and counted, and the next callback still runs.
        """
        self._callbacks.append(callback)

    def on_retained(self, callback: Callable[[str, bytes, int, bool], None]) -> None:
        """Call ``callback(topic, payload, received_ns, retain)`` for every message received, with
        its retain flag (a retained message sent on subscribing, or a publish that happens now):
        the hot-standby pair's witness needs to tell them apart."""
        self._flagged.append(callback)

    def on_session(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(True)`` once connected with every subscription acknowledged (the
        broker sends retained messages next), ``callback(False)`` when the connection drops."""
        self._session_callbacks.append(callback)

    def publish_now(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Send on the current connection only, bypassing the outbox: never queued, never sent
        again after a reconnect (a failover claim must not outlive the connection it was made
        on). False when not connected."""
        inner = self._paho
        if inner is None or self._client is None:
            return False
        info = inner.publish(topic, payload, qos, retain)
        self._c.published += 1
        return bool(info.rc == 0)

    def subscribe(self, topic_filter: str, qos: int = 0) -> None:
        """Subscribe now if connected, and again after every reconnect.

        An invalid filter raises :class:`controller.topics.TopicError` (it is a programming or
        show-file error, caught before the show, not network input).
        """
        validate_filter(topic_filter)
        self._subs[topic_filter] = qos
        if self._client is not None:
            self._spawn(self._subscribe_one(self._client, topic_filter, qos))

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Send a message, or queue it in order until the broker is reachable. Never blocks.

        A topic that MQTT forbids is counted (``bad_topic``) and logged once, never raised.
        See the module docstring for the delivery guarantee of each QoS.
        """
        if topic not in self._valid_topics:
            try:
                validate_topic(topic)
            except TopicError as exc:
                self._c.bad_topic += 1
                if topic not in self._logged_bad and len(self._logged_bad) < 1000:
                    self._logged_bad.add(topic)
                    log.warning(
                        "MQTT publish refused (counted; logged once per topic): %s",
                        exc,
                        extra={"topic": topic, "client": self.client_id},
                    )
                return
            if len(self._valid_topics) >= _VALID_TOPIC_CACHE:
                self._valid_topics.clear()
            self._valid_topics.add(topic)
        if qos not in (0, 1, 2):
            raise ValueError(f"MQTT QoS must be 0, 1 or 2, got {qos!r}")
        self._seq += 1
        entry = _Entry(self._seq, topic, payload, qos, retain)
        if (
            self._size == 0
            and self._paho is not None
            and self._client is not None
            and self._burst < _BURST
            and (qos == 0 or len(self._inflight) < _WINDOW)
        ):
            if self._burst == 0 and self._loop is not None:
                self._loop.call_soon(self._reset_burst)
            self._burst += 1
            if self._send(self._paho, entry):
                return
        self._enqueue(entry)

    def abort(self) -> None:
        """Drop the connection abruptly, without DISCONNECT, as a crash or a cut cable would.

        The broker then publishes the last will; the link reconnects as after any drop. For
        fault tests and for an operator who wants to force a reconnect.
        """
        sock = self._socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    async def run(self) -> None:
        """Connect, and reconnect after every drop, until :meth:`close`. Run it as a task."""
        if self._running:
            raise RuntimeError("MqttLink.run() is already running")
        self._running = True
        self._loop = asyncio.get_running_loop()
        attempt = 0
        try:
            while not self._closing.is_set():
                client = self._make_client()
                established = False
                try:
                    async with client:
                        established = True
                        attempt = 0
                        self._logged_refusal = False
                        await self._session(client)
                except aiomqtt.MqttError as exc:
                    if self._closing.is_set():
                        break
                    extra = {"broker": self.url, "client": self.client_id, "attempt": attempt}
                    if established:
                        log.warning("MQTT connection lost, reconnecting: %s", exc, extra=extra)
                    elif _login_refused(exc):
                        self._c.connect_failures += 1
                        # The operator must act (retrying will not fix a password): ERROR, once.
                        if not self._logged_refusal:
                            self._logged_refusal = True
                            log.error(
                                "MQTT broker refused the login (%s); check the user in --broker and "
                                "the password file; retrying",
                                exc,
                                extra={**extra, "user": self._login.username},
                            )
                    else:
                        self._c.connect_failures += 1
                        # WARNING for the first failure of an outage, DEBUG for the retries.
                        level = logging.WARNING if attempt == 0 else logging.DEBUG
                        log.log(level, "MQTT broker unreachable, retrying: %s", exc, extra=extra)
                delay = backoff_delay(attempt, self._backoff[0], self._backoff[1], self._rng.random())
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), timeout=delay)
        finally:
            self._detach()
            self._running = False
            self._stopped.set()

    async def close(self, *, final: Sequence[Publish] = (), timeout: float = 2.0) -> None:
        """Publish ``final`` (e.g. the retained offline state), flush, and disconnect cleanly.

        Waits at most ``timeout`` seconds for the outbox to drain and QoS >= 1 messages to be
        acknowledged; what is still undelivered is logged at WARNING. A clean disconnect does
        not trigger the last will, which is why the controller sends its offline state itself.
        """
        for message in final:
            self.publish(message.topic, message.payload, message.qos, message.retain)
        deadline = time.monotonic() + timeout
        while self._running and self._client is not None and self._pending_out():
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.002)
        if self._size or self._inflight:
            log.warning(
                "MQTT link closed with messages undelivered",
                extra={"client": self.client_id, "outbox": self._size, "inflight": len(self._inflight)},
            )
        self._closing.set()
        if self._running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout=max(0.5, deadline - time.monotonic()))
        for task in list(self._tasks):
            task.cancel()

    # -- connection ---------------------------------------------------------------------------

    def _make_client(self) -> aiomqtt.Client:
        options: list[tuple[int, int, int]] = []
        if self._nodelay:
            options.append((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1))
        will = None
        if self._will is not None:
            topic, payload, qos, retain = self._will
            will = aiomqtt.Will(topic, payload, qos, retain)
        client = aiomqtt.Client(
            self._host,
            self._port,
            identifier=self.client_id,
            will=will,
            clean_session=True,
            keepalive=self._keepalive,
            timeout=_CONNECT_TIMEOUT_S,
            logger=self._wire_log,
            max_inflight_messages=_WINDOW,
            socket_options=options,
            username=self._login.username,
            password=self._login.password,
            tls_context=self._tls,
        )
        # Take the receive path and the acknowledgements from aiomqtt: messages are timestamped
        # and delivered as paho parses them, and QoS >= 1 acks release our own entries.
        inner = client._client  # aiomqtt exposes no hook for either
        inner.on_message = self._on_paho_message
        inner.on_publish = self._on_paho_publish
        return client

    async def _session(self, client: aiomqtt.Client) -> None:
        inner = client._client
        for topic_filter, qos in list(self._subs.items()):
            await client.subscribe(topic_filter, qos)
        if self._ever_connected:
            self._c.reconnects += 1
        self._ever_connected = True
        self._end_episode()
        self._paho = inner
        self._client = client
        log.info(
            "MQTT connected",
            extra={"broker": self.url, "client": self.client_id, "outbox": self._size},
        )
        self._tell_session(True)
        flusher = asyncio.create_task(self._flush(inner))
        self._wake.set()
        try:
            await self._until_dropped_or_closing(client)
            if self._closing.is_set():
                # Let close()'s final messages reach the socket before the DISCONNECT.
                await self._drain_socket(inner, timeout=0.5)
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            self._detach()

    async def _until_dropped_or_closing(self, client: aiomqtt.Client) -> None:
        async def dropped() -> None:
            # The message queue stays empty (our on_message hook bypasses it); iterating
            # raises MqttError when the connection drops, which is what we wait for.
            async for _ in client.messages:
                pass

        drop = asyncio.create_task(dropped())
        closing = asyncio.create_task(self._closing.wait())
        try:
            await asyncio.wait({drop, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not drop.done():
                drop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drop  # re-raises MqttError when the connection dropped

    def _tell_session(self, up: bool) -> None:
        for callback in self._session_callbacks:
            try:
                callback(up)
            except Exception:
                self._c.callback_errors += 1
                log.exception("MQTT session callback failed", extra={"client": self.client_id})

    def _detach(self) -> None:
        """Forget the connection; put unacknowledged QoS >= 1 messages back, in order, in front."""
        if self._client is not None:
            self._tell_session(False)
        self._client = None
        self._paho = None
        if self._inflight:
            back = sorted(self._inflight.values(), key=lambda e: e.seq)
            self._inflight.clear()
            self._c.resent += len(back)
            self._outbox.extendleft(reversed(back))
            self._size += len(back)
        self._window_open.set()

    def _socket(self) -> socket.socket | None:
        inner = self._paho
        sock = inner.socket() if inner is not None else None
        return sock if isinstance(sock, socket.socket) else None

    async def _subscribe_one(self, client: aiomqtt.Client, topic_filter: str, qos: int) -> None:
        try:
            await client.subscribe(topic_filter, qos)
        except aiomqtt.MqttError as exc:
            # The next reconnect subscribes again: this is degraded, not fatal.
            log.warning(
                "MQTT subscribe failed; will retry on reconnect: %s",
                exc,
                extra={"filter": topic_filter, "client": self.client_id},
            )

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- sending ------------------------------------------------------------------------------

    def _reset_burst(self) -> None:
        self._burst = 0

    def _send(self, inner: paho.Client, entry: _Entry) -> bool:
        """Hand one message to paho; False when the connection is gone (keep the entry)."""
        info = inner.publish(entry.topic, entry.payload, entry.qos, entry.retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            return False
        self._c.published += 1
        if entry.qos:
            self._inflight[info.mid] = entry
            if len(self._inflight) >= _WINDOW:
                self._window_open.clear()
        return True

    def _enqueue(self, entry: _Entry) -> None:
        if self._size >= self._limit and not self._make_room(entry):
            return
        self._outbox.append(entry)
        if entry.qos == 0:
            self._q0.append(entry)
        self._size += 1
        self._c.queued += 1
        if not self._wake.is_set():
            self._wake.set()

    def _make_room(self, entry: _Entry) -> bool:
        """The outbox is full: drop its oldest QoS 0 message, or refuse ``entry``."""
        while self._q0:
            victim = self._q0.popleft()
            if not victim.dead:
                victim.dead = True
                self._size -= 1
                self._count_q0_drop(victim)
                return True
        if entry.qos == 0:
            self._count_q0_drop(entry)
            return False
        self._c.dropped_qos_outbox_full += 1
        self._episode_q1 += 1
        if not self._warned_q1:
            self._warned_q1 = True
            log.error(
                "MQTT outbox full of QoS>=1 messages: refusing new ones (counted); "
                "the broker has been unreachable too long or cannot keep up",
                extra={"client": self.client_id, "topic": entry.topic, "outbox": self._size},
            )
        return False

    def _count_q0_drop(self, victim: _Entry) -> None:
        self._c.dropped_outbox_full += 1
        self._episode_q0 += 1
        if not self._warned_q0:
            self._warned_q0 = True
            log.warning(
                "MQTT outbox full: dropping the oldest QoS 0 messages (counted)",
                extra={"client": self.client_id, "topic": victim.topic, "outbox": self._size},
            )

    def _end_episode(self) -> None:
        if self._episode_q0 or self._episode_q1:
            level = logging.ERROR if self._episode_q1 else logging.WARNING
            log.log(
                level,
                "MQTT outbox overflow ended: %d QoS 0 dropped, %d QoS>=1 refused",
                self._episode_q0,
                self._episode_q1,
                extra={"client": self.client_id},
            )
        self._episode_q0 = self._episode_q1 = 0
        self._warned_q0 = self._warned_q1 = False

    def _pop_front(self) -> _Entry | None:
        while self._outbox:
            entry = self._outbox[0]
            if not entry.dead:
                return entry
            self._outbox.popleft()
        return None

    def _pending_out(self) -> bool:
        inner = self._paho
        return bool(self._size or self._inflight or (inner is not None and inner.want_write()))

    async def _flush(self, inner: paho.Client) -> None:
        """Drain the outbox in order, a batch per loop turn, without outrunning the socket."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._size:
                await self._drain_socket(inner, timeout=None)
                sent = 0
                while sent < _BATCH:
                    entry = self._pop_front()
                    if entry is None:
                        break
                    if entry.qos and len(self._inflight) >= _WINDOW:
                        break
                    if not self._send(inner, entry):
                        return  # the connection is gone; run() will reconnect
                    self._outbox.popleft()
                    if entry.qos == 0 and self._q0 and self._q0[0] is entry:
                        self._q0.popleft()
                    entry.dead = True  # it may still sit in _q0 if it was not at its head
                    self._size -= 1
                    sent += 1
                if self._size == 0:
                    self._end_episode()
                if sent == 0:
                    await self._window_open.wait()
                else:
                    await asyncio.sleep(0)

    async def _drain_socket(self, inner: paho.Client, timeout: float | None) -> None:
        """Wait while paho still holds bytes it could not write yet (backpressure)."""
        spins = 0
        start = time.monotonic()
        while inner.want_write() and inner.socket() is not None:
            if timeout is not None and time.monotonic() - start > timeout:
                return
            spins += 1
            await asyncio.sleep(0 if spins < 4 else 0.001)

    # -- paho callbacks (event loop thread, inside the socket read) -----------------------------

    def _on_paho_publish(
        self, client: paho.Client, userdata: object, mid: int, reason_code: object, properties: object
    ) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is not None:
            self._c.acked += 1
            if len(self._inflight) < _WINDOW and not self._window_open.is_set():
                self._window_open.set()

    def _on_paho_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        received_ns = self._clock()
        payload = bytes(message.payload)
        if len(payload) > MAX_RECEIVE_PAYLOAD:
            self._c.oversize += 1
            if not self._logged_oversize:
                self._logged_oversize = True
                log.warning(
                    "MQTT message over 64 KiB dropped (counted; logged once)",
                    extra={"client": self.client_id, "size": len(payload)},
                )
            return
        try:
            topic: str = message.topic
        except UnicodeDecodeError:
            self._c.bad_topic += 1
            return
        self._c.received += 1
        for flagged in self._flagged:
            try:
                flagged(topic, payload, received_ns, bool(message.retain))
            except Exception:
                self._c.callback_errors += 1
                log.exception("MQTT receive callback failed", extra={"client": self.client_id})
        for callback in self._callbacks:
            try:
                callback(topic, payload, received_ns)
            except Exception:
                self._c.callback_errors += 1
                if not self._logged_callback:
                    self._logged_callback = True
                    log.exception(
                        "MQTT receive callback failed (counted; logged once)",
                        extra={"client": self.client_id, "topic": topic},
                    )
