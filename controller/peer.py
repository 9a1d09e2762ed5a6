"""The peer link of a hot-standby pair: the primary's journal and both sides' heartbeats over ZeroMQ.

Theory of operation
-------------------
The primary binds a ROUTER (:class:`PeerServer`, ``tcp://0.0.0.0:5570`` by default); the standby
connects a DEALER (:class:`PeerClient`). Both run on the asyncio loop (``zmq.asyncio``). Each
message is one ZeroMQ frame holding one msgpack map with a kind ``k`` (msgspec structs, validated
on decoding):

==============  =====================  ==========================================================
``hello``       standby -> primary     ``controller`` (its id), ``run`` and ``after``: the run it
                                       followed and the last record it has (0: none). Sent until
                                       the primary answers, and again to ask for a gap.
``records``     primary -> standby     ``run``, ``first`` (the sequence number of the first record,
                                       from 1), ``records``: journal records (dicts), in order
``heartbeat``   both ways, every       ``controller``, ``run``, ``term``, ``role``
                ``heartbeat_ns``       (:class:`~controller.failover.Role`), ``witness`` (reaches
                                       the broker), ``seq`` (the last record it has), ``sent``
                                       (its show clock now), ``echo`` and ``echo_at``: the ``sent``
                                       of the last heartbeat it received and when (its show clock)
``bye``         both ways              ``controller``: a clean exit, not a failure
==============  =====================  ==========================================================

**Records.** The caller of :meth:`PeerServer.publish` hands in journal records as the core writes
them; the server numbers them from 1 and keeps the whole run's records in memory (a show's journal
is small). A standby's ``hello`` with ``after = n`` is answered with every record from ``n + 1``
(everything, for a standby that followed another run), in batches, then live batches as they are
published. The standby delivers records strictly in order (``on_records``), drops what it already
has, and on a gap (a batch that starts past its last record + 1, or a heartbeat whose ``seq`` is
ahead of its own) asks again with a ``hello`` from its last record. Nothing is lost for good:
ZeroMQ keeps order on one connection, and whatever a full queue dropped is asked for again.

**Heartbeats** go both ways every ``heartbeat_ns`` and carry what :mod:`controller.failover`
needs of the other side (term, role, id, witness). A peer is *up* from its first message and
*lost* after ``missed`` heartbeat intervals without one (or at its ``bye``); ``on_peer`` reports
both. The standby is *in step* when its last record is the primary's (:attr:`PeerClient.in_step`,
and :attr:`PeerInfo.in_step` on the primary's side).

**Clock offset.** Each heartbeat echoes the previous one received, so four timestamps, NTP-style
(RFC 5905 section 8), come together at every heartbeat: ``t1`` (our ``sent``, echoed), ``t2``
(when the other side received it, its clock), ``t3`` (its ``sent``), ``t4`` (our receipt): offset
``((t2 - t1) + (t3 - t4)) / 2``, round trip ``(t4 - t1) - (t3 - t2)``. The sample with the smallest
round trip among the last :data:`OFFSET_SAMPLES` is kept (:attr:`PeerClient.offset_ns`: the
primary's show clock minus ours).

**Never block, never crash.** Sends use ``zmq.NOBLOCK``; a full queue (``zmq.Again``) or an
unroutable peer drops the message and counts it (:class:`LinkStats`). Every socket has
``linger=0`` (closing never waits; a ``bye`` is given a few ms to leave first) and bounded queues
(``sndhwm``/``rcvhwm``); the standby's DEALER sets ``immediate`` so nothing queues for a primary
that is not there. Every frame from the network is bounded (:data:`MAX_FRAME`) and decoded against
the message structs; anything else is counted as malformed and dropped, and an exception raised
by a callback is logged once and counted: nothing that arrives can stop the link.

Call everything from the event loop's thread. ``clock`` (monotonic ns) paces heartbeats and
declares a peer lost; ``show_clock`` (the show's reference clock) stamps heartbeats for the offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Self, TypeAlias, cast

import msgspec
import zmq
import zmq.asyncio

from controller.failover import HEARTBEAT_NS, MISSED, Role
from venues.errors import MadangError

__all__ = [
    "BATCH",
    "DEFAULT_ENDPOINT",
    "MAX_FRAME",
    "OFFSET_SAMPLES",
    "Bye",
    "Heartbeat",
    "Hello",
    "LinkStats",
    "PeerBeat",
    "PeerChange",
    "PeerClient",
    "PeerEndpointError",
    "PeerInfo",
    "PeerServer",
    "Records",
    "decode",
    "encode",
]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://0.0.0.0:5570"
"""Where the primary listens by default."""
MAX_FRAME = 1 << 20
"""A received frame larger than this is dropped and counted (1 MiB)."""
_MAX_SOCKET_MESSAGE = 4 * MAX_FRAME  # ZeroMQ disconnects a peer that sends more (ZMQ_MAXMSGSIZE)
BATCH = 256
"""Records per ``records`` frame."""
OFFSET_SAMPLES = 16
"""Clock offset samples kept; the one with the smallest round trip is used."""
HWM = 1_000
"""Default frames queued per peer and direction before ZeroMQ refuses (sends are dropped and counted)."""
_BYE_FLUSH_S = 0.005  # time for a bye to leave before a linger=0 close
_ID = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_RUN = Annotated[str, msgspec.Meta(max_length=64)]
_SEQ = Annotated[int, msgspec.Meta(ge=0)]


# --- the messages ---------------------------------------------------------------------------


class Hello(msgspec.Struct, tag="hello", tag_field="k", frozen=True):
    """Standby -> primary: follow me from record ``after + 1`` of run ``run``."""

    controller: _ID
    run: _RUN = ""
    after: _SEQ = 0


class Records(msgspec.Struct, tag="records", tag_field="k", frozen=True):
    """Primary -> standby: ``records`` numbered from ``first`` in run ``run``."""

    run: _RUN
    first: Annotated[int, msgspec.Meta(ge=1)]
    records: Annotated[list[dict[str, Any]], msgspec.Meta(max_length=4 * BATCH)]


class Heartbeat(msgspec.Struct, tag="heartbeat", tag_field="k", frozen=True):
    """Both ways, every heartbeat interval."""

    controller: _ID
    run: _RUN
    term: _SEQ
    role: Role
    witness: bool
    seq: _SEQ
    sent: int
    echo: int | None = None
    echo_at: int | None = None
    # The sender's audience WebSocket address, for the phones (docs/standby.md, "Phones"); "": none.
    web: Annotated[str, msgspec.Meta(max_length=512)] = ""


class Bye(msgspec.Struct, tag="bye", tag_field="k", frozen=True):
    """Both ways: a clean exit."""

    controller: _ID


Message: TypeAlias = Hello | Records | Heartbeat | Bye

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode(message: Message) -> bytes:
    """One message as the bytes of one frame."""
    return _encoder.encode(message)


def decode(frame: bytes) -> Message | str:
    """One frame as a message, or the reason it is not one (never raises)."""
    if len(frame) > MAX_FRAME:
        return f"{len(frame)} bytes; the limit is {MAX_FRAME}"
    try:
        return _decoder.decode(frame)
    except (msgspec.DecodeError, RecursionError) as err:  # ValidationError is a DecodeError
        return f"not a peer message: {err}"


# --- what the link reports --------------------------------------------------------------------


class PeerEndpointError(MadangError, ValueError):
    """A peer endpoint ZeroMQ cannot bind or connect."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(endpoint, reason)
        self.endpoint, self.reason = endpoint, reason

    def __str__(self) -> str:
        return (
            f"peer endpoint {self.endpoint!r}: {self.reason}; give tcp://HOST:PORT "
            "(the primary binds, e.g. tcp://0.0.0.0:5570; the standby connects to tcp://PRIMARY:5570)"
        )


