"""Tests for controller.udp over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from controller.clock import ManualClock, SystemClock
from controller.osc import OscMessage, decode_packet, encode_message
from controller.udp import Datagram, DirectUdpSender, UdpReceiver, UdpSender

LOCAL = ("127.0.0.1", 0)


def dead_port() -> tuple[str, int]:
    """A port on which nothing listens (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(LOCAL)
        host, port = s.getsockname()
        return (host, port)


async def wait_for(pred: object, timeout: float = 5.0) -> None:
    assert callable(pred)
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.005)


def test_sender_counts_a_dead_port_and_keeps_sending_to_live_ones(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        got: list[Datagram] = []
        receiver = await UdpReceiver.open(got.append, local_addr=LOCAL)
        live = receiver.local_addr
        dead = dead_port()
        sender = await UdpSender.open(local_addr=LOCAL, names={dead: "barge-3"})
        for i in range(50):
            sender.send(encode_message("/dead", [i]), dead)
            sender.send(encode_message("/live", [i]), live)
            await asyncio.sleep(0)
        await wait_for(lambda: len(got) == 50)
        await wait_for(lambda: sender.stats(dead).refused > 0)
        values = [m.args[0] for m in (decode_packet(d.data) for d in got) if isinstance(m, OscMessage)]
        assert values == list(range(50))  # every live packet arrived, in order
        assert sender.stats(live).sent == 50
        assert sender.stats(live).refused == 0
        assert sender.stats(dead).refused >= 10
        assert sender.stats(live).bytes == sum(len(d.data) for d in got)
        sender.close()
        receiver.close()

    with caplog.at_level(logging.WARNING, logger="controller.udp"):
        asyncio.run(main())
    warnings = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(warnings) == 1  # logged once for the endpoint, however many errors
    assert warnings[0].device == "barge-3"  # type: ignore[attr-defined]
    assert warnings[0].endpoint.startswith("127.0.0.1:")  # type: ignore[attr-defined]


def test_direct_sender_attributes_errors_and_retries_refused_sends() -> None:
    live = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    live.bind(LOCAL)
    live.settimeout(2)
    dead = dead_port()
    sender = DirectUdpSender(local_addr=LOCAL)
    try:
        packets = []
        for i in range(20):
            packets += [(encode_message("/d", [i]), dead), (encode_message("/l", [i]), live.getsockname())]
        assert sender.send_batch(packets) >= 20
        sender.drain_errors()
        got = [decode_packet(live.recv(2048)) for _ in range(20)]
        assert [m.args[0] for m in got if isinstance(m, OscMessage)] == list(range(20))
        assert sender.stats(live.getsockname()).sent == 20
        assert sender.stats(dead).refused >= 10
        assert set(sender.all_stats()) == {dead, live.getsockname()}
    finally:
        sender.close()
        live.close()


def test_receiver_timestamps_are_present_and_plausible() -> None:
    async def main() -> None:
        got: list[Datagram] = []
        clock = SystemClock()
        receiver = await UdpReceiver.open(got.append, local_addr=LOCAL, clock=clock)
        assert receiver.kernel_timestamps
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            sent_at = []
            for i in range(20):
                sent_at.append(clock.monotonic_ns())
                s.sendto(encode_message("/pong", [i]), receiver.local_addr)
                await asyncio.sleep(0.002)
        await wait_for(lambda: len(got) == 20)
        receiver.close()
        assert all(d.kernel for d in got)
        for t_sent, d in zip(sent_at, got, strict=True):
            # Stamped after it was sent and before we looked at it, within the run. The kernel's
            # stamp is wall time, mapped to monotonic by an offset from two clock reads; on a
            # loaded 2-core host a thread can be preempted between them, so allow 5 ms.
            assert t_sent <= d.rx_mono_ns + 5_000_000
            assert d.rx_mono_ns <= clock.monotonic_ns() + 5_000_000
            assert abs((d.rx_wall_ns - d.rx_mono_ns) - clock.offset_ns) <= 5_000_000
        stamps = [d.rx_mono_ns for d in got]
        assert stamps == sorted(stamps)
        assert receiver.stats().kernel_stamped == 20

    asyncio.run(main())


def test_receiver_drops_oversize_and_survives_a_raising_handler(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        got: list[bytes] = []

        def handler(d: Datagram) -> None:
            if d.data.startswith(b"boom"):
                raise RuntimeError("handler bug")
            got.append(d.data)

        receiver = await UdpReceiver.open(handler, local_addr=LOCAL, clock=ManualClock(), max_size=1024)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"x" * 2000, receiver.local_addr)
            s.sendto(b"boom", receiver.local_addr)
            s.sendto(b"boom", receiver.local_addr)
            s.sendto(b"y" * 1024, receiver.local_addr)
            s.sendto(b"ok", receiver.local_addr)
            # A reply from the receiver's own port comes back to the asker.
            await wait_for(lambda: len(got) == 2)
            assert receiver.send(b"pong", s.getsockname())
            s.settimeout(2)
            assert s.recvfrom(100) == (b"pong", receiver.local_addr)
        stats = receiver.stats()
        receiver.close()
        assert got == [b"y" * 1024, b"ok"]
        assert (stats.received, stats.oversize, stats.callback_errors) == (4, 1, 2)

    with caplog.at_level(logging.WARNING, logger="controller.udp"):
        asyncio.run(main())
    assert sum("handler raised" in r.getMessage() for r in caplog.records) == 1
    assert sum("over 1024 bytes" in r.getMessage() for r in caplog.records) == 1


def test_receiver_counts_refusals_of_its_own_sends() -> None:
    async def main() -> None:
        receiver = await UdpReceiver.open(lambda d: None, local_addr=LOCAL)
        dead = dead_port()
        for _ in range(5):
            receiver.send(b"ping", dead)
            await asyncio.sleep(0.01)
        await wait_for(lambda: receiver.send_stats(dead).refused > 0)
        receiver.close()

    asyncio.run(main())
