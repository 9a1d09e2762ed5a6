"""Benchmark: how late do timed sends leave, FiringEdge against asyncio's ``loop.call_at``?

``n`` sends are scheduled at random instants over ``seconds``; each emits one real OSC/UDP datagram
to a loopback receiver. Both strategies run in the same process, one after the other, with the same
event loop running a kernel-timestamped :class:`controller.udp.UdpReceiver` (a realistic controller
has a live loop). Lateness is measured twice: at emission (the monotonic instant just before
``sendto``, minus the due instant) and on the wire (the kernel's receive timestamp minus the due
instant). Prints JSON with ``python3 -m madang.bench.lateness``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import time

import numpy as np
import numpy.typing as npt

from controller.clock import SystemClock
from controller.edge import FiringEdge
from controller.osc import MessageTemplate
from controller.udp import Datagram, DirectUdpSender, UdpReceiver

__all__ = ["run"]


def _pcts(samples_ns: npt.NDArray[np.int64] | list[int]) -> tuple[float, float, float]:
    a = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    if a.size == 0:
        return (float("nan"),) * 3
    p50, p99 = np.percentile(a, [50, 99])
    return round(float(p50), 1), round(float(p99), 1), round(float(a.max()), 1)


async def _measure(n: int, seconds: float, spin_ns: int, seed: int,
                   switch_interval_s: float | None, realtime_priority: int | None) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    clock = SystemClock()
    template = MessageTemplate("/bench/late", "i")
    packets = [template.encode(i) for i in range(n)]
    rng = random.Random(seed)
    span_ns = int(seconds * 1e9)
    wire: dict[int, int] = {}

    def on_datagram(d: Datagram) -> None:
        wire[int.from_bytes(d.data[-4:], "big")] = d.rx_mono_ns

    receiver = await UdpReceiver.open(on_datagram, local_addr=("127.0.0.1", 0), clock=clock, batch=256)
    receiver._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    dest = receiver.local_addr

    # ---- baseline: asyncio loop.call_at, sending from a plain socket (same send cost as the edge)
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    plain.setblocking(False)
    base_late: list[int] = []
    start = clock.monotonic_ns() + 100_000_000
    base_due = [start + rng.randrange(span_ns) for _ in range(n)]

    def fire(i: int) -> None:
        now = clock.monotonic_ns()
        plain.sendto(packets[i], dest)
        base_late.append(now - base_due[i])

    for i, due in enumerate(base_due):
        loop.call_at(due / 1e9, fire, i)  # loop.time() is time.monotonic()
    await asyncio.sleep((start + span_ns - clock.monotonic_ns()) / 1e9 + 0.2)
    base_wire = [wire[i] - base_due[i] for i in range(n) if i in wire]
    wire.clear()
    plain.close()

    # ---- FiringEdge
    sender = DirectUdpSender(local_addr=("127.0.0.1", 0))
    edge = FiringEdge(clock, spin_ns=spin_ns, sender=sender, ring=n, switch_interval_s=switch_interval_s,
                      realtime_priority=realtime_priority)
    edge.start()
    start = clock.monotonic_ns() + 100_000_000
    edge_due = [start + rng.randrange(span_ns) for _ in range(n)]
    for i, due in enumerate(edge_due):
        edge.schedule_sends(due, [(packets[i], dest)])
    await asyncio.sleep((start + span_ns - clock.monotonic_ns()) / 1e9 + 0.2)
    stats = edge.stats()
    edge_late = edge.lateness_ns()
    realtime = edge.realtime
    edge.stop()
    sender.close()
    edge_wire = [wire[i] - edge_due[i] for i in range(n) if i in wire]
    receiver.close()

    p50, p99, mx = _pcts(edge_late)
    b50, b99, bmx = _pcts(base_late)
    w50, w99, wmx = _pcts(edge_wire)
    bw50, bw99, bwmx = _pcts(base_wire)
    return {
        "n": n,
        "seconds": seconds,
        "spin_us": spin_ns / 1000,
        "p50_us": p50,
        "p99_us": p99,
        "max_us": mx,
        "baseline_p50_us": b50,
        "baseline_p99_us": b99,
        "baseline_max_us": bmx,
        "p99_improvement": round(b99 / p99, 1) if p99 > 0 else None,
        "wire_p50_us": w50,
        "wire_p99_us": w99,
        "wire_max_us": wmx,
        "baseline_wire_p50_us": bw50,
        "baseline_wire_p99_us": bw99,
        "baseline_wire_max_us": bwmx,
        "received": len(edge_wire),
        "baseline_received": len(base_wire),
        "kernel_timestamps": receiver.kernel_timestamps,
        "edge_errors": stats.errors,
        "switch_interval_s": switch_interval_s,
        "realtime_priority": realtime_priority,
        "realtime_applied": realtime,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def run(n: int = 10_000, seconds: float | None = None, *, spin_ns: int = 300_000, seed: int = 0,
        switch_interval_s: float | None = None, realtime_priority: int | None = 10) -> dict[str, object]:
    """Measure send lateness (us) of FiringEdge and of ``loop.call_at``; ``seconds`` defaults to n/1000.

    The edge thread asks for ``SCHED_FIFO`` at ``realtime_priority`` (``None``: normal priority);
    ``realtime_applied`` in the result says whether it got it.
    """
    span = seconds if seconds is not None else max(1.0, n / 1000)
    return asyncio.run(_measure(n, span, spin_ns, seed, switch_interval_s, realtime_priority))


if __name__ == "__main__":
    t0 = time.monotonic()
    result = run()
    result["wall_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(result, indent=2))
