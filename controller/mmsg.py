"""Batched UDP sends: ``sendmmsg(2)`` through ctypes, with arrays reused across calls.

Theory of operation
-------------------
One ``sendto`` per datagram pays a full trip into the kernel for each message. Linux's
``sendmmsg(2)`` (Linux 3.0, glibc 2.14) takes an array of ``struct mmsghdr`` and sends up to
``UIO_MAXIOV`` (1024) datagrams, each to its own address, in one system call. Python's
:mod:`socket` does not expose it, so this module calls libc through :mod:`ctypes`.

:class:`MessageVector` belongs to one socket and owns three preallocated C arrays, grown by
doubling and then reused by every call: ``struct mmsghdr[n]`` (each ``msg_name`` points at its own
``struct sockaddr_in`` and ``msg_iov`` at its own ``struct iovec``, set once when the arrays grow),
``struct iovec[n]`` and ``struct sockaddr_in[n]``. A batch is used in two steps:

1. :meth:`MessageVector.load` takes the ``(bytes, (host, port))`` pairs. The payloads are joined into
   one ``bytes`` object (a single copy that keeps every payload alive at one known address), the
   iovecs are filled from the running offsets with two strided slice assignments, and the packed
   addresses come from a per-vector cache, copied in with one ``memmove`` (skipped when a frame
   goes to the same endpoints as the last one).
2. :meth:`MessageVector.send` makes one system call for the messages from ``start`` on (at most
   1024) and returns how many the kernel took.

Kernel semantics the caller must follow (``sendmmsg(2)``, "RETURN VALUE"): if at least one message
was sent, the call returns the count and *does not report* the error that stopped it. So a caller
loops ``i += send(i)`` and handles an :class:`OSError` from ``send(i)`` as the fate of message
``i``. An error that belongs to message ``i`` itself (``EAGAIN``, ``EMSGSIZE``) comes back on the
next call, which starts at ``i``. An error that an ICMP report for an *earlier* datagram left on the
socket (``ECONNREFUSED`` with ``IP_RECVERR``) is consumed by the short call and never returned: a
caller that attributes those must read the error queue (``MSG_ERRQUEUE``) after every short return.
What to do about an error (drop, queue, attribute an ICMP report to its endpoint) is the caller's
policy: :mod:`controller.udp` owns it. IPv4 only, as the rest of :mod:`controller.udp`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import socket
import struct
import sys
from array import array
from collections.abc import Callable, Sequence
from itertools import accumulate
from operator import itemgetter
from typing import TypeAlias

from venues.errors import MadangError

__all__ = [
    "MAX_PER_CALL",
    "Addr",
    "MessageVector",
    "SendmmsgUnavailableError",
    "Syscall",
    "libc_sendmmsg",
    "open_vector",
    "sendmmsg_available",
]

log = logging.getLogger(__name__)

#: A UDP endpoint: (host, port), as in :mod:`controller.udp`.
Addr: TypeAlias = tuple[str, int]
#: The kernel sends at most this many messages per call (``UIO_MAXIOV``); more are sent in turns.
MAX_PER_CALL = 1024
#: ``(fd, address of the first struct mmsghdr, count, flags) -> sent``; raises :class:`OSError`.
Syscall: TypeAlias = Callable[[int, int, int, int], int]

# Bound on the address cache: endpoints come from venue files, but a caller that sends to ever-new
# ports (a scan, a bug) must not grow memory without limit.
_ADDR_CACHE_MAX = 65536


class SendmmsgUnavailableError(MadangError, OSError):
    """``sendmmsg(2)`` cannot be used here (not Linux, or libc lacks it, or the socket is not IPv4 UDP).

    ``reason`` says which.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return (f"sendmmsg(2) batching is unavailable: {self.reason}; UDP sends fall back to one sendto "
                "per datagram (same results, more CPU per message)")


class _IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _MsgHdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),  # socklen_t
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _MMsgHdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint))


_MMSG_SIZE = ctypes.sizeof(_MMsgHdr)
_IOV_SIZE = ctypes.sizeof(_IoVec)
# struct sockaddr_in on Linux: sa_family_t (host order), port and address (network order), 8 zeros.
_SOCKADDR_IN = struct.Struct("=H2s4s8x")
_SA_SIZE = _SOCKADDR_IN.size
_WORD = array("L")  # unsigned long: pointer- and size_t-sized on Linux (LP64 and ILP32)
_first = itemgetter(0)
_second = itemgetter(1)


