"""Delivery by capability: what the engine says must *happen* at an instant becomes what must be
*sent*, when, to whom, as which bytes.

Theory of operation
-------------------
The engine (:mod:`controller.engine`) decides that an effect takes place on some devices at a
show-clock instant. Sending at that instant cannot be in sync (fan-out and Wi-Fi take tens to
hundreds of milliseconds), so this module, pure and with ``now`` passed in, plans sends ahead of
time according to each device's ``sync`` capability (docs/protocol.md):

``app``
    One JSON cue message per *group topic* (``madang/cue``, ``madang/cue/zone/{zone}``, ...)
    naming the show-clock instant; the device maps it through its clock model. Sent ``lead``
    ahead and repeated once halfway through the lead window (devices deduplicate by key).
``timetag``
    An OSC bundle whose timetag is the instant translated into the device's own clock through its
    clock model, sent ``lead`` ahead. A timetag is never computed without a settled model: a
    device with none yet (or degraded by the operator, or whose model predicts a worse landing
    than its path on receipt would) is sent the bundle with the OSC 1.0 "immediately" timetag,
    early by its measured one-way delay (or its venue ``latency``), like an ``echo`` device, and
    the send is marked ``degraded`` for telemetry.
``echo``
    A plain OSC message or MQTT publish sent early by the measured one-way delay.
``none``
    A plain message sent early by the venue's configured ``latency``.

Sends that must leave at a precise instant (``echo`` and ``none``) are marked ``precise``: the
runtime hands them to the firing edge (:mod:`controller.edge`) instead of the event loop.

Every cue message and every ``/madang/key`` is stamped with the controller's *term*, read when
the message is encoded (``term``: the core's current one), so that a term claimed mid-show
(a standby taking over) applies to the very next message (docs/protocol.md, "Controller terms
(hot standby)"). Plain messages to ``echo`` and ``none`` devices, parameter publishes and a
show's own MQTT payloads cannot carry one: they are fenced on the controller's side only.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, Protocol

from controller import wire
from controller.osc import encode_bundle, encode_message
from cues.timeline import Ease, JsonValue, OscArg
from venues.model import Device, Sync, Venue

__all__ = ["ClockView", "Delivery", "Key", "Kind", "MqttPublish", "Send", "UdpSend", "restamp", "substitute"]

Key = tuple[str, str, int]  # (show, cue, seq): the idempotency key
MS = 1_000_000

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_-]*)\}")


class Kind(enum.Enum):
    """What a send carries, so that no driver has to parse the bytes the core produced."""

    CUE = "cue"  # an action: an app cue message, an OSC message or bundle, a plain MQTT publish
    FRAME = "frame"  # one value of a streamed fade
    STATE = "state"  # catch-up state (late join, seek)
    SAFE = "safe"  # safe state or panic
    PING = "ping"  # a clock-sync ping (``seq``; re-stamp it with :func:`restamp` as it leaves)
    CLOCK = "clock"  # a device's clock model
    CONTROLLER = "controller"  # the retained controller state


@dataclass(frozen=True, slots=True, kw_only=True)
class UdpSend:
    """One datagram to one device's OSC endpoint."""

    at_ns: int  # show-clock instant to put it on the wire
    device: str
    addr: tuple[str, int]
    data: bytes
    kind: Kind
    precise: bool = False  # must leave at ``at_ns`` (firing edge), not merely before it
    key: Key | None = None  # the action it carries, so a Cancel can withdraw it
    due_ns: int | None = None  # the show-clock instant the device is to act (cues)
    timetag: int | None = None  # a bundle's NTP timetag, in the device's own clock
    seq: int | None = None  # a ping's sequence number
    degraded: bool = False  # a timetag device's cue sent on receipt: it had no settled model


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttPublish:
    """One MQTT publish; ``device`` is None for a group topic."""

    at_ns: int
    topic: str
    payload: bytes
    kind: Kind
    qos: int = 0
    retain: bool = False
    device: str | None = None
    precise: bool = False
    key: Key | None = None
    due_ns: int | None = None  # the show-clock instant the devices are to act (cue messages)
    seq: int | None = None  # a ping's sequence number


Send = UdpSend | MqttPublish


def restamp(send: Send, t1: int) -> bytes:
    """A ping's bytes stamped ``t1``: a driver calls this as the ping leaves, so that ``t1`` is as
    close to the wire as it can make it (RFC 5905's on-wire exchange wants the send instant)."""
    assert send.kind is Kind.PING and send.seq is not None
    if isinstance(send, UdpSend):
        return wire.ping_osc(send.seq, t1)
    return wire.ping_json(send.seq, t1)


