"""The precise firing edge: emit at an instant to within tens of microseconds, not milliseconds.

Theory of operation
-------------------
asyncio's ``loop.call_at`` wakes through ``epoll_wait``, whose timeout is in milliseconds: callbacks
run 0.6-0.9 ms late at the median and 1-4 ms at p99 on this class of machine (uvloop's libuv timers
are millisecond-grained too). Where the controller itself must emit at an instant (``echo``/``none``
devices, the last hop of a send-ahead), that is not good enough.

:class:`FiringEdge` runs one dedicated thread with a heap of ``(due_ns, seq, item)`` (the pure
:class:`EdgeAgenda`). The thread

1. **sleeps** on a :class:`threading.Condition` until ``spin_ns`` (300 us by default) before the
   earliest deadline. The condition's timed wait is a futex with nanosecond timeouts, so it wakes
   within the kernel's timer slack (~50 us) rather than on a millisecond grid; a newly scheduled,
   earlier deadline notifies it and it re-plans.
2. **spins** on the monotonic clock for the last stretch, calling ``time.sleep(0)`` on each turn so
   that the GIL is released and the event loop's thread is not starved.
3. **emits** every item that is due, in ``(due, seq)`` order, back to back, on this thread. Emission
   never goes through the event loop (a hop there would cost the precision again): a packet batch is
   written with ``sendto`` on a plain non-blocking socket (:class:`controller.udp.DirectUdpSender`),
   a callback is called directly.
4. **records** the lateness (emission instant minus due instant) of each item in a bounded ring, for
   telemetry (:meth:`FiringEdge.lateness_ns`).

Batches. Many sends due at the same instant should be one :meth:`FiringEdge.schedule_sends` call
with a list of prebuilt ``(bytes, addr)``: the thread then runs a tight ``sendto`` loop with no
per-packet scheduling, locking or callback cost.

Limits. The edge shares the GIL with the rest of the process: if another thread computes for a
long time without releasing it, the edge can wait up to ``sys.getswitchinterval()`` (5 ms) to get
it back. Pass ``switch_interval_s`` (e.g. ``0.0005``) to shorten that for the life of the edge, at a
small throughput cost to CPU-bound threads. On a loaded host the operating system's scheduler adds
its own millisecond-scale tail (the thread is runnable but another process has the core); pass
``realtime_priority`` (1-99) to run the edge thread ``SCHED_FIFO`` where the process is allowed to
(``CAP_SYS_NICE``; it is refused and logged otherwise). The edge reads the injected clock's ``monotonic_ns``;
with a :class:`controller.clock.ManualClock` it still works, but treats virtual nanoseconds as real
ones when sleeping, and spins until the clock is advanced. A callback that raises is logged (once
per exception type) and counted; it never stops the thread.
"""

from __future__ import annotations

import heapq
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from controller.clock import Clock, SystemClock
from controller.udp import Addr, DirectUdpSender

