"""The peer link against a primary in another process: killed (SIGKILL) and frozen (SIGSTOP).

The primary is a child Python process running :class:`controller.peer.PeerServer` that publishes a
record every few ms; the standby is a :class:`controller.peer.PeerClient` in the test. Waiting is
"until it holds, within a generous bound"; the one timing asserted is the link's own contract:
the loss is declared after ``missed`` heartbeat intervals of silence, not before.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.failover import Role
from controller.peer import PeerBeat, PeerChange, PeerClient
from simulators.children import die_with_parent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MS = 1_000_000
HB = 20 * MS
MISSED = 4

PRIMARY = """
import asyncio, sys
from controller.failover import Role
from controller.peer import PeerServer

async def main():
    srv = PeerServer("tcp://127.0.0.1:*", "primary", heartbeat_ns={hb})
    await srv.start()
    srv.term, srv.role, srv.witness = 3, Role.PRIMARY, True
    print(srv.endpoint, flush=True)
    n = 0
    while True:
        n += 1
        srv.publish([{{"k": "cmd", "n": n}}])
        await asyncio.sleep(0.005)

asyncio.run(main())
"""


@pytest.fixture
def primary() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PRIMARY.format(hb=HB)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=functools.partial(die_with_parent, os.getpid()),
    )
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip()
        assert endpoint.startswith("tcp://127.0.0.1:"), endpoint
        yield proc, endpoint
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait(timeout=10)


class Standby:
    def __init__(self, endpoint: str) -> None:
        self.numbers: list[int] = []
        self.beats: list[PeerBeat] = []
        self.changes: list[PeerChange] = []
        self.client = PeerClient(
            endpoint,
            "standby",
            on_records=self.on_records,
            on_heartbeat=self.beats.append,
            on_peer=self.changes.append,
            heartbeat_ns=HB,
            missed=MISSED,
        )

    def on_records(self, first: int, records: list[dict[str, Any]]) -> None:
        assert first == len(self.numbers) + 1
        self.numbers.extend(r["n"] for r in records)


async def _until(cond: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def test_a_killed_primary_is_declared_lost_after_the_missed_heartbeats(
    primary: tuple[subprocess.Popen[str], str],
) -> None:
    proc, endpoint = primary

    async def go() -> None:
        s = Standby(endpoint)
        async with s.client as cli:
            await _until(lambda: cli.connected and len(s.numbers) > 20, what="following")
            assert s.beats[-1].role is Role.PRIMARY and s.beats[-1].term == 3
            proc.send_signal(signal.SIGKILL)
            killed = time.monotonic_ns()
            await _until(lambda: not cli.connected, what="the loss")
            lost = s.changes[-1]
            assert (lost.up, lost.reason, lost.controller) == (False, "silent", "primary")
            last_beat = max(b.at_ns for b in s.beats)
            assert lost.at_ns - last_beat >= MISSED * HB  # not before the missed heartbeats
            # ... and soon after them (generous: a loaded machine schedules late).
            assert lost.at_ns - killed < MISSED * HB + HB + 500 * MS
            assert s.numbers == list(range(1, len(s.numbers) + 1))

    asyncio.run(go())


def test_a_frozen_primary_is_lost_then_back_and_the_records_carry_on_in_order(
    primary: tuple[subprocess.Popen[str], str],
) -> None:
    proc, endpoint = primary

    async def go() -> None:
        s = Standby(endpoint)
        async with s.client as cli:
            await _until(lambda: cli.connected and len(s.numbers) > 20, what="following")
            proc.send_signal(signal.SIGSTOP)  # a partition, as the standby sees it
            await _until(lambda: not cli.connected, what="the loss")
            beats_before, had = len(s.beats), len(s.numbers)
            proc.send_signal(signal.SIGCONT)
            await _until(lambda: cli.connected, what="back")
            await _until(lambda: len(s.beats) > beats_before + 5, what="heartbeats resume")
            await _until(lambda: len(s.numbers) > had + 50, what="records resume")
            await _until(lambda: cli.in_step, what="in step")
            assert [(c.up, c.reason) for c in s.changes] == [
                (True, "heartbeat"),
                (False, "silent"),
                (True, "heartbeat"),
            ]
            assert s.numbers == list(range(1, len(s.numbers) + 1))
            assert cli.stats.malformed == 0

    asyncio.run(go())
