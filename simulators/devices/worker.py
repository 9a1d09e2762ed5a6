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

The child's life is its parent's (:mod:`simulators.children`): it starts with SIGINT and SIGTERM
blocked and then ignores them (a Ctrl-C in the terminal, or a service manager's SIGTERM to the
whole group, is for the parent, which stops the show and then asks the child for its records);
it dies by a parent-death signal when the parent is killed (Linux), and it exits on its own when
its pipe to the parent reaches end-of-file (the parent died, on any system).

Only the real-time adapters and the device cores run in the child; it never imports the
controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from simulators.children import die_with_parent
from simulators.clock import DeviceClock
from simulators.devices.app import AppDevice
from simulators.devices.realtime import TIMER_LATENESS, MqttApp, WsApp
from simulators.network import Path
from simulators.record import Recorder
from venues.broker import BrokerLogin
from venues.errors import MadangError
from venues.model import Device

__all__ = ["HeadsetSpec", "HeadsetWorker", "HeadsetWorkerError"]

log = logging.getLogger(__name__)

_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_POLL_S = 0.2  # the parent waits on the pipe in steps this long, so a cancellation is prompt


@dataclass(frozen=True)
class HeadsetSpec:
    """One headset to run in the child: the venue's device, its true clock and its network path."""

    device: Device
    clock: DeviceClock
    path: Path
    login: BrokerLogin | None = None  # its broker identity (an ACL'd broker), and the CA
    tls: bool = False  # the broker speaks TLS
    broker: tuple[str, int] | None = None  # (host, port) of its own broker (a leaf), else the worker's


Row = tuple[str, str, str, int, str, int, int, object, int]


async def _main(
    conn: Connection, specs: list[HeadsetSpec], host: str, port: int, ws_url: str | None, arrivals: bool
) -> None:
    loop = asyncio.get_running_loop()
    rec = Recorder()
    apps: list[MqttApp | WsApp] = []
    seen: list[tuple[str, int, bytes]] | None = [] if arrivals else None
    counts: dict[str, int] = {}  # every message of every headset here, by kind (realtime.message_kind)
    for s in specs:
        core = AppDevice(s.device, s.clock, rec)
        if s.device.mqtt is None and ws_url is not None:
            apps.append(WsApp(core, s.path, ws_url, key=None if s.login is None else s.login.password))
        else:
            h, p = s.broker or (host, port)
            apps.append(MqttApp(core, s.path, host=h, port=p, login=s.login, tls=s.tls))
        apps[-1].arrivals = seen
        apps[-1].counts = counts
    for a in apps:
        a.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(a.connected.wait() for a in apps)), 120)
        hello: tuple[object, ...] = ("connected", len(apps))
    except TimeoutError:
        hello = ("error", "headsets did not connect within 120 s")
    parent_alive = _send(conn, hello)
    if parent_alive:
        try:
            await loop.run_in_executor(None, conn.recv)  # "stop"
        except (EOFError, OSError):
            parent_alive = False  # the parent died: the pipe is our watchdog
    tasks = [a.task for a in apps if a.task is not None]
    for a in apps:
        a.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    if not parent_alive:
        return
    rows: list[Row] = [
        (f.device_id, f.what, f.key, f.seq, f.param, f.true_ns, f.local_ns, f.value, f.term)
        for f in rec.rows()
    ]
    _send(conn, ("records", rows, list(TIMER_LATENESS.samples), seen or [], counts))


def _send(conn: Connection, msg: object) -> bool:
    """Send ``msg`` to the parent; False when the parent is gone."""
    try:
        conn.send(msg)
    except (BrokenPipeError, EOFError, OSError):
        return False
    return True


def _run(
    conn: Connection,
    specs: list[HeadsetSpec],
    host: str,
    port: int,
    parent_pid: int,
    ws_url: str | None = None,
    arrivals: bool = False,
) -> None:
    die_with_parent(parent_pid)
    for sig in _SIGNALS:  # the parent stops us (blocked since fork: see HeadsetWorker.start)
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    asyncio.run(_main(conn, specs, host, port, ws_url, arrivals))


class HeadsetWorkerError(MadangError, RuntimeError):
    """The headset process failed, or did not answer in time (the message says which)."""


