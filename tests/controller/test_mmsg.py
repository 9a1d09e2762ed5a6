"""Tests for controller.mmsg (sendmmsg batching) and the batched paths of controller.udp.

Real sockets on 127.0.0.1. The loopback interface never fills a sender's buffer (it releases each
datagram's memory as soon as it is handed over), so ``EAGAIN`` is injected by wrapping the real
libc call: the wrapper sends for real, and only shortens or refuses calls as a busy kernel would.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.mmsg import (
    MAX_PER_CALL,
    MessageVector,
    SendmmsgUnavailableError,
    Syscall,
    libc_sendmmsg,
    open_vector,
    sendmmsg_available,
)
from controller.udp import DirectUdpSender, UdpSender

pytestmark = pytest.mark.skipif(not sendmmsg_available(), reason="sendmmsg(2) needs Linux")

LOCAL = ("127.0.0.1", 0)
Addr = tuple[str, int]
Packets = list[tuple[bytes, Addr]]


@contextmanager
def receivers(count: int) -> Iterator[list[socket.socket]]:
    """Bound receiving sockets with room for every datagram a test sends them."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.bind(LOCAL)
            s.settimeout(5.0)
        yield socks
    finally:
        for s in socks:
            s.close()


def addr_of(s: socket.socket) -> Addr:
    host, port = s.getsockname()
    return (host, port)


def dead_port() -> Addr:
    """A port on which nothing listens (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(LOCAL)
        return addr_of(s)


def payload(i: int, size: int) -> bytes:
    """A datagram of ``size`` bytes that differs from every other ``i``'s (when size allows)."""
    head = struct.pack(">I", i)[:size]
    return head + bytes((i * 7 + k) % 251 for k in range(size - len(head)))


def expected_by_receiver(packets: Packets, socks: Sequence[socket.socket]) -> dict[Addr, list[bytes]]:
    out: dict[Addr, list[bytes]] = {addr_of(s): [] for s in socks}
    for data, addr in packets:
        if addr in out:
            out[addr].append(data)
    return out


def read_exactly(s: socket.socket, count: int) -> list[bytes]:
    got = [s.recv(70000) for _ in range(count)]
    s.setblocking(False)
    try:
        extra = s.recv(70000)
    except BlockingIOError:
        extra = None
    finally:
        s.settimeout(5.0)
    assert extra is None, f"an unexpected extra datagram arrived: {extra!r}"
    return got


def assert_arrived(
    packets: Packets, socks: Sequence[socket.socket], skip: frozenset[int] = frozenset()
) -> None:
    """Every packet (but the indices in ``skip``) arrived intact, in per-destination order, once."""
    kept = [p for i, p in enumerate(packets) if i not in skip]
    for s in socks:
        want = expected_by_receiver(kept, [s])[addr_of(s)]
        assert read_exactly(s, len(want)) == want


def send_all(vec: MessageVector) -> list[int]:
    """Send everything loaded, returning what each call took (no errors expected)."""
    taken = []
    i = 0
    while i < vec.loaded:
        k = vec.send(i)
        taken.append(k)
        i += k
    return taken


# --- MessageVector over real sockets -------------------------------------------------------------


def test_a_big_batch_goes_in_calls_of_at_most_1024_and_arrives_intact_in_order() -> None:
    sizes = (0, 1, 32, 500, 1400, 8000)
    with receivers(7) as socks, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        addrs = [addr_of(s) for s in socks]
        packets = [(payload(i, sizes[i % len(sizes)]), addrs[(i * 3) % len(addrs)]) for i in range(2500)]
        vec = MessageVector(tx, capacity=8)
        assert vec.load(packets)
        assert vec.capacity >= 2500 and vec.loaded == 2500
        assert send_all(vec) == [MAX_PER_CALL, MAX_PER_CALL, 2500 - 2 * MAX_PER_CALL]
        assert vec.syscalls == 3
        assert_arrived(packets, socks)


