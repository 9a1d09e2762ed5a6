"""OSC over UDP: asyncio adapters that move datagrams, count everything, and never crash the show.

Theory of operation
-------------------
Three adapters, one accounting table:

- :class:`UdpSender` fans packets out to many ``(host, port)`` endpoints from one asyncio datagram
  endpoint. A send goes straight to the socket; only when the kernel buffer is full
  (``EAGAIN``) is it handed to the asyncio transport, which queues it and writes it when the
  socket is writable, so order is kept and nothing blocks the loop.
- :class:`DirectUdpSender` is the same without asyncio, for the firing edge
  (:mod:`controller.edge`), which must write to the socket from its own thread at an exact
  instant. A full buffer drops (and counts) the packet instead of waiting.
- Both send a batch (:meth:`UdpSender.send_many`, :meth:`DirectUdpSender.send_batch`) of 4 or
  more packets with ``sendmmsg(2)`` (:mod:`controller.mmsg`): one system call per up to 1024
  datagrams instead of one each, with the same per-message policy and accounting as single sends.
  A call that stops short is resumed from the first unsent packet. Without ``sendmmsg`` (not
  Linux), or for a batch with a host name in it, they loop over ``sendto``.
- :class:`UdpReceiver` reads a plain non-blocking socket registered with ``loop.add_reader``, so it
  can use ``recvmsg`` and the kernel's ``SO_TIMESTAMPNS`` receive timestamp (when the datagram hit
  the socket, not when Python got round to it). It drops and counts datagrams over ``max_size``
  (64 KiB by default, ``docs/protocol.md`` "Limits"). It can also reply from its own port
  (:meth:`UdpReceiver.send`), so pongs to pings sent from it come back to it.

Dead endpoints. A datagram to a port where nothing listens earns an ICMP "port unreachable". On
Linux an *unconnected* UDP socket ignores these unless ``IP_RECVERR`` is set; with it, the error is
queued with the original destination (read with ``recvmsg(MSG_ERRQUEUE)``) and also makes the
*next* socket call, whatever its destination, fail with ``ECONNREFUSED``. Every adapter here sets
``IP_RECVERR``, drains the error queue whenever a call fails that way, counts each error against
the endpoint it belongs to (logged once per endpoint, WARNING, with ``extra={"device", "endpoint"}``)
and retries the send that was refused on another's behalf, so a dead device never costs a live
one its packet. Without ``IP_RECVERR`` (not Linux) errors are counted as unattributed. In a
``sendmmsg`` batch the kernel consumes such an error silently when it stops a call short (the
refused datagram is simply the first one of the next call), so the batched paths read the error
queue after every short call.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from controller.clock import Clock, SystemClock
from controller.mmsg import MAX_PER_CALL as _MAX_PER_CALL
from controller.mmsg import MessageVector, open_vector

__all__ = [
    "MAX_DATAGRAM",
    "Addr",
    "Datagram",
    "DirectUdpSender",
    "EndpointStats",
    "ReceiverStats",
    "UdpReceiver",
    "UdpSender",
]

log = logging.getLogger(__name__)

#: A UDP endpoint: (host, port).
Addr: TypeAlias = tuple[str, int]
#: Datagrams larger than this are dropped and counted (``docs/protocol.md``, "Limits").
MAX_DATAGRAM = 65536

# Linux constants the socket module does not export on every build.
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
_EE = struct.Struct("=IBBBBII")  # struct sock_extended_err
_TIMESPEC = struct.Struct("@ll")
_ANC_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)
_ERR_ANC_SIZE = 512
# Errors that an ICMP message for an *earlier* datagram leaves on the socket.
_ASYNC_ERRNOS = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})
# Below this many packets a batch goes through the sendto loop: preparing the sendmmsg arrays
# costs a few microseconds, about one saved system call.
_MIN_BATCH = 4


@dataclass(frozen=True, slots=True)
class EndpointStats:
    """What happened to datagrams sent to one endpoint (a snapshot).

    ``sent``/``bytes``: accepted by the kernel. ``refused``: ICMP port-unreachable reports (the
    device is not listening). ``errors``: every other failure, including ``dropped`` sends
    (kernel buffer full on a path that must not wait). ``last_errno``: the latest error, or 0.
    """

    sent: int = 0
    bytes: int = 0
    refused: int = 0
    errors: int = 0
    dropped: int = 0
    last_errno: int = 0


class _Counts:
    __slots__ = ("bytes", "dropped", "errors", "last_errno", "refused", "sent", "warned")

    def __init__(self) -> None:
        self.sent = 0
        self.bytes = 0
        self.refused = 0
        self.errors = 0
        self.dropped = 0
        self.last_errno = 0
        self.warned = False

    def snapshot(self) -> EndpointStats:
        return EndpointStats(self.sent, self.bytes, self.refused, self.errors, self.dropped, self.last_errno)


class _Endpoints:
    """Per-endpoint counters, device names, and the ICMP error queue of one socket."""

    __slots__ = ("_batch_addrs", "_batch_counts", "_counts", "_names", "_sock", "_unattributed_warned",
                 "owner", "unattributed")

    def __init__(self, sock: socket.socket, owner: str, names: Mapping[Addr, str] | None) -> None:
        self._sock = sock
        self._counts: dict[Addr, _Counts] = {}
        self._batch_addrs: list[Addr] = []
        self._batch_counts: list[_Counts] = []
        self._names: dict[Addr, str] = dict(names or {})
        self.owner = owner
        self.unattributed = 0
        self._unattributed_warned = False

    def counts(self, addr: Addr) -> _Counts:
        c = self._counts.get(addr)
        if c is None:
            c = self._counts[addr] = _Counts()
        return c

    def sent_batch(self, vec: MessageVector, start: int, stop: int) -> None:
        """Count ``vec``'s loaded messages ``start:stop`` as sent."""
        addrs = vec.addrs
        if addrs is not self._batch_addrs:
            # A new set of endpoints; frames to the same ones reuse this list (and the vector
            # hands back the same addrs object), so the lookups are paid once per endpoint set.
            self._batch_addrs = addrs
            self._batch_counts = list(map(self.counts, addrs))
        counts, sizes = self._batch_counts, vec.sizes
        if start or stop < len(counts):
            counts, sizes = counts[start:stop], sizes[start:stop]
        for c, size in zip(counts, sizes, strict=True):
            c.sent += 1
            c.bytes += size

    def name(self, addr: Addr, device: str) -> None:
        self._names[addr] = device

    def snapshot(self, addr: Addr) -> EndpointStats:
        c = self._counts.get(addr)
        return c.snapshot() if c is not None else EndpointStats()

    def all(self) -> dict[Addr, EndpointStats]:
        return {a: c.snapshot() for a, c in self._counts.items()}

    def error(self, addr: Addr, err: int, *, refused: bool = False, dropped: bool = False) -> None:
        c = self.counts(addr)
        c.last_errno = err
        if refused:
            c.refused += 1
        else:
            c.errors += 1
            if dropped:
                c.dropped += 1
        if not c.warned:
            c.warned = True
            device = self._names.get(addr)
            what = "refused (nothing listening)" if refused else (
                "dropped (send buffer full)" if dropped else f"failed ({errno.errorcode.get(err, err)})"
            )
            log.warning(
                "UDP sends to %s:%d %s; counting further errors for it silently",
                addr[0], addr[1], what,
                extra={"device": device, "endpoint": f"{addr[0]}:{addr[1]}", "errno": err,
                       "socket": self.owner},
            )

    def drain(self) -> int:
        """Read the socket's error queue, counting each error against its destination."""
        found = 0
        while True:
            try:
                _, anc, _, addr = self._sock.recvmsg(1, _ERR_ANC_SIZE, _MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return found
            except OSError:
                return found  # no error queue on this platform
            err = errno.ECONNREFUSED
            for level, kind, data in anc:
                if level == socket.IPPROTO_IP and kind == _IP_RECVERR and len(data) >= _EE.size:
                    err = _EE.unpack_from(data)[0]
            if isinstance(addr, tuple) and len(addr) >= 2:
                self.error((addr[0], addr[1]), err, refused=err == errno.ECONNREFUSED)
                found += 1

    def async_error(self, exc: OSError) -> None:
        """A socket call failed with an error left by an earlier datagram: attribute it."""
        if self.drain() == 0:
            self.unattributed += 1
            if not self._unattributed_warned:
                self._unattributed_warned = True
                log.warning("UDP error with no destination recorded: %s", exc,
                            extra={"socket": self.owner, "errno": exc.errno})


def _udp_socket(local_addr: Addr) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        except OSError:
            log.info("IP_RECVERR unavailable: UDP errors cannot be attributed to endpoints")
        sock.bind(local_addr)
    except BaseException:
        sock.close()
        raise
    return sock


def _addr_str(addr: Addr) -> str:
    return f"{addr[0]}:{addr[1]}"


class DirectUdpSender:
    """Sends datagrams straight from a plain non-blocking socket, from any one thread, never waiting.

    For the firing edge: :meth:`send_batch` emits a list of prebuilt ``(bytes, addr)`` back to back.
    A full kernel buffer drops the datagram (counted in ``dropped``); an ICMP error left by an
    earlier datagram is attributed to its endpoint and the current send is retried once.
    """

    def __init__(self, *, local_addr: Addr = ("0.0.0.0", 0), names: Mapping[Addr, str] | None = None,
                 sndbuf: int | None = None) -> None:
        self._sock = _udp_socket(local_addr)
        if sndbuf is not None:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self._sendto = self._sock.sendto
        self._table = _Endpoints(self._sock, f"direct@{_addr_str(self.local_addr)}", names)
        self._vec = open_vector(self._sock)

    @property
    def local_addr(self) -> Addr:
        """The bound (host, port)."""
        host, port = self._sock.getsockname()[:2]
        return (host, port)

    def name_endpoint(self, addr: Addr, device: str) -> None:
        """Name the device behind ``addr`` for log context."""
        self._table.name(addr, device)

    def send(self, data: bytes, addr: Addr) -> bool:
        """Send one datagram now; ``True`` if the kernel took it."""
        try:
            self._sendto(data, addr)
        except OSError as exc:
            return self._failed(data, addr, exc)
        c = self._table.counts(addr)
        c.sent += 1
        c.bytes += len(data)
        return True

    def send_batch(self, packets: Sequence[tuple[bytes, Addr]]) -> int:
        """Send every packet now, back to back; returns how many the kernel took.

        Uses one ``sendmmsg(2)`` call per up-to-1024 packets where available
        (:mod:`controller.mmsg`), otherwise one ``sendto`` each; counting is the same either way.
        """
        vec = self._vec
        if vec is not None and len(packets) >= _MIN_BATCH and vec.load(packets):
            return self._send_vector(vec, packets)
        sendto = self._sendto
        counts = self._table.counts
        ok = 0
        for data, addr in packets:
            try:
                sendto(data, addr)
            except OSError as exc:
                ok += self._failed(data, addr, exc)
                continue
            c = counts(addr)
            c.sent += 1
            c.bytes += len(data)
            ok += 1
        return ok

    def _send_vector(self, vec: MessageVector, packets: Sequence[tuple[bytes, Addr]]) -> int:
        # Same policy as the sendto loop, per message: a full buffer drops (and counts) that
        # message and the rest are still tried; an ICMP error left by an earlier datagram is
        # attributed, then the refused message is retried once (as part of the next batch call).
        table = self._table
        n = len(packets)
        ok = i = 0
        retried = -1
        while i < n:
            try:
                k = vec.send(i)
            except OSError as exc:
                addr = packets[i][1]
                if isinstance(exc, BlockingIOError):
                    table.error(addr, errno.EAGAIN, dropped=True)
                elif exc.errno in _ASYNC_ERRNOS and retried != i:
                    table.async_error(exc)
                    retried = i
                    continue
                else:
                    table.error(addr, exc.errno or 0, refused=exc.errno == errno.ECONNREFUSED)
                i += 1
                continue
            table.sent_batch(vec, i, i + k)
            ok += k
            i += k
            if i < n and k < _MAX_PER_CALL:
                # Stopped short: message i failed and the kernel kept quiet about it. If that
                # was an ICMP report for an earlier datagram, reading it consumed it: attribute
                # it now from the error queue (the next call starting at i sends it again).
                table.drain()
        return ok

    def _failed(self, data: bytes, addr: Addr, exc: OSError) -> bool:
        if isinstance(exc, BlockingIOError):
            self._table.error(addr, errno.EAGAIN, dropped=True)
            return False
        if exc.errno in _ASYNC_ERRNOS:
            self._table.async_error(exc)
            try:
                self._sendto(data, addr)
            except OSError as again:
                self._table.error(addr, again.errno or 0, refused=again.errno == errno.ECONNREFUSED)
                return False
            c = self._table.counts(addr)
            c.sent += 1
            c.bytes += len(data)
            return True
        self._table.error(addr, exc.errno or 0)
        return False

    def drain_errors(self) -> int:
        """Attribute queued ICMP errors now (call when idle); returns how many were found."""
        return self._table.drain()

    def stats(self, addr: Addr) -> EndpointStats:
        """Counters for one endpoint."""
        return self._table.snapshot(addr)

    def all_stats(self) -> dict[Addr, EndpointStats]:
        """Counters for every endpoint sent to."""
        return self._table.all()

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self._sock.close()


class _SenderProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.sender: UdpSender | None = None

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError) and self.sender is not None:
            self.sender._table.async_error(exc)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if self.sender is not None:
            self.sender._received += 1


