"""Every message of the device protocol (docs/protocol.md), as the controller encodes and decodes it.

Theory of operation
-------------------
This is the one place where the controller's side of the protocol becomes bytes and bytes become
messages: the ping (over MQTT as JSON, over OSC as ``/madang/ping ,ih``), the clock model, the
cue message with its ``op``, the parameter publish of plain MQTT devices, the retained controller
state, and, coming back, the pong, the status (presence) and the fire report. Nothing else in
``controller/`` writes or parses these formats, so a change here is a change of the protocol.

Every message that commands a device carries the sending controller's *term* (docs/protocol.md,
"Controller terms (hot standby)"): the cue message, the clock model, the retained controller
state (with the controller's id) and the ``/madang/key`` of a timed bundle. A device keeps the
highest term it has seen and drops anything lower, so a controller that has been replaced by one
with a higher term can no longer drive it. The encoders take the term as a required argument:
no command leaves without one. Pings carry none (a standby pings devices while the live
controller drives them), and neither can a plain payload to a third-party topic or address (a
parameter publish, a show's own MQTT payload, a plain OSC message): those are fenced on the
controller's side only (a controller that is no longer live stops sending).

Decoding is for hostile input: :func:`decode_report` and :func:`decode_osc_report` never raise;
anything that is not what the protocol says comes back as :class:`Malformed` with the reason, for
the caller to count. Sizes are bounded before parsing (:data:`MAX_PAYLOAD`, docs/protocol.md
"Limits").

The simulated devices (``simulators/devices``) implement the *device* side independently, from
docs/protocol.md alone, as an outside device maker would: a regression here shows up as devices
that stop answering, not as two copies of one bug agreeing with each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from controller.osc import Typed, encode_message

__all__ = [
    "CLOCK_LEVEL",
    "CUE_TOPIC",
    "DEVICE_COMMANDS",
    "DEVICE_REPORTS",
    "MAX_JSON_DEPTH",
    "MAX_PAYLOAD",
    "MAX_TERM",
    "OFFLINE_STATE",
    "OSC_FIRED",
    "OSC_KEY",
    "OSC_PING",
    "OSC_PONG",
    "PARAM_LEVEL",
    "PING_LEVEL",
    "STATE_TOPIC",
    "ControllerState",
    "Fired",
    "Malformed",
    "Pong",
    "Report",
    "Status",
    "check_term",
    "clock_json",
    "controller_state_json",
    "cue_json",
    "decode_controller_state",
    "decode_osc_report",
    "decode_report",
    "device_cue_topic",
    "json_depth_ok",
    "json_value",
    "key_osc",
    "kind_cue_topic",
    "offline_state_json",
    "param_json",
    "param_topic",
    "ping_json",
    "ping_osc",
    "zone_cue_topic",
]

#: The controller's retained state, and its last will (docs/protocol.md, "Controller state").
STATE_TOPIC = "madang/controller/state"
#: The group cue topic of every ``app`` device; zone, kind and device topics hang below it.
CUE_TOPIC = "madang/cue"
#: What a device publishes under its topic root for the controller (QoS 0, docs/protocol.md):
#: its pongs, its presence (``ready``, the ``alive`` heartbeat, the ``offline`` will) on
#: ``status``, and its fire reports.
DEVICE_REPORTS = ("pong", "status", "fired")
#: Under a device's topic root, the controller's pings and the device's clock model.
PING_LEVEL = "ping"
CLOCK_LEVEL = "clock"
#: What the controller publishes under a device's topic root: pings and the clock model.
DEVICE_COMMANDS = (PING_LEVEL, CLOCK_LEVEL)
#: Under a device's root, ``param/{name}``: the parameter publishes of plain MQTT devices.
PARAM_LEVEL = "param"


def zone_cue_topic(zone: str) -> str:
    """The cue topic of every ``app`` device of ``zone``: ``madang/cue/zone/{zone}``."""
    return f"{CUE_TOPIC}/zone/{zone}"


def kind_cue_topic(kind: str) -> str:
    """The cue topic of every ``app`` device of ``kind``: ``madang/cue/kind/{kind}``."""
    return f"{CUE_TOPIC}/kind/{kind}"


def device_cue_topic(device_id: str) -> str:
    """The cue topic of one ``app`` device: ``madang/cue/dev/{id}``."""
    return f"{CUE_TOPIC}/dev/{device_id}"


def param_topic(root: str, param: str) -> str:
    """Where a plain MQTT device under ``root`` gets parameter ``param``: ``{root}/param/{param}``."""
    return f"{root}/{PARAM_LEVEL}/{param}"


#: The largest message the controller parses (docs/protocol.md, "Limits").
MAX_PAYLOAD = 64 * 1024
MAX_JSON_DEPTH = 32
"""JSON nested deeper than this (arrays and objects) is malformed, refused before decoding: a
5,000-deep array would otherwise exhaust the decoder's recursion (docs/protocol.md)."""
_JSON_STRUCT = re.compile(rb'[\\"\[\]{}]')

