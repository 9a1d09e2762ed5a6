"""Failover through a real Mosquitto: claims confirmed on the retained controller-state topic.

Each controller here is a :class:`controller.failover.Failover` wired the way a runtime would wire
it: a real aiomqtt connection to the broker (subscribed to the state topic, publishing the claims,
feeding every message back with its retain flag) and a real peer link (:mod:`controller.peer`)
carrying the heartbeats. The driver (:class:`Node`) is the test's; it is small on purpose, the
reference wiring for the runtime.

Waiting is "until it holds, within a generous bound"; what is asserted is behaviour (who is live,
under which term, who stepped down and why), never how fast. The takeover time is measured and
attached to the test report (``record_property``) for the benchmarks to watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiomqtt
import pytest

from controller.failover import (
    Action,
    Assert,
    Claim,
    Failover,
    FailoverPolicy,
    GoLive,
    Role,
    StepDown,
)
from controller.peer import PeerBeat, PeerChange, PeerClient, PeerServer
from simulators.broker import MosquittoBroker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MS = 1_000_000
POLICY = FailoverPolicy()  # the defaults: 25 ms heartbeats, 4 missed, a 10 ms claim window
clock = time.monotonic_ns


def _parse(payload: bytes) -> tuple[int, str, bool] | None:
    """A controller state as the witness reads it: (term, controller, live). A state without a
    term (the last will of a controller that predates terms) counts as term 0."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    term, controller = body.get("term", 0), body.get("controller", "")
    if not isinstance(term, int) or not isinstance(controller, str):
        return None
    return term, controller, body.get("state") != "offline"


class Node:
    """One controller of the pair: a failover machine, its broker connection, its peer link."""

    def __init__(self, name: str, role: Role, broker: MosquittoBroker, topic: str) -> None:
        self.m = Failover(name, role, policy=POLICY)
        self.broker, self.topic = broker, topic
        self.log: list[tuple[int, Action]] = []
        self.link: PeerServer | PeerClient | None = None
        self.mqtt: aiomqtt.Client | None = None
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.dead = False
        self.events: list[tuple[str, int]] = []

    # -- wiring ------------------------------------------------------------------------------

    async def start(self, *, serve: bool = False, follow: str | None = None) -> None:
        if serve:
            self.link = PeerServer(
                "tcp://127.0.0.1:*",
                self.m.controller,
                heartbeat_ns=POLICY.heartbeat_ns,
                missed=POLICY.missed,
                on_heartbeat=self._beat,
                on_peer=self._peer,
            )
            await self.link.start()
        if follow is not None:
            await self.follow(follow)
        self.tasks = [asyncio.create_task(self._witness()), asyncio.create_task(self._ticker())]
        self.feed([])

    async def follow(self, endpoint: str) -> None:
        self.link = PeerClient(
            endpoint,
            self.m.controller,
            heartbeat_ns=POLICY.heartbeat_ns,
            missed=POLICY.missed,
            on_heartbeat=self._beat,
            on_peer=self._peer,
        )
        await self.link.start()
        self.feed([])

    def _beat(self, b: PeerBeat) -> None:
        self.feed(self.m.peer_heartbeat(b.at_ns, b.term, b.role, b.controller, witness=b.witness))

    def _peer(self, change: PeerChange) -> None:
        if not change.up and change.reason == "bye":
            self.feed(self.m.peer_left(change.at_ns))

    def feed(self, actions: list[Action]) -> None:
        now = clock()
        for a in actions:
            self.log.append((now, a))
            if isinstance(a, Claim | Assert):
                self._publish(a.term)
        if self.link is not None:  # what our heartbeats say
            self.link.term, self.link.role, self.link.witness = self.m.term, self.m.role, self.m.witness_ok
        self.wake.set()

    def _publish(self, term: int) -> None:
        client = self.mqtt
        if client is None:
            return  # a claim is never queued for a later connection
        body = json.dumps({"state": "playing", "term": term, "controller": self.m.controller})

        async def publish() -> None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(self.topic, body, qos=1, retain=True)

        self.tasks.append(asyncio.create_task(publish()))

    async def _witness(self) -> None:
        will = aiomqtt.Will(self.topic, b'{"state": "offline"}', qos=1, retain=True)
        while not self.dead:
            try:
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    identifier=f"{self.m.controller}-{uuid.uuid4().hex[:8]}",
                    will=will if self.m.role is Role.STARTING else None,  # a standby has no will
                    keepalive=5,
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.mqtt = client
                    self.events.append(("up", clock()))
                    self.feed(self.m.witness_up(clock()))  # the retained message comes next
                    async for msg in client.messages:
                        state = _parse(msg.payload if isinstance(msg.payload, bytes) else b"")
                        if state is not None:
                            term, ctl, live = state
                            self.feed(
                                self.m.witness(clock(), term, ctl, live=live, retained=bool(msg.retain))
                            )
            except aiomqtt.MqttError:
                pass
            finally:
                was = self.mqtt is not None
                self.mqtt = None
                self.events.append(("lost", clock()))
                if was and not self.dead:
                    self.feed(self.m.witness_lost(clock()))
            await asyncio.sleep(0.05)

    async def _ticker(self) -> None:
        while True:
            deadline = self.m.next_deadline()
            self.wake.clear()
            timeout = None if deadline is None else max(0, deadline - clock()) / 1e9
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)
            self.feed(self.m.tick(clock()))

    # -- faults ------------------------------------------------------------------------------

    async def kill(self) -> None:
        """As a crash looks from outside: no bye on the link, no DISCONNECT to the broker."""
        self.dead = True
        client = self.mqtt
        if client is not None:
            sock = client._client.socket()
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            # Let aiomqtt see the connection drop before anything is cancelled.
            await _until(lambda: self.mqtt is None, what="the connection to drop")
        await self.stop(bye=False)

    async def stop(self, *, bye: bool = True) -> None:
        self.dead = True
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await t
        self.tasks = []
        if self.link is not None:
            await self.link.close(bye=bye)

    # -- what happened -----------------------------------------------------------------------

    def when(self, kind: type) -> int | None:
        return next((t for t, a in self.log if isinstance(a, kind)), None)

    def step_downs(self) -> list[StepDown]:
        return [a for _, a in self.log if isinstance(a, StepDown)]


