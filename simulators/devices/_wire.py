"""Wire helpers shared by the device cores: bounded JSON, OSC parsing with exact timetags,
NTP time conversion and placeholder substitution (protocol.md, "Limits" and "Timed OSC").

OSC is decoded with python-osc (an implementation independent of the controller's encoder), except
the bundle timetag: python-osc turns it into a float of seconds, which loses nanoseconds, so the
64-bit NTP timetag is read from the bytes here (OSC 1.0: ``#bundle\\0``, 8-byte timetag, then
elements each prefixed by a 32-bit big-endian size).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from pythonosc.osc_message import OscMessage, ParseError
from pythonosc.osc_message_builder import OscMessageBuilder

__all__ = [
    "MAX_DEPTH",
    "MAX_MESSAGE",
    "MAX_STRING",
    "BadInput",
    "OscItem",
    "decode_json",
    "encode_json",
    "encode_osc",
    "ns_to_ntp",
    "ntp_to_ns",
    "parse_osc",
    "substitute",
]

MAX_MESSAGE = 64 * 1024  # protocol.md, "Limits"
MAX_DEPTH = 32
MAX_STRING = 4 * 1024
NTP_UNIX_DELTA_S = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01 (RFC 5905)
TIMETAG_IMMEDIATE = 1
_BUNDLE = b"#bundle\x00"
_json_decoder = msgspec.json.Decoder()
_json_encoder = msgspec.json.Encoder()


class BadInput(ValueError):
    """A message a device drops and counts: ``reason`` is the counter's name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def ns_to_ntp(ns: int) -> int:
    """Unix-epoch nanoseconds to an NTP 64-bit timestamp (rounded to the nearest 2**-32 s)."""
    s, rem = divmod(ns, 1_000_000_000)
    frac = (rem * (1 << 32) + 500_000_000) // 1_000_000_000
    if frac >= 1 << 32:
        s, frac = s + 1, frac - (1 << 32)
    return ((s + NTP_UNIX_DELTA_S) << 32) | frac


def ntp_to_ns(tt: int) -> int:
    """An NTP 64-bit timestamp to Unix-epoch nanoseconds (rounded to the nearest ns)."""
    s = (tt >> 32) - NTP_UNIX_DELTA_S
    frac = tt & 0xFFFFFFFF
    return s * 1_000_000_000 + ((frac * 1_000_000_000 + (1 << 31)) >> 32)


def _check(obj: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BadInput("too_deep")
    if isinstance(obj, str):
        if len(obj) > MAX_STRING:
            raise BadInput("string_too_long")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check(k, depth + 1)
            _check(v, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            _check(v, depth + 1)


def decode_json(data: bytes) -> dict[str, Any]:
    """One JSON object from the wire, bounded (size, depth, string length); raises :class:`BadInput`."""
    if len(data) > MAX_MESSAGE:
        raise BadInput("too_large")
    try:
        obj = _json_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError):
        raise BadInput("bad_json") from None
    if not isinstance(obj, dict):
        raise BadInput("not_an_object")
    # Walk only when a limit could be exceeded: a short message can hold neither a 4 KiB string
    # nor 32 levels of nesting (each level costs at least one bracket).
    if len(data) > MAX_STRING or data.count(b"[") + data.count(b"{") > MAX_DEPTH:
        _check(obj, 1)
    return obj


def encode_json(obj: object) -> bytes:
    """Compact UTF-8 JSON."""
    return _json_encoder.encode(obj)


@dataclass(frozen=True, slots=True)
class OscItem:
    """One OSC message out of a packet, with the timetag of its innermost bundle (None: bare)."""

    address: str
    args: tuple[Any, ...]
    timetag: int | None


def parse_osc(data: bytes) -> list[OscItem]:
    """Every message of a datagram, in order; raises :class:`BadInput` on malformed OSC."""
    if len(data) > MAX_MESSAGE:
        raise BadInput("too_large")
    out: list[OscItem] = []
    _parse(data, None, out, 0)
    return out


def _parse(data: bytes, timetag: int | None, out: list[OscItem], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BadInput("too_deep")
    if data.startswith(_BUNDLE):
        if len(data) < 16:
            raise BadInput("bad_osc")
        (tt,) = struct.unpack(">Q", data[8:16])
        pos = 16
        while pos < len(data):
            if pos + 4 > len(data):
                raise BadInput("bad_osc")
            (size,) = struct.unpack(">i", data[pos : pos + 4])
            pos += 4
            if size <= 0 or size % 4 or pos + size > len(data):
                raise BadInput("bad_osc")
            _parse(data[pos : pos + size], tt, out, depth + 1)
            pos += size
        return
    if not data.startswith(b"/"):
        raise BadInput("bad_osc")
    try:
        msg = OscMessage(data)
        args = tuple(msg.params)
    except (ParseError, struct.error, IndexError, ValueError):  # python-osc raises all of these
        raise BadInput("bad_osc") from None
    for a in args:
        if isinstance(a, str) and len(a) > MAX_STRING:
            raise BadInput("string_too_long")
    out.append(OscItem(msg.address, args, timetag))


def encode_osc(address: str, args: tuple[tuple[Any, str], ...]) -> bytes:
    """One OSC message; ``args`` are ``(value, osc_type)`` pairs such as ``(17, "i")``."""
    b = OscMessageBuilder(address=address)
    for value, t in args:
        b.add_arg(value, arg_type=t)
    return bytes(b.build().dgram)


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_-]*)\}")


def substitute(value: Any, attrs: Mapping[str, str]) -> Any:
    """Replace ``{name}`` placeholders in strings (recursively in lists and dicts) by attributes;
    unknown names are left as written."""
    if isinstance(value, str):
        if "{" not in value:
            return value
        return _PLACEHOLDER.sub(lambda m: attrs.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [substitute(v, attrs) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, attrs) for k, v in value.items()}
    return value
