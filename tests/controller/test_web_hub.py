"""The WebSocket hub and the web server (controller/web), over real sockets and real clients.

A WebFront serves a small venue (WebSocket headsets in two zones, an audience pool with a seat
map) on a free loopback port; clients are ``websockets`` clients (and plain HTTP requests). What
the core would publish is handed to the front as MqttPublish items; what devices say is what the
front delivers (the runtime's path into the player).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode

from controller.clock import SystemClock
from controller.delivery import Kind, MqttPublish
from controller.web import WebFront, device_topics, text_frame
from venues.loader import load_venue

VENUE = """\
venue: web-yard
zones: [north, south]
devices:
  - {id: "ws-{1..3}", kind: xr, zone: north, sync: app, ws: {}}
  - {id: ws-9, kind: xr, zone: south, sync: app, ws: {}}
audience:
  capacity: 4
  zones: [north, south]
  seats:
    - {section: A, zone: north, rows: 2, seats: 3, origin: [0, 0], seat_step: [0.5, 0]}
"""


class Front:
    """A running WebFront and what it delivered."""

    def __init__(self, front: WebFront) -> None:
        self.front = front
        self.delivered: list[tuple[str, bytes, int]] = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.front.server.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.front.server.port}"

    def publish(
        self, topic: str, payload: Any, *, retain: bool = False, kind: Kind = Kind.CUE, **kw: Any
    ) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.front.publish(MqttPublish(at_ns=0, topic=topic, payload=body, kind=kind, retain=retain, **kw))

    async def until(self, pred: Any, what: str, timeout: float = 5.0) -> Any:
        async with asyncio.timeout(timeout):
            while not (got := pred()):
                await asyncio.sleep(0.01)
        assert got, what
        return got

    def statuses(self, device: str) -> list[Any]:
        return [json.loads(p) for t, p, _ in self.delivered if t == f"madang/dev/{device}/status"]


pytestmark = pytest.mark.timeout(120)


def run(tmp_path: Path, body: Callable[[Front], Coroutine[Any, Any, None]]) -> None:
    """Run ``body`` against a fresh WebFront, in a fresh event loop (no pytest-asyncio here)."""

    async def main() -> None:
        async with serving(tmp_path) as f:
            await body(f)

    asyncio.run(main())


@contextlib.asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[Front]:
    path = tmp_path / "venue.yaml"
    path.write_text(VENUE, encoding="utf-8")
    venue = load_venue(path)
    holder: list[Front] = []
    front = WebFront(
        venue,
        lambda t, p, n: holder[0].delivered.append((t, p, n)),
        clock=SystemClock(),
        port=0,
        show="web-yard-show",
    )
    f = Front(front)
    holder.append(f)
    await front.start()
    try:
        yield f
    finally:
        await front.close(drain_s=0.2)


async def frames(ws: ClientConnection, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    out = []
    async with asyncio.timeout(timeout):
        for _ in range(n):
            out.append(json.loads(await ws.recv()))
    return out


async def quiet(ws: ClientConnection, wait: float = 0.2) -> list[dict[str, Any]]:
    """Frames that arrive within ``wait`` (none expected)."""
    out = []
    try:
        async with asyncio.timeout(wait):
            while True:
                out.append(json.loads(await ws.recv()))
    except TimeoutError:
        return out


async def _a_device_gets_its_topics_only(web: Front) -> None:
    async with connect(f"{web.url}/ws?device=ws-1") as one, connect(f"{web.url}/ws?device=ws-9") as nine:
        await web.until(lambda: web.front.hub.stats.connected == 2, "both attached")
        web.publish("madang/cue/zone/north", {"cue": "a"})
        web.publish("madang/cue", {"cue": "all"})
        web.publish("madang/dev/ws-9/ping", {"seq": 1, "t1": 5}, kind=Kind.PING, seq=1)
        web.publish("madang/cue/kind/xr", {"cue": "kind"})
        got_one = await frames(one, 3)
        assert [f["topic"] for f in got_one] == ["madang/cue/zone/north", "madang/cue", "madang/cue/kind/xr"]
        assert got_one[0]["payload"] == {"cue": "a"}
        got_nine = await frames(nine, 3)
        assert [f["topic"] for f in got_nine] == ["madang/cue", "madang/dev/ws-9/ping", "madang/cue/kind/xr"]
        # A ping is stamped as it leaves: t1 is the hub's clock then, not what was queued.
        assert got_nine[1]["payload"]["seq"] == 1 and got_nine[1]["payload"]["t1"] > 10**18
        assert await quiet(one) == []


async def _retained_messages_are_written_on_connect(web: Front) -> None:
    web.publish("madang/controller/state", {"state": "playing"}, retain=True)
    web.publish(
        "madang/dev/ws-2/clock",
        {"epoch": 1, "offset_ns": 2, "drift_ppb": 3, "uncertainty_ns": 4},
        retain=True,
        kind=Kind.CLOCK,
        device="ws-2",
    )
    web.publish("madang/dev/ws-3/clock", {"epoch": 9}, retain=True, kind=Kind.CLOCK, device="ws-3")
    async with connect(f"{web.url}/ws?device=ws-2") as ws:
        got = await frames(ws, 2)
        assert {f["topic"] for f in got} == {"madang/controller/state", "madang/dev/ws-2/clock"}
        assert await quiet(ws) == []
    assert set(device_topics(web.front.venue.device("ws-2"))) >= {
        "madang/dev/ws-2/clock",
        "madang/cue/dev/ws-2",
    }


async def _what_a_device_says_goes_to_the_core_and_its_close_is_its_will(web: Front) -> None:
    async with connect(f"{web.url}/ws?device=ws-1") as ws:
        await ws.send(
            json.dumps({"topic": "madang/dev/ws-1/status", "payload": {"state": "ready", "boot": 7}})
        )
        await ws.send(
            json.dumps({"topic": "madang/dev/ws-1/pong", "payload": {"seq": 1, "t1": 1, "t2": 2, "t3": 3}})
        )
        await ws.send(json.dumps({"topic": "xr/ws-1/ready", "payload": {}}))  # an app event naming it
        await web.until(lambda: len(web.delivered) == 3, "three messages delivered")
    await web.until(lambda: web.statuses("ws-1")[-1:] == [{"state": "offline"}], "the last will")
    topics = [t for t, _, _ in web.delivered]
    assert topics == [
        "madang/dev/ws-1/status",
        "madang/dev/ws-1/pong",
        "xr/ws-1/ready",
        "madang/dev/ws-1/status",
    ]
    assert json.loads(web.delivered[1][1]) == {"seq": 1, "t1": 1, "t2": 2, "t3": 3}
    assert all(isinstance(n, int) and n > 10**18 for _, _, n in web.delivered)


async def _bad_frames_are_dropped_and_counted_never_fatal(web: Front) -> None:
    async with connect(f"{web.url}/ws?device=ws-1", max_size=2**20) as ws:
        await ws.send("not json")
        await ws.send(json.dumps({"payload": {}}))  # no topic
        await ws.send(json.dumps({"topic": "madang/dev/ws-2/pong", "payload": {}}))  # another device's
        await ws.send(json.dumps({"topic": "madang/#", "payload": {}}))  # a wildcard
        await ws.send(json.dumps({"topic": "madang/dev/ws-1/x", "payload": "y" * (70 * 1024)}))
        await ws.send(json.dumps({"topic": "madang/dev/ws-1/x", "payload": {"s": "z" * 5000}}))
        deep: Any = 1
        for _ in range(40):
            deep = [deep]
        await ws.send(json.dumps({"topic": "madang/dev/ws-1/x", "payload": deep}))
        await ws.send(json.dumps({"topic": "madang/dev/ws-1/fired", "payload": {"seq": 1}}))  # fine
        await web.until(lambda: web.delivered, "the good frame")
        dropped = web.front.hub.stats.dropped
        assert dropped == {
            "malformed": 2,
            "not_allowed": 2,
            "too_large": 1,
            "string_too_long": 1,
            "too_deep": 1,
        }
        assert [t for t, _, _ in web.delivered] == ["madang/dev/ws-1/fired"]
        # Still connected and served.
        web.publish("madang/cue/dev/ws-1", {"ok": True})
        assert (await frames(ws, 1))[0]["payload"] == {"ok": True}


async def _frames_over_the_rate_are_dropped(web: Front) -> None:
    async with connect(f"{web.url}/ws?device=ws-3") as ws:
        for i in range(200):
            await ws.send(json.dumps({"topic": "madang/dev/ws-3/fired", "payload": {"seq": i}}))
        await web.until(lambda: web.front.hub.stats.frames_in >= 200, "all frames read")
    dropped = web.front.hub.stats.dropped["rate"]
    assert 100 <= dropped <= 200 - 80  # the burst (80) passes, the rest mostly not


async def _a_slow_reader_is_cut_not_waited_for(web: Front) -> None:
    web.front.hub.max_buffer = 1024 * 1024
    async with (
        connect(f"{web.url}/ws?device=ws-2", max_queue=1) as slow,
        connect(f"{web.url}/ws?device=ws-1", max_size=2**20) as fast,
    ):
        await web.until(lambda: web.front.hub.stats.connected == 2, "both attached")
        got: list[int] = []

        async def read_fast() -> None:
            while len(got) < 400:
                got.append(json.loads(await fast.recv())["payload"]["i"])

        reader = asyncio.create_task(read_fast())
        blob = "x" * 60_000
        for i in range(400):  # 24 MB: the slow reader (it never reads) cannot take it all
            web.publish("madang/cue", {"pad": blob, "i": i})
            if i % 4 == 3:
                await asyncio.sleep(0.005)
        async with asyncio.timeout(30):
            await reader
        assert got == list(range(400))  # the one that reads gets everything, in order
        await web.until(lambda: web.front.hub.stats.slow == 1, "the slow one cut")
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await slow.recv()
    assert web.statuses("ws-2") == [{"state": "offline"}]  # its will


async def _a_second_connection_replaces_the_first_without_a_will(web: Front) -> None:
    async with connect(f"{web.url}/ws?device=ws-1") as first:
        await web.until(lambda: web.front.hub.stats.connected == 1, "attached")
        async with connect(f"{web.url}/ws?device=ws-1") as second:
            await web.until(lambda: web.front.hub.stats.replaced == 1, "replaced")
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(5):
                    await first.recv()
            assert web.statuses("ws-1") == []
            web.publish("madang/cue/dev/ws-1", {"n": 2})
            assert (await frames(second, 1))[0]["payload"] == {"n": 2}
    await web.until(lambda: web.statuses("ws-1") == [{"state": "offline"}], "one will, for the second")


async def _unknown_devices_and_foreign_origins_are_refused(web: Front) -> None:
    with pytest.raises(ConnectionClosed):
        async with connect(f"{web.url}/ws?device=nope") as ws:
            await ws.recv()
    with pytest.raises(InvalidStatus) as err:
        async with connect(f"{web.url}/ws?device=ws-1", origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert err.value.response.status_code == 403
    # Same origin (a page this server served) is fine.
    async with connect(f"{web.url}/ws?device=ws-1", origin=web.http):  # type: ignore[arg-type]
        pass
    assert web.front.refused["unknown_device"] == 1
    assert web.front.server.refused["origin"] == 1


async def _the_route_table_serves_pages_and_a_later_surface_adds_its_own(web: Front) -> None:
    srv = web.front.server
    srv.add_page("/console", body=b"<h1>console</h1>", title="console")
    seen: list[str] = []

    async def console_socket(conn: Any) -> None:
        seen.append(conn.request.path)
        await conn.send("hello operator")

    srv.add_socket("/console/ws", console_socket)
    loop = asyncio.get_running_loop()

    def get(path: str) -> tuple[int, bytes, Any]:
        try:
            with urllib.request.urlopen(web.http + path, timeout=5) as r:
                return r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            return e.code, b"", e.headers

    status, body, headers = await loop.run_in_executor(None, get, "/console")
    assert (status, body) == (200, b"<h1>console</h1>")
    status, body, headers = await loop.run_in_executor(None, get, "/audience")
    assert status == 200 and b"audience.js" in body
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert (await loop.run_in_executor(None, get, "/static/audience.js"))[0] == 200
    assert (await loop.run_in_executor(None, get, "/nothing"))[0] == 404
    assert (await loop.run_in_executor(None, get, "/ws"))[0] == 426  # a socket, not a page
    async with connect(f"{web.url}/console/ws?token=t") as ws:
        assert await ws.recv() == "hello operator"
    assert seen == ["/console/ws?token=t"]
    assert web.front.urls()["console"].endswith("/console")


async def _the_audience_gets_slots_by_seat_and_zone_and_can_rejoin(web: Front) -> None:
    async with connect(f"{web.url}/audience/ws?seat=a-2-3") as a:
        hello = (await frames(a, 1))[0]
        assert hello["topic"] == "madang/ws/welcome"
        w = hello["payload"]
        assert (w["zone"], w["seat"], w["position"]) == ("north", "A-2-3", [1.0, 1.0])
        assert w["bounds"] == [0.0, 0.0, 1.0, 1.0]
        assert w["tap"] == f"madang/audience/north/{w['device']}/tap"
        assert w["device"] in web.front.venue.audience.slots["north"]  # type: ignore[union-attr]
        await a.send(json.dumps({"topic": w["tap"], "payload": {}}))
        for _ in range(10):
            await a.send(json.dumps({"topic": w["vote"] + "red", "payload": {}}))
        await web.until(lambda: sum(web.front.hub.stats.taps.values()) == 4, "the tap bucket's four")
        assert web.front.hub.stats.taps == {"north": 4}
        assert web.front.hub.stats.dropped["tap_rate"] == 7
        first = w
    async with connect(f"{web.url}/audience/ws?zone=south") as b:
        assert (await frames(b, 1))[0]["payload"]["zone"] == "south"
        q = f"device={first['device']}&rejoin={first['rejoin']}"
        async with connect(f"{web.url}/audience/ws?{q}") as again:
            assert (await frames(again, 1))[0]["payload"]["device"] == first["device"]
            async with connect(f"{web.url}/audience/ws?zone=north") as c:
                await frames(c, 1)
                # The pool has 4 slots, 2 per zone: north is now full.
                with pytest.raises(ConnectionClosed) as closed:
                    async with connect(f"{web.url}/audience/ws?zone=north") as d:
                        await d.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


def test_a_device_gets_its_topics_only(tmp_path: Path) -> None:
    run(tmp_path, _a_device_gets_its_topics_only)


def test_retained_messages_are_written_on_connect(tmp_path: Path) -> None:
    run(tmp_path, _retained_messages_are_written_on_connect)


def test_what_a_device_says_goes_to_the_core_and_its_close_is_its_will(tmp_path: Path) -> None:
    run(tmp_path, _what_a_device_says_goes_to_the_core_and_its_close_is_its_will)


def test_bad_frames_are_dropped_and_counted_never_fatal(tmp_path: Path) -> None:
    run(tmp_path, _bad_frames_are_dropped_and_counted_never_fatal)


def test_frames_over_the_rate_are_dropped(tmp_path: Path) -> None:
    run(tmp_path, _frames_over_the_rate_are_dropped)


def test_a_slow_reader_is_cut_not_waited_for(tmp_path: Path) -> None:
    run(tmp_path, _a_slow_reader_is_cut_not_waited_for)


def test_a_second_connection_replaces_the_first_without_a_will(tmp_path: Path) -> None:
    run(tmp_path, _a_second_connection_replaces_the_first_without_a_will)


def test_unknown_devices_and_foreign_origins_are_refused(tmp_path: Path) -> None:
    run(tmp_path, _unknown_devices_and_foreign_origins_are_refused)


def test_the_route_table_serves_pages_and_a_later_surface_adds_its_own(tmp_path: Path) -> None:
    run(tmp_path, _the_route_table_serves_pages_and_a_later_surface_adds_its_own)


def test_the_audience_gets_slots_by_seat_and_zone_and_can_rejoin(tmp_path: Path) -> None:
    run(tmp_path, _the_audience_gets_slots_by_seat_and_zone_and_can_rejoin)


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 70_000])
def test_a_prebuilt_frame_is_what_websockets_would_send(size: int) -> None:
    text = b"x" * size
    assert text_frame(text) == Frame(Opcode.TEXT, text).serialize(mask=False, extensions=[])
