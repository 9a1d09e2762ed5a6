"""DMX out: what a frame costs to render and encode, and when frames arrive over loopback.

* ``render_us``: one frame of the Han River patch (Art-Net universe 0, sACN universe 1) rendered
  from the engine mid-fade (the interlude), encoded, per frame (mean and p99);
* ``encode_us``: one 512-slot sACN data packet, ours (:mod:`controller.wire.e131`) against the
  ``sacn`` package's ``DataPacket(...).getBytes()``, and one ArtDmx packet, ours;
* ``lateness_us``: the Han River frames played for ``seconds`` through the firing edge to two
  loopback receivers: arrival (the receiver's monotonic clock on ``recv``) minus the frame's
  instant, p50/p99/max; frames sent, received, skipped by the driver.

``madang bench dmx --json`` or ``python3 -m madang.bench.dmx``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import threading
import time
from typing import Any

import numpy as np

from controller.clock import SystemClock
from controller.dmx import DmxFrame, DmxOutput, DmxSource
from controller.dmxout import DmxDriver
from controller.edge import FiringEdge
from controller.engine import Engine
from controller.playback import Arm, Go, Load, LoadAt
from controller.wire import artnet, e131
from cues.compiler import compile_show
from venues.loader import config_dir
from venues.model import Venue

__all__ = ["run"]

MS = 1_000_000


def _stats_us(ns: list[int] | np.ndarray[Any, Any]) -> dict[str, float]:
    a = np.asarray(ns, dtype=np.float64) / 1000
    if not len(a):
        return {}
    return {
        "mean": round(float(a.mean()), 1),
        "p50": round(float(np.percentile(a, 50)), 1),
        "p99": round(float(np.percentile(a, 99)), 1),
        "max": round(float(a.max()), 1),
    }


def _encode_us(n: int = 5000) -> dict[str, Any]:
    try:
        from sacn.messages.data_packet import DataPacket
    except ImportError:  # the comparison needs the test extra (pip install -e '.[test]')
        DataPacket = None  # noqa: N806

    cid = os.urandom(16)
    data = bytes(range(256)) * 2
    t = time.perf_counter_ns()
    for i in range(n):
        e131.encode_data(cid, b"Madang", 1, i & 0xFF, data, sync_universe=63999)
    ours = (time.perf_counter_ns() - t) / n / 1000
    theirs = None
    if DataPacket is not None:
        t = time.perf_counter_ns()
        for i in range(n):
            p = DataPacket(tuple(cid), "Madang", 1, tuple(data), sequence=i & 0xFF, sync_universe=63999)
            bytes(p.getBytes())
        theirs = round((time.perf_counter_ns() - t) / n / 1000, 2)
    t = time.perf_counter_ns()
    for i in range(n):
        artnet.encode_artdmx(0, i % 255 + 1, data)
    art = (time.perf_counter_ns() - t) / n / 1000
    return {"sacn_ours": round(ours, 2), "sacn_package": theirs, "artdmx_ours": round(art, 2)}


def _venue(artnet_port: int, sacn_port: int) -> tuple[Any, Venue, int]:
    tl, venue = compile_show(config_dir() / "shows" / "han-river-night-bloom.yaml")
    devices = []
    for d in venue.devices:
        if d.dmx is not None:
            port = artnet_port if d.dmx.transport == "artnet" else sacn_port
            d = dataclasses.replace(d, dmx=dataclasses.replace(d.dmx, host="127.0.0.1", port=port))
        devices.append(d)
    start = next(c for c in tl.cues if c.id == "interlude").start_ns
    return tl, dataclasses.replace(venue, devices=tuple(devices)), start


class _Recording(DmxOutput):
    def __init__(self, venue: Venue) -> None:
        super().__init__(venue, keepalive_ns=0)  # send every frame: every frame is measured
        self.due: dict[bytes, int] = {}

    def render(self, due_ns: int, source: DmxSource) -> DmxFrame:
        frame = super().render(due_ns, source)
        for pkt, _ in frame.packets:
            self.due[pkt] = due_ns
        return frame


def run(seconds: float = 5.0) -> dict[str, Any]:
    """The figures (see the module docstring)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.05)
    tl, venue, _ = _venue(socks[0].getsockname()[1], socks[1].getsockname()[1])
    clock = SystemClock()

    # render + encode cost per frame, mid-fade
    engine = Engine(tl, venue)
    for cmd in (Load(), Arm(), LoadAt(cue="interlude"), Go()):
        engine.command(cmd, 0)
    out = DmxOutput(venue)
    costs = []
    for k in range(2000):
        due = out.instant(0, k % 200)  # the first 4.5 s of the fades, over and over
        t = time.perf_counter_ns()
        out.render(due, engine)
        costs.append(time.perf_counter_ns() - t)

    # frames over loopback through the firing edge
    got: list[tuple[bytes, int]] = []
    stop = threading.Event()

    def pump(s: socket.socket) -> None:
        while not stop.is_set():
            try:
                data = s.recv(2048)
            except TimeoutError:
                continue
            got.append((data, time.monotonic_ns()))

    threads = [threading.Thread(target=pump, args=(s,), daemon=True) for s in socks]
    for th in threads:
        th.start()
    engine = Engine(tl, venue)
    rec = _Recording(venue)
    edge = FiringEdge(clock, realtime_priority=10)
    driver = DmxDriver(rec, lambda: engine, edge, clock)

    async def play() -> None:
        now = clock.wall_ns()
        for cmd in (Load(), Arm(), LoadAt(cue="interlude"), Go()):
            engine.command(cmd, now)
        task = asyncio.create_task(driver.run())
        await asyncio.sleep(seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    edge.start()
    try:
        asyncio.run(play())
        time.sleep(0.1)
    finally:
        edge.stop()
        driver.close()
        stop.set()
        for th in threads:
            th.join(2)
        for s in socks:
            s.close()
    offset = clock.wall_ns() - clock.monotonic_ns()
    late = [rx - (rec.due[data] - offset) for data, rx in got if data in rec.due]
    return {
        "bench": "dmx",
        "rate_hz": rec.rate_hz,
        "render_us": _stats_us(costs),
        "encode_us": _encode_us(),
        "lateness_us": _stats_us(late),
        "frames": rec.frames,
        "packets_sent": rec.packets,
        "packets_received": len(late),
        "skipped": driver.skipped,
        "edge_realtime": edge.realtime,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