def test_reloading_with_other_endpoints_and_sizes_sends_each_batch_where_it_belongs() -> None:
    with receivers(4) as socks, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        addrs = [addr_of(s) for s in socks]
        vec = MessageVector(tx)
        first = [(payload(i, 40), addrs[i % 4]) for i in range(100)]
        same_endpoints = [(payload(1000 + i, 9), addrs[i % 4]) for i in range(100)]
        reordered = [(payload(2000 + i, 300), addrs[(i * 3 + 1) % 4]) for i in range(100)]
        fewer = [(payload(3000 + i, 2), addrs[3 - i % 2]) for i in range(10)]
        for batch in (first, same_endpoints, reordered, fewer, first):
            assert vec.load(batch)
            send_all(vec)
            assert_arrived(batch, socks)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3000)), min_size=1, max_size=120))
def test_property_any_batch_arrives_intact_in_per_destination_order(shape: list[tuple[int, int]]) -> None:
    with receivers(5) as socks, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        addrs = [addr_of(s) for s in socks]
        packets = [(payload(i, size), addrs[dest]) for i, (dest, size) in enumerate(shape)]
        vec = MessageVector(tx, capacity=1)
        assert vec.load(packets)
        assert sum(send_all(vec)) == len(packets)
        assert_arrived(packets, socks)


def test_batches_that_cannot_be_vectorised_are_refused_without_sending() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        vec = MessageVector(tx)
        ok = (b"x", ("127.0.0.1", 9))
        for bad in (("localhost", 9), ("::1", 9), ("127.0.0.1", 70000), ("127.0.0.1", -1)):
            assert not vec.load([ok, (b"y", bad)])
            assert vec.loaded == 0
            with pytest.raises(IndexError):
                vec.send(0)
        assert vec.syscalls == 0
        assert vec.load([])
        assert vec.loaded == 0


def test_sockets_that_are_not_ipv4_udp_are_refused_with_a_useful_message() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        with pytest.raises(SendmmsgUnavailableError) as info:
            MessageVector(tcp)
        assert isinstance(info.value, OSError)
        assert "not IPv4 UDP" in str(info.value) and "fall back to one sendto" in str(info.value)
        assert open_vector(tcp) is None


def test_an_oversize_datagram_mid_batch_shortens_the_call_and_is_reported_on_its_own() -> None:
    with receivers(2) as socks, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        a, b = (addr_of(s) for s in socks)
        packets = [(payload(i, 64), a if i % 2 else b) for i in range(10)]
        packets[4] = (b"z" * 70000, a)  # over the 65,507-byte UDP/IPv4 maximum
        vec = MessageVector(tx)
        assert vec.load(packets)
        assert vec.send(0) == 4  # the kernel stops before it and does not report why...
        with pytest.raises(OSError) as info:
            vec.send(4)  # ...until the next call, which starts at it
        assert info.value.errno == errno.EMSGSIZE
        assert vec.send(5) == 5
        assert_arrived(packets, socks, skip=frozenset({4}))


# --- DirectUdpSender.send_batch ------------------------------------------------------------------


def test_direct_batch_arrives_and_is_counted_per_endpoint() -> None:
    with receivers(6) as socks:
        addrs = [addr_of(s) for s in socks]
        sender = DirectUdpSender(local_addr=LOCAL)
        try:
            packets = [(payload(i, 20 + i % 50), addrs[i % 6]) for i in range(3000)]
            assert sender.send_batch(packets) == 3000
            for addr in addrs:
                mine = [d for d, a in packets if a == addr]
                stats = sender.stats(addr)
                assert (stats.sent, stats.bytes, stats.errors) == (len(mine), sum(map(len, mine)), 0)
            assert_arrived(packets, socks)
        finally:
            sender.close()


