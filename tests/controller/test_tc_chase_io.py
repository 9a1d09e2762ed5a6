"""The show follows Art-Net TimeCode over real UDP loopback, and MTC bytes built by mido: lock,
a jump (seek) and a 2 s dropout (freewheel, then the hold policy, then a relock).

Time is virtual: the receiver's clock returns the instant each datagram is meant to arrive, so
the test asserts what the show does, never how fast the machine is."""

from __future__ import annotations

import asyncio
import socket

import mido
import pytest

from controller.chase import ChaseOptions, ChaseState
from controller.core import ControllerCore
from controller.playback import State
from controller.player import Player
from controller.tcio import ArtNetTimecodeReceiver, TimecodeFollower, TimecodeGenerator, receive_mtc
from controller.timecode import FrameRate, MtcDecoder, Timecode, from_frames
from cues.timeline import Go as GoMode
from cues.timeline import OscSend
from tests.controller.test_engine import MS, C, build

S = 1_000 * MS
F = 40 * MS


def _cues() -> list[C]:
    cues = [C("intro", ops=[(0, ("a",), OscSend("/x", (1,)))], post=600 * S)]
    cues += [C(f"c{i}", go=GoMode.AUTO_CONTINUE, ops=[(0, ("a",), OscSend("/x", (i,)))], post=600 * S)
             for i in range(3)]
    return cues


def _player() -> Player:
    timeline, venue = build(_cues())
    player = Player(ControllerCore(timeline, venue))
    player.start(0)
    return player


def _artnet(tc: Timecode) -> bytes:
    # Art-Net 4 ArtTimeCode, written from the spec (not the production encoder).
    return b"Art-Net\0" + bytes([0x00, 0x97, 0, 14, 0, 0, tc.frames, tc.seconds, tc.minutes, tc.hours,
                                  {24: 0, 25: 1, 30: 3}[tc.rate.nominal]])


@pytest.mark.integration
def test_artnet_timecode_over_udp_lock_jump_dropout() -> None:
    async def main() -> None:
        player = _player()
        follower = TimecodeFollower(player, ChaseOptions(frame_ns=F, freewheel_ns=2 * S, on_loss="hold"),
                                    offset_ns=3600 * S)  # the source starts the show at 01:00:00:00
        now = [0]
        got = asyncio.Event()

        def on_tc(tc: Timecode, at: int) -> None:
            follower.receive(tc, at)
            got.set()

        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            lambda: ArtNetTimecodeReceiver(on_tc, lambda: now[0]), local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        async def send(at: int, frame: int) -> None:
            now[0] = at
            follower.poll(at)
            got.clear()
            tx.sendto(_artnet(from_frames(frame, FrameRate.FPS_25)), ("127.0.0.1", port))
            await asyncio.wait_for(got.wait(), 5)

        try:
            tx.sendto(b"Art-Net\0\x00\x50" + bytes(20), ("127.0.0.1", port))  # ArtDmx: ignored
            tx.sendto(b"garbage", ("127.0.0.1", port))  # counted, survived
            base = 3600 * 25 + 10 * 25  # 01:00:10:00 = show time 10 s
            t0 = 1000 * S
            for i in range(10):
                await send(t0 + i * F, base + i)
            assert follower.state is ChaseState.LOCKED and player.core.state is State.PLAYING
            pos = player.core.engine.position_at(t0 + 9 * F)
            assert pos == 10 * S + 9 * F
            assert proto.dropped == 1
            # a jump: the source is located to 01:05:00:00 (show time 300 s)
            t1 = t0 + 10 * F
            for i in range(6):
                await send(t1 + i * F, 3600 * 25 + 300 * 25 + i)
            assert follower.chaser.jumps == 1
            assert player.core.engine.position_at(t1 + 5 * F) == 300 * S + 5 * F
            # a dropout under the freewheel: the show runs on, nothing seeks
            t2 = t1 + 6 * F + 1500 * MS
            follower.poll(t2 - 10 * MS)
            assert follower.state is ChaseState.FREEWHEEL and player.core.state is State.PLAYING
            frames_gone = (t2 - t1) // F
            await send(t2, 3600 * 25 + 300 * 25 + frames_gone)
            assert follower.state is ChaseState.LOCKED and follower.chaser.jumps == 1
            # a 2.5 s dropout: past the freewheel, the show holds; the source comes back, it plays on
            t3 = t2 + 2500 * MS
            follower.poll(t3)
            assert player.core.state is State.PAUSED
            back = 3600 * 25 + 400 * 25
            for i in range(5):
                await send(t3 + i * F, back + i)
            assert player.core.state is State.PLAYING
            assert player.core.engine.position_at(t3 + 4 * F) == 400 * S + 4 * F
        finally:
            tx.close()
            transport.close()

    asyncio.run(main())


