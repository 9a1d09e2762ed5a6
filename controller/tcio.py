"""Timecode in and out: the adapters around :mod:`controller.chase` and :mod:`controller.timecode`.

* :class:`TimecodeFollower` feeds decoded frames to a :class:`~controller.chase.Chaser` and
  applies the commands it asks for to the :class:`~controller.player.Player` (lock: load at the
  chased time and GO; jump: seek, which sends devices the catch-up state; loss: hold or stop).
  It does no I/O and reads no clock: every call takes ``now``.
* :class:`ArtNetTimecodeReceiver`: an asyncio datagram protocol on the Art-Net port (6454);
  other Art-Net packets are ignored, malformed ones counted in ``dropped``.
* :func:`receive_mtc`: an MTC byte stream (a ``mido`` input port's messages, as bytes).
* :class:`TimecodeGenerator`: which frame is due from the show clock, as Art-Net datagrams or
  MTC quarter-frames (the sender sleeps until :meth:`TimecodeGenerator.next_due`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.chase import ChaseEvent, ChaseOptions, Chaser, ChaseState, Jumped, Locked, Lost, commands_for
from controller.engine import Accepted
from controller.player import Player
from controller.timecode import (
    FrameRate,
    MtcDecoder,
    Timecode,
    TimecodeError,
    decode_artnet,
    encode_artnet,
    encode_mtc_quarters,
    frames_to_ns,
    from_frames,
    ns_to_frames,
)

__all__ = [
    "ArtNetTimecodeReceiver",
    "TimecodeFollower",
    "TimecodeGenerator",
    "receive_mtc",
]

log = logging.getLogger(__name__)


class TimecodeFollower:
    """The show follows a timecode source (see the module docstring). ``offset_ns`` is the
    timecode of show time 0 (a source that starts at 01:00:00:00: one hour)."""

    def __init__(self, player: Player, options: ChaseOptions | None = None, *, offset_ns: int = 0) -> None:
        self.player = player
        self.chaser = Chaser(options)
        self.offset_ns = offset_ns
        self.refused = 0  # commands the transport refused (the operator stopped the show, say)
        self.events: list[ChaseEvent] = []  # the last few events, for the view and tests

    @property
    def state(self) -> ChaseState:
        """Where the chase stands (for the terminal view)."""
        return self.chaser.state

    def receive(self, tc: Timecode, now: int) -> None:
        """A frame arrived at ``now``."""
        self._apply(self.chaser.receive(now, tc.ns - self.offset_ns), now)

    def poll(self, now: int) -> None:
        """Time passing (the dropout, the loss); call at :meth:`next_deadline`."""
        self._apply(self.chaser.poll(now), now)

    def next_deadline(self) -> int | None:
        """When :meth:`poll` has something to decide."""
        return self.chaser.next_deadline()

    def _apply(self, events: list[ChaseEvent], now: int) -> None:
        for ev in events:
            self.events = [*self.events[-15:], ev]
            if isinstance(ev, Locked | Jumped):
                show = self.chaser.show_ns_at(now)
                if show is None or show < 0:
                    continue  # before show time 0 (pre-roll): nothing to play yet
                ev = type(ev)(show)
            log.info("timecode chase: %s", type(ev).__name__, extra={"chase": self.chaser.state.value})
            if isinstance(ev, Lost):
                log.warning("timecode lost: %s", ev.policy)
            for cmd in commands_for(ev, self.player.core.state):
                if not isinstance(self.player.command(cmd, now), Accepted):
                    self.refused += 1


def receive_mtc(decoder: MtcDecoder, follower: TimecodeFollower, data: bytes, now: int) -> None:
    """MIDI bytes arrived at ``now`` (one or more messages, or pieces of them)."""
    for tc in decoder.receive(data):
        follower.receive(tc, now)


class ArtNetTimecodeReceiver(asyncio.DatagramProtocol):
    """Art-Net TimeCode from UDP to ``on_timecode(tc, now)``; ``clock()`` gives ``now``."""

    def __init__(self, on_timecode: Callable[[Timecode, int], None], clock: Callable[[], int]) -> None:
        self._on = on_timecode
        self._clock = clock
        self.received = 0
        self.dropped = 0

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:  # type: ignore[override]
        now = self._clock()
        try:
            tc = decode_artnet(data[:64])
        except TimecodeError as exc:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("Art-Net timecode: dropped a bad packet: %s", exc, extra={"source": str(addr)})
            return
        if tc is None:
            return  # ArtDmx, ArtPoll...: another part of Art-Net
        self.received += 1
        self._on(tc, now)


@dataclass
class TimecodeGenerator:
    """Timecode from the show clock at ``rate``; ``offset_ns`` is the timecode of show time 0."""

    rate: FrameRate
    offset_ns: int = 0
    _last: int | None = field(default=None, repr=False)

    def due(self, show_ns: int) -> Timecode | None:
        """The frame to send at show time ``show_ns``, once per frame (``None``: already sent)."""
        n = ns_to_frames(max(0, show_ns + self.offset_ns), self.rate)
        if n == self._last:
            return None
        self._last = n
        return from_frames(n, self.rate)

    def next_due(self, show_ns: int) -> int:
        """The show time of the next frame edge after ``show_ns``."""
        n = ns_to_frames(max(0, show_ns + self.offset_ns), self.rate) + 1
        return frames_to_ns(n, self.rate) - self.offset_ns

    @staticmethod
    def artnet(tc: Timecode) -> bytes:
        """The Art-Net datagram for a frame."""
        return encode_artnet(tc)

    def mtc(self, tc: Timecode) -> list[bytes]:
        """The MTC quarter-frames that start at frame ``tc`` (sent every other frame, one every
        quarter frame: :meth:`quarter_ns` apart)."""
        return encode_mtc_quarters(tc)

    def quarter_ns(self) -> int:
        """The gap between quarter-frame messages."""
        return int(self.rate.frame_ns / 4)
