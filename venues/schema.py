"""The venue file as pydantic models: the shape check and the JSON Schema for editors.

These models check *shape and types* only (``extra="forbid"``, strict types, so ``port: "80"``
is an error, not silently an int). Cross-entry rules (duplicate ids, zones, sync versus
transport, groups) live in :mod:`venues.loader`, which also turns the validated entries into
:class:`~venues.model.Venue`. Field descriptions end up in the JSON Schema that
``madang schema venue`` prints, so editors show them as completion help.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from venues.units import parse_duration_ns

__all__ = [
    "DEFAULT_AUDIENCE_PATH",
    "DEFAULT_BROKER",
    "DEFAULT_SAFE",
    "AudienceSpec",
    "BrokerAuthSpec",
    "DeviceSpec",
    "DmxChannelSpec",
    "DmxSpec",
    "DmxVenueSpec",
    "MqttSpec",
    "OscSpec",
    "SeatSectionSpec",
    "VenueSpec",
    "WsSpec",
    "venue_json_schema",
]

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
DEFAULT_AUDIENCE_PATH = "/audience/ws"
DEFAULT_SAFE: dict[str, float | int | str] = {"brightness": 0}


def _duration(value: object) -> int:
    return parse_duration_ns(value)


DurationNs = Annotated[
    int,
    BeforeValidator(_duration, json_schema_input_type=float | str),
    Field(description="A duration: a number of seconds, or a string like 20ms, 1.5s, 300us."),
]
"""A duration written as seconds or with a unit, validated to integer nanoseconds."""

Scalar = str | int | float | bool
SafeValue = float | int | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class OscSpec(_Strict):
    """Where a device listens for OSC over UDP."""

    host: str = Field("127.0.0.1", description="Host name or IP address of the device's OSC receiver.")
    port: int | str = Field(
        description=(
            "UDP port, 1-65535. For a device entry whose id holds a range, '9100+' gives consecutive "
            "ports from 9100, one per expanded device."
        ),
        examples=[9001, "9100+"],
    )
    oscquery: int | str | None = Field(
        None,
        description=(
            "The device's OSCQuery server, which `madang check --probe` reads to check the show's "
            "addresses: a TCP port on the OSC host, or http://host:port."
        ),
        examples=[5678, "http://10.0.0.21:5678"],
    )


class MqttSpec(_Strict):
    """A device reachable through the venue's MQTT broker."""

    base: str | None = Field(
        None,
        description="The device's topic root; default 'madang/dev/{id}'. May hold {id}, {kind}, {zone}.",
    )


class BrokerAuthSpec(_Strict):
    """The controller's broker login files (never the password itself)."""

    ca: str | None = Field(None, description="CA certificate (PEM) that signed the broker's (mqtts://).")
    cert: str | None = Field(None, description="The controller's client certificate (PEM).")
    key: str | None = Field(None, description="The private key (PEM) of cert.")
    password_file: str | None = Field(
        None, description="A file holding the broker password of the user in the broker URL (mode 0600)."
    )


class WsSpec(_Strict):
    """A device that connects to the controller's WebSocket endpoint (a WebXR client)."""

    path: str = Field("/ws", description="The WebSocket path it connects to.")


class DmxChannelSpec(_Strict):
    """Where one parameter sits in a DMX fixture's footprint (docs/dmx.md)."""

    channel: int = Field(
        ge=1, le=512, description="The channel within the footprint, from 1 (1 = the start channel)."
    )
    bits: Literal[8, 16] = Field(
        8, description="8 (one channel) or 16 (coarse on 'channel', fine on the next)."
    )


