"""Real-time adapters over real sockets on 127.0.0.1 (UDP, a private Mosquitto, a WebSocket server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator

import aiomqtt
import pytest
from pythonosc.osc_message import OscMessage
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from simulators.broker import MosquittoBroker
from simulators.devices import SimulatedVenue
from simulators.devices._wire import encode_osc
from simulators.record import EXECUTIONS
from tests.simulators._helpers import bundle, display, headset, key, msg, timed
from venues.model import Device, Venue

S = 1_000_000_000
MS = 1_000_000
pytestmark = pytest.mark.integration


def venue(*devices: Device) -> Venue:
    return Venue(
        id="rt",
        name="RT",
        zones=("north",),
        broker="",
        devices=tuple(devices),
        groups={},
    )


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def test_udp_display_executes_a_bundle_at_its_timetag() -> None:
    async def main() -> None:
        sim = SimulatedVenue(venue(display("led-1")), mode="real", profile="perfect", seed=1)
        await sim.start_async()
        try:
            (host, port) = sim.endpoints()["led-1"]
            assert host == "127.0.0.1" and sim.mapped_venue().device("led-1").osc.port == port  # type: ignore[union-attr]
            assert "udp://127.0.0.1:" in sim.listening()["led-1"]
            clock = sim.clocks["led-1"]
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(("127.0.0.1", 0))
            target = time.time_ns() + 400 * MS
            b = bundle(timed(clock.local(target)), key("rt", 7), msg("/brightness", (0.75, "f")))
            sock.sendto(b, (host, port))
            sock.sendto(encode_osc("/madang/ping", ((1, "i"), (time.time_ns(), "h"))), (host, port))
            await asyncio.sleep(0.1)
            core = sim.displays["led-1"]
            assert core.params["brightness"] == 0.0  # received, scheduled, not yet executed
            await until(lambda: core.params["brightness"] == 0.75)
            assert time.time_ns() >= target
            (row,) = sim.records().rows(EXECUTIONS)
            assert abs(row.true_ns - target) <= 1 and row.seq == 7
            replies = []
            while True:
                try:
                    replies.append(OscMessage(sock.recv(1024)).address)
                except BlockingIOError:
                    break
            assert replies == ["/madang/pong", "/madang/fired"]
            sock.close()
        finally:
            await sim.stop_async()

    asyncio.run(main())


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    b = MosquittoBroker().start()
    try:
        yield b
    finally:
        b.close()


def test_mqtt_headsets_fire_cues_report_and_leave_a_will(broker: MosquittoBroker) -> None:
    async def controller_phase(sim: SimulatedVenue) -> None:
        statuses: dict[str, str] = {}
        fired: list[dict[str, object]] = []
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="test-controller") as ctl:
            await ctl.subscribe([("madang/dev/+/status", 0), ("madang/dev/+/fired", 0)])

            async def listen() -> None:
                async for m in ctl.messages:
                    body = json.loads(m.payload)
                    if m.topic.value.endswith("/status"):
                        statuses[m.topic.value.split("/")[2]] = body["state"]
                    else:
                        fired.append(body)

            listener = asyncio.create_task(listen())
            await sim.start_async()
            await sim.wait_connected()
            await until(lambda: len(statuses) == 5 and set(statuses.values()) == {"ready"})
            now = time.time_ns()
            for did in sim.apps:
                c = sim.clocks[did]
                model = {"epoch": now, "offset_ns": c.local(now) - now, "drift_ppb": c.drift_ppt // 1000}
                await ctl.publish(f"madang/dev/{did}/clock", json.dumps(model), retain=True)
            at = now + 500 * MS
            op = {"mqtt": {"topic": "xr/{device}/scene", "payload": {"scene": "lotus"}}}
            cue = {"show": "rt", "cue": "bloom", "seq": 1, "at": at, "show_ns": 0, "op": op}
            for _ in range(2):
                await ctl.publish("madang/cue", json.dumps(cue))
            await until(lambda: len(fired) == 5)
            assert all(f["synced"] for f in fired)
            rows = sim.records().rows(EXECUTIONS)
            assert len(rows) == 5
            assert max(r.true_ns for r in rows) - min(r.true_ns for r in rows) <= 2
            assert sim.apps["xr-3"].state["xr/xr-3/scene"] == {"scene": "lotus"}

            sim.crash("xr-2")
            await until(lambda: statuses.get("xr-2") == "offline", timeout=30)
            listener.cancel()

    async def after_restart() -> set[str]:
        ready: set[str] = set()
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="test-controller-2") as ctl:
            await ctl.subscribe("madang/dev/+/status")
            async with asyncio.timeout(30):
                async for m in ctl.messages:
                    if json.loads(m.payload)["state"] == "ready":
                        ready.add(m.topic.value.split("/")[2])
                    if ready >= {"xr-0", "xr-1", "xr-3", "xr-4"}:
                        return ready
        return ready

    async def main() -> None:
        devices = [headset(f"xr-{i}") for i in range(5)]
        sim = SimulatedVenue(
            venue(*devices), mode="real", profile="lan", broker_url=broker.url, broker=broker
        )
        try:
            await controller_phase(sim)
            # A broker restart drops every connection; devices reconnect with back-off and say ready
            # again (the broker keeps no retained messages across restarts: persistence false).
            sim.restart_broker()
            ready = await after_restart()
            assert ready >= {"xr-0", "xr-1", "xr-3", "xr-4"} and "xr-2" not in ready
        finally:
            await sim.stop_async()

    asyncio.run(main())


def test_webxr_client_speaks_the_envelope() -> None:
    async def main() -> None:
        got: list[dict[str, object]] = []
        connected: list[str] = []

        async def handler(ws: ServerConnection) -> None:
            connected.append(ws.request.path if ws.request else "")
            now = time.time_ns()
            await ws.send(json.dumps({"topic": "madang/dev/web-1/ping", "payload": {"seq": 4, "t1": now}}))
            cue = {
                "show": "rt",
                "cue": "c",
                "seq": 3,
                "at": now,
                "op": {"state": {"params": {"brightness": 0.5}}},
            }
            await ws.send(json.dumps({"topic": "madang/cue/dev/web-1", "payload": cue}))
            with contextlib.suppress(ConnectionClosed):  # the simulator stops by dropping the link
                async for frame in ws:
                    got.append(json.loads(frame))

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            sim = SimulatedVenue(
                venue(headset("web-1", ws=True)),
                mode="real",
                profile="lan",
                ws_url=f"ws://127.0.0.1:{port}/ws",
            )
            await sim.start_async()
            try:
                await until(
                    lambda: {g["topic"] for g in got} >= {"madang/dev/web-1/pong", "madang/dev/web-1/fired"}
                )
                assert connected == ["/ws?device=web-1"]
                assert sim.apps["web-1"].params["brightness"] == 0.5
                topics = [g["topic"] for g in got]
                assert topics[0] == "madang/dev/web-1/status"
            finally:
                await sim.stop_async()

    asyncio.run(main())
