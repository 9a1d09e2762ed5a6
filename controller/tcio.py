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
import contextlib
import dataclasses
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.chase import ChaseEvent, ChaseOptions, Chaser, ChaseState, Jumped, Locked, Lost, commands_for
from controller.engine import Accepted
from controller.playback import State
from controller.player import Player
from controller.timecode import (
    ARTNET_PORT,
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
    to_frames,
)
from venues.errors import MadangError

__all__ = [
    "ArtNetTimecodeReceiver",
    "TimecodeFollower",
    "TimecodeGenerator",
    "TimecodeIO",
    "TimecodeOptions",
    "TimecodeSpec",
    "TimecodeSpecError",
    "parse_chase",
    "parse_out",
    "parse_start",
    "receive_mtc",
]

log = logging.getLogger(__name__)

RETRY_NS = 1_000_000_000  # a refused lock (the sync gate not READY) is tried again this often


class TimecodeFollower:
    """The show follows a timecode source (see the module docstring). ``offset_ns`` is the
    timecode of show time 0 (a source that starts at 01:00:00:00: one hour)."""

    def __init__(self, player: Player, options: ChaseOptions | None = None, *, offset_ns: int = 0) -> None:
        self.player = player
        self.chaser = Chaser(options)
        self.offset_ns = offset_ns
        self.refused = 0  # commands the transport refused (the operator stopped the show, say)
        self.events: list[ChaseEvent] = []  # the last few events, for the view and tests
        self._waiting = False  # locked before show time 0 (or GO refused): the show starts later
        self._retry_at = 0

    @property
    def state(self) -> ChaseState:
        """Where the chase stands (for the terminal view)."""
        return self.chaser.state

    def receive(self, tc: Timecode, now: int) -> None:
        """A frame arrived at ``now``."""
        frame_ns = int(tc.rate.frame_ns)
        if frame_ns != self.chaser.options.frame_ns:  # the source says its rate: judge frames at it
            self.chaser.options = dataclasses.replace(self.chaser.options, frame_ns=frame_ns)
        self._apply(self.chaser.receive(now, tc.ns - self.offset_ns), now)
        self._preroll(now)

    def poll(self, now: int) -> None:
        """Time passing (the dropout, the loss); call at :meth:`next_deadline`."""
        self._apply(self.chaser.poll(now), now)
        self._preroll(now)

    def _preroll(self, now: int) -> None:
        # Locked before show time 0: start the show when the chased clock reaches it. Locked but
        # GO refused (the sync gate holds it until READY): try again once a second.
        if self._waiting and self.chaser.state is ChaseState.LOCKED:
            show = self.chaser.show_ns_at(now)
            playing = self.player.core.state is State.PLAYING  # the operator forced GO: seek it
            if show is not None and show >= 0 and (now >= self._retry_at or playing):
                self._waiting = False
                self._apply([Locked(show)], now)
        elif self.chaser.state is not ChaseState.LOCKED:
            self._waiting = False

    def next_deadline(self) -> int | None:
        """When :meth:`poll` has something to decide."""
        return self.chaser.next_deadline()

    def _apply(self, events: list[ChaseEvent], now: int) -> None:
        for ev in events:
            self.events = [*self.events[-15:], ev]
            if isinstance(ev, Locked | Jumped):
                show = self.chaser.show_ns_at(now)
                if show is None or show < 0:
                    self._waiting = True  # before show time 0 (pre-roll): nothing to play yet
                    continue
                ev = type(ev)(show)
            log.info("timecode chase: %s", type(ev).__name__, extra={"chase": self.chaser.state.value})
            if isinstance(ev, Lost):
                log.warning("timecode lost: %s", ev.policy)
            for cmd in commands_for(ev, self.player.core.state):
                if not isinstance(self.player.command(cmd, now), Accepted):
                    self.refused += 1
                    if isinstance(ev, Locked | Jumped):
                        self._waiting = True  # retried by _preroll while the lock holds
                        self._retry_at = now + RETRY_NS
                    break


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

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
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


# --- the run's timecode: parsing the options, opening the ports -----------------------------


class TimecodeSpecError(MadangError, ValueError):
    """A ``--chase`` / ``--timecode-out`` value that is not understood."""

    def __init__(self, option: str, value: str, reason: str) -> None:
        super().__init__(option, value, reason)
        self.option, self.value, self.reason = option, value, reason

    def __str__(self) -> str:
        return f"{self.option} {self.value!r}: {self.reason}"