@dataclass(frozen=True, slots=True)
class PeerBeat:
    """A heartbeat of the peer, as :meth:`controller.failover.Failover.peer_heartbeat` takes it;
    ``at_ns`` is its arrival (``clock``)."""

    controller: str
    term: int
    role: Role
    witness: bool
    seq: int
    at_ns: int


@dataclass(frozen=True, slots=True)
class PeerChange:
    """The peer came (``up``) or went: ``reason`` is ``"hello"``, ``"heartbeat"``, ``"silent"``
    (``missed`` intervals without a message) or ``"bye"``; ``at_ns`` on ``clock``."""

    controller: str | None
    up: bool
    reason: str
    at_ns: int


@dataclass(slots=True)
class LinkStats:
    """Counters of one link (never reset)."""

    sent: int = 0
    received: int = 0
    dropped_sends: int = 0  # a full queue (zmq.Again) or an unroutable peer
    malformed: int = 0  # frames that are not a peer message
    callback_errors: int = 0
    gaps: int = 0  # standby: gaps detected (each asked again)
    duplicates: int = 0  # standby: records received twice (dropped)
    asks: int = 0  # standby: hellos sent to ask again


@dataclass(slots=True)
class _Clock:
    """The NTP-style offset estimate of one peer."""

    samples: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=OFFSET_SAMPLES))
    last_sent: int | None = None  # the other side's last `sent` (echoed back as `echo`)
    last_sent_at: int | None = None  # when we received it (show clock)

    def heard(self, hb: Heartbeat, t4: int) -> None:
        if hb.echo is not None and hb.echo_at is not None:
            t1, t2, t3 = hb.echo, hb.echo_at, hb.sent
            delay = (t4 - t1) - (t3 - t2)
            if delay >= 0:
                self.samples.append((delay, ((t2 - t1) + (t3 - t4)) // 2))
        self.last_sent, self.last_sent_at = hb.sent, t4

    @property
    def best(self) -> tuple[int, int] | None:
        """``(round trip, offset)`` of the sample with the smallest round trip."""
        return min(self.samples) if self.samples else None


@dataclass(slots=True)
class PeerInfo:
    """The primary's view of one connected standby."""

    controller: str
    identity: bytes
    last_heard_ns: int
    role: Role | None = None
    term: int | None = None
    seq: int = 0  # the last record it says it has
    witness: bool = False
    in_step: bool = False
    clock: _Clock = field(default_factory=_Clock)

    @property
    def offset_ns(self) -> int | None:
        """Its show clock minus ours (``None`` until measured)."""
        best = self.clock.best
        return None if best is None else best[1]

    @property
    def rtt_ns(self) -> int | None:
        """Round trip of the offset sample (``None`` until measured)."""
        best = self.clock.best
        return None if best is None else best[0]


# --- the common part ------------------------------------------------------------------------


class _Link:
    """What both ends share: the socket, the loops, the counters, the local standing."""

    _kind: int

    def __init__(
        self,
        endpoint: str,
        controller: str,
        *,
        heartbeat_ns: int,
        missed: int,
        clock: Callable[[], int],
        show_clock: Callable[[], int],
        context: zmq.asyncio.Context | None,
        on_heartbeat: Callable[[PeerBeat], None] | None,
        on_peer: Callable[[PeerChange], None] | None,
        hwm: int,
    ) -> None:
        if heartbeat_ns <= 0 or missed < 1:
            raise ValueError(f"heartbeat_ns={heartbeat_ns} and missed={missed}: both must be positive")
        self.endpoint = endpoint
        self.controller = controller
        self.heartbeat_ns = heartbeat_ns
        self.missed = missed
        self.clock = clock
        self.show_clock = show_clock
        self.on_heartbeat = on_heartbeat
        self.on_peer = on_peer
        self.hwm = hwm
        # What our heartbeats say; the owner keeps these current (from controller.failover).
        self.term = 0
        self.role: Role = Role.STANDBY
        self.witness = False
        self.web = ""  # our audience WebSocket address, said in every heartbeat ("": none)
        self.peer_web = ""  # the peer's, as its last heartbeat said
        self.stats = LinkStats()
        self._own_context = context is None
        self._ctx = context if context is not None else zmq.asyncio.Context()
        self._sock: zmq.asyncio.Socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._logged_callback = False
        self._logged_malformed = False
        self._closed = False

    @property
    def detect_ns(self) -> int:
        """Silence after which the peer is declared lost."""
        return self.missed * self.heartbeat_ns

    def _socket(self) -> zmq.asyncio.Socket:
        sock = self._ctx.socket(self._kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, self.hwm)
        sock.setsockopt(zmq.RCVHWM, self.hwm)
        sock.setsockopt(zmq.MAXMSGSIZE, _MAX_SOCKET_MESSAGE)
        return sock

    async def start(self) -> None:
        """Open the socket and start the receive and heartbeat loops (returns at once)."""
        if self._sock is not None:
            return
        self._sock = self._open()
        self._tasks = [
            asyncio.create_task(self._receive_loop(), name=f"peer-recv-{self.controller}"),
            asyncio.create_task(self._beat_loop(), name=f"peer-beat-{self.controller}"),
        ]

    def _open(self) -> zmq.asyncio.Socket:
        raise NotImplementedError

    async def close(self, *, bye: bool = True) -> None:
        """Say ``bye`` (unless ``bye=False``: a test's crash), stop the loops, close the socket
        (and the context, when the link made its own). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:  # first, so that no heartbeat follows the bye
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if bye and self._sock is not None:
            self._say_bye()
            await asyncio.sleep(_BYE_FLUSH_S)  # ZeroMQ's I/O thread writes it meanwhile
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        if self._own_context:
            self._ctx.term()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _say_bye(self) -> None:
        raise NotImplementedError

    # -- sending ----------------------------------------------------------------------------

    def _send(self, frames: Sequence[bytes]) -> bool:
        """Send without blocking; a full queue or an unroutable peer drops and counts."""
        sock = self._sock
        if sock is None:
            return False
        # zmq.asyncio finishes a NOBLOCK send at once: the future already holds the result or the
        # zmq.Again that a blocking socket would have raised.
        fut = cast("asyncio.Future[Any]", sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=True))
        if not fut.done():  # only if a blocking send were pending, which this link never issues
            fut.add_done_callback(_retrieve)
            return True
        exc = fut.exception()
        if exc is None:
            self.stats.sent += 1
            return True
        if isinstance(exc, zmq.ZMQError):  # Again (queue full), EHOSTUNREACH (peer gone)
            self.stats.dropped_sends += 1
            return False
        raise exc

    def _heartbeat(self, seq: int, clock: _Clock) -> bytes:
        return encode(
            Heartbeat(
                controller=self.controller,
                run=self._run_id(),
                term=self.term,
                role=self.role,
                witness=self.witness,
                seq=seq,
                sent=self.show_clock(),
                echo=clock.last_sent,
                echo_at=clock.last_sent_at,
                web=self.web,
            )
        )

    def _run_id(self) -> str:
        raise NotImplementedError

    # -- receiving --------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            frames = await sock.recv_multipart(copy=True)
            now, show_now = self.clock(), self.show_clock()
            self.stats.received += 1
            try:
                self._receive(frames, now, show_now)
            except Exception:  # a callback's bug must not stop the link
                self.stats.callback_errors += 1
                if not self._logged_callback:
                    self._logged_callback = True
                    log.exception(
                        "peer link callback failed (counted; logged once)",
                        extra={"controller": self.controller},
                    )

    def _receive(self, frames: list[bytes], now: int, show_now: int) -> None:
        raise NotImplementedError

    def _malformed(self, reason: str, peer: str | None = None) -> None:
        self.stats.malformed += 1
        if not self._logged_malformed:
            self._logged_malformed = True
            log.warning(
                "malformed peer frame dropped (counted; logged once): %s",
                reason,
                extra={"controller": self.controller, "peer": peer},
            )

    def _tell(self, change: PeerChange) -> None:
        log.info(
            "peer %s %s (%s)",
            change.controller,
            "up" if change.up else "lost",
            change.reason,
            extra={"controller": self.controller, "peer": change.controller},
        )
        if self.on_peer is not None:
            self.on_peer(change)

    def _beat(self, hb: Heartbeat, now: int) -> None:
        if hb.web:
            self.peer_web = hb.web
        if self.on_heartbeat is not None:
            self.on_heartbeat(PeerBeat(hb.controller, hb.term, hb.role, hb.witness, hb.seq, now))

    # -- heartbeats -------------------------------------------------------------------------

    async def _beat_loop(self) -> None:
        next_beat = self.clock()
        while True:
            now = self.clock()
            if now >= next_beat:
                try:
                    self._on_beat(now)
                except Exception:
                    self.stats.callback_errors += 1
                    log.exception("peer link heartbeat failed", extra={"controller": self.controller})
                next_beat += self.heartbeat_ns
                if next_beat <= now:  # the loop was late by more than an interval: do not burst
                    next_beat = now + self.heartbeat_ns
            loss = self._next_loss(now)
            wake = next_beat if loss is None else min(next_beat, loss)
            await asyncio.sleep(max(0, wake - self.clock()) / 1e9)
            try:
                self._check_loss(self.clock())
            except Exception:
                self.stats.callback_errors += 1
                log.exception("peer link loss check failed", extra={"controller": self.controller})

    def _on_beat(self, now: int) -> None:
        raise NotImplementedError

    def _next_loss(self, now: int) -> int | None:
        raise NotImplementedError

    def _check_loss(self, now: int) -> None:
        raise NotImplementedError


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _batches(first: int, records: Sequence[Mapping[str, Any]]) -> Iterable[tuple[int, list[dict[str, Any]]]]:
    for i in range(0, len(records), BATCH):
        yield first + i, [dict(r) for r in records[i : i + BATCH]]


# --- the primary's end ----------------------------------------------------------------------


class PeerServer(_Link):
    """The primary's end: binds a ROUTER at ``endpoint`` (``tcp://HOST:*`` picks a free port;
    :attr:`endpoint` then holds the one bound). Feed it the journal with :meth:`publish`; keep
    :attr:`term`, :attr:`role` and :attr:`witness` current; read the standbys in :attr:`peers`.

    ``on_heartbeat``: every standby heartbeat (feed it to the failover machine). ``on_peer``: a
    standby came or went. ``run``: this run's id (a fresh random one by default); a standby that
    followed another run gets everything from the first record."""

    _kind = zmq.ROUTER

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        controller: str = "primary",
        *,
        run: str | None = None,
        heartbeat_ns: int = HEARTBEAT_NS,
        missed: int = MISSED,
        clock: Callable[[], int] = time.monotonic_ns,
        show_clock: Callable[[], int] = time.time_ns,
        context: zmq.asyncio.Context | None = None,
        on_heartbeat: Callable[[PeerBeat], None] | None = None,
        on_peer: Callable[[PeerChange], None] | None = None,
        hwm: int = HWM,
    ) -> None:
        super().__init__(
            endpoint,
            controller,
            heartbeat_ns=heartbeat_ns,
            missed=missed,
            clock=clock,
            show_clock=show_clock,
            context=context,
            on_heartbeat=on_heartbeat,
            on_peer=on_peer,
            hwm=hwm,
        )
        self.run = run if run is not None else secrets.token_hex(6)
        self.role = Role.STARTING
        self.records: list[dict[str, Any]] = []  # the whole run's, record n at index n - 1
        self.peers: dict[bytes, PeerInfo] = {}

    @property
    def seq(self) -> int:
        """The last record's sequence number (0: none yet)."""
        return len(self.records)

    def _run_id(self) -> str:
        return self.run

    def _open(self) -> zmq.asyncio.Socket:
        sock = self._socket()
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # an unroutable send raises (counted), not silent
        try:
            sock.bind(self.endpoint)
        except zmq.ZMQError as err:
            sock.close(linger=0)
            raise PeerEndpointError(self.endpoint, f"cannot bind: {err}") from err
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return sock

    def publish(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append journal records and send them to every standby that said hello; returns the
        last sequence number."""
        new = [dict(r) for r in records]
        if not new:
            return self.seq
        first = self.seq + 1
        self.records.extend(new)
        frames = [encode(Records(self.run, f, batch)) for f, batch in _batches(first, new)]
        for peer in list(self.peers.values()):
            for frame in frames:
                self._send([peer.identity, frame])
        return self.seq

    def _say_bye(self) -> None:
        frame = encode(Bye(self.controller))
        for peer in self.peers.values():
            self._send([peer.identity, frame])

    def _receive(self, frames: list[bytes], now: int, show_now: int) -> None:
        if len(frames) != 2:
            self._malformed(f"{len(frames)} frames; a peer message is one frame")
            return
        identity, frame = frames
        msg = decode(frame)
        if isinstance(msg, str):
            self._malformed(msg)
            return
        if isinstance(msg, Records):
            self._malformed("records sent to the primary", msg.run)
            return
        peer = self.peers.get(identity)
        if isinstance(msg, Bye):
            if peer is not None:
                del self.peers[identity]
                self._tell(PeerChange(peer.controller, False, "bye", now))
            return
        if peer is None:
            peer = self.peers[identity] = PeerInfo(msg.controller, identity, now)
            self._tell(
                PeerChange(msg.controller, True, "hello" if isinstance(msg, Hello) else "heartbeat", now)
            )
        peer.last_heard_ns = now
        peer.controller = msg.controller
        if isinstance(msg, Hello):
            after = msg.after if msg.run == self.run else 0
            self._send_from(peer, min(after, self.seq))
            self._send([identity, self._heartbeat(self.seq, peer.clock)])
        else:
            peer.clock.heard(msg, show_now)
            peer.role, peer.term, peer.seq, peer.witness = msg.role, msg.term, msg.seq, msg.witness
            peer.in_step = msg.run == self.run and msg.seq == self.seq
            self._beat(msg, now)

    def _send_from(self, peer: PeerInfo, after: int) -> None:
        for first, batch in _batches(after + 1, self.records[after:]):
            if not self._send([peer.identity, encode(Records(self.run, first, batch))]):
                break  # the queue is full: the standby sees the gap and asks again

    def _on_beat(self, now: int) -> None:
        for peer in list(self.peers.values()):
            self._send([peer.identity, self._heartbeat(self.seq, peer.clock)])

    def _next_loss(self, now: int) -> int | None:
        if not self.peers:
            return None
        return min(p.last_heard_ns for p in self.peers.values()) + self.detect_ns

    def _check_loss(self, now: int) -> None:
        for identity, peer in list(self.peers.items()):
            if now - peer.last_heard_ns >= self.detect_ns:
                del self.peers[identity]
                self._tell(PeerChange(peer.controller, False, "silent", now))


# --- the standby's end ----------------------------------------------------------------------


class PeerClient(_Link):
    """The standby's end: connects a DEALER to the primary at ``endpoint`` and follows its
    journal. Keep :attr:`term`, :attr:`role` and :attr:`witness` current.

    ``on_records(first, records)``: records numbered from ``first``, strictly in order, each
    exactly once per run. ``on_reset(run)``: the primary started another run (a restart): what
    follows is numbered from 1 again. ``on_heartbeat``, ``on_peer``: as for :class:`PeerServer`.
    ``after``/``run``: where a standby restarted from its own copy resumes."""

    _kind = zmq.DEALER

    def __init__(
        self,
        endpoint: str,
        controller: str = "standby",
        *,
        on_records: Callable[[int, list[dict[str, Any]]], None] | None = None,
        on_reset: Callable[[str], None] | None = None,
        run: str = "",
        after: int = 0,
        heartbeat_ns: int = HEARTBEAT_NS,
        missed: int = MISSED,
        clock: Callable[[], int] = time.monotonic_ns,
        show_clock: Callable[[], int] = time.time_ns,
        context: zmq.asyncio.Context | None = None,
        on_heartbeat: Callable[[PeerBeat], None] | None = None,
        on_peer: Callable[[PeerChange], None] | None = None,
        hwm: int = HWM,
    ) -> None:
        super().__init__(
            endpoint,
            controller,
            heartbeat_ns=heartbeat_ns,
            missed=missed,
            clock=clock,
            show_clock=show_clock,
            context=context,
            on_heartbeat=on_heartbeat,
            on_peer=on_peer,
            hwm=hwm,
        )
        self.on_records = on_records
        self.on_reset = on_reset
        self.run = run  # the primary's run we follow ("" until it tells us)
        self.last_seq = after  # the last record we have
        self.peer: str | None = None  # the primary's id, once heard
        self.peer_seq: int | None = None  # the last record the primary has (its heartbeats)
        self.peer_role: Role | None = None
        self.connected = False
        self._clock = _Clock()
        self._last_heard_ns: int | None = None
        self._asked: tuple[int, int] | None = None  # (last_seq asked from, when)

    @property
    def in_step(self) -> bool:
        """Whether the standby has every record the primary had at its last heartbeat."""
        return self.connected and self.peer_seq is not None and self.last_seq >= self.peer_seq

    @property
    def lag(self) -> int | None:
        """Records the standby lacks (the primary's last heartbeat said it had them)."""
        return None if self.peer_seq is None else max(0, self.peer_seq - self.last_seq)

    @property
    def offset_ns(self) -> int | None:
        """The primary's show clock minus ours (``None`` until measured)."""
        best = self._clock.best
        return None if best is None else best[1]

    @property
    def rtt_ns(self) -> int | None:
        """Round trip of the offset sample (``None`` until measured)."""
        best = self._clock.best
        return None if best is None else best[0]

    def _run_id(self) -> str:
        return self.run

    def _open(self) -> zmq.asyncio.Socket:
        sock = self._socket()
        sock.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing for a primary that is not connected
        sock.setsockopt(zmq.RECONNECT_IVL, 50)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        try:
            sock.connect(self.endpoint)
        except zmq.ZMQError as err:
            sock.close(linger=0)
            raise PeerEndpointError(self.endpoint, f"cannot connect: {err}") from err
        return sock

    def _say_bye(self) -> None:
        self._send([encode(Bye(self.controller))])

    def _hello(self, now: int) -> None:
        self._send([encode(Hello(self.controller, self.run, self.last_seq))])

    def _ask(self, now: int) -> None:
        """Ask again from our last record (once per last record and heartbeat interval)."""
        if self._asked is not None:
            seq, when = self._asked
            if seq == self.last_seq and now - when < 2 * self.heartbeat_ns:
                return
        self._asked = (self.last_seq, now)
        self.stats.asks += 1
        self._hello(now)

    def _receive(self, frames: list[bytes], now: int, show_now: int) -> None:
        if len(frames) != 1:
            self._malformed(f"{len(frames)} frames; a peer message is one frame")
            return
        msg = decode(frames[0])
        if isinstance(msg, str):
            self._malformed(msg)
            return
        if isinstance(msg, Hello):
            self._malformed("hello sent to the standby", msg.controller)
            return
        if isinstance(msg, Bye):
            if self.connected:
                self.connected = False
                self._tell(PeerChange(msg.controller, False, "bye", now))
            return
        self._last_heard_ns = now
        if msg.run != self.run:
            self._new_run(msg.run, now)
        if isinstance(msg, Records):
            self._records(msg, now)
            return
        if not self.connected:  # up at the first heartbeat, which names the primary
            self.connected = True
            self._tell(PeerChange(msg.controller, True, "heartbeat", now))
        self.peer, self.peer_seq, self.peer_role = msg.controller, msg.seq, msg.role
        self._clock.heard(msg, show_now)
        if msg.seq > self.last_seq:
            # ZeroMQ keeps order: what the primary had when it sent this should be here already.
            self.stats.gaps += 1
            self._ask(now)
        self._beat(msg, now)

    def _new_run(self, run: str, now: int) -> None:
        had = self.run
        self.run, self.last_seq, self.peer_seq, self._asked = run, 0, None, None
        if had and self.on_reset is not None:
            self.on_reset(run)
        if had:
            log.warning(
                "the primary started another run: following it from its first record",
                extra={"controller": self.controller, "run": run, "previous": had},
            )
            self._ask(now)

    def _records(self, msg: Records, now: int) -> None:
        last = msg.first + len(msg.records) - 1
        if msg.first > self.last_seq + 1:
            self.stats.gaps += 1
            self._ask(now)
            return
        if last <= self.last_seq:
            self.stats.duplicates += len(msg.records)
            return
        skip = self.last_seq + 1 - msg.first
        self.stats.duplicates += skip
        fresh = msg.records[skip:]
        self.last_seq = last
        if self.on_records is not None:
            self.on_records(msg.first + skip, fresh)

    def _on_beat(self, now: int) -> None:
        if self.connected:
            self._send([self._heartbeat(self.last_seq, self._clock)])
        else:
            self._hello(now)  # until the primary answers (dropped while it is not connected)

    def _next_loss(self, now: int) -> int | None:
        if not self.connected or self._last_heard_ns is None:
            return None
        return self._last_heard_ns + self.detect_ns

    def _check_loss(self, now: int) -> None:
        if self.connected and self._last_heard_ns is not None and now - self._last_heard_ns >= self.detect_ns:
            self.connected = False
            self._asked = None
            self._tell(PeerChange(self.peer, False, "silent", now))
