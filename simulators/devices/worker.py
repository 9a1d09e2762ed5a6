"""Simulated headsets in a process of their own, for real-time runs at venue scale.

Theory of operation
-------------------
A thousand simulated MQTT headsets keep one Python event loop busy. Sharing that loop (and its
interpreter lock) with the controller under test would make the controller late for reasons a
real venue does not have, since there every headset has its own CPU. :class:`HeadsetWorker` runs
a set of ``app`` devices in a child process (``spawn``), each with exactly the clock and network
path the parent built for it (so the parent's :class:`~simulators.devices.venue.SimulatedVenue`
still knows every true clock), on their own loop:

1. the parent calls :meth:`HeadsetWorker.start` and awaits :meth:`HeadsetWorker.wait_connected`;
2. the show runs; the child's devices talk to the broker like any other;
3. :meth:`HeadsetWorker.stop` stops them and brings back every row they recorded, which the parent
   appends to its recorder, and the lateness of their timers.

Only the real-time adapters and the device cores run in the child; it never imports the
controller.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from simulators.clock import DeviceClock
from simulators.devices.app import AppDevice
from simulators.devices.realtime import TIMER_LATENESS, MqttApp
from simulators.network import Path
from simulators.record import Recorder
from venues.model import Device

__all__ = ["HeadsetSpec", "HeadsetWorker"]


@dataclass(frozen=True)
class HeadsetSpec:
    """One headset to run in the child: the venue's device, its true clock and its network path."""

    device: Device
    clock: DeviceClock
    path: Path


Row = tuple[str, str, str, int, str, int, int, object]


async def _main(conn: Connection, specs: list[HeadsetSpec], host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    rec = Recorder()
    apps = [MqttApp(AppDevice(s.device, s.clock, rec), s.path, host=host, port=port) for s in specs]
    for a in apps:
        a.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(a.connected.wait() for a in apps)), 120)
        conn.send(("connected", len(apps)))
    except TimeoutError:
        conn.send(("error", "headsets did not connect within 120 s"))
    await loop.run_in_executor(None, conn.recv)  # "stop"
    tasks = [a.task for a in apps if a.task is not None]
    for a in apps:
        a.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    rows: list[Row] = [
        (f.device_id, f.what, f.key, f.seq, f.param, f.true_ns, f.local_ns, f.value) for f in rec.rows()
    ]
    conn.send(("records", rows, list(TIMER_LATENESS.samples)))


def _run(conn: Connection, specs: list[HeadsetSpec], host: str, port: int) -> None:
    asyncio.run(_main(conn, specs, host, port))


class HeadsetWorker:
    """A child process running ``specs`` headsets against the broker at ``host:port``."""

    def __init__(self, specs: list[HeadsetSpec], host: str, port: int) -> None:
        self.specs = specs
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_run, args=(child, specs, host, port), name="madang-headsets", daemon=True
        )
        self.started_s = 0.0

    def start(self) -> None:
        """Start the child process (it connects every headset at once)."""
        self.started_s = time.monotonic()
        self._proc.start()

    async def _recv(self, timeout_s: float) -> Any:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self._conn.poll, timeout_s):
            raise TimeoutError(f"the headset process did not answer within {timeout_s:g} s")
        return await loop.run_in_executor(None, self._conn.recv)

    async def wait_connected(self, timeout_s: float = 180.0) -> None:
        """Wait until every headset of the child has connected."""
        msg = await self._recv(timeout_s)
        if msg[0] != "connected":
            raise RuntimeError(f"headset process: {msg[1]}")

    async def stop(self, recorder: Recorder) -> list[int]:
        """Stop the headsets; append their records to ``recorder``; returns their timer lateness (ns)."""
        self._conn.send("stop")
        try:
            msg = await self._recv(60.0)
        finally:
            await asyncio.get_running_loop().run_in_executor(None, self._proc.join, 10)
            if self._proc.is_alive():
                self._proc.terminate()
        _, rows, lateness = msg
        for did, what, key, seq, param, true_ns, local_ns, value in rows:
            recorder.record(recorder.register(did), what, key, seq, param, true_ns, local_ns, value)
        return list(lateness)