class HeadsetWorker:
    """A child process running ``specs`` headsets against the broker at ``host:port`` (a spec with
    its own ``broker``: that one, a leaf of a broker topology; those with no MQTT endpoint as
    WebXR clients of ``ws_url``). ``arrivals``: the child keeps every cue
    message's arrival (:attr:`arrivals` after :meth:`stop`)."""

    def __init__(
        self,
        specs: list[HeadsetSpec],
        host: str,
        port: int,
        *,
        ws_url: str | None = None,
        arrivals: bool = False,
    ) -> None:
        self.specs = specs
        self.arrivals: list[tuple[str, int, bytes]] = []
        # Every message its headsets received and sent, by kind (realtime.message_kind), after stop.
        self.counts: dict[str, int] = {}
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_run,
            args=(child, specs, host, port, os.getpid(), ws_url, arrivals),
            name="madang-headsets",
            daemon=True,  # multiprocessing ends it at our exit too
        )
        self.started_s = 0.0
        self._connected = False

    @property
    def pid(self) -> int | None:
        """The child's process id once started."""
        return self._proc.pid

    def start(self) -> None:
        """Start the child process (it connects every headset at once).

        SIGINT and SIGTERM are blocked in this thread while the child is created, so it inherits
        them blocked: a Ctrl-C while the child's interpreter boots cannot interrupt it with a
        traceback (the child then ignores them, see the module docstring). Start it from the
        main thread: the parent-death signal follows the thread that forked.
        """
        self.started_s = time.monotonic()
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            self._proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    async def _recv(self, timeout_s: float) -> Any:
        """The child's next message; waits in short steps (a cancelled wait leaves no thread
        blocked for long) and fails at once if the child has died."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout_s
        while not await loop.run_in_executor(None, self._conn.poll, _POLL_S):
            if not self._proc.is_alive():
                raise HeadsetWorkerError(f"the headset process ended (exit code {self._proc.exitcode})")
            if time.monotonic() >= deadline:
                raise HeadsetWorkerError(f"the headset process did not answer within {timeout_s:g} s")
        try:
            return await loop.run_in_executor(None, self._conn.recv)
        except (EOFError, OSError) as exc:
            raise HeadsetWorkerError(f"the headset process closed its pipe ({exc!r})") from exc

    async def wait_connected(self, timeout_s: float = 180.0) -> None:
        """Wait until every headset of the child has connected."""
        msg = await self._recv(timeout_s)
        if msg[0] != "connected":
            raise HeadsetWorkerError(f"headset process: {msg[1]}")
        self._connected = True

    async def stop(self, recorder: Recorder) -> list[int]:
        """Stop the headsets; append their records to ``recorder``; returns their timer lateness (ns).

        The child is ended whatever happens (asked, then killed). If it cannot
        hand back its records (it died, or did not answer), that is logged and none are added.
        """
        if not self._connected:
            await self.abort()  # it still waits for its headsets to connect: nothing to hand back
            return []
        msg: Any = None
        try:
            if _send(self._conn, "stop"):
                msg = await self._recv(60.0)
        except HeadsetWorkerError as exc:
            log.warning("headset process records lost", extra={"error": str(exc)})
        finally:
            await self._end()
        if msg is None or msg[0] != "records":
            return []
        _, rows, lateness, self.arrivals, self.counts = msg
        for did, what, key, seq, param, true_ns, local_ns, value, term in rows:
            recorder.record(recorder.register(did), what, key, seq, param, true_ns, local_ns, value, term)
        return list(lateness)

    async def abort(self) -> None:
        """End the child now, without its records (SIGKILL: it ignores SIGTERM, see above)."""
        if self._proc.pid is None:
            return
        if self._proc.is_alive():
            self._proc.kill()
        await self._end()

    async def _end(self) -> None:
        """Join the child (bounded), killing it if it lingers."""
        if self._proc.pid is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._proc.join, 10)
        if self._proc.is_alive():  # it ignores SIGTERM: kill
            self._proc.kill()
            await loop.run_in_executor(None, self._proc.join, 5)
        with contextlib.suppress(OSError):
            self._conn.close()