__all__ = ["EdgeAgenda", "EdgeStats", "FiringEdge", "Handle", "Item"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Handle:
    """Identifies one scheduled item, for :meth:`FiringEdge.cancel`."""

    seq: int
    due_ns: int


@dataclass(frozen=True, slots=True)
class _Sends:
    packets: Sequence[tuple[bytes, Addr]]
    sender: DirectUdpSender


#: What the edge emits: a callback, or a batch of packets for a direct sender.
Item = Callable[[], None] | _Sends


class EdgeAgenda:
    """The edge's pure core: a heap of due items with lazy cancellation. No clock, no threads.

    ``push`` returns a :class:`Handle`; ``pop_due(now)`` removes and returns every live item due at
    or before ``now`` in ``(due, seq)`` order; ``next_due()`` is the earliest live deadline.
    """

    __slots__ = ("_heap", "_live", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Item]] = []
        self._live: set[int] = set()
        self._seq = 0

    def __len__(self) -> int:
        return len(self._live)

    def push(self, due_ns: int, item: Item) -> Handle:
        """Add ``item`` due at ``due_ns`` (monotonic ns)."""
        self._seq += 1
        heapq.heappush(self._heap, (due_ns, self._seq, item))
        self._live.add(self._seq)
        return Handle(self._seq, due_ns)

    def cancel(self, handle: Handle) -> bool:
        """Forget the item; ``False`` if it already fired or was cancelled."""
        if handle.seq in self._live:
            self._live.discard(handle.seq)
            return True
        return False

    def clear(self) -> int:
        """Forget every item; returns how many were pending."""
        n = len(self._live)
        self._heap.clear()
        self._live.clear()
        return n

    def _prune(self) -> None:
        heap, live = self._heap, self._live
        while heap and heap[0][1] not in live:
            heapq.heappop(heap)

    def next_due(self) -> int | None:
        """The earliest pending deadline, or ``None``."""
        self._prune()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ns: int) -> list[tuple[int, Item]]:
        """Remove and return ``(due_ns, item)`` for every live item due at or before ``now_ns``."""
        out: list[tuple[int, Item]] = []
        heap, live = self._heap, self._live
        while heap and heap[0][0] <= now_ns:
            due, seq, item = heapq.heappop(heap)
            if seq in live:
                live.discard(seq)
                out.append((due, item))
        return out


@dataclass(frozen=True, slots=True)
class EdgeStats:
    """Counters of a :class:`FiringEdge`."""

    fired: int
    errors: int
    cancelled: int
    pending: int
    packets_sent: int


