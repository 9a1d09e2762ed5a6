"""The peer link over real ZeroMQ sockets on loopback: catch-up, order, gaps, heartbeats, offsets,
malformed frames. Another process's primary (SIGKILL, SIGSTOP) is in tests/integration/test_peer_process.py.

Where a test needs a primary that misbehaves (skips records, sends garbage), it is a plain ROUTER
socket speaking the protocol by hand: a real socket, not a mock.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec

import msgspec
import pytest
import zmq
import zmq.asyncio

from controller.failover import Role
from controller.peer import (
    BATCH,
    MAX_FRAME,
    Bye,
    Heartbeat,
    Hello,
    PeerBeat,
    PeerChange,
    PeerClient,
    PeerEndpointError,
    PeerServer,
    Records,
    decode,
    encode,
)

pytestmark = pytest.mark.timeout(60)

MS = 1_000_000
HB = 10 * MS  # fast heartbeats keep the tests short; detection = 4 x 10 ms
_P = ParamSpec("_P")


def _async(test: Callable[_P, Coroutine[Any, Any, None]]) -> Callable[_P, None]:
    """Run an async test in a fresh event loop (the project does not use pytest-asyncio)."""

    @functools.wraps(test)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


async def _until(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Follower:
    """What a standby's owner would keep: every record in order, heartbeats, link changes."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.firsts: list[int] = []
        self.beats: list[PeerBeat] = []
        self.changes: list[PeerChange] = []
        self.resets: list[str] = []

    def on_records(self, first: int, records: list[dict[str, Any]]) -> None:
        assert first == len(self.records) + 1, f"records from {first} after {len(self.records)}"
        self.firsts.append(first)
        self.records.extend(records)

    def client(self, endpoint: str, **kw: Any) -> PeerClient:
        return PeerClient(
            endpoint,
            "b",
            on_records=self.on_records,
            on_reset=self.resets.append,
            on_heartbeat=self.beats.append,
            on_peer=self.changes.append,
            heartbeat_ns=HB,
            **kw,
        )


def _recs(start: int, n: int) -> list[dict[str, Any]]:
    return [{"k": "cmd", "n": i} for i in range(start, start + n)]


def _server(**kw: Any) -> PeerServer:
    return PeerServer("tcp://127.0.0.1:*", "a", heartbeat_ns=HB, **kw)


# --- the messages -------------------------------------------------------------------------------


def test_messages_round_trip_and_garbage_is_a_reason_not_an_exception() -> None:
    msgs = [
        Hello("b", "run1", 7),
        Records("run1", 8, [{"k": "sent", "sends": [["s", "c", 1, 5, ["d"]]]}]),
        Heartbeat("a", "run1", 3, Role.PRIMARY, True, 9, 123, 100, 110),
        Bye("a"),
    ]
    for m in msgs:
        assert decode(encode(m)) == m
    assert "not a peer message" in str(decode(b"\xc1"))
    assert "not a peer message" in str(decode(msgspec.msgpack.encode({"k": "nope"})))
    assert "not a peer message" in str(decode(msgspec.msgpack.encode([1, 2])))
    bad_role = msgspec.msgpack.encode(
        {
            "k": "heartbeat",
            "controller": "a",
            "run": "",
            "term": 1,
            "role": "king",
            "witness": True,
            "seq": 0,
            "sent": 0,
        }
    )
    assert "not a peer message" in str(decode(bad_role))
    assert "not a peer message" in str(
        decode(msgspec.msgpack.encode({"k": "records", "run": "", "first": 0, "records": []}))
    )
    assert "limit" in str(decode(b"\0" * (MAX_FRAME + 1)))
    deep = b"\x83\xa1k\xa7records\xa3run\xa0\xa5first\x01" + b"\xa7records\x91\x81\xa1x" + b"\x91" * 100_000
    assert isinstance(decode(deep), str)


def test_bad_endpoints_are_clear_errors() -> None:
    async def go() -> None:
        with pytest.raises(PeerEndpointError, match="cannot bind"):
            async with _server().__class__("nonsense://x", "a"):
                pass
        with pytest.raises(PeerEndpointError, match="cannot connect"):
            async with PeerClient("tcp://", "b"):
                pass

    asyncio.run(go())