def test_mtc_bytes_from_mido_drive_the_show() -> None:
    player = _player()
    follower = TimecodeFollower(player, ChaseOptions(frame_ns=F, lock_frames=3))
    decoder = MtcDecoder()
    gen_frame = 20 * 25  # 00:00:20:00
    t = 50 * S
    for k in range(6):  # six runs of eight quarter-frames: two frames each
        frame = gen_frame + 2 * k
        tc = from_frames(frame, FrameRate.FPS_25)
        values = [tc.frames & 15, tc.frames >> 4, tc.seconds & 15, tc.seconds >> 4,
                  tc.minutes & 15, tc.minutes >> 4, tc.hours & 15, tc.hours >> 4 | 1 << 1]
        for piece, v in enumerate(values):
            msg = mido.Message("quarter_frame", frame_type=piece, frame_value=v)
            receive_mtc(decoder, follower, bytes(msg.bytes()), t + 2 * k * F + piece * F // 4)
    assert follower.state is ChaseState.LOCKED and player.core.state is State.PLAYING
    last_arrival = t + 10 * F + 7 * F // 4
    # the decoder adds the two frames the quarter-frames took: 00:00:20:12 at piece 7 of run 5
    assert player.core.engine.position_at(last_arrival) == 20 * S + 12 * F
    # a located source: a full-frame SysEx, then quarter-frames from there
    full = mido.Message("sysex", data=[0x7F, 0x7F, 0x01, 0x01, 1 << 5, 2, 0, 0])
    receive_mtc(decoder, follower, bytes(full.bytes()), last_arrival + F)
    assert follower.chaser.jumps == 0  # one frame never seeks


def test_generator_one_datagram_per_frame_edge() -> None:
    gen = TimecodeGenerator(FrameRate.FPS_2997_DF, offset_ns=Timecode(1, 0, 0, 0, FrameRate.FPS_2997_DF).ns)
    tc = gen.due(0)
    assert tc == Timecode(1, 0, 0, 0, FrameRate.FPS_2997_DF)
    assert gen.due(1 * MS) is None
    edge = gen.next_due(0)
    assert 33 * MS < edge < 34 * MS
    assert gen.due(edge) == Timecode(1, 0, 0, 1, FrameRate.FPS_2997_DF)
    assert gen.artnet(tc)[8:10] == b"\x00\x97" and len(gen.mtc(tc)) == 8


@pytest.mark.integration
def test_timecode_io_chases_artnet_and_sends_it_on() -> None:
    """The run's wiring: --chase artnet (a real port) into the player, and --timecode-out
    artnet from its show clock, read back by the test's own decoder of the spec's layout."""
    from controller.tcio import TimecodeOptions, TimecodeSpec, parse_chase, parse_out, parse_start

    assert parse_chase("artnet") == TimecodeSpec("artnet", port=6454)
    assert parse_out("artnet:10.0.0.255:6455") == TimecodeSpec("artnet", host="10.0.0.255", port=6455)
    assert parse_start("01:00:00:00", FrameRate.FPS_25) == 3600 * S
    for bad in ("ltc", "artnet:x"):
        with pytest.raises(ValueError, match="--chase"):
            parse_chase(bad)

    async def main() -> None:
        player = _player()
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        opts = TimecodeOptions(chase=TimecodeSpec("artnet", host="127.0.0.1", port=0),
                               out=TimecodeSpec("artnet", host="127.0.0.1", port=rx.getsockname()[1]))
        loop = asyncio.get_running_loop()
        clock = lambda: loop.time().__mul__(1e9).__int__()  # noqa: E731 - the loop's clock, in ns
        io = opts.open(player, clock, lambda: None)
        await io.open()
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            port = io._transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
            # a source on the loop's clock (its frame follows elapsed time, however late we wake)
            t0 = clock()
            for _ in range(200):
                frame = 30 * 25 + (clock() - t0) // F
                tx.sendto(_artnet(from_frames(frame, FrameRate.FPS_25)), ("127.0.0.1", port))
                await asyncio.sleep(0.04)
                if player.core.state is State.PLAYING:
                    break
            assert io.follower is not None and io.follower.state is ChaseState.LOCKED
            assert player.core.state is State.PLAYING
            got: list[bytes] = []
            for _ in range(200):
                await asyncio.sleep(0.01)
                try:
                    got.append(rx.recv(64))
                except BlockingIOError:
                    continue
                if len(got) >= 3:
                    break
            assert got and all(d[:10] == b"Art-Net\0\x00\x97" and d[18] == 1 for d in got)
            ff, ss = got[-1][14], got[-1][15]
            assert 30 <= ss < 40 and 0 <= ff < 25  # it sends the chased show time on
            assert "locked" in io.view_text()
        finally:
            tx.close()
            rx.close()
            await io.close()

    asyncio.run(main())


def test_a_source_locked_before_show_time_zero_starts_the_show_when_it_gets_there() -> None:
    player = _player()
    follower = TimecodeFollower(player, ChaseOptions(frame_ns=F), offset_ns=3600 * S)
    start = 3600 * 25 - 10  # 00:59:59:15, ten frames before 01:00:00:00
    for i in range(8):
        follower.receive(from_frames(start + i, FrameRate.FPS_25), i * F)
    assert follower.state is ChaseState.LOCKED and player.core.state is State.ARMED
    follower.poll(10 * F)
    assert player.core.state is State.PLAYING
    assert player.core.engine.position_at(10 * F) == 0


def test_a_go_the_sync_gate_refuses_is_retried_once_a_second_while_the_lock_holds() -> None:
    import dataclasses

    from venues.model import MqttEndpoint, Sync

    timeline, venue = build([C("intro", ops=[(0, ("a",), OscSend("/x", (1,)))])])
    apps = tuple(dataclasses.replace(d, sync=Sync.APP, mqtt=MqttEndpoint(f"madang/dev/{d.id}"))
                 for d in venue.devices)  # headsets whose clocks are not known yet: NOT READY
    player = Player(ControllerCore(timeline, dataclasses.replace(venue, devices=apps)))
    player.start(0)
    follower = TimecodeFollower(player, ChaseOptions(frame_ns=F))
    for i in range(30):
        follower.receive(from_frames(250 + i, FrameRate.FPS_25), i * F)
    assert follower.state is ChaseState.LOCKED and player.core.state is State.ARMED
    assert follower.refused == 2  # at the lock, and once a second later


@pytest.mark.integration
def test_timecode_io_over_mido_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """--chase mtc and --timecode-out mtc through mido messages on a test double of the MIDI
    port (no MIDI hardware or ALSA sequencer here): the chase follows MTC sent from a thread as
    mido calls back, and the generator's quarter-frames decode to the show's time."""
    import threading

    import controller.tcio as tcio
    from controller.tcio import TimecodeOptions, TimecodeSpec

    class Port:  # what mido.open_input / open_output return, as far as tcio uses it
        def __init__(self, callback: object = None) -> None:
            self.callback, self.sent, self.closed = callback, [], False

        def send(self, msg: mido.Message) -> None:
            self.sent.append(bytes(msg.bytes()))

        def close(self) -> None:
            self.closed = True

    ports: dict[bool, Port] = {}

    def open_midi(spec: TimecodeSpec, output: bool, callback: object = None) -> Port:
        ports[output] = Port(callback)
        return ports[output]

    monkeypatch.setattr(tcio, "_open_midi", open_midi)

    async def main() -> None:
        player = _player()
        loop = asyncio.get_running_loop()
        clock = lambda: int(loop.time() * 1e9)  # noqa: E731
        io = TimecodeOptions(chase=TimecodeSpec("mtc"), out=TimecodeSpec("mtc"), lock_frames=3).open(
            player, clock, lambda: None)
        await io.open()
        stop = threading.Event()

        def source() -> None:  # a MIDI driver's thread, calling back per message
            import time

            t0 = time.monotonic()
            while not stop.is_set():
                frame = 40 * 25 + int((time.monotonic() - t0) * 25) // 2 * 2
                for piece, q in enumerate(tcio.encode_mtc_quarters(from_frames(frame, FrameRate.FPS_25))):
                    ports[False].callback(mido.Message.from_bytes(list(q)))  # type: ignore[operator]
                    time.sleep(0.01)
                    del piece

        th = threading.Thread(target=source)
        th.start()
        try:
            for _ in range(300):
                await asyncio.sleep(0.02)
                if player.core.state is State.PLAYING and len(ports[True].sent) >= 16:
                    break
            assert player.core.state is State.PLAYING
            decoded = MtcDecoder().receive(b"".join(ports[True].sent))
            assert decoded and 40 <= decoded[-1].seconds < 50
        finally:
            stop.set()
            th.join()
            await io.close()
        assert ports[True].closed and ports[False].closed

    asyncio.run(main())
