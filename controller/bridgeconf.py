"""A star of Mosquitto bridges for a venue: which topics each leaf broker carries over its bridge
to the hub, and the leaf's configuration (``madang broker-config VENUE --bridge HUB``;
docs/mqtt.md, "Laying out brokers").

Theory of operation
-------------------
Past one broker's reach (a kilometre of riverbank, a stadium's thousands of phones), devices join
a *leaf* broker near them, and each leaf bridges to the *hub* the controller talks to. A bridge
subscribes on the hub to the topic patterns it is told, and every message on the hub that matches
them crosses the bridge, whether a device of that leaf wants it or not. The usual
``topic madang/# both`` therefore sends every device's pings and clock models to every leaf: with
three leaves, three times the per-device traffic crosses bridges, and with ten, ten times.

So each leaf bridges exactly what its own devices read and write, derived from the same topic
definitions the devices subscribe with (:func:`controller.topics.device_topics`,
:func:`controller.topics.device_report_topics`):

* **hub to leaf** (``in``): the group topics once per leaf (``madang/cue``, the cue topics of the
  zones and kinds present on the leaf, ``madang/controller/state``), and per device of the leaf its
  own cue topic, pings, clock model and parameter publishes, and nothing of other leaves' devices.
  So a group cue crosses each bridge once (not once per device), and a per-device message crosses
  one bridge, its device's.
* **leaf to hub** (``out``): the leaf's devices' reports (pong, status, fired) and the shows' event
  topics (``--show``), which the controller reads.

What a leaf can serve, it serves: the controller state and each device's clock model are retained,
and a bridged retained message is retained on the leaf too, so a device that (re)joins its leaf
gets both from the leaf without a message to the hub; a leaf restart costs one copy per topic when
the bridge resubscribes, not one per device.

Bridge settings, and why (measured with the test topologies, docs/mqtt.md "Broker
topologies"): ``cleansession false`` with a fixed ``remote_clientid`` (the hub keeps the leaf's
subscriptions and queues QoS 1 cues for it while the link is down, and delivers them when it heals;
devices drop the repeats by idempotency key; with a clean session a cue published during a drop is
lost to the whole zone), ``try_private true`` (a Mosquitto hub does not echo a bridged message
back over the bridge it came from, and keeps the retain flag), ``restart_timeout 1 2`` (a cut link
carries cues again 1.3-2.0 s after it failed; a single value redialled after 5 s),
``keepalive_interval 5`` (a link that dies without a FIN is noticed within about 8 s),
``notifications true`` on ``madang/bridge/{leaf}/state`` (retained ``1``/``0``: the hub knows
which leaf is cut off), and ``set_tcp_nodelay true`` (no Nagle delay on a cue). The hub should
persist (``persistence true``) so that, restarted, it gives each bridge its session back.

Pure: :func:`bridge_plan` takes the venue and returns the texts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from controller import wire
from controller.topics import device_report_topics, device_topics, validate_filter
from venues.errors import MadangError
from venues.model import Device, Venue

__all__ = [
    "BRIDGE_USER_PREFIX",
    "BridgeError",
    "BridgePlan",
    "LeafRoutes",
    "bridge_acl",
    "bridge_plan",
    "leaf_routes",
    "parse_leaves",
]

BRIDGE_USER_PREFIX = "madang-bridge-"
"""A leaf's bridge logs in to an ACL'd hub as ``madang-bridge-{leaf}``."""

NOTIFICATION_TOPIC = "madang/bridge/{leaf}/state"
"""Where Mosquitto publishes a bridge's link state, retained: ``1`` up, ``0`` down."""

# QoS of each topic a leaf carries: the protocol's (docs/mqtt.md, "Topics").
_QOS_IN = {wire.PING_LEVEL: 0, wire.CLOCK_LEVEL: 1}
_QOS_OUT = {"pong": 0, "status": 1, "fired": 0}


@dataclass
class BridgeError(MadangError, ValueError):
    """A bridge layout that cannot be made: what, and what to do."""

    what: str
    hint: str = ""

    def __post_init__(self) -> None:
        Exception.__init__(self, self.what)

    def __str__(self) -> str:
        return f"bridge config: {self.what}" + (f"; {self.hint}" if self.hint else "")