# --- catch-up, live records, order ---------------------------------------------------------------


@_async
async def test_hello_gets_the_whole_run_then_live_records_in_order() -> None:
    f = Follower()
    async with _server() as srv:
        srv.publish(_recs(1, 3 * BATCH + 17))  # before the standby exists
        async with f.client(srv.endpoint) as cli:
            await _until(lambda: len(f.records) == 3 * BATCH + 17, what="catch-up")
            assert f.firsts[:4] == [1, BATCH + 1, 2 * BATCH + 1, 3 * BATCH + 1]
            for i in range(50):  # live, in small batches
                srv.publish(_recs(3 * BATCH + 18 + 3 * i, 3))
                await asyncio.sleep(0.001)
            total = 3 * BATCH + 17 + 150
            await _until(lambda: len(f.records) == total, what="live records")
            assert [r["n"] for r in f.records] == list(range(1, total + 1))
            await _until(lambda: cli.in_step and cli.lag == 0, what="in step")
            await _until(lambda: any(p.in_step for p in srv.peers.values()), what="primary sees it in step")
            assert cli.stats.gaps == 0 and cli.stats.malformed == 0 and srv.stats.malformed == 0
            assert srv.seq == total and cli.last_seq == total


@_async
async def test_a_standby_resuming_from_its_own_copy_gets_only_what_it_lacks() -> None:
    f = Follower()
    async with _server(run="r1") as srv:
        srv.publish(_recs(1, 30))
        f.records = _recs(1, 20)
        async with f.client(srv.endpoint, run="r1", after=20):
            await _until(lambda: len(f.records) == 30)
            assert f.firsts == [21]
    # A standby that followed another run gets everything.
    g = Follower()
    async with _server(run="r2") as srv:
        srv.publish(_recs(1, 30))
        async with g.client(srv.endpoint, run="r1", after=20):
            await _until(lambda: len(g.records) == 30)
            assert g.firsts[0] == 1 and g.resets == ["r2"]


# --- gaps, with a primary that skips records -------------------------------------------------------


class RawPrimary:
    """A ROUTER socket speaking the protocol by hand, to misbehave on purpose."""

    def __init__(self, ctx: zmq.asyncio.Context) -> None:
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.identity = b""

    async def hello(self) -> Hello:
        while True:
            identity, frame = await self.sock.recv_multipart()
            msg = decode(frame)
            if isinstance(msg, Hello):
                self.identity = identity
                return msg

    async def send(self, msg: object | bytes, *extra: bytes) -> None:
        frame = msg if isinstance(msg, bytes) else encode(msg)  # type: ignore[arg-type]
        await self.sock.send_multipart([self.identity, frame, *extra])

    def records(self, first: int, n: int) -> Records:
        return Records("raw", first, _recs(first, n))

    def beat(self, seq: int) -> Heartbeat:
        return Heartbeat("raw", "raw", 1, Role.PRIMARY, True, seq, 0)


@_async
async def test_a_gap_is_detected_and_asked_again_from_the_last_record() -> None:
    ctx = zmq.asyncio.Context()
    raw = RawPrimary(ctx)
    f = Follower()
    try:
        async with f.client(raw.endpoint) as cli:
            assert (await raw.hello()).after == 0
            await raw.send(raw.records(1, 10))
            await raw.send(raw.records(21, 10))  # 11..20 lost
            ask = await raw.hello()
            assert ask.after == 10 and ask.run == "raw"
            assert cli.stats.gaps == 1 and len(f.records) == 10
            await raw.send(raw.records(11, 20))
            await _until(lambda: len(f.records) == 30)
            # A lost tail shows in the heartbeat: the primary says it has 35.
            await raw.send(raw.records(31, 2))
            await raw.send(raw.beat(35))
            ask = await raw.hello()
            assert ask.after == 32
            await raw.send(raw.records(30, 6))  # overlaps what it has: duplicates are dropped
            await _until(lambda: len(f.records) == 35)
            assert [r["n"] for r in f.records] == list(range(1, 36))
            assert cli.stats.duplicates == 3
    finally:
        raw.sock.close(linger=0)
        ctx.term()


