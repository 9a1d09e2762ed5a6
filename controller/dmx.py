"""DMX output, sans I/O: the state of the show at a frame's instant, as Art-Net and sACN packets.

Theory of operation
-------------------
DMX fixtures have no clock and no memory of a fade: they show the last frame they got, and
expect a fresh one continuously. So the DMX output does not follow the cue sends at all; it
*samples* the show. For every frame instant ``due`` (``rate_hz`` frames a second, 44 by default,
the DMX512 refresh), :meth:`DmxOutput.render` asks the engine where the show is at ``due``
(``position_at``, which already accounts for pause and rate) and each patched parameter's value
there (``param_at``: the same :class:`~controller.state.StateIndex` as ``state_at``, the easing
of :mod:`controller.fades`), so a late or skipped frame never accumulates error.

* Before the first GO, and once the operator stopped or panicked (the engine's ``safe_stop``),
  every fixture shows its venue ``safe`` state (numeric values; anything else is 0). A parameter
  no fade has touched yet shows its safe value too.
* Values are 0..1 (clamped): 8-bit channels get ``round(v * 255)``, 16-bit ones ``round(v *
  65535)`` as coarse byte then fine byte.
* One packet per universe and destination. A universe whose data did not change is not sent
  again until ``keepalive_ns`` passed (1 s by default: inside sACN's 2.5 s network-data-loss
  timeout, and the refresh Art-Net nodes expect of a static universe); after a change it is sent on the next
  ``repeat`` frames too, so a single lost packet does not leave a fixture behind.
* sACN universes with ``sync`` carry the venue's sync universe, and one sync packet follows the
  frame's data packets to every destination: receivers that honour universe synchronisation
  output all universes of the frame together. Art-Net universes are followed by
  one ArtSync to each node when the venue asks for it (``dmx: {artsync: true}``).
* Sequence numbers: per universe (Art-Net 1..255, sACN 0..255) and one for sync packets.

The driver (:mod:`controller.dmxout`) calls :meth:`render` a little before each instant and
hands the packets to the firing edge for that instant. Pure: no clock, no socket.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

from controller.playback import State
from controller.wire import artnet, e131
from venues.model import Device, DmxEndpoint, Venue

__all__ = ["Addr", "DmxFrame", "DmxOutput", "DmxSource", "Universe", "level_bytes"]

Addr = tuple[str, int]


class DmxSource(Protocol):
    """What the DMX output reads (the :class:`~controller.engine.Engine`)."""

    @property
    def state(self) -> State: ...

    @property
    def safe_stop(self) -> bool: ...

    def position_at(self, now: int) -> int | None: ...

    def param_at(self, device_id: str, param: str, show_ns: int) -> float | None: ...


def level_bytes(value: float, bits: int) -> bytes:
    """A 0..1 value as DMX levels: one byte (8-bit) or coarse and fine bytes (16-bit)."""
    v = 0.0 if value != value else min(1.0, max(0.0, value))  # NaN -> 0
    if bits == 16:
        n = round(v * 65535)
        return bytes((n >> 8, n & 0xFF))
    return bytes((round(v * 255),))


@dataclass(slots=True)
class Universe:
    """One universe of one transport: its fixtures, destinations and sending state."""

    transport: str
    number: int
    priority: int = 100
    sync: bool = False
    fixtures: list[tuple[Device, DmxEndpoint]] = field(default_factory=list)
    destinations: list[Addr] = field(default_factory=list)
    size: int = 0  # channels in use (the highest patched channel), rounded up to even for Art-Net
    sequence: int = 0
    last: bytes | None = None
    last_sent_ns: int | None = None
    repeats_left: int = 0


@dataclass(frozen=True, slots=True)
class DmxFrame:
    """One frame: the instant it is for, the show time it shows, each universe's levels, and the
    packets to send (in order: data, then sync) at ``due_ns``."""

    due_ns: int
    show_ns: int | None
    safe: bool
    levels: dict[tuple[str, int], bytes]
    packets: tuple[tuple[bytes, Addr], ...]


class DmxOutput:
    """The venue's DMX universes and what each frame sends. See the module docstring."""

    def __init__(
        self,
        venue: Venue,
        *,
        cid: bytes | None = None,
        rate_hz: float | None = None,
        keepalive_ns: int | None = None,
        repeat: int = 3,
        artsync: bool | None = None,
    ) -> None:
        settings = venue.dmx
        self.rate_hz = rate_hz if rate_hz is not None else settings.rate_hz
        if not self.rate_hz > 0:
            raise ValueError(f"DMX frame rate must be > 0, got {self.rate_hz}")
        self.keepalive_ns = keepalive_ns if keepalive_ns is not None else settings.keepalive_ns
        self.sync_universe = settings.sync_universe
        self.repeat = repeat
        self.artsync = artsync if artsync is not None else settings.artsync
        self.cid = cid if cid is not None else uuid.uuid4().bytes
        self._name = settings.source_name.encode()[:63]
        self.universes: list[Universe] = []
        by_key: dict[tuple[str, int], Universe] = {}
        for d in venue.devices:
            ep = d.dmx
            if ep is None:
                continue
            u = by_key.get((ep.transport, ep.universe))
            if u is None:
                u = by_key[(ep.transport, ep.universe)] = Universe(
                    ep.transport, ep.universe, ep.priority, ep.sync and ep.transport == "sacn"
                )
                self.universes.append(u)
            u.fixtures.append((d, ep))
            dest = (ep.host if ep.host is not None else e131.multicast_group(ep.universe), ep.port)
            if dest not in u.destinations:
                u.destinations.append(dest)
            u.size = max(u.size, ep.address + ep.footprint - 1)
        for u in self.universes:
            if u.transport == "artnet":
                u.size += u.size % 2
        self._sync_seq = 0
        self.frames = 0
        self.packets = 0
        self.suppressed = 0  # universe frames not sent: unchanged, within the keep-alive

    @property
    def empty(self) -> bool:
        """Whether the venue patches nothing on DMX."""
        return not self.universes

    @property
    def period_ns(self) -> int:
        """The nominal spacing of frames."""
        return max(1, round(1_000_000_000 / self.rate_hz))

    def instant(self, base_ns: int, k: int) -> int:
        """Frame ``k`` of a stream started at ``base_ns`` (no drift accumulates)."""
        return base_ns + round(k * 1_000_000_000 / self.rate_hz)

    def levels_at(
        self, due_ns: int, source: DmxSource
    ) -> tuple[int | None, bool, dict[tuple[str, int], bytes]]:
        """``(show_ns, safe, levels)``: what every universe shows at ``due_ns``."""
        stopped = source.safe_stop and source.state in (State.STOPPED, State.PANICKED)
        show_ns = None if stopped else source.position_at(due_ns)
        safe = show_ns is None
        levels: dict[tuple[str, int], bytes] = {}
        for u in self.universes:
            data = bytearray(u.size)
            for dev, ep in u.fixtures:
                for ch in ep.channels:
                    v = None if show_ns is None else source.param_at(dev.id, ch.param, show_ns)
                    if v is None:
                        s = dev.safe.get(ch.param, 0)
                        v = float(s) if isinstance(s, int | float) and not isinstance(s, bool) else 0.0
                    b = level_bytes(v, ch.bits)
                    data[ch.channel - 1 : ch.channel - 1 + len(b)] = b
            levels[(u.transport, u.number)] = bytes(data)
        return show_ns, safe, levels

    def render(self, due_ns: int, source: DmxSource) -> DmxFrame:
        """The frame for instant ``due_ns``: levels from the show, and the packets to send then."""
        show_ns, safe, levels = self.levels_at(due_ns, source)
        packets: list[tuple[bytes, Addr]] = []
        synced: list[Addr] = []
        artnet_nodes: list[Addr] = []
        for u in self.universes:
            data = levels[(u.transport, u.number)]
            if data != u.last:
                u.repeats_left = self.repeat
            elif u.repeats_left > 0:
                u.repeats_left -= 1
            elif u.last_sent_ns is not None and due_ns - u.last_sent_ns < self.keepalive_ns:
                self.suppressed += 1
                continue
            u.last, u.last_sent_ns = data, due_ns
            if u.transport == "artnet":
                u.sequence = artnet.next_sequence(u.sequence)
                pkt = artnet.encode_artdmx(u.number, u.sequence, data)
                artnet_nodes.extend(a for a in u.destinations if a not in artnet_nodes)
            else:
                u.sequence = (u.sequence + 1) & 0xFF
                pkt = e131.encode_data(
                    self.cid,
                    self._name,
                    u.number,
                    u.sequence,
                    data,
                    priority=u.priority,
                    sync_universe=self.sync_universe if u.sync else 0,
                )
                if u.sync:
                    synced.extend(a for a in u.destinations if a not in synced)
            packets.extend((pkt, a) for a in u.destinations)
        if synced:
            self._sync_seq = (self._sync_seq + 1) & 0xFF
            sync = e131.encode_sync(self.cid, self.sync_universe, self._sync_seq)
            for host, port in synced:
                multicast = host.startswith("239.255.")
                packets.append(
                    (sync, (e131.multicast_group(self.sync_universe), port) if multicast else (host, port))
                )
        if self.artsync and artnet_nodes:
            packets.extend((artnet.encode_artsync(), a) for a in artnet_nodes)
        self.frames += 1
        self.packets += len(packets)
        return DmxFrame(due_ns, show_ns, safe, levels, tuple(packets))

    def terminate(self) -> list[tuple[bytes, Addr]]:
        """What a source that stops sends: each sACN universe three times with Stream_Terminated
        , so receivers let go at once instead of after their timeout."""
        out: list[tuple[bytes, Addr]] = []
        for _ in range(3):
            for u in self.universes:
                if u.transport != "sacn":
                    continue
                u.sequence = (u.sequence + 1) & 0xFF
                pkt = e131.encode_data(
                    self.cid,
                    self._name,
                    u.number,
                    u.sequence,
                    u.last or bytes(u.size),
                    priority=u.priority,
                    options=e131.OPT_TERMINATED,
                )
                out.extend((pkt, a) for a in u.destinations)
        return out
