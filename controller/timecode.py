"""SMPTE timecode: frame arithmetic (24, 25, 29.97 drop-frame, 30 fps) and two wire codecs.

Theory of operation
-------------------
A timecode *label* (``hh:mm:ss:ff``) names a frame; :func:`to_frames` and :func:`from_frames`
turn a label into the count of frames since ``00:00:00:00`` and back, and :func:`frames_to_ns`
gives the real time of that frame. For 29.97 drop-frame (SMPTE 12M) the labels ``:00`` and
``:01`` of the first second of every minute are skipped, except in minutes 00, 10, 20, 30, 40
and 50; one frame lasts 1001/30000 s, so a drop-frame label tracks the wall clock to within a
frame over a day.

The codecs are pure bytes in, bytes out:

* **Art-Net TimeCode** (Art-Net 4, ``OpTimeCode`` = 0x9700): a 19-byte UDP datagram:
  ``"Art-Net\\0"``, OpCode (little-endian), ProtVer (14, big-endian), Filler, StreamId,
  Frames, Seconds, Minutes, Hours, Type (0 Film 24, 1 EBU 25, 2 DF 29.97, 3 SMPTE 30).
* **MIDI Time Code** (MIDI 1.0, MTC): quarter-frame messages (``F1 0n dddd``: piece ``n`` of
  eight carries a nibble; eight span two frames) and the full-frame SysEx
  ``F0 7F 7F 01 01 hh mm ss ff F7`` (``hh`` = rate << 5 | hours). :class:`MtcDecoder` takes the
  byte stream (as a MIDI port or ``mido`` delivers it) and yields each complete timecode; the
  label the eight quarter-frames carry is the frame when piece 0 was sent, two frames before
  piece 7 arrives, so the decoder adds two frames (running forward).

Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "ARTNET_PORT",
    "FrameRate",
    "MtcDecoder",
    "Timecode",
    "TimecodeError",
    "decode_artnet",
    "encode_artnet",
    "encode_mtc_full",
    "encode_mtc_quarters",
    "frames_to_ns",
    "from_frames",
    "ns_to_frames",
    "to_frames",
]

ARTNET_PORT = 6454
NS = 1_000_000_000


class TimecodeError(ValueError):
    """A timecode that is not valid at its rate, or a packet that is not a timecode."""


class FrameRate(Enum):
    """A SMPTE frame rate; ``value`` is the Art-Net ``Type`` and the MTC rate code (they agree)."""

    FPS_24 = 0
    FPS_25 = 1
    FPS_2997_DF = 2
    FPS_30 = 3

    @property
    def nominal(self) -> int:
        """Frames per labelled second (30 for 29.97 drop-frame)."""
        return (24, 25, 30, 30)[self.value]

    @property
    def drop(self) -> bool:
        """Whether labels are dropped (29.97 drop-frame)."""
        return self is FrameRate.FPS_2997_DF

    @property
    def frame_ns(self) -> float:
        """The real duration of one frame, in nanoseconds."""
        return 1001 * NS / 30000 if self.drop else NS / self.nominal

    @classmethod
    def parse(cls, text: str) -> FrameRate:
        """``24``, ``25``, ``29.97`` / ``29.97df`` / ``df``, ``30``."""
        key = text.strip().lower()
        table = {"24": cls.FPS_24, "25": cls.FPS_25, "30": cls.FPS_30,
                 "29.97": cls.FPS_2997_DF, "29.97df": cls.FPS_2997_DF, "df": cls.FPS_2997_DF}
        if key not in table:
            raise TimecodeError(f"frame rate {text!r}: use 24, 25, 29.97df or 30")
        return table[key]

    def __str__(self) -> str:
        return ("24", "25", "29.97df", "30")[self.value]


@dataclass(frozen=True, slots=True)
class Timecode:
    """A timecode label at a rate."""

    hours: int
    minutes: int
    seconds: int
    frames: int
    rate: FrameRate

    def __post_init__(self) -> None:
        if not (0 <= self.hours < 24 and 0 <= self.minutes < 60 and 0 <= self.seconds < 60):
            raise TimecodeError(f"{self}: hours 0-23, minutes and seconds 0-59")
        if not 0 <= self.frames < self.rate.nominal:
            raise TimecodeError(f"{self}: frames 0-{self.rate.nominal - 1} at {self.rate} fps")
        if self.rate.drop and self.seconds == 0 and self.frames < 2 and self.minutes % 10 != 0:
            raise TimecodeError(f"{self}: frames 00 and 01 are dropped at the start of this minute (29.97df)")

    def __str__(self) -> str:
        sep = ";" if self.rate.drop else ":"
        return f"{self.hours:02d}:{self.minutes:02d}:{self.seconds:02d}{sep}{self.frames:02d}"

    @property
    def ns(self) -> int:
        """The real time of this frame since ``00:00:00:00``."""
        return frames_to_ns(to_frames(self), self.rate)


_DF_PER_10MIN = 17982  # 10 * 60 * 30 - 9 * 2
_DF_PER_MIN = 1798  # 60 * 30 - 2
_DAY_NS = 24 * 3600 * NS


def to_frames(tc: Timecode) -> int:
    """Frames since ``00:00:00:00`` (for drop-frame: counted without the dropped labels)."""
    n = tc.rate.nominal
    frames = ((tc.hours * 60 + tc.minutes) * 60 + tc.seconds) * n + tc.frames
    if tc.rate.drop:
        minutes = tc.hours * 60 + tc.minutes
        frames -= 2 * (minutes - minutes // 10)
    return frames


def from_frames(count: int, rate: FrameRate) -> Timecode:
    """The label of frame ``count`` (wrapping at 24 hours)."""
    n = rate.nominal
    if rate.drop:
        count %= _DF_PER_10MIN * 6 * 24
        tens, rest = divmod(count, _DF_PER_10MIN)
        count += 18 * tens + (2 * ((rest - 2) // _DF_PER_MIN) if rest > 1 else 0)
    else:
        count %= n * 86400
    f = count % n
    s = count // n
    return Timecode(s // 3600, s // 60 % 60, s % 60, f, rate)


def frames_to_ns(count: int, rate: FrameRate) -> int:
    """The real time of frame ``count`` (rounded up to the nanosecond, so that
    :func:`ns_to_frames` gives ``count`` back)."""
    if rate.drop:
        return -(-count * 1001 * NS // 30000)
    return -(-count * NS // rate.nominal)


def ns_to_frames(ns: int, rate: FrameRate) -> int:
    """The frame showing at real time ``ns`` (floor)."""
    if rate.drop:
        return ns * 30000 // (1001 * NS)
    return ns * rate.nominal // NS


# --- Art-Net TimeCode ----------------------------------------------------------------------

_ARTNET_ID = b"Art-Net\x00"
_OP_TIMECODE = 0x9700
_PROT_VER = 14


def encode_artnet(tc: Timecode, stream_id: int = 0) -> bytes:
    """An ArtTimeCode datagram for ``tc``."""
    return (
        _ARTNET_ID
        + _OP_TIMECODE.to_bytes(2, "little")
        + _PROT_VER.to_bytes(2, "big")
        + bytes((0, stream_id & 0xFF, tc.frames, tc.seconds, tc.minutes, tc.hours, tc.rate.value))
    )


def decode_artnet(data: bytes) -> Timecode | None:
    """The timecode in an ArtTimeCode datagram; ``None`` for another Art-Net packet (ArtDmx,
    ArtPoll: not ours to judge). Raises :class:`TimecodeError` for a malformed one."""
    if len(data) < 10 or data[:8] != _ARTNET_ID:
        raise TimecodeError(f"not Art-Net ({len(data)} bytes, no 'Art-Net' header)")
    if int.from_bytes(data[8:10], "little") != _OP_TIMECODE:
        return None
    if len(data) < 19:
        raise TimecodeError(f"ArtTimeCode of {len(data)} bytes; it has 19")
    frames, seconds, minutes, hours, kind = data[14:19]
    if kind > 3:
        raise TimecodeError(f"ArtTimeCode type {kind}; 0-3 are defined")
    return Timecode(hours, minutes, seconds, frames, FrameRate(kind))


# --- MIDI Time Code ------------------------------------------------------------------------


def encode_mtc_full(tc: Timecode) -> bytes:
    """The MTC full-frame SysEx for ``tc`` (sent on a locate, not while running)."""
    return bytes((0xF0, 0x7F, 0x7F, 0x01, 0x01, tc.rate.value << 5 | tc.hours,
                  tc.minutes, tc.seconds, tc.frames, 0xF7))


def encode_mtc_quarters(tc: Timecode) -> list[bytes]:
    """The eight quarter-frame messages that carry ``tc``, sent one every quarter frame from
    the instant of frame ``tc`` (so they span ``tc`` and the next frame)."""
    values = (tc.frames & 0xF, tc.frames >> 4, tc.seconds & 0xF, tc.seconds >> 4,
              tc.minutes & 0xF, tc.minutes >> 4, tc.hours & 0xF, tc.hours >> 4 | tc.rate.value << 1)
    return [bytes((0xF1, piece << 4 | v)) for piece, v in enumerate(values)]


class MtcDecoder:
    """MTC from a MIDI byte stream: :meth:`receive` takes bytes (whole messages or pieces of
    them) and returns the timecodes they complete. Other MIDI messages are skipped; malformed
    timecodes are counted in :attr:`dropped`."""

    def __init__(self) -> None:
        self._pieces: list[int | None] = [None] * 8
        self._expect = 0  # the next quarter-frame piece in a forward run
        self._buf = bytearray()
        self.dropped = 0

    def receive(self, data: bytes) -> list[Timecode]:
        """Feed bytes; returns each timecode completed: a full frame, or the eighth of eight
        consecutive quarter-frames (plus the two frames they took to send)."""
        out: list[Timecode] = []
        self._buf += data
        buf = self._buf
        while buf:
            status = buf[0]
            if status == 0xF1:
                if len(buf) < 2:
                    break
                tc = self._quarter(buf[1])
                del buf[:2]
            elif status == 0xF0:
                end = buf.find(0xF7)
                if end < 0:
                    if len(buf) > 64:  # a SysEx this long is not MTC; bound the buffer
                        del buf[:]
                    break
                tc = self._sysex(bytes(buf[: end + 1]))
                del buf[: end + 1]
            else:
                del buf[:1]  # another message (or its data bytes): not timecode
                continue
            if tc is not None:
                out.append(tc)
        return out

    def _quarter(self, data: int) -> Timecode | None:
        piece, value = data >> 4 & 0x7, data & 0xF
        if piece != self._expect:
            self._pieces = [None] * 8  # a gap or a reverse run: start again at piece 0
            self._expect = 0
            if piece != 0:
                return None
        self._pieces[piece] = value
        self._expect = (piece + 1) % 8
        if piece != 7:
            return None
        p = [v or 0 for v in self._pieces]
        self._pieces = [None] * 8
        rate_code = p[7] >> 1 & 0x3
        try:
            tc = Timecode(p[6] | (p[7] & 1) << 4, p[4] | p[5] << 4, p[2] | p[3] << 4,
                          p[0] | p[1] << 4, FrameRate(rate_code))
        except TimecodeError:
            self.dropped += 1
            return None
        return from_frames(to_frames(tc) + 2, tc.rate)

    def _sysex(self, msg: bytes) -> Timecode | None:
        if len(msg) != 10 or msg[1:5] != b"\x7f\x7f\x01\x01":
            return None  # another SysEx
        hh, mm, ss, ff = msg[5:9]
        try:
            return Timecode(hh & 0x1F, mm, ss, ff, FrameRate(hh >> 5 & 0x3))
        except TimecodeError:
            self.dropped += 1
            return None
