"""The venue as Madang sees it once a venue file is loaded and validated.

These are plain frozen values: the loader (:mod:`venues.loader`) builds them from YAML, the
controller reads them, the simulators bring them to life. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from venues.broker import BrokerFiles
from venues.profiles import Profile

__all__ = [
    "DEFAULT_MQTT_ROOT",
    "AudiencePool",
    "Device",
    "DmxChannel",
    "DmxEndpoint",
    "DmxSettings",
    "MqttEndpoint",
    "OscEndpoint",
    "Seat",
    "SeatSection",
    "Sync",
    "Venue",
    "WsEndpoint",
    "topic_root",
]

DEFAULT_MQTT_ROOT = "madang/dev/{id}"  # a device's topic root when its venue entry gives no ``base``


def topic_root(base: str | None, device_id: str, kind: str, zone: str) -> str:
    """A device's MQTT topic root: ``base`` (or :data:`DEFAULT_MQTT_ROOT`) with ``{id}``,
    ``{kind}`` and ``{zone}`` filled in (docs/venues.md)."""
    return (
        (base or DEFAULT_MQTT_ROOT).replace("{id}", device_id).replace("{kind}", kind).replace("{zone}", zone)
    )


class Sync(StrEnum):
    """How a device is kept in time (see DESIGN.md, "How a cue reaches a device on time")."""

    APP = "app"  # our protocol: cues carry show time, the device maps it through its clock model
    TIMETAG = "timetag"  # OSC receiver that honours bundle timetags in its own clock
    ECHO = "echo"  # answers pings, executes on receipt: sent early by its measured delay
    NONE = "none"  # executes on receipt, cannot answer: sent early by its configured latency


@dataclass(frozen=True, slots=True)
class OscEndpoint:
    """Where a device listens for OSC over UDP."""

    host: str
    port: int
    oscquery: str | None = None  # its OSCQuery server, http://host:port (madang check --probe)


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """A device reachable through the venue's MQTT broker.

    ``base`` is the device's topic root (default ``madang/dev/{id}``), used by the device
    protocol (pings, clock model, cues for ``app`` devices, heartbeats). Show files may still
    publish to any topic they like with an ``mqtt:`` action.
    """

    base: str


@dataclass(frozen=True, slots=True)
class WsEndpoint:
    """A device that connects to the controller's WebSocket endpoint (a WebXR client)."""

    path: str = "/ws"


@dataclass(frozen=True, slots=True)
class DmxChannel:
    """One parameter's place in a universe: absolute channel (1-512) and width (8 or 16 bits,
    the coarse byte on ``channel``, the fine one on ``channel + 1``)."""

    param: str
    channel: int
    bits: int = 8


@dataclass(frozen=True, slots=True)
class DmxEndpoint:
    """A device's lights on a DMX universe (docs/dmx.md): ``channels`` are absolute (1-512)."""

    transport: str  # "artnet" or "sacn"
    universe: int
    address: int  # the start channel, 1-512
    footprint: int
    channels: tuple[DmxChannel, ...]
    host: str | None = None  # None: sACN multicast (Art-Net always names one)
    port: int = 6454
    priority: int = 100
    sync: bool = True


@dataclass(frozen=True, slots=True)
class DmxSettings:
    """The venue's DMX output: frame rate, keep-alive, sACN sync universe and source name."""

    rate_hz: float = 44.0
    keepalive_ns: int = 1_000_000_000
    sync_universe: int = 63999
    source_name: str = "Madang"
    artsync: bool = False  # an ArtSync after each frame's ArtDmx packets (nodes output them together)


@dataclass(frozen=True, slots=True)
class Device:
    """One device of the venue, after range expansion.

    ``attrs`` holds every attribute a selector or a ``{placeholder}`` may use: at least
    ``id``, ``kind`` and ``zone``, plus any extra scalar keys the venue file gave.
    ``safe`` is the state the device goes to on panic or stop: parameter -> value.
    """

    id: str
    kind: str
    zone: str
    sync: Sync
    latency_ns: int = 0
    osc: OscEndpoint | None = None
    mqtt: MqttEndpoint | None = None
    ws: WsEndpoint | None = None
    attrs: Mapping[str, str] = field(default_factory=dict)
    safe: Mapping[str, float | int | str] = field(default_factory=dict)
    interpolates: bool = False  # can run a fade itself from one ramp description
    pooled: bool = False  # a slot of the venue's anonymous audience pool (:class:`AudiencePool`)
    profile: str | None = None  # the device profile it speaks (a key of :attr:`Venue.profiles`)
    dmx: DmxEndpoint | None = None  # its lights on a DMX universe (Art-Net or sACN), docs/dmx.md

    @property
    def transports(self) -> tuple[str, ...]:
        """The transports this device can be reached by, in preference order."""
        out = []
        if self.osc is not None:
            out.append("osc")
        if self.mqtt is not None:
            out.append("mqtt")
        if self.ws is not None:
            out.append("ws")
        if self.dmx is not None:
            out.append("dmx")  # fades only: its frames are sampled from the show (docs/dmx.md)
        return tuple(out)

    @property
    def topic_root(self) -> str:
        """The device's MQTT topic root (docs/protocol.md): its ``mqtt.base``, or
        ``madang/dev/{id}`` (also for a device reached only over WebSocket: the gateway speaks
        for it on the broker), placeholders filled in."""
        return topic_root(self.mqtt.base if self.mqtt is not None else None, self.id, self.kind, self.zone)


