"""Benchmark: the controller's clock-sync tick, CPU per ping, as the core drives it.

A venue of ``devices`` ``app`` headsets; for ``seconds`` of show clock on a 1 ms poll grid (as the
virtual harness polls the core), :meth:`~controller.sync.service.SyncService.due_pings` every
poll, each pong answered after 4 ms plus an exponential 4 ms (seeded), passed to
:meth:`~controller.sync.service.SyncService.receive_pong` in the poll it arrives in, and
:meth:`~controller.sync.service.SyncService.update` every poll. Reports the process CPU time
(``time.process_time``) of each of the three, per ping. No network, no simulator: the service's
own cost. Prints JSON with ``python3 -m madang.bench.sync_tick [devices] [seconds]``.
"""

from __future__ import annotations

import heapq
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from controller.sync.estimator import warm
from controller.sync.service import SyncService
from venues.loader import load_venue

__all__ = ["run"]

_T0 = 1_763_694_000_000_000_000
_MS = 1_000_000


def run(devices: int = 10_000, seconds: int = 120, *, seed: int = 1) -> dict[str, Any]:
    """Drive a :class:`SyncService` of ``devices`` headsets for ``seconds``; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="madang-bench-") as d:
        path = Path(d) / "bench.yaml"
        path.write_text(
            "venue: bench\nzones: [a]\ndevices:\n"
            f'  - {{id: "xr-{{1..{devices}}}", kind: xr, zone: a, mqtt: {{}}, sync: app}}\n'
            'groups:\n  all: "kind:xr"\n',
            encoding="utf-8",
        )
        venue = load_venue(path)
    warm()
    sync = SyncService(venue, seed=seed)
    rng = random.Random(seed)
    flight: list[tuple[int, str, int, int]] = []
    c_due = c_pong = c_upd = 0.0
    pings = pongs = models = 0
    for ms in range(seconds * 1000):
        now = _T0 + ms * _MS
        c = time.process_time()
        due = sync.due_pings(now)
        c_due += time.process_time() - c
        for did, seq in due:
            heapq.heappush(flight, (now + 4 * _MS + int(rng.expovariate(1 / 4e6)), did, seq, now))
        pings += len(due)
        c = time.process_time()
        while flight and flight[0][0] <= now:
            t4, did, seq, t1 = heapq.heappop(flight)
            t2 = t1 + 2 * _MS + 12_345
            sync.receive_pong(did, seq, t1, t2, t2, t4)
            pongs += 1
        c_pong += time.process_time() - c
        c = time.process_time()
        models += len(sync.update(now))
        c_upd += time.process_time() - c
    total = c_due + c_pong + c_upd
    return {
        "devices": devices,
        "seconds": seconds,
        "pings": pings,
        "pongs": pongs,
        "model_sends": models,
        "cpu_s_due_pings": round(c_due, 3),
        "cpu_s_receive_pong": round(c_pong, 3),
        "cpu_s_update": round(c_upd, 3),
        "cpu_s_total": round(total, 3),
        "cpu_us_per_ping": round(total / max(1, pings) * 1e6, 2),
        "note": "receive_pong time includes the driver's heap pop per pong",
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(run(*args), indent=2))
