"""Benchmark: OSC messages encoded and sent per second to many loopback UDP endpoints.

Ours: a :class:`controller.osc.MessageTemplate` (``/facade/brightness ,if``, the shape of a streamed
fade frame) encoded per message, one frame to every endpoint at a time, and the frame sent with
:meth:`controller.udp.UdpSender.send_many` (``sendmmsg(2)`` batches of up to 1024 where available;
per-endpoint accounting included) on an asyncio loop. Baseline: python-osc's ``SimpleUDPClient``, one per
endpoint, ``send_message`` with the same values. Both run in the same process, interleaved in
rounds so that background load hits both alike. The receiving sockets are bound but not read (the
kernel drops what overflows their buffers, as it would for a slow device); a sample is read back and
decoded at the end to check that what was sent is right. Prints JSON with
``python3 -m madang.bench.osc``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import time

from pythonosc.udp_client import SimpleUDPClient

from controller.mmsg import MessageVector, open_vector, sendmmsg_available
from controller.osc import MessageTemplate, OscMessage, decode_packet
from controller.udp import Addr, UdpSender

__all__ = ["run"]

ADDRESS = "/facade/brightness"


def _bind_receivers(endpoints: int) -> list[socket.socket]:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Ours needs 1 socket, python-osc one per endpoint, plus the receivers: keep headroom.
    count = min(endpoints, max(1, (soft - 64) // 2))
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
    return socks


async def _ours(sender: UdpSender, template: MessageTemplate, addrs: list[Addr], seconds: float) -> int:
    # One fade frame to every endpoint per iteration: encode each message, then hand the whole
    # frame to send_many (sendmmsg batches where available), as the engine does for a fan-out.
    encode, send_many = template.encode, sender.send_many
    sent = 0
    frame = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        value = (frame % 100) / 100.0
        send_many([(encode(i, value), addr) for i, addr in enumerate(addrs)])
        sent += len(addrs)
        frame += 1
        await asyncio.sleep(0)  # let the loop flush anything queued
    return sent


def _baseline(clients: list[SimpleUDPClient], seconds: float) -> int:
    sent = 0
    frame = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        value = (frame % 100) / 100.0
        for i, client in enumerate(clients):
            client.send_message(ADDRESS, [i, value])
        sent += len(clients)
        frame += 1
    return sent


def _floor_sendmmsg(vec: MessageVector, seconds: float) -> int:
    # The same frame, prebuilt and loaded once, resent with nothing but the system calls: what the
    # kernel alone costs per datagram (on loopback that includes the receiving side's work).
    n = vec.loaded
    send = vec.send
    sent = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        i = 0
        while i < n:
            i += send(i)
        sent += n
    return sent


def _floor_sendto(sock: socket.socket, packets: list[tuple[bytes, Addr]], seconds: float) -> int:
    sendto = sock.sendto
    sent = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for data, addr in packets:
            sendto(data, addr)
        sent += len(packets)
    return sent


def _drain(socks: list[socket.socket]) -> None:
    for s in socks:
        try:
            while s.recv(2048):
                pass
        except BlockingIOError:
            continue


async def _measure(endpoints: int, seconds: float, rounds: int, floors: bool) -> dict[str, object]:
    socks = _bind_receivers(endpoints)
    addrs: list[Addr] = [(s.getsockname()[0], s.getsockname()[1]) for s in socks]
    sender = await UdpSender.open(local_addr=("127.0.0.1", 0))
    template = MessageTemplate(ADDRESS, "if")
    clients = [SimpleUDPClient(host, port) for host, port in addrs]
    frame = [(template.encode(i, 0.5), addr) for i, addr in enumerate(addrs)]
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    vec = open_vector(raw) if floors else None
    if vec is not None:
        vec.load(frame)
    ours_n = base_n = mm_n = st_n = 0
    ours_t = base_t = mm_t = st_t = 0.0
    slice_s = seconds / (2 * rounds)
    for _ in range(rounds):
        t0 = time.perf_counter()
        ours_n += await _ours(sender, template, addrs, slice_s)
        ours_t += time.perf_counter() - t0
        _drain(socks)
        t0 = time.perf_counter()
        base_n += _baseline(clients, slice_s)
        base_t += time.perf_counter() - t0
        _drain(socks)
        if not floors:
            continue
        if vec is not None:
            t0 = time.perf_counter()
            mm_n += _floor_sendmmsg(vec, slice_s / 2)
            mm_t += time.perf_counter() - t0
            _drain(socks)
        t0 = time.perf_counter()
        st_n += _floor_sendto(raw, frame, slice_s / 2)
        st_t += time.perf_counter() - t0
        _drain(socks)
    raw.close()
    # Check: one fresh frame from us, through the batched path, decodes right at a few endpoints.
    sender.send_many(frame)
    await asyncio.sleep(0.05)
    checked = 0
    for i in (0, len(addrs) // 2, len(addrs) - 1):
        msg = decode_packet(socks[i].recv(2048))
        assert isinstance(msg, OscMessage) and msg.address == ADDRESS and msg.args == (i, 0.5)
        checked += 1
    stats = sender.all_stats()
    errors = sum(s.errors + s.refused for s in stats.values())
    sender.close()
    for c in clients:
        c._sock.close()
    for s in socks:
        s.close()
    ours_rate = ours_n / ours_t
    base_rate = base_n / base_t
    return {
        "endpoints": len(addrs),
        "endpoints_requested": endpoints,
        "seconds": seconds,
        "msgs_per_s": round(ours_rate),
        "baseline_msgs_per_s": round(base_rate),
        "speedup": round(ours_rate / base_rate, 2),
        "us_per_msg": round(1e6 / ours_rate, 2),
        "baseline_us_per_msg": round(1e6 / base_rate, 2),
        "message": f"{ADDRESS} ,if ({template.size} bytes)",
        "floor_sendmmsg_us_per_msg": round(mm_t / mm_n * 1e6, 2) if mm_n else None,
        "floor_sendto_us_per_msg": round(st_t / st_n * 1e6, 2) if st_n else None,
        "speedup_ceiling": round(base_t / base_n / (mm_t / mm_n), 2) if mm_n else None,
        "send_errors": errors,
        "sendmmsg": sendmmsg_available(),
        "checked_decodes": checked,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def run(
    endpoints: int = 1000, seconds: float = 3.0, *, rounds: int = 3, floors: bool = True
) -> dict[str, object]:
    """Messages per second, ours and python-osc's, to ``endpoints`` loopback UDP receivers.

    Binds ``endpoints`` receiving sockets, or fewer if the file-descriptor limit is too low (then
    ``endpoints`` in the result says how many). ``seconds`` is the total measuring time, split
    evenly between the two and over ``rounds`` interleaved rounds. With ``floors`` each round also
    resends one prebuilt frame with bare ``sendmmsg`` and bare ``sendto`` calls (half a slice each,
    not counted in ``seconds``): what the kernel alone costs per datagram, hence the best speedup
    any sender could reach here (``speedup_ceiling``).
    """
    return asyncio.run(_measure(endpoints, seconds, rounds, floors))


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