@dataclass(frozen=True, slots=True)
class Seat:
    """A seat of the audience's seat map, and where it is (venue metres, x to the right of the
    stage's view, y away from it)."""

    label: str  # "A-12-7": section A, row 12, seat 7
    section: str
    row: int
    seat: int
    zone: str
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class SeatSection:
    """One block of seats: ``rows`` x ``seats``, row 1 seat 1 at ``origin``; each row is
    ``row_step`` further, each seat ``seat_step`` further along its row (docs/venues.md)."""

    name: str
    zone: str
    rows: int
    seats: int
    origin: tuple[float, float] = (0.0, 0.0)
    row_step: tuple[float, float] = (0.0, 1.0)
    seat_step: tuple[float, float] = (1.0, 0.0)

    def seat(self, row: int, seat: int) -> Seat | None:
        """Seat ``seat`` of row ``row`` (both from 1); None when the section has no such seat."""
        if not (1 <= row <= self.rows and 1 <= seat <= self.seats):
            return None
        x = self.origin[0] + (row - 1) * self.row_step[0] + (seat - 1) * self.seat_step[0]
        y = self.origin[1] + (row - 1) * self.row_step[1] + (seat - 1) * self.seat_step[1]
        return Seat(f"{self.name}-{row}-{seat}", self.name, row, seat, self.zone, x, y)

    def corners(self) -> tuple[tuple[float, float], ...]:
        """The positions of the section's four corner seats."""
        out = []
        for r, s in ((1, 1), (1, self.seats), (self.rows, 1), (self.rows, self.seats)):
            seat = self.seat(r, s)
            assert seat is not None
            out.append((seat.x, seat.y))
        return tuple(out)


@dataclass(frozen=True)
class AudiencePool:
    """The venue's anonymous audience: phones and WebXR browsers that open the light page.

    The pool is ``capacity`` device slots (``aud-00001`` ...: ``app`` devices over WebSocket,
    :attr:`Device.pooled`), split among ``zones``; the controller gives each connection a free
    slot of the zone it picks or its seat's section names. ``sections`` map seat labels
    (``A-12-7``) to positions (docs/venues.md, "The audience")."""

    capacity: int
    kind: str
    zones: tuple[str, ...]
    slots: Mapping[str, tuple[str, ...]]  # zone -> its slot ids, in order
    sections: tuple[SeatSection, ...] = ()
    path: str = "/audience/ws"
    prefix: str = "aud-"

    def seat(self, label: str) -> Seat | None:
        """The seat a label names (``A-12-7``, ``A 12 7``, case as written for the section);
        None when the seat map has no such seat."""
        parts = label.strip().replace(" ", "-").rsplit("-", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            return None
        name = parts[0]
        for sec in self.sections:
            if sec.name == name or sec.name.lower() == name.lower():
                return sec.seat(int(parts[1]), int(parts[2]))
        return None

    @property
    def bounds(self) -> tuple[float, float, float, float] | None:
        """``(min_x, min_y, max_x, max_y)`` over every seat; None without a seat map."""
        pts = [p for sec in self.sections for p in sec.corners()]
        if not pts:
            return None
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return (min(xs), min(ys), max(xs), max(ys))


@dataclass(frozen=True)  # not slotted: ``by_id`` is a cached_property, which needs a __dict__
class Venue:
    """A loaded venue: devices in file order, groups resolved to device ids."""

    id: str
    name: str
    zones: tuple[str, ...]
    broker: str
    devices: tuple[Device, ...]
    groups: Mapping[str, tuple[str, ...]]
    source: str = ""  # the file it came from, for messages
    # Each group as the venue file wrote it (its selectors; a list is their union), so a venue
    # written back out (``madang simulate --map``, :mod:`venues.writer`) keeps its groups'
    # meaning, not only today's members. Empty for venues built in code.
    group_sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    audience: AudiencePool | None = None  # its slots are devices too (``pooled``), at the end
    # The broker login files the venue file names (``broker_auth``: CA, client certificate and
    # key, password file; paths made absolute): the command line's options override each.
    broker_files: BrokerFiles | None = None
    # The device profiles its devices name (docs/profiles.md): name as written -> loaded profile.
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    dmx: DmxSettings = field(default_factory=DmxSettings)  # the DMX output's rate and keep-alive

    def device(self, device_id: str) -> Device:
        """The device with this id; ``KeyError`` when there is none."""
        return self.by_id[device_id]

    @cached_property
    def by_id(self) -> Mapping[str, Device]:
        """Devices by id (built once)."""
        return {d.id: d for d in self.devices}