OSC_PING = "/madang/ping"
OSC_PONG = "/madang/pong"
OSC_FIRED = "/madang/fired"
OSC_KEY = "/madang/key"

#: The highest term: it travels as an OSC int32 in ``/madang/key ,sii show seq term``.
MAX_TERM = 0x7FFFFFFF

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()

#: ``{"state": "offline"}``: the controller's last will and its final retained state, without
#: a term (see :func:`offline_state_json` for one that says whose it is).
OFFLINE_STATE = _enc.encode({"state": "offline"})


def check_term(term: int) -> int:
    """``term`` if it is a valid controller term (an integer from 1 to :data:`MAX_TERM`), else
    ValueError saying so: a term travels as JSON and as an OSC int32 (docs/protocol.md)."""
    if isinstance(term, bool) or not isinstance(term, int) or not 1 <= term <= MAX_TERM:
        raise ValueError(
            f"a controller term is an integer from 1 to {MAX_TERM} (an OSC int32), got {term!r:.40}"
        )
    return term


# -- what devices send ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pong:
    """The device's answer to ping ``seq``: the ping's ``t1`` (show clock) and its own ``t2`` (on
    receipt) and ``t3`` (before sending), RFC 5905's on-wire exchange."""

    seq: int
    t1: int
    t2: int
    t3: int


@dataclass(frozen=True, slots=True)
class Status:
    """Presence: ``ready`` (connected and subscribed), ``alive`` (heartbeat), ``offline`` (will);
    ``boot`` is the device's boot instant on its own clock, when it says."""

    state: str
    boot: int | None


@dataclass(frozen=True, slots=True)
class Fired:
    """A fire report: ``seq`` of the action, ``local`` (device clock) when it fired, and whether the
    device had a clock model then (``synced``). Each field is ``None`` when the device left it out;
    the report still counts as an acknowledgement."""

    seq: int | None
    local: int | None
    synced: bool
    show: str | None = None  # the show part of the key it executed (names the take), when it says


@dataclass(frozen=True, slots=True)
class Malformed:
    """Something that is not a protocol message; ``parsed`` is True when it was valid JSON (or
    OSC) but not the message its topic (or address) names."""

    reason: str
    parsed: bool = False


Report = Pong | Status | Fired