class UdpSender:
    """Fans OSC packets out to many UDP endpoints from one asyncio datagram endpoint.

    Create with ``await UdpSender.open()``; call :meth:`send` / :meth:`send_many` from the loop's
    thread; read :meth:`stats` for telemetry; :meth:`close` when done. Sends never raise for
    network conditions: they are counted per endpoint.
    """

    def __init__(self, sock: socket.socket, transport: asyncio.DatagramTransport,
                 names: Mapping[Addr, str] | None) -> None:
        self._sock = sock
        self._sendto = sock.sendto
        self._transport = transport
        # Selector transports have it (typeshed's DatagramTransport does not say so).
        self._queued: Callable[[], int] = getattr(transport, "get_write_buffer_size", lambda: 0)
        self._table = _Endpoints(sock, f"sender@{_addr_str(self.local_addr)}", names)
        self._received = 0
        self._vec = open_vector(sock)

    @classmethod
    async def open(cls, *, local_addr: Addr = ("0.0.0.0", 0),
                   names: Mapping[Addr, str] | None = None) -> UdpSender:
        """Bind a socket (``local_addr``) and attach it to the running loop."""
        loop = asyncio.get_running_loop()
        sock = _udp_socket(local_addr)
        transport, protocol = await loop.create_datagram_endpoint(_SenderProtocol, sock=sock)
        sender = cls(sock, transport, names)
        protocol.sender = sender
        return sender

    @property
    def local_addr(self) -> Addr:
        """The bound (host, port)."""
        host, port = self._sock.getsockname()[:2]
        return (host, port)

    def name_endpoint(self, addr: Addr, device: str) -> None:
        """Name the device behind ``addr`` for log context."""
        self._table.name(addr, device)

    def send(self, data: bytes, addr: Addr) -> None:
        """Send one datagram (queued by the loop if the kernel buffer is full)."""
        if self._queued():
            self._transport.sendto(data, addr)  # keep order behind what is already queued
        else:
            try:
                self._sendto(data, addr)
            except OSError as exc:
                self._failed(data, addr, exc)
                return
        c = self._table.counts(addr)
        c.sent += 1
        c.bytes += len(data)

    def send_many(self, packets: Iterable[tuple[bytes, Addr]]) -> None:
        """Send each ``(data, addr)`` in order.

        Uses one ``sendmmsg(2)`` call per up-to-1024 packets where available
        (:mod:`controller.mmsg`), otherwise one ``sendto`` each; counting is the same either way.
        """
        vec = self._vec
        if vec is not None and not self._queued():
            batch = packets if isinstance(packets, list | tuple) else list(packets)
            if len(batch) >= _MIN_BATCH and vec.load(batch):
                self._send_vector(vec, batch)
                return
            packets = batch
        send = self.send
        for data, addr in packets:
            send(data, addr)

    def _send_vector(self, vec: MessageVector, packets: Sequence[tuple[bytes, Addr]]) -> None:
        # Same policy as send(), per message: once the kernel buffer is full (EAGAIN), this message
        # and every later one go to the asyncio transport, which queues them in order; an ICMP
        # error left by an earlier datagram is attributed, then the refused message retried once.
        table = self._table
        counts = table.counts
        n = len(packets)
        i = 0
        retried = -1
        while i < n:
            try:
                k = vec.send(i)
            except BlockingIOError:
                queue = self._transport.sendto
                for data, addr in packets[i:]:
                    queue(data, addr)
                    c = counts(addr)
                    c.sent += 1
                    c.bytes += len(data)
                return
            except OSError as exc:
                if exc.errno in _ASYNC_ERRNOS and retried != i:
                    table.async_error(exc)
                    retried = i
                    continue
                table.error(packets[i][1], exc.errno or 0, refused=exc.errno == errno.ECONNREFUSED)
                i += 1
                continue
            table.sent_batch(vec, i, i + k)
            i += k
            if i < n and k < _MAX_PER_CALL:
                table.drain()  # stopped short: see DirectUdpSender._send_vector

    def _failed(self, data: bytes, addr: Addr, exc: OSError) -> None:
        if isinstance(exc, BlockingIOError):
            self._transport.sendto(data, addr)
        elif exc.errno in _ASYNC_ERRNOS:
            self._table.async_error(exc)
            try:
                self._sendto(data, addr)
            except BlockingIOError:
                self._transport.sendto(data, addr)
            except OSError as again:
                self._table.error(addr, again.errno or 0, refused=again.errno == errno.ECONNREFUSED)
                return
        else:
            self._table.error(addr, exc.errno or 0)
            return
        c = self._table.counts(addr)
        c.sent += 1
        c.bytes += len(data)

    def stats(self, addr: Addr) -> EndpointStats:
        """Counters for one endpoint."""
        return self._table.snapshot(addr)

    def all_stats(self) -> dict[Addr, EndpointStats]:
        """Counters for every endpoint sent to."""
        return self._table.all()

    @property
    def unattributed_errors(self) -> int:
        """Errors the kernel reported without saying for which destination."""
        return self._table.unattributed

    def close(self) -> None:
        """Close the transport and socket (idempotent)."""
        self._transport.close()