async def _until(cond: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def _retained(broker: MosquittoBroker, topic: str) -> dict[str, Any]:
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"probe-{uuid.uuid4().hex[:8]}") as c:
        await c.subscribe(topic, qos=1)
        async with asyncio.timeout(10):
            async for msg in c.messages:
                assert isinstance(msg.payload, bytes)
                body: dict[str, Any] = json.loads(msg.payload)
                return body
    raise AssertionError("no retained state")


def _topic() -> str:
    return f"test/{uuid.uuid4().hex[:12]}/madang/controller/state"


async def _pair(broker: MosquittoBroker, topic: str) -> tuple[Node, Node]:
    a = Node("a", Role.STARTING, broker, topic)
    await a.start(serve=True)
    await _until(lambda: a.m.live, what="a live")
    assert isinstance(a.link, PeerServer)
    b = Node("b", Role.STANDBY, broker, topic)
    await b.start(follow=a.link.endpoint)
    await _until(
        lambda: b.m.peer_role is Role.PRIMARY and b.m.witness_ok and a.m.peer_present, what="pair up"
    )
    return a, b


def test_the_standby_takes_over_when_the_primary_dies(
    mosquitto: MosquittoBroker, record_property: Callable[[str, object], None]
) -> None:
    async def go() -> None:
        topic = _topic()
        a, b = await _pair(mosquitto, topic)
        term = a.m.term
        try:
            await asyncio.sleep(0.3)  # a few heartbeats both ways
            assert b.m.role is Role.STANDBY and not b.m.live
            died = clock()
            await a.kill()
            await _until(lambda: b.m.live, what="b live")
            assert b.m.term == term + 1
            live_at = b.when(GoLive)
            assert live_at is not None
            record_property("takeover_ms", round((live_at - died) / MS, 1))
            body = await _retained(mosquitto, topic)
            assert (body["term"], body["controller"]) == (term + 1, "b")
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(go())


async def _race(broker: MosquittoBroker) -> None:
    """Two controllers claim the same term at the same instant on a fresh topic."""
    topic = _topic()
    x = Node("x", Role.STANDBY, broker, topic)
    y = Node("y", Role.STANDBY, broker, topic)
    await x.start()
    await y.start()
    try:
        await _until(lambda: x.m.witness_ok and y.m.witness_ok, what="both subscribed")
        both = [x.m.takeover(clock()), y.m.takeover(clock())]
        for node, out in zip((x, y), both, strict=True):
            assert isinstance(out, list)
            node.feed(out)
        await _until(lambda: Role.CLAIMING not in (x.m.role, y.m.role), what="the claims to settle")
        await asyncio.sleep(0.2)  # anything late would show now
        assert [n.m.controller for n in (x, y) if n.m.live] == ["y"]  # the greater id
        assert x.m.role is Role.DEPOSED
        body = await _retained(broker, topic)
        assert body["controller"] == "y"  # a lower claim that landed last was re-asserted over
    finally:
        await x.stop()
        await y.stop()


def test_two_simultaneous_claimants_end_with_exactly_one_live(mosquitto: MosquittoBroker) -> None:
    async def go() -> None:
        for _ in range(5):
            await _race(mosquitto)

    asyncio.run(go())


def test_link_cut_the_primary_sees_the_higher_term_and_steps_down(mosquitto: MosquittoBroker) -> None:
    async def go() -> None:
        topic = _topic()
        a, b = await _pair(mosquitto, topic)
        term = a.m.term
        try:
            assert b.link is not None
            await b.link.close(bye=False)  # the link is cut; both controllers live on
            await _until(lambda: b.m.live and not a.m.live, what="the takeover")
            assert a.m.role is Role.DEPOSED and b.m.term == term + 1
            (down,) = a.step_downs()
            assert down.was_live and down.term == term + 1
            # The link heals: still exactly one live.
            assert isinstance(a.link, PeerServer)
            await b.follow(a.link.endpoint)
            await _until(lambda: a.m.peer_role is Role.PRIMARY, what="heartbeats again")
            await asyncio.sleep(0.3)
            assert [n.m.controller for n in (a, b) if n.m.live] == ["b"]
            assert a.m.role is Role.DEPOSED
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(go())


def test_without_the_broker_nobody_takes_over_and_with_it_back_the_standby_does(
    fresh_mosquitto: MosquittoBroker,
) -> None:
    broker = fresh_mosquitto

    async def go() -> None:
        topic = _topic()
        a, b = await _pair(broker, topic)
        term = a.m.term
        try:
            broker.stop()
            await _until(lambda: not a.m.witness_ok and not b.m.witness_ok, what="both lose the broker")
            await asyncio.sleep(0.5)
            # Both lost the witness, the link lives: the show goes on on the primary.
            assert a.m.live and b.m.role is Role.STANDBY
            await a.kill()
            await _until(lambda: b.m.role is Role.ORPHAN, what="the standby is an orphan")
            await asyncio.sleep(0.5)
            assert not b.m.live and b.m.role is Role.ORPHAN  # never live without a confirmed claim
            broker.start()
            await _until(lambda: b.m.live, what="b live once the broker is back")
            # Above the primary's term (a claim given up with a dropped connection uses up a term).
            assert b.m.term > term, (b.log, b.events)
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(go())