# --- heartbeats, the offset, losing the peer ---------------------------------------------------------


@_async
async def test_heartbeats_both_ways_carry_the_standing_and_the_offset_is_about_zero_here() -> None:
    f = Follower()
    seen: list[PeerBeat] = []
    async with _server(on_heartbeat=seen.append) as srv:
        srv.term, srv.role, srv.witness = 4, Role.PRIMARY, True
        srv.publish(_recs(1, 5))
        async with f.client(srv.endpoint) as cli:
            cli.term, cli.role, cli.witness = 4, Role.STANDBY, False
            await _until(lambda: len(f.beats) >= 10 and len(seen) >= 10, what="heartbeats")
            await _until(lambda: cli.offset_ns is not None, what="an offset")
            last = f.beats[-1]
            assert (last.controller, last.term, last.role, last.witness, last.seq) == (
                "a",
                4,
                Role.PRIMARY,
                True,
                5,
            )
            mine = seen[-1]
            assert (mine.controller, mine.role, mine.witness, mine.seq) == ("b", Role.STANDBY, False, 5)
            # One machine, one clock: the offset is the measurement's own error.
            assert cli.offset_ns is not None and cli.rtt_ns is not None
            assert abs(cli.offset_ns) < 20 * MS and 0 <= cli.rtt_ns < 1_000 * MS
            peer = next(iter(srv.peers.values()))
            await _until(lambda: peer.offset_ns is not None)
            assert peer.offset_ns is not None and abs(peer.offset_ns) < 20 * MS


@_async
async def test_a_skewed_show_clock_is_measured() -> None:
    """The standby's show clock runs 250 ms behind the primary's: the offset says so."""
    import time

    f = Follower()
    srv = _server()
    async with srv, f.client(srv.endpoint, show_clock=lambda: time.time_ns() - 250 * MS) as cli:
        await _until(lambda: cli.offset_ns is not None and cli.rtt_ns is not None)
        await asyncio.sleep(0.1)  # a few samples
        assert cli.offset_ns is not None and abs(cli.offset_ns - 250 * MS) < 20 * MS


@_async
async def test_a_server_closed_without_bye_is_lost_after_the_missed_heartbeats() -> None:
    f = Follower()
    srv = _server()
    await srv.start()
    async with f.client(srv.endpoint) as cli:
        await _until(lambda: cli.connected, what="connected")
        await srv.close(bye=False)
        await _until(lambda: not cli.connected, what="lost")
        lost = f.changes[-1]
        assert (lost.controller, lost.up, lost.reason) == ("a", False, "silent")
        assert not cli.in_step


@_async
async def test_bye_both_ways_is_a_clean_leave() -> None:
    f = Follower()
    changes: list[PeerChange] = []
    srv = _server(on_peer=changes.append)
    await srv.start()
    cli = f.client(srv.endpoint)
    await cli.start()
    await _until(lambda: cli.connected and srv.peers)
    await cli.close()
    await _until(lambda: not srv.peers, what="the server sees the bye")
    assert [(c.controller, c.up, c.reason) for c in changes] == [("b", True, "hello"), ("b", False, "bye")]
    g = Follower()
    async with g.client(srv.endpoint) as cli2:
        await _until(lambda: cli2.connected)
        await srv.close()
        await _until(lambda: not cli2.connected)
        assert g.changes[-1].reason == "bye"


@_async
async def test_the_standby_follows_a_new_run_after_the_primary_restarts_on_the_same_port() -> None:
    f = Follower()
    srv = _server(run="one")
    await srv.start()
    srv.publish(_recs(1, 10))
    endpoint = srv.endpoint
    async with f.client(endpoint) as cli:
        await _until(lambda: len(f.records) == 10)
        await srv.close(bye=False)
        await _until(lambda: not cli.connected)
        f.records.clear()  # what the owner would do on reset; here: before the new run starts
        srv2 = PeerServer(endpoint, "a", run="two", heartbeat_ns=HB)
        await srv2.start()
        try:
            srv2.publish(_recs(1, 4))
            await _until(lambda: cli.connected and len(f.records) == 4, what="the new run")
            assert f.resets == ["two"] and cli.run == "two"
        finally:
            await srv2.close()


