"""The controller's MQTT link against a real Mosquitto (the fixtures of tests/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, ParamSpec

import aiomqtt
import pytest

from controller.mqtt import (
    CONTROLLER_STATE_TOPIC,
    OFFLINE_PAYLOAD,
    MqttLink,
    MqttUrlError,
    Publish,
    backoff_delay,
    controller_will,
    parse_broker_url,
)
from simulators.broker import MosquittoBroker

pytestmark = pytest.mark.timeout(60)

_ids = iter(range(1_000_000))
_P = ParamSpec("_P")


def _async(test: Callable[_P, Coroutine[Any, Any, None]]) -> Callable[_P, None]:
    """Run an async test in a fresh event loop (the project does not use pytest-asyncio)."""

    @functools.wraps(test)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def _cid(name: str) -> str:
    return f"test-{name}-{next(_ids)}"


async def _until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def _running(link: MqttLink) -> AsyncIterator[MqttLink]:
    task = asyncio.create_task(link.run())
    try:
        yield link
    finally:
        await link.close(timeout=1.0)
        await asyncio.wait_for(task, timeout=10)


@contextlib.asynccontextmanager
async def _subscriber(broker: MosquittoBroker, topic_filter: str) -> AsyncIterator[list[aiomqtt.Message]]:
    """An independent aiomqtt client collecting what it receives on ``topic_filter``."""
    got: list[aiomqtt.Message] = []
    async with aiomqtt.Client(broker.host, broker.port, identifier=_cid("sub")) as client:
        await client.subscribe(topic_filter, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                got.append(message)

        task = asyncio.create_task(collect())
        try:
            yield got
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _numbers(received: list[tuple[str, bytes, int]]) -> list[int]:
    return [int(p) for _, p, _ in received]


# -- pure helpers -------------------------------------------------------------------------------


def test_parse_broker_url() -> None:
    assert parse_broker_url("mqtt://127.0.0.1:1884") == ("127.0.0.1", 1884)
    assert parse_broker_url("mqtt://broker.local") == ("broker.local", 1883)
    assert parse_broker_url("tcp://h:2000") == ("h", 2000)
    assert parse_broker_url("h:2000") == ("h", 2000)
    assert parse_broker_url("mqtts://madang-controller@h") == ("h", 8883)
    with pytest.raises(MqttUrlError, match="not supported"):
        parse_broker_url("wss://h:8883")
    with pytest.raises(MqttUrlError):
        parse_broker_url("http://h")
    with pytest.raises(ValueError):
        parse_broker_url("mqtt://h:notaport")


def test_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    assert backoff_delay(0, 0.1, 5.0, 0.0) == pytest.approx(0.05)
    assert backoff_delay(0, 0.1, 5.0, 1.0) == pytest.approx(0.1)
    assert backoff_delay(3, 0.1, 5.0, 0.0) == pytest.approx(0.4)
    assert backoff_delay(100, 0.1, 5.0, 0.999) <= 5.0
    assert backoff_delay(100, 0.1, 5.0, 0.0) == pytest.approx(2.5)
    rng = random.Random(7)
    delays = {backoff_delay(4, 0.1, 5.0, rng.random()) for _ in range(20)}
    assert len(delays) > 1  # jitter spreads clients out


def test_outbox_bound_drops_oldest_qos0_first_then_refuses_qos1() -> None:
    link = MqttLink("mqtt://127.0.0.1:1", client_id=_cid("bound"), outbox_limit=4)
    link.publish("t", b"q0-a")
    link.publish("t", b"q1-a", qos=1)
    link.publish("t", b"q0-b")
    link.publish("t", b"q1-b", qos=1)
    link.publish("t", b"q1-c", qos=1)  # full: drops q0-a
    link.publish("t", b"q1-d", qos=1)  # full: drops q0-b
    assert link.stats.dropped_outbox_full == 2
    link.publish("t", b"q0-c")  # full of QoS 1: the new QoS 0 itself is dropped
    assert link.stats.dropped_outbox_full == 3
    link.publish("t", b"q1-e", qos=1)  # full of QoS 1: refused, counted separately
    s = link.stats
    assert s.dropped_qos_outbox_full == 1
    assert s.outbox == 4 and s.queued == 6 and not s.connected


def test_bad_topics_are_counted_not_raised() -> None:
    link = MqttLink("mqtt://127.0.0.1:1", client_id=_cid("bad"))
    link.publish("xr/+/scene", b"x")
    link.publish("", b"x")
    link.publish("a/#", b"x")
    link.publish("xr/ok/scene", b"x")
    assert link.stats.bad_topic == 3
    assert link.stats.outbox == 1


# -- against a real broker --------------------------------------------------------------------


@_async
async def test_publish_subscribe_round_trip(mosquitto: MosquittoBroker) -> None:
    clock_ns = iter(range(1_000, 10**9, 1_000))
    received: list[tuple[str, bytes, int]] = []
    link = MqttLink(mosquitto.url, client_id=_cid("rt"), clock=lambda: next(clock_ns))
    link.on_message(lambda t, p, ns: received.append((t, p, ns)))
    link.subscribe("rt/in/#", qos=1)
    async with _subscriber(mosquitto, "rt/out/#") as seen, _running(link):
        await _until(lambda: link.connected, what="link connected")
        for i in range(20):
            link.publish(f"rt/out/{i % 3}", str(i).encode(), qos=i % 2)
        await _until(lambda: len(seen) == 20, what="20 messages at the subscriber")
        assert [int(m.payload) for m in seen] == list(range(20))
        assert [m.topic.value for m in seen][:3] == ["rt/out/0", "rt/out/1", "rt/out/2"]

        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=_cid("pub")) as pub:
            for i in range(5):
                await pub.publish(f"rt/in/{i}", str(i).encode(), qos=1)
        await _until(lambda: len(received) == 5, what="5 messages at the link")
    assert [t for t, _, _ in received] == [f"rt/in/{i}" for i in range(5)]
    stamps = [ns for _, _, ns in received]
    assert stamps == sorted(stamps) and stamps[0] >= 1_000  # taken from the injected clock
    assert link.stats.received == 5 and link.stats.published == 20


@_async
async def test_tcp_nodelay_is_set_on_the_client_socket(mosquitto: MosquittoBroker) -> None:
    on = MqttLink(mosquitto.url, client_id=_cid("nd-on"))
    off = MqttLink(mosquitto.url, client_id=_cid("nd-off"), nodelay=False)
    assert on.tcp_nodelay is None  # not connected yet
    async with _running(on), _running(off):
        await _until(lambda: on.connected and off.connected, what="both links connected")
        assert on.tcp_nodelay is True
        assert off.tcp_nodelay is False


@_async
async def test_broker_down_at_start_then_up_delivers_queue_in_order(
    fresh_mosquitto: MosquittoBroker,
) -> None:
    broker = fresh_mosquitto
    broker.stop()
    received: list[tuple[str, bytes, int]] = []
    link = MqttLink(broker.url, client_id=_cid("late"), backoff=(0.05, 0.2), rng=random.Random(1))
    link.on_message(lambda t, p, ns: received.append((t, p, ns)))
    link.subscribe("late/#", qos=1)
    async with _running(link):
        for i in range(300):
            link.publish(f"late/{i % 7}", str(i).encode(), qos=1)
        await _until(lambda: link.stats.connect_failures >= 2, what="failed connection attempts")
        assert not link.connected and link.stats.outbox == 300
        broker.start()
        await _until(lambda: len(received) >= 300, what="300 queued messages delivered")
        await _until(lambda: link.stats.inflight == 0, what="all acknowledged")
    assert _numbers(received) == list(range(300))
    assert link.stats.queued == 300 and link.stats.acked == 300 and link.stats.outbox == 0


@_async
async def test_broker_restart_mid_stream_loses_no_qos1_message(fresh_mosquitto: MosquittoBroker) -> None:
    broker = fresh_mosquitto
    received: list[tuple[str, bytes, int]] = []
    link = MqttLink(broker.url, client_id=_cid("restart"), backoff=(0.05, 0.2), rng=random.Random(2))
    link.on_message(lambda t, p, ns: received.append((t, p, ns)))
    link.subscribe("stream/#", qos=1)
    total = 600
    async with _running(link):
        await _until(lambda: link.connected, what="link connected")
        for i in range(total):
            link.publish("stream/x", str(i).encode(), qos=1)
            if i == 200:
                restart = asyncio.create_task(asyncio.to_thread(broker.restart))
            if i % 10 == 0:
                await asyncio.sleep(0.002)
        await restart
        await _until(lambda: len(set(_numbers(received))) == total, timeout=20, what="every message")
    numbers = _numbers(received)
    assert set(numbers) == set(range(total))
    first_seen = list(dict.fromkeys(numbers))  # duplicates are allowed (at-least-once), loss is not
    assert first_seen == sorted(first_seen)
    assert link.stats.reconnects >= 1  # the subscription was restored: messages kept coming


@_async
async def test_last_will_published_when_the_link_dies(mosquitto: MosquittoBroker) -> None:
    # The controller's will, on a state topic of this test's own (the broker is shared).
    state = f"{CONTROLLER_STATE_TOPIC}/{_cid('will')}"
    topic, payload, qos, retain = controller_will()
    assert (topic, payload, qos, retain) == (CONTROLLER_STATE_TOPIC, OFFLINE_PAYLOAD, 1, True)
    will = (state, payload, qos, retain)
    link = MqttLink(mosquitto.url, client_id=_cid("will"), will=will, backoff=(5.0, 5.0))
    async with _subscriber(mosquitto, state) as seen, _running(link):
        await _until(lambda: link.connected, what="link connected")
        link.publish(state, b'{"state": "playing"}', qos=1, retain=True)
        await _until(lambda: len(seen) == 1, what="the playing state")
        link.abort()  # the socket closes without DISCONNECT, as when the controller is killed
        await _until(lambda: len(seen) == 2, what="the last will")
        assert seen[1].payload == OFFLINE_PAYLOAD
    # The will was retained: a device that connects now reads "offline".
    async with _subscriber(mosquitto, state) as late:
        await _until(lambda: len(late) == 1, what="the retained will")
        assert late[0].payload == OFFLINE_PAYLOAD and late[0].retain


@_async
async def test_close_publishes_final_messages_then_disconnects_cleanly(mosquitto: MosquittoBroker) -> None:
    topic = f"final/{_cid('t')}"
    will_payload = b'{"state": "offline", "by": "will"}'
    link = MqttLink(mosquitto.url, client_id=_cid("final"), will=(topic, will_payload, 1, True))
    async with _subscriber(mosquitto, topic) as seen:
        task = asyncio.create_task(link.run())
        await _until(lambda: link.connected, what="link connected")
        await link.close(final=[Publish(topic, OFFLINE_PAYLOAD, qos=1, retain=True)])
        await asyncio.wait_for(task, timeout=5)
        await _until(lambda: len(seen) >= 1, what="the final message")
        await asyncio.sleep(0.2)  # a will, wrongly sent, would arrive now
    assert [m.payload for m in seen] == [OFFLINE_PAYLOAD]
    assert not link.connected


@_async
async def test_receive_limits_and_callback_errors_are_survived(mosquitto: MosquittoBroker) -> None:
    received: list[bytes] = []

    def broken(topic: str, payload: bytes, ns: int) -> None:
        raise RuntimeError("a bug in a receiver")

    link = MqttLink(mosquitto.url, client_id=_cid("limits"))
    link.on_message(broken)
    link.on_message(lambda t, p, ns: received.append(p))
    link.subscribe("limits/#")
    async with _running(link):
        await _until(lambda: link.connected, what="link connected")
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=_cid("pub")) as pub:
            await pub.publish("limits/big", b"x" * (64 * 1024 + 1), qos=1)
            await pub.publish("limits/ok", b"fine", qos=1)
        await _until(lambda: received == [b"fine"], what="the small message")
    s = link.stats
    assert s.oversize == 1 and s.received == 1 and s.callback_errors == 1


@_async
async def test_subscribe_while_connected(mosquitto: MosquittoBroker) -> None:
    received: list[str] = []
    link = MqttLink(mosquitto.url, client_id=_cid("later"))
    link.on_message(lambda t, p, ns: received.append(t))
    async with _running(link):
        await _until(lambda: link.connected, what="link connected")
        link.subscribe("later/+/x", qos=1)
        await asyncio.sleep(0.1)  # SUBACK
        link.publish("later/a/x", b"1", qos=1)
        link.publish("later/a/y", b"2", qos=1)
        link.publish("later/b/x", b"3", qos=1)
        await _until(lambda: len(received) == 2, what="two matching messages")
    assert received == ["later/a/x", "later/b/x"]


@_async
async def test_outbox_overflow_while_down_delivers_the_survivors_in_order(
    fresh_mosquitto: MosquittoBroker,
) -> None:
    broker = fresh_mosquitto
    broker.stop()
    received: list[tuple[str, bytes, int]] = []
    link = MqttLink(broker.url, client_id=_cid("over"), outbox_limit=50, backoff=(0.05, 0.1))
    link.on_message(lambda t, p, ns: received.append((t, p, ns)))
    link.subscribe("over/#", qos=1)
    async with _running(link):
        for i in range(100):
            link.publish("over/m", str(i).encode(), qos=1 if i % 10 == 0 else 0)
        assert link.stats.dropped_outbox_full == 50
        broker.start()
        await _until(lambda: len(received) >= 50, what="the 50 survivors")
        await asyncio.sleep(0.1)
    numbers = _numbers(received)
    qos1 = [i for i in range(100) if i % 10 == 0]
    assert set(qos1) <= set(numbers)  # no QoS 1 message was dropped
    assert numbers == sorted(numbers) and len(numbers) == 50
    assert numbers[-1] == 99  # the newest QoS 0 messages survived, the oldest were dropped