@dataclass(frozen=True, slots=True)
class LeafRoutes:
    """The topic patterns one leaf bridges, each with its QoS: ``inbound`` from the hub to the
    leaf, ``outbound`` from the leaf to the hub, in a stable order."""

    leaf: str
    zones: tuple[str, ...]
    devices: tuple[str, ...]
    inbound: tuple[tuple[str, int], ...]
    outbound: tuple[tuple[str, int], ...]

    def config_lines(self) -> list[str]:
        """Mosquitto ``topic PATTERN in|out QOS`` lines (inside a ``connection`` section)."""
        return [f"topic {t} in {q}" for t, q in self.inbound] + [
            f"topic {t} out {q}" for t, q in self.outbound
        ]


@dataclass(frozen=True)
class BridgePlan:
    """Every leaf's routes and configuration text, by leaf name."""

    hub: str
    routes: Mapping[str, LeafRoutes]
    confs: Mapping[str, str]


def _mqtt_devices(venue: Venue) -> list[Device]:
    return [d for d in venue.devices if d.mqtt is not None]


def parse_leaves(specs: Sequence[str], venue: Venue) -> dict[str, tuple[str, ...]]:
    """``NAME=ZONE[,ZONE...]`` options into leaf -> zones; none: one leaf per zone of the venue's
    MQTT devices, named after it. Every zone with MQTT devices must be on exactly one leaf."""
    zones = sorted({d.zone for d in _mqtt_devices(venue)})
    if not specs:
        return {z: (z,) for z in zones}
    out: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for spec in specs:
        name, eq, rest = spec.partition("=")
        name = name.strip()
        if not eq or not name or not rest.strip():
            raise BridgeError(
                f"--leaf {spec!r} is not NAME=ZONE[,ZONE...]", "e.g. --leaf north=north-bank,bridge"
            )
        if name in out:
            raise BridgeError(f"leaf {name!r} is given twice", "give each leaf once, with all its zones")
        if "/" in name or "+" in name or "#" in name or " " in name:
            raise BridgeError(f"leaf name {name!r} may not hold '/', '+', '#' or blanks", "rename the leaf")
        zs = tuple(z.strip() for z in rest.split(",") if z.strip())
        for z in zs:
            if z not in zones:
                raise BridgeError(
                    f"leaf {name!r}: the venue has no zone {z!r} with MQTT devices",
                    f"its zones are: {', '.join(zones) or '(none)'}",
                )
            if z in seen:
                raise BridgeError(
                    f"zone {z!r} is on leaves {seen[z]!r} and {name!r}", "put each zone on one leaf"
                )
            seen[z] = name
        out[name] = zs
    missing = [z for z in zones if z not in seen]
    if missing:
        raise BridgeError(
            f"zones {', '.join(missing)} are on no leaf",
            "add them to a --leaf (or give no --leaf: one leaf per zone)",
        )
    return out


def leaf_routes(leaf: str, devices: Iterable[Device], *, events: Sequence[str] = ()) -> LeafRoutes:
    """The patterns the leaf named ``leaf`` bridges for ``devices`` (its own devices only).

    ``events``: the shows' trigger filters, bridged out (the controller reads them)."""
    devs = list(devices)
    inbound: dict[str, int] = {wire.STATE_TOPIC: 1}
    outbound: dict[str, int] = {}
    for d in devs:
        for t in device_topics(d):
            # Group topics (cues for all, a zone, a kind; the state) once per leaf; the device's
            # own topics (its cue topic, pings, clock model) once per device.
            level = t.rsplit("/", 1)[-1]
            qos = _QOS_IN.get(level, 1) if t.startswith(d.topic_root + "/") else 1
            inbound.setdefault(t, qos)
        inbound.setdefault(f"{d.topic_root}/{wire.PARAM_LEVEL}/#", 1)
        for t in device_report_topics(d):
            outbound.setdefault(t, _QOS_OUT.get(t.rsplit("/", 1)[-1], 1))
    for f in events:
        validate_filter(f)
        outbound.setdefault(f, 0)
    return LeafRoutes(
        leaf=leaf,
        zones=tuple(sorted({d.zone for d in devs})),
        devices=tuple(d.id for d in devs),
        inbound=tuple(inbound.items()),
        outbound=tuple(outbound.items()),
    )