class DmxSpec(_Strict):
    """A device (or its lights) patched on a DMX universe, sent over Art-Net or sACN (docs/dmx.md)."""

    transport: Literal["artnet", "sacn"] = Field(
        description="artnet (Art-Net 4 ArtDmx) or sacn (ANSI E1.31)."
    )
    universe: int = Field(
        description="The universe: Art-Net port-address 0-32767 (net, sub-net, universe), sACN 1-63999."
    )
    address: int | str = Field(
        description=(
            "The start channel, 1-512. For a device entry whose id holds a range, '1+' patches one "
            "fixture after another from channel 1 (each 'footprint' channels on)."
        ),
        examples=[1, "1+"],
    )
    footprint: int = Field(ge=1, le=512, description="How many channels the fixture takes.")
    channels: dict[str, int | DmxChannelSpec] = Field(
        description=(
            "Parameter -> channel within the footprint (1 = the start channel), or {channel, bits: 16}."
        ),
        examples=[{"brightness": 1, "hue": {"channel": 2, "bits": 16}}],
    )
    host: str | None = Field(
        None,
        description=(
            "Where to send: a node's IP (unicast) or a broadcast address like 2.255.255.255 (Art-Net); "
            "for sACN, omit it for multicast (239.255.hi.lo of the universe) or give a receiver's IP."
        ),
    )
    port: int | None = Field(
        None, ge=1, le=65535, description="UDP port; default 6454 (Art-Net), 5568 (sACN)."
    )
    priority: int = Field(100, ge=0, le=200, description="sACN priority, 0-200 (default 100).")
    sync: bool = Field(True, description="sACN: the universe waits for the venue's sync packet.")


class DmxVenueSpec(_Strict):
    """The venue's DMX output: frame rate, keep-alive, sACN source and sync universe."""

    rate: float = Field(44.0, gt=0, le=1000, description="Frames per second (default 44, the DMX refresh).")
    keepalive: DurationNs = Field(
        1_000_000_000, description="Resend an unchanged universe this often (default 1s; keep it under 2s)."
    )
    sync_universe: int = Field(
        63999, ge=1, le=63999, description="The sACN universe that universe sync packets use (default 63999)."
    )
    source_name: str = Field("Madang", max_length=63, description="The sACN source name and Art-Net node.")
    artsync: bool = Field(
        False, description="Follow each frame's ArtDmx packets with an ArtSync to each Art-Net node."
    )


class DeviceSpec(_Strict):
    """One device entry; its id may hold ranges like 'xr-{0001..1200}' that expand to many devices."""

    id: str = Field(
        description=(
            "Unique device id. Ranges {a..b} expand (zero padding kept: {001..600}); several ranges "
            "multiply (row{1..3}-seat{01..20})."
        ),
        examples=["facade-yeouido-1", "xr-{0001..1200}"],
    )
    kind: str = Field(description="What the device is: facade, barge, fountain, projector, xr, ar...")
    zone: str = Field(description="One of the venue's zones.")
    sync: Literal["app", "timetag", "echo", "none"] = Field(
        description=(
            "How the device is kept in time: app (our headset protocol over MQTT or WebSocket), "
            "timetag (OSC bundles executed at their timetag), echo (answers pings, executes on "
            "receipt), none (cannot answer: sent early by 'latency')."
        )
    )
    latency: DurationNs | None = Field(
        None, description="For sync: none, how early to send (the device's known reaction time), like 120ms."
    )
    osc: OscSpec | None = Field(None, description="OSC/UDP endpoint.")
    mqtt: MqttSpec | None = Field(None, description="Reachable over the MQTT broker ({} for defaults).")
    ws: WsSpec | None = Field(None, description="Connects over WebSocket (WebXR).")
    dmx: DmxSpec | None = Field(
        None, description="Its lights on a DMX universe, over Art-Net or sACN (docs/dmx.md)."
    )
    interpolates: bool = Field(False, description="True when the device runs a fade itself from one ramp.")
    attrs: dict[str, Scalar] = Field(
        default_factory=dict,
        description="Extra attributes for target selectors (seat:A*) and {placeholders} in show files.",
    )
    safe: dict[str, SafeValue] | None = Field(
        None, description="This device's safe state (panic/stop), overriding the venue's 'safe' for its kind."
    )
    profile: str | None = Field(
        None,
        description=(
            "The device's profile (docs/profiles.md): a name from the venue's 'profiles' folders or "
            "config/profiles/ (resolume, touchdesigner, ...), or a path to a profile file. Shows then "
            "use its verbs: do: {targets: ..., clip: {layer: 2, column: 5}}."
        ),
        examples=["resolume", "qlab"],
    )