@dataclass(frozen=True, slots=True)
class Datagram:
    """One received datagram.

    ``rx_mono_ns`` / ``rx_wall_ns``: when it reached the socket, on the injected clock's monotonic
    and show readings. ``kernel``: ``True`` when that instant comes from the kernel's
    ``SO_TIMESTAMPNS`` stamp, ``False`` when it was read in the callback (less precise).
    """

    data: bytes
    addr: Addr
    rx_mono_ns: int
    rx_wall_ns: int
    kernel: bool


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    """Counters of a :class:`UdpReceiver`."""

    received: int
    bytes: int
    oversize: int
    callback_errors: int
    kernel_stamped: int


class UdpReceiver:
    """Receives datagrams on a plain socket with kernel timestamps; bounded and counted.

    ``on_datagram`` runs on the loop's thread for each datagram; if it raises, the error is logged
    (once per exception type) and counted, and reception continues.
    """

    def __init__(self, sock: socket.socket, on_datagram: Callable[[Datagram], None], clock: Clock,
                 max_size: int, batch: int) -> None:
        self._sock = sock
        self._on_datagram = on_datagram
        self._clock = clock
        self._max = max_size
        self._batch = batch
        self._table = _Endpoints(sock, f"receiver@{_addr_str(self.local_addr)}", None)
        self._received = 0
        self._bytes = 0
        self._oversize = 0
        self._callback_errors = 0
        self._kernel_stamped = 0
        self._warned: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            self._timestamps = True
        except OSError:
            self._timestamps = False

    @classmethod
    async def open(
        cls,
        on_datagram: Callable[[Datagram], None],
        *,
        local_addr: Addr = ("127.0.0.1", 0),
        clock: Clock | None = None,
        max_size: int = MAX_DATAGRAM,
        batch: int = 64,
    ) -> UdpReceiver:
        """Bind ``local_addr`` and start delivering datagrams to ``on_datagram`` on the running loop.

        At most ``batch`` datagrams are read per wake-up, so a flood cannot starve the loop.
        """
        sock = _udp_socket(local_addr)
        receiver = cls(sock, on_datagram, clock or SystemClock(), max_size, batch)
        receiver._loop = asyncio.get_running_loop()
        receiver._loop.add_reader(sock.fileno(), receiver._read_ready)
        return receiver

    @property
    def local_addr(self) -> Addr:
        """The bound (host, port)."""
        host, port = self._sock.getsockname()[:2]
        return (host, port)

    @property
    def kernel_timestamps(self) -> bool:
        """Whether the kernel stamps arrivals (``SO_TIMESTAMPNS``) on this socket."""
        return self._timestamps

    def stats(self) -> ReceiverStats:
        """Counters so far."""
        return ReceiverStats(self._received, self._bytes, self._oversize, self._callback_errors,
                             self._kernel_stamped)

    def send(self, data: bytes, addr: Addr) -> bool:
        """Send a datagram from this socket's port (replies, pings); never waits, ``True`` if sent."""
        try:
            self._sock.sendto(data, addr)
        except BlockingIOError:
            self._table.error(addr, errno.EAGAIN, dropped=True)
            return False
        except OSError as exc:
            if exc.errno not in _ASYNC_ERRNOS:
                self._table.error(addr, exc.errno or 0)
                return False
            self._table.async_error(exc)
            try:
                self._sock.sendto(data, addr)
            except OSError as again:
                self._table.error(addr, again.errno or 0, refused=again.errno == errno.ECONNREFUSED)
                return False
        c = self._table.counts(addr)
        c.sent += 1
        c.bytes += len(data)
        return True

    def send_stats(self, addr: Addr) -> EndpointStats:
        """Counters for datagrams this receiver sent to ``addr``."""
        return self._table.snapshot(addr)

    def _read_ready(self) -> None:
        sock, clock, limit = self._sock, self._clock, self._max
        for _ in range(self._batch):
            try:
                data, anc, flags, addr = sock.recvmsg(limit + 1, _ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _ASYNC_ERRNOS:
                    self._table.async_error(exc)
                    continue
                log.warning("UDP receive failed: %s", exc, extra={"socket": self._table.owner})
                return
            mono = clock.monotonic_ns()
            wall = clock.wall_ns()
            kernel = False
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack_from(payload)
                    # The kernel stamps CLOCK_REALTIME; take the datagram's age on that clock (a
                    # short interval, immune to the clocks' offsets) and subtract it from ours.
                    age = max(0, time.time_ns() - (sec * 1_000_000_000 + nsec))
                    mono -= age
                    wall -= age
                    kernel = True
            if len(data) > limit or flags & socket.MSG_TRUNC:
                self._oversize += 1
                if "oversize" not in self._warned:
                    self._warned.add("oversize")
                    log.warning("dropped a UDP datagram over %d bytes (counting further ones silently)",
                                limit, extra={"endpoint": _addr_str(addr), "socket": self._table.owner})
                continue
            self._received += 1
            self._bytes += len(data)
            self._kernel_stamped += kernel
            try:
                self._on_datagram(Datagram(data, (addr[0], addr[1]), mono, wall, kernel))
            except Exception as exc:
                self._callback_errors += 1
                key = type(exc).__name__
                if key not in self._warned:
                    self._warned.add(key)
                    log.exception("datagram handler raised %s (counting further ones silently)", key,
                                  extra={"endpoint": _addr_str(addr), "socket": self._table.owner})

    def close(self) -> None:
        """Stop reading and close the socket (idempotent)."""
        if self._loop is not None and self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