def _leaf_conf(
    venue: Venue,
    routes: LeafRoutes,
    hub: str,
    *,
    port: int,
    secured: bool,
    folder: str | None,
) -> str:
    lines = [
        f"# Mosquitto 2 leaf broker {routes.leaf!r} of venue {venue.id},",
        "# generated by `madang broker-config --bridge`.",
        f"# Zones: {', '.join(routes.zones)}; {len(routes.devices)} devices join here. It bridges to the hub",
        '# only what its own devices read and write (docs/mqtt.md, "Laying out brokers").',
        "set_tcp_nodelay true",
        "max_queued_messages 100000",
        "persistence false",
    ]
    if secured and folder is not None:
        lines += [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {folder}/passwd",
            f"acl_file {folder}/acl",
        ]
    lines += ["", f"listener {port}"]
    if secured:
        lines.append("use_username_as_clientid true")
    lines += [
        "",
        f"connection madang-leaf-{routes.leaf}",
        f"address {hub}",
        "bridge_protocol_version mqttv311",
        f"remote_clientid {BRIDGE_USER_PREFIX}{routes.leaf}",
        "try_private true",
        "cleansession false",
        "restart_timeout 1 2",
        "keepalive_interval 5",
        "bridge_attempt_unsubscribe false",
        "notifications true",
        f"notification_topic {NOTIFICATION_TOPIC.format(leaf=routes.leaf)}",
    ]
    if secured:
        lines += [
            f"remote_username {BRIDGE_USER_PREFIX}{routes.leaf}",
            f"remote_password REPLACE-WITH-THE-{BRIDGE_USER_PREFIX}{routes.leaf}-PASSWORD-FROM-secrets",
        ]
    lines += routes.config_lines()
    return "\n".join(lines) + "\n"


def bridge_plan(
    venue: Venue,
    hub: str,
    *,
    leaves: Mapping[str, Sequence[str]] | None = None,
    port: int = 1883,
    events: Sequence[str] = (),
    secured: bool = False,
    folder: str | None = None,
    passwords: Mapping[str, str] | None = None,
) -> BridgePlan:
    """Each leaf's routes and Mosquitto configuration for ``venue`` bridged to ``hub``
    (``HOST:PORT``). ``leaves``: leaf -> zones (:func:`parse_leaves`; default one per zone).
    ``secured``: the leaf logs its devices in with the venue's ``passwd``/``acl`` in ``folder``
    (``madang broker-config``) and its bridge logs in to the hub as ``madang-bridge-{leaf}`` with
    its password from ``passwords`` (written into the file) or a placeholder to fill in."""
    host, sep, p = hub.rpartition(":")
    if not sep or not host or not p.isdigit() or not 0 < int(p) < 65536:
        raise BridgeError(
            f"--bridge {hub!r} is not HOST:PORT", "the hub broker's address, e.g. 10.0.0.10:1883"
        )
    layout = dict(leaves) if leaves is not None else parse_leaves((), venue)
    by_zone: dict[str, list[Device]] = {}
    for d in _mqtt_devices(venue):
        by_zone.setdefault(d.zone, []).append(d)
    routes: dict[str, LeafRoutes] = {}
    confs: dict[str, str] = {}
    for name, zones in layout.items():
        devs = [d for z in zones for d in by_zone.get(z, ())]
        r = leaf_routes(name, devs, events=events)
        routes[name] = r
        text = _leaf_conf(venue, r, f"{host}:{p}", port=port, secured=secured, folder=folder)
        pw = (passwords or {}).get(f"{BRIDGE_USER_PREFIX}{name}")
        if pw is not None:
            text = text.replace(f"REPLACE-WITH-THE-{BRIDGE_USER_PREFIX}{name}-PASSWORD-FROM-secrets", pw)
        confs[name] = text
    return BridgePlan(hub=f"{host}:{p}", routes=routes, confs=confs)


def bridge_acl(routes: Iterable[LeafRoutes]) -> str:
    """ACL lines for the hub: each leaf's bridge may read what it bridges in and write what it
    bridges out, nothing else."""
    lines: list[str] = []
    for r in routes:
        lines.append(f"user {BRIDGE_USER_PREFIX}{r.leaf}")
        lines += [f"topic read {t}" for t, _ in r.inbound]
        lines += [f"topic write {t}" for t, _ in r.outbound]
        lines.append(f"topic write {NOTIFICATION_TOPIC.format(leaf=r.leaf)}")
        lines.append("")
    return "\n".join(lines)