class ClockView(Protocol):
    """What delivery needs from the clock models (:mod:`controller.sync`)."""

    def to_device(self, device: str, ref_ns: int) -> int | None:
        """The device-clock reading at show-clock instant ``ref_ns``; None without a model."""
        ...

    def one_way_ns(self, device: str) -> int | None:
        """The device's measured one-way delay (a high percentile); None without samples."""
        ...

    def lead_ns(self, device: str) -> int | None:
        """How far ahead to send to this device; None without a model."""
        ...

    def predicted_error_ns(self, device: str, at_ns: int) -> int | None:
        """How far from ``at_ns`` a cue timed by the model is predicted to land; None while the
        device has no settled model."""
        ...

    def receipt_error_ns(self, device: str) -> int | None:
        """How far from its instant a cue sent on receipt is predicted to land; None unmeasured."""
        ...


class _NoModels:
    def to_device(self, device: str, ref_ns: int) -> int | None:
        return None

    def one_way_ns(self, device: str) -> int | None:
        return None

    def lead_ns(self, device: str) -> int | None:
        return None

    def predicted_error_ns(self, device: str, at_ns: int) -> int | None:
        return None

    def receipt_error_ns(self, device: str) -> int | None:
        return None


def substitute(text: str, attrs: Mapping[str, str]) -> str:
    """Replace ``{name}`` placeholders with device attributes; unknown names stay as written."""
    if "{" not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: attrs.get(m.group(1), m.group(0)), text)


def _subst_json(value: JsonValue, attrs: Mapping[str, str]) -> JsonValue:
    if isinstance(value, str):
        return substitute(value, attrs)
    if isinstance(value, list):
        return [_subst_json(v, attrs) for v in value]
    if isinstance(value, dict):
        return {k: _subst_json(v, attrs) for k, v in value.items()}
    return value


def _has_placeholder(value: object) -> bool:
    if isinstance(value, str):
        return "{" in value
    if isinstance(value, list | tuple):
        return any(_has_placeholder(v) for v in value)
    if isinstance(value, dict):
        return any(_has_placeholder(v) for v in value.values())
    return False


def _attrs(dev: Device) -> dict[str, str]:
    out = {"id": dev.id, "device": dev.id, "kind": dev.kind, "zone": dev.zone}
    out.update(dev.attrs)
    return out


