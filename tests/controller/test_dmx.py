"""DMX out, sans I/O: the wire encoders against independent decoders, and the frames the pure
:class:`~controller.dmx.DmxOutput` renders from a real engine (literal times, no sockets)."""

from __future__ import annotations

import dataclasses
import itertools
from functools import cache
from pathlib import Path

import pytest
from sacn.messages.data_packet import DataPacket
from sacn.messages.sync_packet import SyncPacket

from controller.dmx import DmxOutput, level_bytes
from controller.engine import Engine
from controller.playback import Arm, Go, Load, LoadAt, Panic, Stop
from controller.wire import artnet, e131
from cues.compiler import compile_show
from cues.timeline import Timeline
from tests.controller.artnet_receiver import ArtDmx, ArtSync, parse
from venues.model import Venue

S = 1_000_000_000
MS = 1_000_000
CID = bytes(range(16))
SHOW = "config/shows/han-river-night-bloom.yaml"


@cache
def _show() -> tuple[Timeline, Venue]:
    return compile_show(SHOW)


def test_artdmx_decodes_with_an_independent_parser() -> None:
    pkt = artnet.encode_artdmx(0x1234 & 0x7FFF, 7, bytes([1, 2, 3]))
    got = parse(pkt)
    assert got == ArtDmx(7, 0, 0x1234, bytes([1, 2, 3, 0]))  # padded to an even length
    assert isinstance(parse(artnet.encode_artsync()), ArtSync)
    assert artnet.next_sequence(255) == 1 and artnet.next_sequence(1) == 2
    with pytest.raises(ValueError, match="port-address"):
        artnet.encode_artdmx(0x8000, 1, b"\x00\x00")


def test_sacn_packets_decode_with_the_sacn_package() -> None:
    data = bytes(range(256)) * 2
    pkt = e131.encode_data(CID, b"Madang", 4001, 200, data, priority=150, sync_universe=63999)
    p = DataPacket.make_data_packet(pkt)
    assert (p.universe, p.sequence, p.priority, p.syncAddr, p.sourceName) == (4001, 200, 150, 63999, "Madang")
    assert bytes(p.dmxData) == data and bytes(p.cid) == CID
    assert p.calculate_multicast_addr() == e131.multicast_group(4001) == "239.255.15.161"
    s = SyncPacket.make_sync_packet(e131.encode_sync(CID, 63999, 9))
    assert (s.syncAddr, s.sequence) == (63999, 9)
    term = DataPacket.make_data_packet(
        e131.encode_data(CID, b"M", 1, 0, b"\x00", options=e131.OPT_TERMINATED)
    )
    assert term.option_StreamTerminated


def test_levels_8_and_16_bit() -> None:
    assert (
        level_bytes(0.0, 8) == b"\x00" and level_bytes(1.0, 8) == b"\xff" and level_bytes(0.5, 8) == b"\x80"
    )
    assert level_bytes(0.5, 16) == bytes((0x80, 0x00)) and level_bytes(1.0, 16) == b"\xff\xff"
    assert level_bytes(2.0, 8) == b"\xff" and level_bytes(-1.0, 16) == b"\x00\x00"
    assert level_bytes(float("nan"), 8) == b"\x00"


def _engine_at(cue: str, now: int) -> Engine:
    tl, venue = _show()
    eng = Engine(tl, venue)
    eng.command(Load(), now)
    eng.command(Arm(), now)
    eng.command(LoadAt(cue=cue), now)
    eng.command(Go(), now)
    eng.poll(now)
    return eng


def _expected(eng: Engine, venue: Venue, show_ns: int) -> dict[tuple[str, int], bytes]:
    """Each universe's levels from ``state_at`` (written independently of the renderer)."""
    out: dict[tuple[str, int], bytearray] = {}
    for d in venue.devices:
        if d.dmx is None:
            continue
        buf = out.setdefault((d.dmx.transport, d.dmx.universe), bytearray(16))
        for ch in d.dmx.channels:
            v = eng.state_for_device(d.id, show_ns).params.get(ch.param, float(d.safe.get(ch.param, 0)))
            v = min(1.0, max(0.0, v))
            if ch.bits == 16:
                n = round(v * 65535)
                buf[ch.channel - 1 : ch.channel + 1] = bytes((n >> 8, n & 0xFF))
            else:
                buf[ch.channel - 1] = round(v * 255)
    return {k: bytes(v[: (4 if k[0] == "sacn" else 16)]) for k, v in out.items()}


def test_frames_render_the_state_at_each_frame_instant() -> None:
    tl, venue = _show()
    t0 = 10 * S
    eng = _engine_at("interlude", t0)
    start = next(c for c in tl.cues if c.id == "interlude").start_ns
    out = DmxOutput(venue, cid=CID)
    assert [(u.transport, u.number, u.size) for u in out.universes] == [("artnet", 0, 16), ("sacn", 1, 4)]
    seen = []
    for k in range(300):  # 6.8 s at 44 Hz: the interlude's 4 s and 6 s fades, then holding
        due = out.instant(t0, k)
        eng.poll(due)
        frame = out.render(due, eng)
        assert frame.show_ns == start + (due - t0)
        assert frame.levels == _expected(eng, venue, start + (due - t0))
        seen.append(frame.levels)
    flows = [int.from_bytes(lv[("sacn", 1)][0:2], "big") for lv in seen]
    assert flows[0] > flows[-1] == round(0.3 * 65535)  # the flow fades down to 0.3 (16-bit)
    assert all(a >= b for a, b in itertools.pairwise(flows))