def _load_libc_sendmmsg() -> tuple[Syscall | None, str]:
    if not sys.platform.startswith("linux"):
        return None, f"platform {sys.platform!r} is not Linux"
    if ctypes.sizeof(_IoVec) != 2 * _WORD.itemsize or ctypes.sizeof(ctypes.c_void_p) != _WORD.itemsize:
        return None, "struct iovec is not two unsigned longs on this build"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.sendmmsg
    except (OSError, AttributeError) as exc:
        return None, f"libc has no sendmmsg ({exc})"
    fn.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    fn.restype = ctypes.c_int
    get_errno = ctypes.get_errno

    def call(fd: int, msgvec: int, vlen: int, flags: int) -> int:
        sent: int = fn(fd, msgvec, vlen, flags)
        if sent < 0:
            err = get_errno()
            raise OSError(err, os.strerror(err))  # OSError(errno, ...) picks BlockingIOError etc.
        return sent

    return call, ""


def _bytes_offset() -> int | None:
    # CPython keeps a bytes object's data inline, at a fixed offset from the object's address
    # (its id). Check it against what ctypes reports; any other layout takes the slow path.
    offset = sys.getsizeof(b"") - 1
    for probe in (b"madang", bytes(range(40)), b"x" * 1000):
        if ctypes.cast(ctypes.c_char_p(probe), ctypes.c_void_p).value != id(probe) + offset:
            return None
    return offset


_BYTES_OFFSET = _bytes_offset()


def _address_of(data: bytes) -> int:
    """Where ``data``'s bytes are in memory (valid while ``data`` is alive)."""
    if _BYTES_OFFSET is not None and type(data) is bytes:
        return id(data) + _BYTES_OFFSET
    return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0


_LIBC_SENDMMSG, _UNAVAILABLE = _load_libc_sendmmsg()
#: libc's ``sendmmsg`` wrapped as a :data:`Syscall` (raises :class:`OSError`), or ``None`` if unavailable.
#: Tests wrap it to inject faults the loopback interface never produces (``EAGAIN``).
libc_sendmmsg: Syscall | None = _LIBC_SENDMMSG


def sendmmsg_available() -> bool:
    """Whether this process can batch UDP sends with ``sendmmsg(2)``."""
    return _LIBC_SENDMMSG is not None


def _pack_sockaddr(addr: Addr) -> bytes | None:
    """The ``struct sockaddr_in`` for an IPv4 literal and a valid port; ``None`` otherwise."""
    try:
        host, port = addr
        packed = socket.inet_pton(socket.AF_INET, host)
        if not isinstance(port, int) or not 0 <= port <= 0xFFFF:
            return None
    except (OSError, TypeError, ValueError):
        return None  # a host name, IPv6, or not an (host, port) pair: the caller uses sendto
    return _SOCKADDR_IN.pack(socket.AF_INET, port.to_bytes(2, "big"), packed)


