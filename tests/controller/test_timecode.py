"""Timecode arithmetic (drop-frame boundaries) and the Art-Net / MTC codecs."""

from __future__ import annotations

import mido
import pytest

from controller.timecode import (
    FrameRate,
    MtcDecoder,
    Timecode,
    TimecodeError,
    decode_artnet,
    encode_artnet,
    encode_mtc_full,
    encode_mtc_quarters,
    frames_to_ns,
    from_frames,
    ns_to_frames,
    to_frames,
)

DF = FrameRate.FPS_2997_DF


def test_drop_frame_minute_boundaries() -> None:
    # 00:00:59;29 is followed by 00:01:00;02 (00 and 01 dropped)
    last = to_frames(Timecode(0, 0, 59, 29, DF))
    assert last == 1799
    assert from_frames(last + 1, DF) == Timecode(0, 1, 0, 2, DF)
    # ... but not at minute 10: 00:09:59;29 -> 00:10:00;00
    assert from_frames(to_frames(Timecode(0, 9, 59, 29, DF)) + 1, DF) == Timecode(0, 10, 0, 0, DF)
    assert to_frames(Timecode(0, 10, 0, 0, DF)) == 17982
    assert to_frames(Timecode(1, 0, 0, 0, DF)) == 107892
    with pytest.raises(TimecodeError, match="dropped"):
        Timecode(0, 1, 0, 0, DF)
    Timecode(0, 20, 0, 0, DF)  # minute 20 keeps its labels


def test_drop_frame_round_trip_and_real_time() -> None:
    for n in [*range(0, 40000, 7), *range(107800, 108000)]:
        assert to_frames(from_frames(n, DF)) == n
    # an hour of drop-frame labels is an hour of real time to within 3.6 ms (29.97 is not exact)
    assert abs(Timecode(1, 0, 0, 0, DF).ns - 3600 * 10**9) < 4_000_000
    assert frames_to_ns(30000, DF) == 1001 * 10**9
    assert ns_to_frames(frames_to_ns(12345, DF), DF) == 12345


@pytest.mark.parametrize("rate", list(FrameRate))
def test_non_drop_and_every_rate_round_trips(rate: FrameRate) -> None:
    tc = Timecode(1, 2, 3, 4, rate)
    assert from_frames(to_frames(tc), rate) == tc
    assert ns_to_frames(tc.ns, rate) == to_frames(tc)
    assert FrameRate.parse(str(rate)) is rate


def _artnet_timecode(ff: int, ss: int, mm: int, hh: int, kind: int) -> bytes:
    # Written from the Art-Net 4 spec, independent of the production encoder: ID, OpCode 0x9700
    # little-endian, ProtVerHi 0, ProtVerLo 14, Filler1, StreamId, Frames, Seconds, Minutes, Hours, Type.
    return b"Art-Net\0" + bytes([0x00, 0x97, 0, 14, 0, 0, ff, ss, mm, hh, kind])


def test_artnet_codec_against_the_spec() -> None:
    tc = Timecode(10, 20, 30, 12, DF)
    assert encode_artnet(tc) == _artnet_timecode(12, 30, 20, 10, 2)
    assert decode_artnet(_artnet_timecode(24, 59, 59, 23, 1)) == Timecode(23, 59, 59, 24, FrameRate.FPS_25)
    assert decode_artnet(b"Art-Net\0" + bytes([0x00, 0x50]) + bytes(20)) is None  # ArtDmx: not ours
    for bad in (b"hello", _artnet_timecode(30, 0, 0, 0, 1), _artnet_timecode(0, 0, 0, 0, 9),
                _artnet_timecode(0, 0, 0, 0, 1)[:15]):
        with pytest.raises(TimecodeError):
            decode_artnet(bad)


def test_mtc_through_mido_messages() -> None:
    tc = Timecode(1, 2, 3, 20, FrameRate.FPS_25)
    # mido builds the messages from the MTC field layout, independently of our encoder
    values = [20 & 15, 20 >> 4, 3 & 15, 3 >> 4, 2 & 15, 2 >> 4, 1 & 15, 1 >> 4 | 1 << 1]
    msgs = [mido.Message("quarter_frame", frame_type=i, frame_value=v) for i, v in enumerate(values)]
    assert [bytes(m.bytes()) for m in msgs] == encode_mtc_quarters(tc)
    dec = MtcDecoder()
    stream = b"".join(bytes(m.bytes()) for m in msgs)
    out: list[Timecode] = []
    for i in range(len(stream)):  # byte at a time: the decoder reassembles messages
        out += dec.receive(stream[i : i + 1])
    assert out == [Timecode(1, 2, 3, 22, FrameRate.FPS_25)]  # +2 frames: the time at piece 7
    full = mido.Message("sysex", data=[0x7F, 0x7F, 0x01, 0x01, 3 << 5 | 5, 6, 7, 8])
    assert bytes(full.bytes()) == encode_mtc_full(Timecode(5, 6, 7, 8, FrameRate.FPS_30))
    note = mido.Message("note_on", note=60, velocity=100).bytes()
    assert dec.receive(bytes(note) + bytes(full.bytes())) == [Timecode(5, 6, 7, 8, FrameRate.FPS_30)]


def test_mtc_gap_restarts_the_quarter_frames() -> None:
    q = encode_mtc_quarters(Timecode(0, 0, 1, 0, FrameRate.FPS_24))
    dec = MtcDecoder()
    assert dec.receive(b"".join(q[:3] + q[4:])) == []  # piece 3 lost: nothing half-assembled
    assert dec.receive(b"".join(q)) == [Timecode(0, 0, 1, 2, FrameRate.FPS_24)]