Vec2 = Annotated[list[float], Field(min_length=2, max_length=2, description="[x, y] in metres.")]


class SeatSectionSpec(_Strict):
    """A block of seats of the audience's seat map: rows of seats on a grid."""

    section: str = Field(description="The section's name, the first part of a seat label (A in A-12-7).")
    zone: str = Field(description="The zone its seats belong to (one of the audience's zones).")
    rows: int = Field(ge=1, le=10_000, description="Rows 1..rows.")
    seats: int = Field(ge=1, le=10_000, description="Seats 1..seats in every row.")
    origin: Vec2 = Field(
        default_factory=lambda: [0.0, 0.0], description="Where row 1 seat 1 is, [x, y] metres."
    )
    row_step: Vec2 = Field(
        default_factory=lambda: [0.0, 1.0], description="From one row to the next, [dx, dy] metres."
    )
    seat_step: Vec2 = Field(
        default_factory=lambda: [1.0, 0.0], description="From one seat to the next in a row, [dx, dy] metres."
    )


class AudienceSpec(_Strict):
    """The venue's anonymous audience pool: phones and WebXR browsers that open the light page."""

    capacity: int = Field(ge=1, le=100_000, description="How many phones may join at once (device slots).")
    prefix: str = Field("aud-", description="Slot ids are the prefix and a number: aud-00001, aud-00002, ...")
    kind: str = Field("phone", description="The slots' device kind, for selectors (kind:phone).")
    zones: list[str] | None = Field(
        None, description="The zones the audience picks from (default: every zone); slots are split evenly."
    )
    path: str = Field(DEFAULT_AUDIENCE_PATH, description="The WebSocket path the light page connects to.")
    interpolates: bool = Field(True, description="The light page runs fades itself.")
    safe: dict[str, SafeValue] | None = Field(
        None, description="The slots' safe state (panic/stop), overriding the venue's 'safe' for their kind."
    )
    seats: list[SeatSectionSpec] = Field(
        default_factory=list, description="The seat map: sections of rows of seats, for crowd effects."
    )


class VenueSpec(_Strict):
    """A Madang venue file: the devices of one site, their zones, endpoints and groups."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        title="Madang venue",
        json_schema_extra={"$comment": "Generated from venues.schema; see docs/venues.md"},
    )

    venue: str = Field(description="The venue id, used by show files ('venue: han-river').", min_length=1)
    name: str | None = Field(None, description="A human name for the venue.")
    zones: list[str] = Field(description="The zones devices belong to.", min_length=1)
    broker: str = Field(
        DEFAULT_BROKER, description="The MQTT broker, mqtt://host:port. The --broker option overrides it."
    )
    broker_auth: BrokerAuthSpec | None = Field(
        None,
        description="How the controller logs in to the broker (docs/security.md): TLS files and a password "
        "file, relative to the venue file. The --broker-* options override each.",
    )
    safe: dict[str, dict[str, SafeValue]] = Field(
        default_factory=dict,
        description="Per device kind, the state panic/stop sends; default {brightness: 0} (blackout).",
    )
    devices: list[DeviceSpec] = Field(description="The devices, in order.", min_length=1)
    dmx: DmxVenueSpec | None = Field(
        None, description="DMX output settings (frame rate, keep-alive, sACN sync universe); docs/dmx.md."
    )
    audience: AudienceSpec | None = Field(
        None, description="An anonymous audience pool (phones that open the light page), with its seat map."
    )
    profiles: str | list[str] = Field(
        default_factory=list,
        description=(
            "Folders of your own device profiles, relative to the venue file; searched before the shipped "
            "config/profiles/ (docs/profiles.md)."
        ),
    )
    groups: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description=(
            "Named targets: a selector like 'kind:facade & zone:banpo', or a list of them (their union). "
            "Groups may use other groups."
        ),
    )


def venue_json_schema() -> dict[str, Any]:
    """The JSON Schema of venue files (for ``madang schema venue`` and editors)."""
    schema = VenueSpec.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