class MessageVector:
    """Reusable ``sendmmsg(2)`` arrays bound to one IPv4 UDP socket; use from one thread at a time.

    Call :meth:`load` with a batch, then :meth:`send` in a loop until every message is accounted
    for (see the module docstring). ``syscall`` replaces the libc call, for fault injection in tests
    (it must have ``sendmmsg``'s contract: return how many were sent, or raise :class:`OSError`).

    Raises :class:`SendmmsgUnavailableError` when batching cannot be used; :func:`open_vector`
    returns ``None`` instead.
    """

    __slots__ = (
        "_addr_cache",
        "_capacity",
        "_count",
        "_iov",
        "_iov_words",
        "_keep",
        "_last_addrs",
        "_msgs",
        "_msgs_addr",
        "_sas",
        "_sizes",
        "_sock",
        "_syscall",
        "syscalls",
    )

    def __init__(self, sock: socket.socket, *, capacity: int = 64, syscall: Syscall | None = None) -> None:
        call = syscall or _LIBC_SENDMMSG
        if call is None:
            raise SendmmsgUnavailableError(_UNAVAILABLE)
        if sock.family != socket.AF_INET or sock.type != socket.SOCK_DGRAM:
            raise SendmmsgUnavailableError(f"socket is {sock.family!r}/{sock.type!r}, not IPv4 UDP")
        self._sock = sock
        self._syscall: Syscall = call
        self._addr_cache: dict[Addr, bytes] = {}
        self._count = 0
        self._keep: bytes = b""
        self._last_addrs: list[Addr] = []
        self._sizes = array("L")
        self._capacity = 0
        self._msgs = (_MMsgHdr * 0)()
        self._msgs_addr = 0
        self._iov = (_IoVec * 0)()
        self._iov_words = memoryview(b"").cast("L")
        self._sas = ctypes.create_string_buffer(0)
        #: System calls made so far (telemetry: messages / syscalls is the batching achieved).
        self.syscalls = 0
        self._grow(max(1, capacity))

    @property
    def capacity(self) -> int:
        """How many messages the arrays hold now (they grow when a bigger batch is loaded)."""
        return self._capacity

    @property
    def loaded(self) -> int:
        """How many messages the last :meth:`load` prepared."""
        return self._count

    @property
    def addrs(self) -> list[Addr]:
        """The loaded messages' addresses, in order (do not modify).

        When a batch goes to the same endpoints as the previous one, this is the *same* list
        object as before, so callers can key per-endpoint caches on its identity.
        """
        return self._last_addrs if self._count else []

    @property
    def sizes(self) -> Sequence[int]:
        """The loaded messages' sizes in bytes, in order."""
        return self._sizes

    def _grow(self, need: int) -> None:
        cap = max(need, 2 * self._capacity)
        msgs = (_MMsgHdr * cap)()
        iov = (_IoVec * cap)()
        sas = ctypes.create_string_buffer(cap * _SA_SIZE)
        iov_base = ctypes.addressof(iov)
        sa_base = ctypes.addressof(sas)
        for i in range(cap):
            hdr = msgs[i].msg_hdr
            hdr.msg_name = sa_base + i * _SA_SIZE
            hdr.msg_namelen = _SA_SIZE
            hdr.msg_iov = iov_base + i * _IOV_SIZE
            hdr.msg_iovlen = 1
        self._msgs, self._iov, self._sas = msgs, iov, sas
        self._msgs_addr = ctypes.addressof(msgs)
        # iov_base and iov_len are both unsigned longs (checked at import): a flat word view, so
        # each can be written for a whole batch with one strided slice assignment.
        self._iov_words = memoryview(iov).cast("B").cast("L")
        self._capacity = cap

    def _sockaddrs(self, addrs: Sequence[Addr]) -> bytes | None:
        cache = self._addr_cache
        try:
            return b"".join(map(cache.__getitem__, addrs))
        except (KeyError, TypeError):
            pass
        if len(cache) + len(addrs) > _ADDR_CACHE_MAX:
            cache.clear()
        for addr in addrs:
            try:
                if addr in cache:
                    continue
            except TypeError:
                return None  # unhashable: not an (host, port) tuple
            packed = _pack_sockaddr(addr)
            if packed is None:
                return None
            cache[addr] = packed
        return b"".join(map(cache.__getitem__, addrs))

    def load(self, packets: Sequence[tuple[bytes, Addr]]) -> bool:
        """Prepare ``packets`` for :meth:`send`; ``False`` (nothing loaded) if one cannot be batched.

        A packet cannot be batched when its address is not an IPv4 literal with a valid port (a
        host name needs resolving: send that batch with ``sendto``, which does).
        """
        n = len(packets)
        self._count = 0
        self._keep = b""
        self._sizes = array("L")
        if n == 0:
            return True
        datas = list(map(_first, packets))
        addrs = list(map(_second, packets))
        if n > self._capacity:
            self._grow(n)
            self._last_addrs = []
        # A stream of frames usually goes to the same endpoints in the same order: then the
        # sockaddr array already holds them (list == compares identical items by identity: cheap).
        if addrs != self._last_addrs:
            names = self._sockaddrs(addrs)
            if names is None:
                self._last_addrs = []
                return False
            ctypes.memmove(self._sas, names, len(names))
            self._last_addrs = addrs
        joined = b"".join(datas)
        lens = array("L", map(len, datas))
        starts = array("L", accumulate(lens, initial=_address_of(joined)))
        starts.pop()
        words = self._iov_words
        words[0:2 * n:2] = starts
        words[1:2 * n:2] = lens
        self._keep = joined  # alive until the next load: the iovecs point into it
        self._sizes = lens
        self._count = n
        return True

    def send(self, start: int = 0) -> int:
        """Send loaded messages from ``start`` (at most :data:`MAX_PER_CALL`) in one system call.

        Returns how many the kernel took (at least 1). Raises :class:`OSError` for the fate of
        message ``start`` itself (``BlockingIOError`` when the send buffer is full, the ``errno``
        of an ICMP report left by an earlier datagram, ``EMSGSIZE``...). ``start`` must be below
        :attr:`loaded`.
        """
        count = self._count - start
        if not 0 <= start < self._count:
            raise IndexError(f"start {start} outside the {self._count} loaded messages")
        self.syscalls += 1
        while True:
            try:
                sent = self._syscall(self._sock.fileno(), self._msgs_addr + start * _MMSG_SIZE,
                                     min(count, MAX_PER_CALL), 0)
            except InterruptedError:
                continue  # PEP 475: retry a call interrupted before it sent anything
            if sent <= 0:  # not in the contract; never loop on it
                raise BlockingIOError(errno.EAGAIN, "sendmmsg sent nothing")
            return sent


def open_vector(sock: socket.socket, *, capacity: int = 64) -> MessageVector | None:
    """A :class:`MessageVector` for ``sock``, or ``None`` (logged once at INFO) if batching is unavailable."""
    try:
        return MessageVector(sock, capacity=capacity)
    except SendmmsgUnavailableError as exc:
        global _logged_unavailable
        if not _logged_unavailable:
            _logged_unavailable = True
            log.info("%s", exc, extra={"reason": exc.reason})
        return None


_logged_unavailable = False