class FiringEdge:
    """A dedicated thread that emits scheduled items precisely at their monotonic instants.

    ``start()``, then ``schedule(due_ns, fn)`` / ``schedule_sends(due_ns, packets)`` from any thread
    (``due_ns`` on ``clock.monotonic_ns()``), ``cancel``, and ``stop()`` at the end. ``sender`` is
    the direct UDP sender used by :meth:`schedule_sends` (one is created if none is given).
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        spin_ns: int = 300_000,
        name: str = "madang-edge",
        sender: DirectUdpSender | None = None,
        ring: int = 65_536,
        switch_interval_s: float | None = None,
        realtime_priority: int | None = None,
    ) -> None:
        self._realtime_priority = realtime_priority
        #: Whether the edge thread obtained SCHED_FIFO (only ever true with ``realtime_priority``).
        self.realtime = False
        self._clock = clock or SystemClock()
        self._spin_ns = spin_ns
        self._name = name
        self._sender = sender
        self._owns_sender = False
        self._agenda = EdgeAgenda()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._running = False
        self._ring = np.zeros(ring, dtype=np.int64)
        self._ring_n = 0
        self._fired = 0
        self._errors = 0
        self._cancelled = 0
        self._packets = 0
        self._warned: set[str] = set()
        self._switch_interval_s = switch_interval_s
        self._saved_switch: float | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the edge thread (idempotent)."""
        with self._cond:
            if self._thread is not None:
                return
            self._running = True
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        if self._switch_interval_s is not None:
            self._saved_switch = sys.getswitchinterval()
            sys.setswitchinterval(self._switch_interval_s)
        self._thread.start()
        log.info("firing edge started", extra={"edge": self._name, "spin_ns": self._spin_ns})

    def stop(self) -> None:
        """Stop the thread and wait for it (idempotent); pending items are dropped and counted."""
        with self._cond:
            thread = self._thread
            if thread is None:
                return
            self._running = False
            self._cond.notify_all()
        thread.join()
        with self._cond:
            self._thread = None
            self._cancelled += self._agenda.clear()
        if self._saved_switch is not None:
            sys.setswitchinterval(self._saved_switch)
            self._saved_switch = None
        if self._owns_sender and self._sender is not None:
            self._sender.close()
            self._sender = None
            self._owns_sender = False
        log.info("firing edge stopped", extra={"edge": self._name, "fired": self._fired})

    @property
    def sender(self) -> DirectUdpSender:
        """The direct UDP sender used by :meth:`schedule_sends` (created on first use)."""
        if self._sender is None:
            self._sender = DirectUdpSender()
            self._owns_sender = True
        return self._sender

    # ----------------------------------------------------------------- scheduling

    def schedule(self, due_ns: int, fn: Callable[[], None]) -> Handle:
        """Call ``fn()`` on the edge thread at ``due_ns`` (monotonic). Thread-safe."""
        return self._push(due_ns, fn)

    def schedule_sends(self, due_ns: int, packets: Sequence[tuple[bytes, Addr]],
                       sender: DirectUdpSender | None = None) -> Handle:
        """Send every ``(bytes, addr)`` back to back at ``due_ns``. Thread-safe.

        Build the packets ahead (templates, :mod:`controller.osc`); the edge only writes them.
        """
        return self._push(due_ns, _Sends(packets, sender or self.sender))

    def _push(self, due_ns: int, item: Item) -> Handle:
        with self._cond:
            earliest = self._agenda.next_due()
            handle = self._agenda.push(due_ns, item)
            if earliest is None or due_ns < earliest:
                self._cond.notify()
        return handle

    def cancel(self, handle: Handle) -> None:
        """Cancel one item if it has not fired yet. Thread-safe."""
        with self._cond:
            if self._agenda.cancel(handle):
                self._cancelled += 1

    def cancel_all(self) -> None:
        """Cancel every pending item. Thread-safe."""
        with self._cond:
            self._cancelled += self._agenda.clear()

    # ----------------------------------------------------------------- telemetry

    def lateness_ns(self) -> npt.NDArray[np.int64]:
        """Recent lateness samples (emission minus due, ns), oldest first, up to the ring size."""
        n, size = self._ring_n, len(self._ring)
        if n <= size:
            return self._ring[:n].copy()
        i = n % size
        return np.concatenate((self._ring[i:], self._ring[:i]))

    def stats(self) -> EdgeStats:
        """Counters so far."""
        with self._cond:
            pending = len(self._agenda)
        return EdgeStats(self._fired, self._errors, self._cancelled, pending, self._packets)

    # ----------------------------------------------------------------- the thread

    def _raise_priority(self, priority: int) -> None:
        # On Linux, sched_setscheduler(0, ...) applies to the calling thread only.
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except (OSError, AttributeError) as exc:
            log.warning("firing edge could not get real-time priority (%s); running at normal priority",
                        exc, extra={"edge": self._name})
        else:
            self.realtime = True
            log.info("firing edge runs SCHED_FIFO", extra={"edge": self._name, "priority": priority})

    def _run(self) -> None:
        if self._realtime_priority is not None:
            self._raise_priority(self._realtime_priority)
        cond, agenda, clock, spin = self._cond, self._agenda, self._clock, self._spin_ns
        mono = clock.monotonic_ns
        while True:
            with cond:
                while True:
                    if not self._running:
                        return
                    due = agenda.next_due()
                    if due is None:
                        cond.wait()
                        continue
                    wait = due - mono() - spin
                    if wait <= 0:
                        break
                    cond.wait(wait / 1e9)
            # Spin the last stretch without the lock (schedulers must not wait on us).
            while mono() < due:
                time.sleep(0)
            with cond:
                items = agenda.pop_due(mono())
            self._emit(items)

    def _emit(self, items: list[tuple[int, Item]]) -> None:
        mono = self._clock.monotonic_ns
        ring, size = self._ring, len(self._ring)
        for due, item in items:
            now = mono()
            ring[self._ring_n % size] = now - due
            self._ring_n += 1
            self._fired += 1
            try:
                if isinstance(item, _Sends):
                    self._packets += item.sender.send_batch(item.packets)
                else:
                    item()
            except Exception as exc:
                self._errors += 1
                key = type(exc).__name__
                if key not in self._warned:
                    self._warned.add(key)
                    log.exception("edge callback raised %s (counting further ones silently)", key,
                                  extra={"edge": self._name, "due_ns": due})