def test_direct_batches_to_changing_endpoint_sets_are_counted_exactly() -> None:
    with receivers(5) as socks:
        addrs = [addr_of(s) for s in socks]
        sender = DirectUdpSender(local_addr=LOCAL)
        try:
            a = [(payload(i, 10 + i), addrs[i % 5]) for i in range(20)]
            b = [(payload(100 + i, 3 * i), addrs[4 - i % 3]) for i in range(30)]
            c = [(payload(200 + i, 7), addrs[i % 2]) for i in range(6)]
            same_as_a = [(payload(300 + i, 1), addr) for i, (_, addr) in enumerate(a)]
            everything: Packets = []
            for batch in (a, b, a, c, same_as_a, b):
                assert sender.send_batch(batch) == len(batch)
                everything += batch
            for addr in addrs:
                mine = [d for d, where in everything if where == addr]
                stats = sender.stats(addr)
                assert (stats.sent, stats.bytes) == (len(mine), sum(map(len, mine)))
            assert_arrived(everything, socks)
        finally:
            sender.close()


def test_direct_batch_counts_a_dead_port_mid_batch_and_still_sends_the_rest() -> None:
    with receivers(8) as socks:
        live = [addr_of(s) for s in socks]
        dead = dead_port()
        sender = DirectUdpSender(local_addr=LOCAL, names={dead: "barge-3"})
        try:
            frames = 20
            sent_all: Packets = []
            for f in range(frames):
                frame = [(payload(f * 100 + i, 24), live[i % 8]) for i in range(40)]
                frame.insert(20, (payload(f, 24), dead))  # the dead device sits mid-batch
                assert sender.send_batch(frame) == len(frame)  # the kernel takes all of them
                sent_all += frame
            # Reports were attributed while the batches were sent (the kernel rate-limits ICMP,
            # so maybe not every one came back)...
            assert sender.stats(dead).refused >= 1
            # ...and never more than one per datagram sent to the dead port.
            sender.drain_errors()
            assert sender.stats(dead).refused <= frames
            assert sender.stats(dead).sent == frames
            for addr in live:
                s = sender.stats(addr)
                assert (s.sent, s.refused, s.errors) == (5 * frames, 0, 0)
            assert sender.all_stats().keys() == {*live, dead}
            assert_arrived(sent_all, socks)
        finally:
            sender.close()


def test_direct_batch_counts_an_oversize_datagram_against_its_endpoint_only() -> None:
    with receivers(3) as socks:
        addrs = [addr_of(s) for s in socks]
        sender = DirectUdpSender(local_addr=LOCAL)
        try:
            packets = [(payload(i, 32), addrs[i % 3]) for i in range(30)]
            packets[13] = (b"z" * 70000, addrs[1])
            assert sender.send_batch(packets) == 29
            s = sender.stats(addrs[1])
            assert (s.sent, s.errors, s.dropped, s.last_errno) == (9, 1, 0, errno.EMSGSIZE)
            assert sum(st.sent + st.errors for st in sender.all_stats().values()) == 30
            assert_arrived(packets, socks, skip=frozenset({13}))
        finally:
            sender.close()


def faulty(every: int, cap: int, real: Syscall) -> tuple[Syscall, list[int]]:
    """A sendmmsg that sends at most ``cap`` per call and refuses every ``every``-th call (EAGAIN).

    Returns the call and the list of refused call numbers it appends to.
    """
    calls = [0]
    refused: list[int] = []

    def call(fd: int, msgvec: int, vlen: int, flags: int) -> int:
        calls[0] += 1
        if calls[0] % every == 0:
            refused.append(calls[0])
            raise BlockingIOError(errno.EAGAIN, "injected: send buffer full")
        return real(fd, msgvec, min(vlen, cap), flags)

    return call, refused


