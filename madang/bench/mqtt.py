"""Benchmarks of :class:`controller.mqtt.MqttLink` against a local broker; prints JSON.

``python3 -m madang.bench.mqtt --broker mqtt://127.0.0.1:1883`` (or without ``--broker``:
a private Mosquitto is started through :mod:`simulators.broker`; the top floor may import the
simulators, the controller never does), or ``madang bench mqtt --json``.

* ``throughput``: QoS 0 messages of 32 bytes published as fast as :meth:`MqttLink.publish`
  accepts them; ``publish_msgs_per_s`` counts until every byte is written to the socket,
  ``delivered_msgs_per_s`` until a subscriber (another link, same process) has them all.
* ``rtt``: a ping published by the link, echoed by a responder link, received back; one at a
  time, ``--rtt`` pings per setting, with ``TCP_NODELAY`` on and off, at QoS 0 and QoS 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

from controller.mqtt import MqttLink


@contextlib.asynccontextmanager
async def _link(url: str, client_id: str, *, nodelay: bool = True) -> AsyncIterator[MqttLink]:
    link = MqttLink(url, client_id=client_id, nodelay=nodelay, outbox_limit=1_000_000)
    task = asyncio.create_task(link.run())
    try:
        while not link.connected:
            await asyncio.sleep(0.005)
        yield link
    finally:
        await link.close(timeout=5.0)
        await task


async def _throughput(url: str, n: int) -> dict[str, Any]:
    payload = b"x" * 32
    got = 0

    def count(topic: str, data: bytes, ns: int) -> None:
        nonlocal got
        got += 1

    async with _link(url, "bench-sub") as sub, _link(url, "bench-pub") as pub:
        sub.on_message(count)
        sub.subscribe("bench/tp")
        await asyncio.sleep(0.2)
        start = time.perf_counter()
        for _ in range(n):
            pub.publish("bench/tp", payload)
        while pub.stats.outbox or pub.stats.published < n:
            await asyncio.sleep(0.001)
        written = time.perf_counter() - start
        deadline = time.perf_counter() + 30
        while got < n and time.perf_counter() < deadline:
            await asyncio.sleep(0.001)
        delivered = time.perf_counter() - start
        return {
            "messages": n,
            "payload_bytes": len(payload),
            "publish_msgs_per_s": round(n / written),
            "delivered": got,
            "delivered_msgs_per_s": round(got / delivered),
        }


async def _rtt(url: str, n: int, nodelay: bool, qos: int) -> dict[str, Any]:
    tag = f"{'nd' if nodelay else 'nagle'}-q{qos}"
    back: asyncio.Queue[int] = asyncio.Queue()
    async with _link(url, f"bench-ctl-{tag}", nodelay=nodelay) as ctl, _link(
        url, f"bench-dev-{tag}", nodelay=nodelay
    ) as dev:
        dev.on_message(lambda t, p, ns: dev.publish(f"bench/{tag}/pong", p, qos))
        dev.subscribe(f"bench/{tag}/ping", qos)
        ctl.on_message(lambda t, p, ns: back.put_nowait(time.perf_counter_ns()))
        ctl.subscribe(f"bench/{tag}/pong", qos)
        await asyncio.sleep(0.2)
        samples: list[float] = []
        for i in range(n):
            sent = time.perf_counter_ns()
            ctl.publish(f"bench/{tag}/ping", str(i).encode(), qos)
            got = await asyncio.wait_for(back.get(), timeout=5.0)
            samples.append((got - sent) / 1e6)
        q = statistics.quantiles(samples, n=100)
        return {
            "pings": n,
            "p50_ms": round(statistics.median(samples), 3),
            "p99_ms": round(q[98], 3),
            "max_ms": round(max(samples), 3),
        }


async def _main(url: str, messages: int, pings: int) -> dict[str, Any]:
    result: dict[str, Any] = {"broker": url, "throughput_qos0": await _throughput(url, messages)}
    for qos in (0, 1):
        for nodelay in (True, False):
            key = f"rtt_qos{qos}_{'nodelay' if nodelay else 'nagle'}"
            result[key] = await _rtt(url, pings, nodelay, qos)
    return result


def run(*, broker: str | None = None, messages: int = 100_000, pings: int = 2000) -> dict[str, Any]:
    """Run both benchmarks; start a private Mosquitto when ``broker`` is ``None``."""
    if broker is not None:
        return asyncio.run(_main(broker, messages, pings))
    from simulators.broker import MosquittoBroker

    with MosquittoBroker() as b:
        return asyncio.run(_main(b.url, messages, pings))


def main() -> None:
    """``python3 -m madang.bench.mqtt [--broker URL] [--messages N] [--rtt N]``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--broker", default=None, help="broker URL (default: a private Mosquitto)")
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--rtt", type=int, default=2000, help="pings per setting")
    args = p.parse_args()
    print(json.dumps(run(broker=args.broker, messages=args.messages, pings=args.rtt), indent=2))


if __name__ == "__main__":
    main()
