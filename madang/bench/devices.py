"""Benchmarks of the simulators; each prints one JSON object.

``python3 -m madang.bench.devices vtime``                    raw scheduler events per second
``python3 -m madang.bench.devices virtual --devices 10000``  a show in virtual time
``python3 -m madang.bench.devices mqtt --devices 1000``      real MQTT headsets in one process
(``mqtt`` starts a private Mosquitto through :mod:`simulators.broker`.) The same three are
``madang bench devices vtime|virtual|mqtt [--json]`` (:func:`run`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

import numpy as np

from simulators.devices.venue import SimulatedVenue
from simulators.record import EXECUTIONS
from simulators.vtime import VirtualTime
from venues.model import Device, MqttEndpoint, Sync, Venue

__all__ = ["main", "run"]

_S = 1_000_000_000
_MS = 1_000_000


def _venue(n: int) -> Venue:
    devices = tuple(
        Device(
            id=f"xr-{i:05d}",
            kind="headset",
            zone=f"z{i % 8}",
            sync=Sync.APP,
            mqtt=MqttEndpoint("madang/dev/{id}"),
            safe={"brightness": 0.0},
        )
        for i in range(n)
    )
    return Venue("bench", "bench", tuple(f"z{i}" for i in range(8)), "", devices, {})


def bench_vtime(n: int) -> dict[str, object]:
    """Schedule and run ``n`` events in random order."""
    vt = VirtualTime()
    sink: list[int] = []
    rng = vt.rng
    t0 = time.perf_counter()
    for _ in range(n):
        vt.call_at(rng.randrange(10**12), sink.append, 1)
    vt.run()
    dt = time.perf_counter() - t0
    return {"bench": "vtime", "events": n, "seconds": round(dt, 3), "events_per_s": round(n / dt)}


def bench_virtual(n: int, cues: int, profile: str) -> dict[str, object]:
    """A show of ``cues`` group cues (each repeated 3x) to ``n`` headsets with clock models."""
    t_build = time.perf_counter()
    sim = SimulatedVenue(_venue(n), mode="virtual", profile=profile, seed=1)
    ctl = sim.controller
    fired = 0

    def on_message(topic: str, payload: bytes, now: int) -> None:
        nonlocal fired
        if topic.endswith("/fired"):
            fired += 1

    ctl.on_message = on_message
    ctl.subscribe("madang/dev/+/fired")
    sim.start()
    t0 = sim.now
    for did, clock in sim.clocks.items():
        model = {
            "epoch": t0,
            "offset_ns": clock.local(t0) - t0,
            "drift_ppb": clock.drift_ppt // 1000,
            "term": 1,  # as a controller sends it (docs/protocol.md, "Controller terms")
        }
        ctl.publish(f"madang/dev/{did}/clock", json.dumps(model).encode(), retain=True)
    assert sim.vt is not None
    for k in range(cues):
        at = t0 + (3 + 2 * k) * _S
        body = {
            "show": "b",
            "cue": f"c{k}",
            "seq": k,
            "at": at,
            "op": {"mqtt": {"topic": "xr/{device}/s", "payload": k}},
            "term": 1,
        }
        data = json.dumps(body).encode()
        for rep in range(3):
            sim.vt.call_at(at - (1000 - 300 * rep) * _MS, ctl.publish, "madang/cue", data)
    t_run = time.perf_counter()
    sim.run_until(t0 + (5 + 2 * cues) * _S)
    t_end = time.perf_counter()
    spreads = [sim.records().spread(k, ("cue",)) for k in range(cues)]
    cols = sim.records().columns()
    dev_us: list[float] = []
    for k in range(cues):
        t = cols["true_ns"][(cols["seq"] == k) & (cols["what"] == "cue")]
        if t.size:
            dev_us.extend(((t - int(np.median(t))) / 1e3).tolist())
    adev = np.abs(np.array(dev_us)) if dev_us else np.zeros(1)
    return {
        "bench": "virtual",
        "devices": n,
        "cues": cues,
        "profile": profile,
        "virtual_seconds": (sim.now - t0) / _S,
        "events": sim.vt.events_run,
        "build_s": round(t_run - t_build, 3),
        "run_s": round(t_end - t_run, 3),
        "events_per_s": round(sim.vt.events_run / (t_end - t_run)),
        "executions": len(sim.records().rows(EXECUTIONS)),
        "fired_reports": fired,
        "max_spread_ns": max(s or 0 for s in spreads),
        "fire_dev_from_median_us": {
            "p50": round(float(np.percentile(adev, 50)), 3),
            "p99": round(float(np.percentile(adev, 99)), 3),
            "p999": round(float(np.percentile(adev, 99.9)), 3),
            "late_over_1ms": int((adev > 1000).sum()),
        },
    }


async def _bench_mqtt(n: int) -> dict[str, object]:
    from simulators.broker import MosquittoBroker

    with MosquittoBroker() as broker:
        broker.start()
        sim = SimulatedVenue(_venue(n), mode="real", profile="perfect", broker_url=broker.url, seed=1)
        t0 = time.perf_counter()
        await sim.start_async()
        await sim.wait_connected(timeout_s=120)
        t_conn = time.perf_counter() - t0
        # Let the readiness traffic settle, then measure the loop's idle cost (heartbeats).
        await asyncio.sleep(2)
        c0 = time.process_time()
        await asyncio.sleep(5)
        idle_cpu = (time.process_time() - c0) / 5
        await sim.stop_async()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "bench": "mqtt",
        "devices": n,
        "connect_all_s": round(t_conn, 2),
        "idle_cpu_fraction": round(idle_cpu, 3),
        "max_rss_mb": round(rss_mb, 1),
    }


def run(
    what: str,
    *,
    events: int = 1_000_000,
    devices: int | None = None,
    cues: int = 10,
    profile: str = "wifi-crowded",
) -> dict[str, object]:
    """Run one benchmark, ``vtime``, ``virtual`` or ``mqtt``; returns its figures.

    ``devices`` defaults to 10,000 for ``virtual`` and 1,000 for ``mqtt``, as in :func:`main`.
    """
    if what == "vtime":
        return bench_vtime(events)
    if what == "virtual":
        return bench_virtual(10_000 if devices is None else devices, cues, profile)
    if what == "mqtt":
        return asyncio.run(_bench_mqtt(1000 if devices is None else devices))
    raise ValueError(f"unknown simulator benchmark {what!r}; choose vtime, virtual or mqtt")


def main(argv: list[str] | None = None) -> None:
    """Run one benchmark and print its JSON."""
    p = argparse.ArgumentParser(prog="python3 -m madang.bench.devices")
    sub = p.add_subparsers(dest="what", required=True)
    v = sub.add_parser("vtime")
    v.add_argument("--events", type=int, default=1_000_000)
    s = sub.add_parser("virtual")
    s.add_argument("--devices", type=int, default=10_000)
    s.add_argument("--cues", type=int, default=10)
    s.add_argument("--profile", default="wifi-crowded")
    m = sub.add_parser("mqtt")
    m.add_argument("--devices", type=int, default=1000)
    a = p.parse_args(argv)
    if a.what == "vtime":
        out = bench_vtime(a.events)
    elif a.what == "virtual":
        out = bench_virtual(a.devices, a.cues, a.profile)
    else:
        out = asyncio.run(_bench_mqtt(a.devices))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