@pytest.mark.parametrize(("every", "cap"), [(2, 7), (3, 1), (4, 60)])
def test_direct_partial_batches_never_lose_the_count_of_sent_versus_dropped(every: int, cap: int) -> None:
    assert libc_sendmmsg is not None
    with receivers(4) as socks:
        addrs = [addr_of(s) for s in socks]
        sender = DirectUdpSender(local_addr=LOCAL, sndbuf=4096)  # tiny, as a busy show machine's
        call, refused = faulty(every, cap, libc_sendmmsg)
        sender._vec = MessageVector(sender._sock, syscall=call)  # inject the fault under the sender
        try:
            packets = [(payload(i, 100), addrs[i % 4]) for i in range(400)]
            ok = sender.send_batch(packets)
            stats = sender.all_stats()
            dropped = sum(s.dropped for s in stats.values())
            assert refused and dropped == len(refused)  # one dropped message per refused call
            assert ok == sum(s.sent for s in stats.values()) == len(packets) - dropped
            assert sum(s.errors for s in stats.values()) == dropped
            # What was counted as sent is exactly what arrived, in order, at each endpoint.
            for s in socks:
                addr = addr_of(s)
                got = read_exactly(s, stats[addr].sent)
                want = [d for d, a in packets if a == addr]
                assert stats[addr].sent + stats[addr].dropped == len(want)
                assert set(got) <= set(want) and got == sorted(got, key=want.index)
        finally:
            sender.close()


def test_direct_batch_falls_back_to_sendto_for_host_names() -> None:
    with receivers(2) as socks:
        ports = [addr_of(s)[1] for s in socks]
        sender = DirectUdpSender(local_addr=LOCAL)
        try:
            packets = [(payload(i, 16), ("localhost", ports[i % 2])) for i in range(10)]
            assert sender.send_batch(packets) == 10
            for s, port in zip(socks, ports, strict=True):
                assert read_exactly(s, 5) == [d for d, a in packets if a[1] == port]
            assert sender.stats(("localhost", ports[0])).sent == 5
        finally:
            sender.close()


# --- UdpSender.send_many -------------------------------------------------------------------------


async def wait_for(pred: object, timeout: float = 5.0) -> None:
    assert callable(pred)
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.005)


def test_send_many_batches_a_frame_and_counts_a_dead_port_mid_frame() -> None:
    async def main() -> None:
        with receivers(10) as socks:
            live = [addr_of(s) for s in socks]
            dead = dead_port()
            sender = await UdpSender.open(local_addr=LOCAL)
            sent_all: Packets = []
            try:
                for f in range(20):
                    frame = [(payload(f * 100 + i, 28), live[i % 10]) for i in range(50)]
                    frame.insert(25, (payload(f, 28), dead))
                    sender.send_many(iter(frame))  # any iterable
                    sent_all += frame
                    await asyncio.sleep(0)
                await wait_for(lambda: sender.stats(dead).refused > 0)
                for addr in live:
                    s = sender.stats(addr)
                    assert (s.sent, s.refused, s.errors) == (100, 0, 0)
                assert sender.stats(dead).sent == 20
                assert sender.unattributed_errors == 0
                assert_arrived(sent_all, socks)
            finally:
                sender.close()

    asyncio.run(main())


def test_send_many_queues_the_rest_of_a_batch_on_eagain_and_loses_nothing() -> None:
    assert libc_sendmmsg is not None

    async def main() -> None:
        with receivers(5) as socks:
            addrs = [addr_of(s) for s in socks]
            sender = await UdpSender.open(local_addr=LOCAL)
            call, refused = faulty(2, 9, libc_sendmmsg)
            sender._vec = MessageVector(sender._sock, syscall=call)  # inject the fault under the sender
            try:
                batches = [[(payload(b * 1000 + i, 60), addrs[i % 5]) for i in range(200)] for b in range(3)]
                for batch in batches:
                    sender.send_many(batch)  # the 2nd call refuses: the rest goes to the loop's queue
                    await asyncio.sleep(0)
                assert refused
                every = [p for batch in batches for p in batch]
                for addr in addrs:
                    assert sender.stats(addr).sent == 120 and sender.stats(addr).dropped == 0
                await asyncio.sleep(0.05)
                assert_arrived(every, socks)  # all of it, in order, behind what was queued
            finally:
                sender.close()

    asyncio.run(main())