def test_keepalive_sequence_and_sync() -> None:
    _, venue = _show()
    eng = _engine_at("interlude", 0)
    out = DmxOutput(venue, cid=CID, keepalive_ns=1 * S, repeat=3)
    per_frame = []
    for k in range(44 * 10):
        due = out.instant(0, k)
        eng.poll(due)
        per_frame.append(out.render(due, eng).packets)
    art = [[parse(p) for p, _ in f if p.startswith(b"Art-Net")] for f in per_frame]
    sacn = [[p for p, _ in f if not p.startswith(b"Art-Net")] for f in per_frame]
    # while fading, every frame carries both universes; sACN data is followed by one sync packet
    assert all(len(a) == 1 for a in art[:70]) and all(len(s) == 2 for s in sacn[:200])
    data = DataPacket.make_data_packet(sacn[0][0])
    assert data.syncAddr == 63999 and data.priority == 100
    assert SyncPacket.make_sync_packet(sacn[0][1]).syncAddr == 63999
    # sequences count up per universe (Art-Net 1..255, sACN mod 256)
    seqs = [a[0].sequence for a in art if a and isinstance(a[0], ArtDmx)]
    assert seqs[:3] == [1, 2, 3] and all(b == artnet.next_sequence(a) for a, b in itertools.pairwise(seqs))
    # after the last fade (6 s), an unchanged universe is resent 3 times, then once a second
    tail = art[7 * 44 :]
    sent_at = [k for k, a in enumerate(tail) if a]
    assert 2 <= len(sent_at) <= 4
    assert all(b - a in (44, 45) for a, b in itertools.pairwise(sent_at))
    assert out.suppressed > 0


def test_safe_state_before_go_and_after_panic_or_stop() -> None:
    tl, venue = _show()
    barge = venue.device("barge-1")
    venue = dataclasses.replace(
        venue,
        devices=tuple(
            dataclasses.replace(d, safe={**d.safe, "strobe": 0.5}) if d.id == "barge-1" else d
            for d in venue.devices
        ),
    )
    assert barge.dmx is not None
    eng = Engine(tl, venue)
    out = DmxOutput(venue, cid=CID)
    eng.command(Load(), 0)
    eng.command(Arm(), 0)
    before = out.render(0, eng)
    assert before.safe and before.levels[("artnet", 0)][3] == 128  # barge-1 strobe: its safe 0.5
    eng.command(LoadAt(cue="interlude"), 0)
    eng.command(Go(), 0)
    playing = out.render(S, eng)
    assert not playing.safe and playing.levels[("artnet", 0)][0] > 0
    eng.command(Panic(), 2 * S)
    panicked = out.render(2 * S, eng)
    assert panicked.safe and panicked.levels[("artnet", 0)][0] == 0
    assert panicked.levels[("sacn", 1)] == bytes(4)
    eng.command(Arm(), 3 * S)
    eng.command(LoadAt(cue="interlude"), 3 * S)
    eng.command(Go(), 3 * S)
    assert not out.render(4 * S, eng).safe
    eng.command(Stop(), 5 * S)
    assert out.render(5 * S, eng).safe
    term = out.terminate()
    assert len(term) == 3 and all(DataPacket.make_data_packet(p).option_StreamTerminated for p, _ in term)


def test_artsync_follows_the_frame_when_the_venue_asks() -> None:
    _, venue = _show()
    venue = dataclasses.replace(venue, dmx=dataclasses.replace(venue.dmx, artsync=True))
    eng = _engine_at("interlude", 0)
    packets = DmxOutput(venue, cid=CID).render(0, eng).packets
    art = [parse(p) for p, _ in packets if p.startswith(b"Art-Net")]
    assert [type(p) for p in art] == [ArtDmx, ArtSync]  # data first, then the sync, to the node
    assert packets[-1][0] == artnet.encode_artsync()


def test_a_dmx_only_fixture_takes_fades_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "v.yaml").write_text(
        "venue: v\nzones: [z]\ndevices:\n"
        '  - {id: "par-{1..2}", kind: par, zone: z, sync: none,\n'
        '     dmx: {transport: sacn, universe: 5, address: "1+", footprint: 2, channels: {brightness: 1}}}\n'
    )
    (tmp_path / "s.yaml").write_text(
        "show: T\nvenue: v.yaml\ncues:\n  - id: a\n    actions:\n"
        "      - fade: {targets: 'kind:par', param: brightness, from: 0, to: 1, over: 2s}\n"
    )
    tl, venue = compile_show(tmp_path / "s.yaml")
    eng = Engine(tl, venue)
    for cmd in (Load(), Arm(), Go()):
        eng.command(cmd, 0)
    frame = DmxOutput(venue, cid=CID).render(S, eng)
    assert frame.levels[("sacn", 5)] == bytes((128, 0, 128, 0))


def test_check_warns_of_a_fade_on_an_unpatched_parameter(tmp_path: Path) -> None:
    from cues.check import check_show

    (tmp_path / "v.yaml").write_text(
        "venue: v\nzones: [z]\ndevices:\n"
        "  - {id: par, kind: par, zone: z, sync: none,\n"
        "     dmx: {transport: sacn, universe: 5, address: 1, footprint: 1, channels: {brightness: 1}}}\n"
    )
    (tmp_path / "s.yaml").write_text(
        "show: T\nvenue: v.yaml\ncues:\n  - id: a\n    actions:\n"
        "      - fade: {targets: par, param: hue, to: 1, over: 2s}\n"
    )
    report = check_show(tmp_path / "s.yaml")
    assert report.ok
    assert [(f.severity, f.message) for f in report.findings] == [
        ("warning", "1 DMX-only target(s) patch no channel for 'hue' (e.g. 'par', which patches brightness)")
    ]