@dataclass(frozen=True, slots=True)
class TimecodeSpec:
    """A timecode port: ``artnet`` (``host``/``port``) or ``mtc`` (a MIDI port ``name``)."""

    kind: str
    host: str = "0.0.0.0"
    port: int = ARTNET_PORT
    name: str | None = None


def parse_chase(value: str) -> TimecodeSpec:
    """``artnet``, ``artnet:PORT``, ``mtc`` or ``mtc:PORTNAME`` (``--chase``)."""
    kind, _, rest = value.partition(":")
    if kind == "artnet":
        if not rest:
            return TimecodeSpec("artnet")
        if not rest.isdigit() or not 0 < int(rest) < 65536:
            raise TimecodeSpecError("--chase", value, "the Art-Net port is a number 1-65535 (default 6454)")
        return TimecodeSpec("artnet", port=int(rest))
    if kind == "mtc":
        return TimecodeSpec("mtc", name=rest or None)
    raise TimecodeSpecError("--chase", value, "use artnet[:PORT] or mtc[:MIDI-PORT-NAME]")


def parse_out(value: str) -> TimecodeSpec:
    """``artnet:HOST[:PORT]`` or ``mtc[:PORTNAME]`` (``--timecode-out``)."""
    kind, _, rest = value.partition(":")
    if kind == "artnet":
        host, _, port = rest.partition(":")
        if not host or (port and (not port.isdigit() or not 0 < int(port) < 65536)):
            raise TimecodeSpecError("--timecode-out", value,
                                    "use artnet:HOST[:PORT] (HOST a receiver or a broadcast address)")
        return TimecodeSpec("artnet", host=host, port=int(port) if port else ARTNET_PORT)
    if kind == "mtc":
        return TimecodeSpec("mtc", name=rest or None)
    raise TimecodeSpecError("--timecode-out", value, "use artnet:HOST[:PORT] or mtc[:MIDI-PORT-NAME]")


def _open_midi(spec: TimecodeSpec, output: bool, callback: Callable[[Any], None] | None = None) -> Any:
    try:
        import mido

        if output:
            return mido.open_output(spec.name)
        return mido.open_input(spec.name, callback=callback)
    except (ImportError, OSError, ValueError) as err:  # no backend (python-rtmidi), no such port
        raise TimecodeSpecError(
            "--chase" if not output else "--timecode-out", f"mtc:{spec.name or ''}",
            f"cannot open the MIDI port ({err}); install a mido backend (pip install python-rtmidi) "
            "and name a port that exists",
        ) from err