class Delivery:
    """Plans sends for engine effects. Pure: every method takes ``now`` and returns sends."""

    def __init__(
        self,
        venue: Venue,
        show_id: str,
        *,
        models: ClockView | None = None,
        app_lead_ns: int = 400 * MS,
        timetag_lead_ns: int = 150 * MS,
        endpoints: Mapping[str, tuple[str, int]] | None = None,
        budget_ns: int | None = None,
        degraded: Set[str] = frozenset(),
        term: Callable[[], int] = lambda: 1,
        min_timetag_lead_ns: int = 0,
    ) -> None:
        self.venue = venue
        self.show_id = show_id
        # The controller's current term, read as each message is encoded (never a copy: a claim
        # of a higher term mid-show must reach the very next message).
        self.term = term
        self.models: ClockView = models or _NoModels()
        # A settled model over this budget is still used unless on receipt would land closer.
        self.budget_ns = budget_ns
        self.degraded = degraded  # played on receipt by the operator's choice (the sync gate's set)
        self.app_lead_ns = app_lead_ns
        self.timetag_lead_ns = timetag_lead_ns
        # A timed bundle leaves at least this long ahead (a hot-standby pair: longer than a
        # takeover, so that what falls due while the standby takes over is already on the
        # screens); else a delay tail ahead, so that a pause can still withdraw most of it.
        self.min_timetag_lead_ns = min_timetag_lead_ns
        self._endpoints = dict(endpoints or {})
        self._attrs = {d.id: _attrs(d) for d in venue.devices}
        app = [d for d in venue.devices if d.sync is Sync.APP and (d.mqtt or d.ws)]
        self._app_all = frozenset(d.id for d in app)
        self._app_by_zone: dict[str, frozenset[str]] = {}
        self._app_by_kind: dict[str, frozenset[str]] = {}
        for d in app:
            self._app_by_zone.setdefault(d.zone, frozenset())
            self._app_by_kind.setdefault(d.kind, frozenset())
        for zone in self._app_by_zone:
            self._app_by_zone[zone] = frozenset(d.id for d in app if d.zone == zone)
        for kind in self._app_by_kind:
            self._app_by_kind[kind] = frozenset(d.id for d in app if d.kind == kind)

    # -- helpers -----------------------------------------------------------------------------

    def endpoint(self, dev: Device) -> tuple[str, int] | None:
        """The device's OSC endpoint, after any simulator/rehearsal override."""
        if dev.id in self._endpoints:
            return self._endpoints[dev.id]
        if dev.osc is None:
            return None
        return (dev.osc.host, dev.osc.port)

    def _timed(self, device: str, at_ns: int) -> bool:
        """Whether a timetag device's cue at ``at_ns`` is timed by its clock model: it has a
        settled one, is not degraded, and the model's predicted error is within the budget or
        no worse than its path's on receipt."""
        if device in self.degraded:
            return False
        err = self.models.predicted_error_ns(device, at_ns)
        if err is None:
            return False
        if self.budget_ns is None or err <= self.budget_ns:
            return True
        receipt = self.models.receipt_error_ns(device)
        return receipt is None or err <= receipt

    def _early_ns(self, dev: Device) -> int:
        """How early an on-receipt device must be sent to, to execute at the instant: the
        measured one-way delay (``echo``, and a ``timetag`` device played on receipt), else the
        venue's ``latency``."""
        if dev.sync in (Sync.ECHO, Sync.TIMETAG):
            measured = self.models.one_way_ns(dev.id)
            if measured is not None:
                return measured
        return dev.latency_ns

    def group_topics(self, devices: Iterable[str]) -> list[str]:
        """The fewest cue topics that reach exactly these ``app`` devices (docs/protocol.md)."""
        want = frozenset(d for d in devices if d in self._app_all)
        if not want:
            return []
        if want == self._app_all:
            return [wire.CUE_TOPIC]
        # Greedy, zones first and kinds first: the shorter wins (an audience of one kind that
        # shares its zones with headsets is one kind topic, not a zone and a topic per phone).
        zones = [(wire.zone_cue_topic(z), ids) for z, ids in self._app_by_zone.items()]
        kinds = [(wire.kind_cue_topic(k), ids) for k, ids in self._app_by_kind.items()]
        best: list[str] | None = None
        for order in (zones + kinds, kinds + zones):
            topics: list[str] = []
            left = set(want)
            for topic, ids in order:
                if ids and ids <= left:
                    topics.append(topic)
                    left -= ids
            if best is not None and len(topics) + len(left) >= len(best):
                continue
            topics.extend(wire.device_cue_topic(d) for d in sorted(left))
            best = topics
        assert best is not None
        return best

    def _cue_message(self, key: Key, at_ns: int, show_ns: int, op: dict[str, Any]) -> bytes:
        return wire.cue_json(key[0], key[1], key[2], at_ns, show_ns, op, term=self.term())

    def _app_sends(
        self,
        key: Key,
        at_ns: int,
        show_ns: int,
        devices: Sequence[str],
        op: dict[str, Any],
        qos: int,
        now: int,
    ) -> list[Send]:
        topics = self.group_topics(devices)
        if not topics:
            return []
        lead = self._group_lead(devices)
        first = max(now, at_ns - lead)
        payload = self._cue_message(key, at_ns, show_ns, op)
        out: list[Send] = [
            MqttPublish(at_ns=first, topic=t, payload=payload, kind=Kind.CUE, qos=qos, due_ns=at_ns)
            for t in topics
        ]
        repeat = at_ns - lead // 2
        if repeat > first + 5 * MS:
            out.extend(
                MqttPublish(at_ns=repeat, topic=t, payload=payload, kind=Kind.CUE, qos=qos, due_ns=at_ns)
                for t in topics
            )
        return out

    def _group_lead(self, devices: Sequence[str]) -> int:
        lead = self.app_lead_ns
        for d in devices:
            m = self.models.lead_ns(d)
            if m is not None and m > lead:
                lead = m
        return lead

    def _osc_to(
        self, dev: Device, at_ns: int, key: Key, message: bytes, now: int, *, keyed: bool = True
    ) -> UdpSend | None:
        """One message to one OSC device. ``keyed``: timetag bundles carry ``/madang/key`` (not for
        fade frames, which share their action's key and must not be deduplicated away)."""
        ep = self.endpoint(dev)
        if ep is None:
            return None
        if dev.sync is Sync.TIMETAG:
            elements = [wire.key_osc(key[0], key[2], self.term()), message] if keyed else [message]
            local = self.models.to_device(dev.id, at_ns) if self._timed(dev.id, at_ns) else None
            if local is None:
                # No timetag from a guess: "immediately" (OSC 1.0), sent early by the delay.
                return UdpSend(
                    at_ns=max(now, at_ns - self._early_ns(dev)),
                    device=dev.id,
                    addr=ep,
                    data=encode_bundle(wire.NTP_IMMEDIATELY, elements),
                    kind=Kind.CUE if keyed else Kind.FRAME,
                    precise=True,
                    due_ns=at_ns,
                    degraded=True,
                )
            tag = wire.ns_to_ntp(local)
            lead = max(self.models.lead_ns(dev.id) or self.timetag_lead_ns, self.min_timetag_lead_ns)
            return UdpSend(
                at_ns=max(now, at_ns - lead),
                device=dev.id,
                addr=ep,
                data=encode_bundle(tag, elements),
                kind=Kind.CUE if keyed else Kind.FRAME,
                due_ns=at_ns,
                timetag=tag,
            )
        return UdpSend(
            at_ns=max(now, at_ns - self._early_ns(dev)),
            device=dev.id,
            addr=ep,
            data=message,
            kind=Kind.CUE if keyed else Kind.FRAME,
            precise=True,
            due_ns=at_ns,
        )

    # -- effects -----------------------------------------------------------------------------

    def osc(
        self, key: Key, at_ns: int, devices: Sequence[str], address: str, args: Sequence[OscArg], now: int
    ) -> list[Send]:
        """An OSC message on each device (OSC devices only; others are skipped)."""
        shared = (
            None
            if _has_placeholder(address) or _has_placeholder(list(args))
            else (encode_message(address, list(args)))
        )
        out: list[Send] = []
        for did in devices:
            dev = self.venue.device(did)
            if dev.osc is None and did not in self._endpoints:
                continue
            msg = shared
            if msg is None:
                a = self._attrs[did]
                msg = encode_message(
                    substitute(address, a), [substitute(x, a) if isinstance(x, str) else x for x in args]
                )
            s = self._osc_to(dev, at_ns, key, msg, now)
            if s is not None:
                out.append(s)
        return out

    def mqtt(
        self,
        key: Key,
        at_ns: int,
        show_ns: int,
        devices: Sequence[str],
        topic: str,
        payload: JsonValue,
        qos: int,
        retain: bool,
        now: int,
    ) -> list[Send]:
        """An MQTT action: one timed cue message for ``app`` devices, raw publishes for the rest."""
        app = [d for d in devices if d in self._app_all]
        out: list[Send] = self._app_sends(
            key, at_ns, show_ns, app, {"mqtt": {"topic": topic, "payload": payload}}, qos, now
        )
        plain = [d for d in devices if d not in self._app_all and self.venue.device(d).mqtt is not None]
        if not plain:
            return out
        if not _has_placeholder(topic) and not _has_placeholder(payload):
            # One publish serves every plain subscriber of a fixed topic: send for the earliest.
            early = max(self._early_ns(self.venue.device(d)) for d in plain)
            out.append(
                MqttPublish(
                    at_ns=max(now, at_ns - early),
                    topic=topic,
                    payload=wire.json_value(payload),
                    kind=Kind.CUE,
                    qos=qos,
                    retain=retain,
                    precise=True,
                    due_ns=at_ns,
                )
            )
            return out
        for did in plain:
            a = self._attrs[did]
            dev = self.venue.device(did)
            out.append(
                MqttPublish(
                    at_ns=max(now, at_ns - self._early_ns(dev)),
                    topic=substitute(topic, a),
                    payload=wire.json_value(_subst_json(payload, a)),
                    kind=Kind.CUE,
                    qos=qos,
                    retain=retain,
                    device=did,
                    precise=True,
                    due_ns=at_ns,
                )
            )
        return out

    def ramp(
        self,
        key: Key,
        at_ns: int,
        show_ns: int,
        devices: Sequence[str],
        param: str,
        start: float | None,
        end: float,
        duration_ns: int,
        ease: Ease,
        now: int,
    ) -> list[Send]:
        """A fade as one ramp description, for devices that interpolate themselves."""
        op = {
            "fade": {
                "param": param,
                "from": start,
                "to": end,
                "duration_ns": duration_ns,
                "ease": {"kind": ease.kind, "params": list(ease.params)},
            }
        }
        return self._app_sends(key, at_ns, show_ns, devices, op, 1, now)

    def frame(
        self,
        key: Key,
        at_ns: int,
        devices: Sequence[str],
        param: str,
        value: float,
        address: str | None,
        topic: str | None,
        now: int,
    ) -> list[Send]:
        """One value of a streamed fade, due at ``at_ns``, on each device."""
        out: list[Send] = []
        addr_t = address or f"/{param}"
        for did in devices:
            dev = self.venue.device(did)
            a = self._attrs[did]
            if dev.osc is not None or did in self._endpoints:
                s = self._osc_to(
                    dev, at_ns, key, encode_message(substitute(addr_t, a), [float(value)]), now, keyed=False
                )
                if s is not None:
                    out.append(s)
            elif dev.mqtt is not None:
                at = max(now, at_ns - self._early_ns(dev))
                t = substitute(topic, a) if topic else None
                out.append(
                    self._param_publish(
                        dev, param, value, at, Kind.FRAME, topic=t, qos=0, precise=True, due_ns=at_ns
                    )
                )
        return out

    def state(
        self,
        device: str,
        params: Mapping[str, float | int | str],
        osc: Mapping[str, Sequence[OscArg]],
        mqtt: Mapping[str, JsonValue],
        now: int,
        key: Key,
    ) -> list[Send]:
        """Catch-up state for one device (seek, late join), to be applied on receipt."""
        dev = self.venue.device(device)
        out: list[Send] = []
        if device in self._app_all:
            op = {"state": {"params": dict(params), "mqtt": dict(mqtt)}}
            payload = self._cue_message(key, now, 0, op)
            out.append(
                MqttPublish(
                    at_ns=now,
                    topic=wire.device_cue_topic(device),
                    payload=payload,
                    kind=Kind.STATE,
                    qos=1,
                    device=device,
                )
            )
            return out
        ep = self.endpoint(dev)
        if ep is not None:
            a = self._attrs[device]
            for address, args in osc.items():
                data = encode_message(substitute(address, a), list(args))
                out.append(UdpSend(at_ns=now, device=device, addr=ep, data=data, kind=Kind.STATE))
            for param, value in params.items():
                if isinstance(value, int | float) and not isinstance(value, bool) and f"/{param}" not in osc:
                    data = encode_message(f"/{param}", [float(value)])
                    out.append(UdpSend(at_ns=now, device=device, addr=ep, data=data, kind=Kind.STATE))
        elif dev.mqtt is not None:
            a = self._attrs[device]
            for t, p in mqtt.items():
                out.append(
                    MqttPublish(
                        at_ns=now,
                        topic=substitute(t, a),
                        payload=wire.json_value(_subst_json(p, a)),
                        kind=Kind.STATE,
                        qos=1,
                        device=device,
                    )
                )
            # Where fades left it, as safe() sends it.
            out.extend(
                self._param_publish(dev, param, value, now, Kind.STATE) for param, value in params.items()
            )
        return out

    def safe(self, devices: Iterable[str], now: int, key: Key) -> list[Send]:
        """Every device to its safe state *now* (panic, stop): no lead, no timetag."""
        out: list[Send] = []
        ids = list(devices)
        app = [d for d in ids if d in self._app_all]
        if app:
            payload = self._cue_message(key, now, 0, {"panic": {}})
            out.extend(
                MqttPublish(at_ns=now, topic=t, payload=payload, kind=Kind.SAFE, qos=1)
                for t in self.group_topics(app)
            )
        for did in ids:
            if did in self._app_all:
                continue
            dev = self.venue.device(did)
            safe = dev.safe or {"brightness": 0}
            ep = self.endpoint(dev)
            for param, value in safe.items():
                v: OscArg = float(value) if isinstance(value, int | float) else value
                if ep is not None:
                    data = encode_message(f"/{param}", [v])
                    out.append(UdpSend(at_ns=now, device=did, addr=ep, data=data, kind=Kind.SAFE))
                elif dev.mqtt is not None:
                    out.append(self._param_publish(dev, param, value, now, Kind.SAFE))
        return out

    def _param_publish(
        self,
        dev: Device,
        param: str,
        value: float | int | str,
        at_ns: int,
        kind: Kind,
        *,
        topic: str | None = None,
        qos: int = 1,
        precise: bool = False,
        due_ns: int | None = None,
    ) -> MqttPublish:
        """A parameter value for a plain MQTT device: ``{"param", "value"}`` on ``topic``, by
        default ``<its topic root>/param/<param>`` (docs/protocol.md)."""
        return MqttPublish(
            at_ns=at_ns,
            topic=topic or wire.param_topic(dev.topic_root, param),
            payload=wire.param_json(param, value),
            kind=kind,
            qos=qos,
            device=dev.id,
            precise=precise,
            due_ns=due_ns,
        )
