"""DMX out over real UDP on loopback: the Han River show's interlude fades the barges (Art-Net)
and the fountain (sACN); independent receivers check every channel against the show's state at
each frame's instant, then a panic blacks them out.

Receivers: the ``sacn`` package's own receiver (its thread, its socket, its sequence and priority
checks) for sACN, and a socket with the Art-Net parser written from the spec for Art-Net.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
from collections.abc import Iterator

import pytest
import sacn
from sacn.messages.data_packet import DataPacket

from controller.clock import SystemClock
from controller.dmx import DmxFrame, DmxOutput, DmxSource
from controller.dmxout import DmxDriver
from controller.edge import FiringEdge
from controller.engine import Engine
from controller.playback import Arm, Go, Load, LoadAt, Panic
from cues.compiler import compile_show
from tests.controller.artnet_receiver import ArtDmx, parse
from tests.controller.test_dmx import _expected
from tests.integration.conftest import free_udp_port, wait_until
from venues.model import Venue

pytestmark = pytest.mark.integration

S = 1_000_000_000


class _Recording(DmxOutput):
    """The renderer, remembering which frame each sequence number carried (for the receivers)."""

    def __init__(self, venue: Venue) -> None:
        super().__init__(venue)
        self.by_seq: dict[tuple[str, int], DmxFrame] = {}

    def render(self, due_ns: int, source: DmxSource) -> DmxFrame:
        frame = super().render(due_ns, source)
        for pkt, _ in frame.packets:
            if pkt.startswith(b"Art-Net"):
                got = parse(pkt)
                if isinstance(got, ArtDmx):
                    self.by_seq[("artnet", got.sequence)] = frame
            elif len(pkt) > 49:
                self.by_seq[("sacn", DataPacket.make_data_packet(pkt).sequence)] = frame
        return frame


@pytest.fixture
def artnet_rx() -> Iterator[tuple[int, list[bytes]]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    got: list[bytes] = []
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            try:
                got.append(sock.recv(2048))
            except TimeoutError:
                continue

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        yield sock.getsockname()[1], got
    finally:
        stop.set()
        t.join(2)
        sock.close()


@pytest.fixture
def sacn_rx() -> Iterator[tuple[int, list[DataPacket]]]:
    port = free_udp_port()
    receiver = sacn.sACNreceiver(bind_address="127.0.0.1", bind_port=port)
    got: list[DataPacket] = []
    receiver.register_listener("universe", got.append, universe=1)
    receiver.start()
    try:
        yield port, got
    finally:
        receiver.stop()


def _patched(venue: Venue, artnet_port: int, sacn_port: int) -> Venue:
    devices = []
    for d in venue.devices:
        if d.dmx is not None:
            port = artnet_port if d.dmx.transport == "artnet" else sacn_port
            d = dataclasses.replace(d, dmx=dataclasses.replace(d.dmx, host="127.0.0.1", port=port))
        devices.append(d)
    return dataclasses.replace(venue, devices=tuple(devices))


def test_a_fade_reaches_artnet_and_sacn_receivers_as_the_state_at_each_frame(
    artnet_rx: tuple[int, list[bytes]], sacn_rx: tuple[int, list[DataPacket]]
) -> None:
    tl, shipped = compile_show("config/shows/han-river-night-bloom.yaml")
    venue = _patched(shipped, artnet_rx[0], sacn_rx[0])
    start = next(c for c in tl.cues if c.id == "interlude").start_ns
    clock = SystemClock()
    engine = Engine(tl, venue)
    out = _Recording(venue)
    edge = FiringEdge(clock)
    driver = DmxDriver(out, lambda: engine, edge, clock)

    async def play() -> int:
        go_at = clock.wall_ns()
        for cmd in (Load(), Arm(), LoadAt(cue="interlude"), Go()):
            engine.command(cmd, go_at)
        task = asyncio.create_task(driver.run())
        await asyncio.sleep(1.0)  # the interlude's fades run 4 s and 6 s: well inside them
        engine.command(Panic(), clock.wall_ns())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return go_at

    edge.start()
    try:
        go_at = asyncio.run(play())
        wait_until(lambda: artnet_rx[1] and artnet_rx[1][-1] and parse(artnet_rx[1][-1]), what="Art-Net")
    finally:
        edge.stop()
        driver.close()

    # Every received packet carries exactly the frame rendered for its instant, and that frame is
    # the show's state at the instant (nominal show time = interlude start + time since GO).
    checked = {"artnet": 0, "sacn": 0}
    art = [p for p in (parse(b) for b in artnet_rx[1]) if isinstance(p, ArtDmx)]
    for p in art:
        frame = out.by_seq[("artnet", p.sequence)]
        assert p.port_address == 0 and p.data == frame.levels[("artnet", 0)]
        if not frame.safe:
            assert frame.levels == _expected(engine, venue, start + frame.due_ns - go_at)
            checked["artnet"] += 1
    for d in sacn_rx[1]:
        frame = out.by_seq[("sacn", d.sequence)]
        assert d.universe == 1 and d.priority == 100 and d.syncAddr == 63999
        assert bytes(d.dmxData[:4]) == frame.levels[("sacn", 1)]
        if not frame.safe:
            assert frame.levels == _expected(engine, venue, start + frame.due_ns - go_at)
            checked["sacn"] += 1
    # the fades were seen moving on both transports (the sACN receiver reports changes only)
    assert checked["artnet"] >= 10 and checked["sacn"] >= 10, checked
    flows = [int.from_bytes(bytes(d.dmxData[:2]), "big") for d in sacn_rx[1]]
    assert flows[0] > flows[checked["sacn"] - 1] > round(0.3 * 65535)
    # frames follow the venue's 44 Hz grid: consecutive instants one period apart
    base = driver.base_ns
    assert base is not None
    for p in art:
        due = out.by_seq[("artnet", p.sequence)].due_ns
        assert out.instant(base, round((due - base) * out.rate_hz / S)) == due
    # panic reached DMX: the last frames are every fixture's safe state (blackout)
    assert art[-1].data == bytes(16)
    assert bytes(sacn_rx[1][-1].dmxData[:4]) == bytes(4)
    assert driver.sock.dropped == 0