class TimecodeIO:
    """The run's timecode: chase a source into ``player`` and/or send timecode from its show
    clock. ``clock()`` is the player's ``now``; ``wake()`` tells the driver to poll."""

    def __init__(
        self,
        player: Player,
        clock: Callable[[], int],
        wake: Callable[[], None],
        *,
        chase: TimecodeSpec | None = None,
        chase_options: ChaseOptions | None = None,
        offset_ns: int = 0,
        out: TimecodeSpec | None = None,
        out_rate: FrameRate = FrameRate.FPS_25,
    ) -> None:
        self.player, self._clock, self._wake = player, clock, wake
        self.chase, self.out = chase, out
        self.follower = (
            None if chase is None else TimecodeFollower(player, chase_options, offset_ns=offset_ns)
        )
        self.generator = None if out is None else TimecodeGenerator(out_rate, offset_ns)
        self.receiver: ArtNetTimecodeReceiver | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._midi_in: Any = None
        self._midi_out: Any = None
        self._task: asyncio.Task[None] | None = None
        self.sent = 0

    def _on_tc(self, tc: Timecode, now: int) -> None:
        if self.follower is not None:
            self.follower.receive(tc, now)
            self._wake()

    async def open(self) -> None:
        """Bind the chase port and start the generator."""
        loop = asyncio.get_running_loop()
        if self.chase is not None and self.chase.kind == "artnet":
            transport, self.receiver = await loop.create_datagram_endpoint(
                lambda: ArtNetTimecodeReceiver(self._on_tc, self._clock),
                local_addr=(self.chase.host, self.chase.port), reuse_port=True)
            self._transport = transport
        elif self.chase is not None:
            decoder = MtcDecoder()

            def on_midi(msg: Any) -> None:  # a mido thread: hand the bytes to the loop
                data = bytes(msg.bytes())
                loop.call_soon_threadsafe(self._on_midi, decoder, data, self._clock())

            self._midi_in = _open_midi(self.chase, False, on_midi)
        if self.out is not None:
            if self.out.kind == "mtc":
                self._midi_out = _open_midi(self.out, True)
            self._task = asyncio.create_task(self._send(), name="timecode-out")

    def _on_midi(self, decoder: MtcDecoder, data: bytes, now: int) -> None:
        for tc in decoder.receive(data):
            self._on_tc(tc, now)

    def poll(self, now: int) -> None:
        """The chase's dropout and loss (call from the driver's loop)."""
        if self.follower is not None:
            self.follower.poll(now)

    async def _send(self) -> None:
        assert self.generator is not None and self.out is not None
        gen, spec = self.generator, self.out
        sock = None
        if spec.kind == "artnet":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setblocking(False)
        try:
            while True:
                now = self._clock()
                core = self.player.core
                show = core.engine.position_at(now) if core.state is State.PLAYING else None
                if show is None:
                    await asyncio.sleep(0.02)  # timecode runs only while the show plays
                    continue
                tc = gen.due(show)
                if tc is not None:
                    if sock is not None:
                        with contextlib.suppress(OSError):  # a gone receiver must not stop the show
                            sock.sendto(gen.artnet(tc), (spec.host, spec.port))
                    elif to_frames(tc) % 2 == 0:  # MTC: eight quarter-frames span two frames
                        await self._send_quarters(gen.mtc(tc), gen.quarter_ns())
                    self.sent += 1
                await asyncio.sleep(max(0.0, (gen.next_due(show) - show) / 1e9))
        finally:
            if sock is not None:
                sock.close()

    async def _send_quarters(self, quarters: list[bytes], gap_ns: int) -> None:
        import mido

        for q in quarters:
            self._midi_out.send(mido.Message.from_bytes(list(q)))
            await asyncio.sleep(gap_ns / 1e9)

    async def close(self) -> None:
        """Close the ports, stop the generator."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._transport is not None:
            self._transport.close()
        for port in (self._midi_in, self._midi_out):
            if port is not None:
                port.close()

    def view_text(self) -> str:
        """One line for the terminal view: the chase state and the last timecode's show time."""
        parts = []
        if self.follower is not None:
            show = self.follower.chaser.show_ns_at(self._clock())
            at = "" if show is None else f" {show / 1e9:.2f}s"
            parts.append(f"chase {self.chase.kind if self.chase else ''}: {self.follower.state.value}{at}")
        if self.generator is not None:
            parts.append(f"timecode out {self.out.kind if self.out else ''} {self.generator.rate} fps")
        return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class TimecodeOptions:
    """The run's timecode (``madang run --chase ... --timecode-out ...``)."""

    chase: TimecodeSpec | None = None
    out: TimecodeSpec | None = None
    rate: FrameRate = FrameRate.FPS_25  # the generator's rate; the chase judges frames at it too
    offset_ns: int = 0  # the timecode of show time 0
    freewheel_ns: int = 2_000_000_000
    on_loss: str = "hold"
    lock_frames: int = 4

    def open(self, player: Player, clock: Callable[[], int], wake: Callable[[], None]) -> TimecodeIO:
        """The :class:`TimecodeIO` for a run (then ``await io.open()``)."""
        chase = ChaseOptions(frame_ns=int(self.rate.frame_ns), lock_frames=self.lock_frames,
                             freewheel_ns=self.freewheel_ns, on_loss=self.on_loss)
        return TimecodeIO(player, clock, wake, chase=self.chase, chase_options=chase,
                          offset_ns=self.offset_ns, out=self.out, out_rate=self.rate)


def parse_start(value: str, rate: FrameRate) -> int:
    """``--timecode-start HH:MM:SS:FF`` (``;`` also) at ``rate``: its real time in ns."""
    parts = value.replace(";", ":").split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise TimecodeSpecError("--timecode-start", value, "use HH:MM:SS:FF, e.g. 01:00:00:00")
    try:
        hh, mm, ss, ff = (int(p) for p in parts)
        return Timecode(hh, mm, ss, ff, rate).ns
    except TimecodeError as err:
        raise TimecodeSpecError("--timecode-start", value, str(err)) from err