# --- hostile input -------------------------------------------------------------------------------------


@_async
async def test_malformed_frames_to_the_primary_are_counted_and_the_link_still_works() -> None:
    ctx = zmq.asyncio.Context()
    f = Follower()
    async with _server() as srv:
        rogue = ctx.socket(zmq.DEALER)
        rogue.setsockopt(zmq.LINGER, 0)
        rogue.connect(srv.endpoint)
        try:
            garbage = [
                [b"\xc1"],
                [b"not msgpack at all"],
                [msgspec.msgpack.encode({"k": "hello"})],  # no controller
                [msgspec.msgpack.encode({"k": "hello", "controller": "x" * 1000})],
                [msgspec.msgpack.encode({"k": "heartbeat", "controller": "z"})],
                [encode(Records("r", 1, []))],  # records are not for the primary
                [encode(Bye("z")), b"extra frame"],
                [b"\0" * (MAX_FRAME + 10)],
            ]
            for frames in garbage:
                await rogue.send_multipart(frames)
            await _until(lambda: srv.stats.malformed == len(garbage), what="all counted")
            assert not srv.peers
            async with f.client(srv.endpoint) as cli:
                srv.publish(_recs(1, 3))
                await _until(lambda: len(f.records) == 3 and cli.connected)
        finally:
            rogue.close(linger=0)
    ctx.term()


@_async
async def test_malformed_frames_to_the_standby_are_counted_and_it_keeps_following() -> None:
    ctx = zmq.asyncio.Context()
    raw = RawPrimary(ctx)
    f = Follower()
    try:
        async with f.client(raw.endpoint) as cli:
            await raw.hello()
            await raw.send(raw.records(1, 2))
            for bad in (b"\xc1", msgspec.msgpack.encode({"k": "records", "run": "raw"}), encode(Hello("x"))):
                await raw.send(bad)
            await raw.send(raw.records(3, 1), b"extra frame")
            await raw.send(raw.records(3, 2))
            await _until(lambda: cli.stats.malformed == 4 and len(f.records) == 4)
    finally:
        raw.sock.close(linger=0)
        ctx.term()


@_async
async def test_a_callback_that_raises_is_counted_not_fatal() -> None:
    calls: list[int] = []

    def boom(first: int, records: list[dict[str, Any]]) -> None:
        calls.append(first)
        raise RuntimeError("a bug in the owner")

    async with _server() as srv, PeerClient(srv.endpoint, "b", on_records=boom, heartbeat_ns=HB) as cli:
        srv.publish(_recs(1, 1))
        await _until(lambda: cli.stats.callback_errors == 1)
        srv.publish(_recs(2, 1))
        await _until(lambda: calls == [1, 2])
        await _until(lambda: cli.connected)


@_async
async def test_sends_to_a_full_queue_are_dropped_and_counted_never_blocking() -> None:
    ctx = zmq.asyncio.Context()
    srv = _server(hwm=4)
    await srv.start()
    # A DEALER that says hello and then never reads: the primary's queue to it fills up.
    sink = ctx.socket(zmq.DEALER)
    sink.setsockopt(zmq.LINGER, 0)
    sink.setsockopt(zmq.RCVHWM, 1)
    sink.setsockopt(zmq.RCVBUF, 4096)
    sink.connect(srv.endpoint)
    try:
        await sink.send(encode(Hello("slow")))
        await _until(lambda: srv.peers)
        big = [{"k": "cmd", "pad": "x" * 1000}] * BATCH
        for _ in range(1000):
            srv.publish(big)
            if srv.stats.dropped_sends:
                break
        assert srv.stats.dropped_sends > 0
    finally:
        sink.close(linger=0)
        await srv.close()
        ctx.term()
