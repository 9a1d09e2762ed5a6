"""Tests for controller.edge: the pure agenda with literal times, the thread over real sockets."""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.clock import SystemClock
from controller.edge import EdgeAgenda, FiringEdge
from controller.osc import OscMessage, decode_packet, encode_message
from controller.udp import DirectUdpSender

MS = 1_000_000


def _eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """True once ``check()`` is: the edge thread counts a batch just *after* its syscall returns,
    so a receiver can see the packets before the counters move (no timing is asserted here)."""
    end = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.001)
    return True


def _noop() -> None:
    return None


@given(st.lists(st.tuples(st.integers(0, 1000), st.booleans()), max_size=50), st.integers(0, 1000))
def test_agenda_pops_exactly_the_due_live_items_in_order(entries: list[tuple[int, bool]], now: int) -> None:
    agenda = EdgeAgenda()
    handles = []
    for due, cancel in entries:
        h = agenda.push(due, _noop)
        handles.append((h, cancel))
    for h, cancel in handles:
        if cancel:
            assert agenda.cancel(h)
            assert not agenda.cancel(h)
    live = sorted((h.due_ns, h.seq) for h, c in handles if not c)
    assert len(agenda) == len(live)
    assert agenda.next_due() == (live[0][0] if live else None)
    popped = agenda.pop_due(now)
    assert [d for d, _ in popped] == [d for d, _ in live if d <= now]
    assert len(agenda) == sum(1 for d, _ in live if d > now)
    assert agenda.pop_due(now) == []


def test_agenda_clear() -> None:
    agenda = EdgeAgenda()
    agenda.push(5, _noop)
    agenda.push(3, _noop)
    assert agenda.clear() == 2
    assert agenda.next_due() is None
    assert agenda.pop_due(10) == []


def test_edge_fires_callbacks_in_order_not_before_due() -> None:
    clock = SystemClock()
    edge = FiringEdge(clock)
    edge.start()
    edge.start()  # idempotent
    fired: list[tuple[int, int]] = []
    done = threading.Event()
    base = clock.monotonic_ns() + 20 * MS
    dues = [base + k * MS for k in (5, 1, 3, 0, 4, 2)]

    def record(i: int) -> None:
        fired.append((i, clock.monotonic_ns()))

    for i, due in enumerate(dues):
        edge.schedule(due, functools.partial(record, i))
    edge.schedule(base + 6 * MS, done.set)
    assert done.wait(5)
    edge.stop()
    edge.stop()  # idempotent
    assert [i for i, _ in fired] == [3, 1, 5, 2, 4, 0]
    assert all(t >= dues[i] for i, t in fired)
    late = edge.lateness_ns()
    assert len(late) == 7
    assert (late >= 0).all()
    assert edge.stats().fired == 7


def test_edge_cancel_and_cancel_all() -> None:
    clock = SystemClock()
    edge = FiringEdge(clock)
    edge.start()
    fired: list[str] = []
    done = threading.Event()
    t = clock.monotonic_ns() + 30 * MS
    keep = edge.schedule(t, lambda: fired.append("keep"))
    drop = edge.schedule(t, lambda: fired.append("drop"))
    edge.cancel(drop)
    edge.schedule(t + 5 * MS, done.set)
    assert done.wait(5)
    assert fired == ["keep"]
    edge.cancel(keep)  # already fired: no effect
    edge.schedule(clock.monotonic_ns() + 10_000 * MS, lambda: fired.append("never"))
    edge.schedule(clock.monotonic_ns() + 10_000 * MS, lambda: fired.append("never"))
    edge.cancel_all()
    stats = edge.stats()
    assert (stats.pending, stats.cancelled) == (0, 3)
    edge.schedule(clock.monotonic_ns() + 10_000 * MS, lambda: fired.append("never"))
    edge.stop()  # pending items are dropped and counted
    assert edge.stats().cancelled == 4
    assert fired == ["keep"]


def test_edge_survives_raising_callbacks(caplog: pytest.LogCaptureFixture) -> None:
    clock = SystemClock()
    edge = FiringEdge(clock)
    edge.start()
    done = threading.Event()

    def boom() -> None:
        raise RuntimeError("bad callback")

    t = clock.monotonic_ns() + 10 * MS
    with caplog.at_level(logging.WARNING, logger="controller.edge"):
        edge.schedule(t, boom)
        edge.schedule(t, boom)
        edge.schedule(t + MS, done.set)
        assert done.wait(5)
    edge.stop()
    assert edge.stats().errors == 2
    assert sum("raised RuntimeError" in r.getMessage() for r in caplog.records) == 1


def test_edge_sends_batches_over_udp_at_their_instant() -> None:
    clock = SystemClock()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    sender = DirectUdpSender(local_addr=("127.0.0.1", 0))
    edge = FiringEdge(clock, sender=sender)
    edge.start()
    try:
        dest = rx.getsockname()
        due = clock.monotonic_ns() + 20 * MS
        later = [(encode_message("/b", [i]), dest) for i in range(10, 13)]
        first = [(encode_message("/a", [i]), dest) for i in range(5)]
        edge.schedule_sends(due + 2 * MS, later)
        edge.schedule_sends(due, first)
        got = [decode_packet(rx.recv(2048)) for _ in range(8)]
        arrived = clock.monotonic_ns()
        assert arrived >= due + 2 * MS
        assert [m.args[0] for m in got if isinstance(m, OscMessage)] == [0, 1, 2, 3, 4, 10, 11, 12]
        assert _eventually(lambda: sender.stats(dest).sent == 8), sender.stats(dest)
        assert _eventually(lambda: edge.stats().packets_sent == 8), edge.stats()
        assert _eventually(lambda: len(edge.lateness_ns()) == 2)  # one sample per scheduled batch
        time.sleep(0.05)
        assert sender.stats(dest).sent == 8 and edge.stats().packets_sent == 8  # and no more
    finally:
        edge.stop()
        sender.close()
        rx.close()


def test_lateness_ring_is_bounded_and_chronological() -> None:
    clock = SystemClock()
    edge = FiringEdge(clock, ring=4)
    edge.start()
    done = threading.Event()
    t = clock.monotonic_ns() + 5 * MS
    for k in range(9):
        edge.schedule(t + k * MS, _noop)
    edge.schedule(t + 10 * MS, done.set)
    assert done.wait(5)
    edge.stop()
    assert len(edge.lateness_ns()) == 4
    assert edge.stats().fired == 10


def test_edge_sleeps_instead_of_spinning_when_idle() -> None:
    # Nothing due for a long while: the thread must be blocked, not burning a core.
    edge = FiringEdge()
    edge.start()
    edge.schedule(time.monotonic_ns() + 60_000 * MS, _noop)
    before = time.process_time_ns()
    time.sleep(0.2)
    used = time.process_time_ns() - before
    edge.stop()
    assert used < 100 * MS, "the edge thread spun while nothing was due"