@dataclass(frozen=True, slots=True)
class ControllerState:
    """The retained controller state as another controller reads it (a standby watching the live
    one, the witness of who is in charge): its ``state``, ``term`` and ``controller`` id. ``term``
    is ``None`` when the message has none (a controller older than terms, or a will without one);
    ``controller`` is ``""`` when it does not say."""

    state: str
    term: int | None
    controller: str


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def json_depth_ok(payload: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``payload`` nests arrays and objects at most ``limit`` deep (brackets inside strings
    do not count). Cheap: most payloads have fewer brackets than the limit and are not scanned."""
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return True
    depth, in_str, skip = 0, False, -1
    for m in _JSON_STRUCT.finditer(payload):
        i = m.start()
        if i == skip:
            continue
        c = payload[i]
        if in_str:
            if c == 0x5C:  # a backslash escapes the next byte
                skip = i + 1
            elif c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return False
        elif c in (0x5D, 0x7D):
            depth -= 1
    return True


def _decode_json(payload: bytes) -> object:
    """Bounded JSON: size and depth checked before decoding; raises :class:`_Bad` with the reason."""
    if len(payload) > MAX_PAYLOAD:
        raise _Bad(f"{len(payload)} bytes; the limit is {MAX_PAYLOAD}")
    if not json_depth_ok(payload):
        raise _Bad(f"nested deeper than {MAX_JSON_DEPTH}")
    try:
        return _dec.decode(payload)
    except msgspec.DecodeError as err:
        raise _Bad(f"not JSON: {err}") from None
    except RecursionError:  # unreachable past json_depth_ok; never let it out of a callback
        raise _Bad(f"nested deeper than {MAX_JSON_DEPTH}") from None


class _Bad(Exception):
    """Why a payload is not JSON we read (becomes :class:`Malformed`)."""


def decode_report(kind: str, payload: bytes) -> Report | Malformed:
    """A device's ``<root>/<kind>`` MQTT message (``kind`` in :data:`DEVICE_REPORTS`)."""
    try:
        body = _decode_json(payload)
    except _Bad as bad:
        return Malformed(str(bad))
    if not isinstance(body, dict):
        return Malformed(f"a JSON {type(body).__name__}, not an object")
    if kind == "pong":
        try:
            return Pong(int(body["seq"]), int(body["t1"]), int(body["t2"]), int(body["t3"]))
        except (KeyError, TypeError, ValueError):
            return Malformed("a pong needs integer seq, t1, t2 and t3", parsed=True)
    if kind == "status":
        state = body.get("state")
        if not isinstance(state, str):
            return Malformed("a status needs a string state", parsed=True)
        boot = body.get("boot")
        return Status(state, boot if _is_int(boot) else None)
    if kind == "fired":
        seq, local, show = body.get("seq"), body.get("local"), body.get("show")
        return Fired(
            seq if _is_int(seq) else None,
            local if _is_int(local) else None,
            body.get("synced") is True,
            show if isinstance(show, str) else None,
        )
    return Malformed(f"unknown report {kind!r}", parsed=True)


def decode_controller_state(payload: bytes) -> ControllerState | Malformed:
    """A ``madang/controller/state`` message (another controller's, or this one's retained copy).
    Never raises: anything that is not one comes back as :class:`Malformed`."""
    try:
        body = _decode_json(payload)
    except _Bad as bad:
        return Malformed(str(bad))
    if not isinstance(body, dict):
        return Malformed(f"a JSON {type(body).__name__}, not an object")
    state, term, controller = body.get("state"), body.get("term"), body.get("controller", "")
    if not isinstance(state, str):
        return Malformed("a controller state needs a string state", parsed=True)
    if term is not None and not (_is_int(term) and 1 <= term <= MAX_TERM):
        return Malformed(f"a controller state's term must be an integer from 1 to {MAX_TERM}", parsed=True)
    if not isinstance(controller, str):
        return Malformed("a controller state's controller must be a string", parsed=True)
    return ControllerState(state, term, controller)


def decode_osc_report(address: str, args: Sequence[object]) -> Report | Malformed | None:
    """A device's OSC message: ``/madang/pong ,ihhh`` or ``/madang/fired ,ih``; ``None`` for any
    other address (an event, not a protocol message). A timetag device fires against its own
    clock, so its reports count as ``synced``."""
    if address == OSC_PONG:
        if len(args) == 4 and all(_is_int(a) for a in args):
            seq, t1, t2, t3 = (int(a) for a in args)  # type: ignore[call-overload]
            return Pong(seq, t1, t2, t3)
        return Malformed("/madang/pong needs four integers: seq t1 t2 t3", parsed=True)
    if address == OSC_FIRED:
        if len(args) == 2 and all(_is_int(a) for a in args):
            seq, local = (int(a) for a in args)  # type: ignore[call-overload]
            return Fired(seq, local, True)
        return Malformed("/madang/fired needs two integers: seq local", parsed=True)
    return None


# -- what the controller sends ----------------------------------------------------------------


def ping_json(seq: int, t1: int) -> bytes:
    """``{"seq": seq, "t1": t1}`` for ``<root>/ping`` (MQTT, WebSocket)."""
    return _enc.encode({"seq": seq, "t1": t1})


def ping_osc(seq: int, t1: int) -> bytes:
    """``/madang/ping ,ih seq t1``: ``seq`` as a 31-bit int32, ``t1`` always as int64 (``h``)."""
    return encode_message(OSC_PING, [Typed("i", seq & 0x7FFFFFFF), Typed("h", t1)])


def clock_json(epoch: int, offset_ns: int, drift_ppb: int, uncertainty_ns: int, *, term: int) -> bytes:
    """A clock model for ``<root>/clock`` (docs/protocol.md, "The clock model"), sent under ``term``."""
    return _enc.encode(
        {
            "epoch": epoch,
            "offset_ns": offset_ns,
            "drift_ppb": drift_ppb,
            "uncertainty_ns": uncertainty_ns,
            "term": term,
        }
    )


def cue_json(
    show: str, cue: str, seq: int, at_ns: int, show_ns: int, op: Mapping[str, Any], *, term: int
) -> bytes:
    """A cue message: ``op`` (``mqtt``, ``fade``, ``state`` or ``panic``) due at show-clock ``at_ns``,
    sent under ``term``."""
    return _enc.encode(
        {"show": show, "cue": cue, "seq": seq, "at": at_ns, "show_ns": show_ns, "op": op, "term": term}
    )


def param_json(param: str, value: object) -> bytes:
    """``{"param": ..., "value": ...}``: a parameter value for a plain MQTT device."""
    return _enc.encode({"param": param, "value": value})


def json_value(value: object) -> bytes:
    """A show's own JSON payload (an MQTT action's ``payload``), as it goes on the wire."""
    return _enc.encode(value)


def key_osc(show: str, seq: int, term: int) -> bytes:
    """``/madang/key ,sii show seq term``: the idempotency key at the head of a timed bundle, with
    the term it is sent under (an OSC int32)."""
    return encode_message(OSC_KEY, [show, seq, Typed("i", term)])


def controller_state_json(
    *,
    state: str,
    show: str,
    cue: str | None,
    standby: str | None,
    show_ns: int | None,
    at: int,
    rate: float,
    seq: int,
    term: int,
    controller: str,
    web: Sequence[str] = (),
) -> bytes:
    """The retained controller state (docs/protocol.md, "Controller state and late join"), with
    the ``term`` of the controller that sends it and its id (``controller``): the witness of
    which controller is in charge ("Controller terms (hot standby)"); ``web``, when given, the web
    servers of every controller of a hot-standby pair (``http://host:port``, this one first), where
    a WebSocket device reconnects ("WebSocket")."""
    body: dict[str, object] = {
        "state": state,
        "show": show,
        "cue": cue,
        "standby": standby,
        "show_ns": show_ns,
        "at": at,
        "rate": rate,
        "seq": seq,
        "term": term,
        "controller": controller,
    }
    if web:
        body["web"] = list(web)
    return _enc.encode(body)


def offline_state_json(*, term: int, controller: str) -> bytes:
    """``{"state": "offline", "term": ..., "controller": ...}``: a controller's last will and final
    retained state that says whose they are, so that a device (or a standby reading the witness)
    can tell a deposed controller's will from the live one's."""
    return _enc.encode({"state": "offline", "term": term, "controller": controller})
