"""OSC 1.0 encoding and decoding: pure, no I/O, fast on the hot path.

Theory of operation
-------------------
Three ways to make a packet, from general to fast:

- :func:`encode_message` / :func:`encode_bundle` build any message or bundle from Python values.
  Type tags are inferred (``int`` -> ``i``, or ``h`` outside int32; ``float`` -> ``f``; ``str`` ->
  ``s``; ``bytes`` -> ``b``; ``True``/``False`` -> ``T``/``F``; ``None`` -> ``N``) or forced with
  :class:`Typed` (``Typed("d", 0.1)`` for a float64). Validated addresses are cached, so a repeated
  address costs a dict lookup.
- :class:`MessageTemplate` is built once per (address, type tags) when every argument has a fixed
  width (``i h f d t c`` plus the payload-free ``T F N I``). The address and tag string are encoded
  and validated once; :meth:`MessageTemplate.encode` packs the numbers with one precompiled
  ``struct.Struct`` behind that prefix (~0.1 us). That is what a per-frame fade stream uses.
- :class:`BundleTemplate` does the same for a bundle: the timetag and each templated element's
  values are packed between constant runs joined at construction.

Templates hold no mutable buffer, so they may be shared between threads.

:func:`decode_packet` parses what the network sends us (pongs, the control port). Input is
hostile until parsed: every length is checked against the bytes that remain, nesting of bundles is
bounded, the work is linear in the packet size, and anything malformed raises
:class:`OscDecodeError` (and nothing else) saying what and at which byte offset.

Wire format (OSC 1.0 specification): every field is big-endian and 4-byte aligned. A string is its
bytes, a NUL, then NULs up to a multiple of 4. A blob is an int32 size, the bytes, then padding. A
bundle is ``#bundle\\0``, a 64-bit NTP timetag (1 = immediately), then elements, each an int32
size and a message or bundle. Strings are encoded as UTF-8 (OSC 1.0 says ASCII; UTF-8 is its
superset and what most receivers accept); addresses must be printable ASCII.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from cues.timeline import OscArg, OscTyped
from venues.errors import MadangError
from venues.names import Rule, osc_address_faults

__all__ = [
    "BUNDLE_TAG",
    "IMMEDIATELY",
    "BundleTemplate",
    "EncodableArg",
    "MessageTemplate",
    "OscBundle",
    "OscDecodeError",
    "OscEncodeError",
    "OscMessage",
    "OscValue",
    "Typed",
    "decode_packet",
    "encode_bundle",
    "encode_message",
    "messages",
    "validate_address",
]

#: The OSC 1.0 timetag meaning "immediately".
IMMEDIATELY = 1
#: The first 8 bytes of every bundle.
BUNDLE_TAG = b"#bundle\x00"

#: A decoded argument value.
OscValue: TypeAlias = int | float | str | bytes | bool | None

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_U64_MAX = 2**64 - 1
_MAX_DEPTH = 8

_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_U32 = struct.Struct(">I")

# Fixed-width tags a template may hold: tag -> struct code (t = NTP timetag, c = ASCII char as int32).
_FIXED_CODES = {"i": "i", "h": "q", "f": "f", "d": "d", "t": "Q", "c": "i"}
_NO_PAYLOAD = frozenset("TFNI")


class OscEncodeError(MadangError, ValueError):
    """An OSC message or bundle could not be encoded: the address or an argument is invalid.

    ``address`` is the message address, ``index`` the 0-based argument position (``None`` when the
    address itself or the bundle is at fault), ``value`` the offending value, ``reason`` why.
    """

    def __init__(
        self,
        reason: str,
        *,
        address: str | None = None,
        index: int | None = None,
        value: object = None,
        hint: str = "",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.address = address
        self.index = index
        self.value = value
        self.hint = hint

    def __str__(self) -> str:
        where = "OSC" if self.address is None else f"OSC message {self.address!r}"
        if self.index is not None:
            where += f", argument {self.index} ({self.value!r})"
        hint = f"; {self.hint}" if self.hint else ""
        return f"{where}: {self.reason}{hint}"


class OscDecodeError(MadangError, ValueError):
    """Received bytes are not a well-formed OSC 1.0 packet; ``offset`` is where parsing stopped."""

    def __init__(self, reason: str, *, offset: int, size: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset
        self.size = size

    def __str__(self) -> str:
        return (
            f"malformed OSC packet ({self.size} bytes) at byte {self.offset}: {self.reason}; "
            "the packet was dropped (check the sender's OSC encoder)"
        )


@dataclass(frozen=True, slots=True)
class Typed:
    """An argument with an explicit OSC type tag, e.g. ``Typed("d", 0.5)`` or ``Typed("h", 1)``.

    Tags: ``i`` int32, ``h`` int64, ``f`` float32, ``d`` float64, ``s``/``S`` string/symbol,
    ``b`` blob, ``t`` NTP timetag (uint64), ``c`` one ASCII character, ``T``/``F``/``N``/``I``
    (true, false, nil, impulse: the value is ignored).
    """

    tag: str
    value: OscArg = None


#: Anything :func:`encode_message` accepts as an argument (``OscArg`` includes the show compiler's
#: ``cues.timeline.OscTyped``, which is encoded like :class:`Typed`).
EncodableArg: TypeAlias = OscArg | Typed


@dataclass(frozen=True, slots=True)
class OscMessage:
    """A decoded OSC message: its address, its type tags (without the comma) and its values."""

    address: str
    tags: str
    args: tuple[OscValue, ...]


@dataclass(frozen=True, slots=True)
class OscBundle:
    """A decoded OSC bundle: the raw 64-bit NTP timetag (1 = immediately) and its elements."""

    timetag: int
    elements: tuple[OscMessage | OscBundle, ...]


# --------------------------------------------------------------------------- encoding


def _pad_string(raw: bytes) -> bytes:
    """OSC string: the bytes, a NUL, then NULs up to a multiple of 4."""
    return raw + b"\x00" * (4 - (len(raw) & 3))


def _pad_blob(raw: bytes) -> bytes:
    return _I32.pack(len(raw)) + raw + b"\x00" * (-len(raw) & 3)


def validate_address(address: str) -> None:
    """Raise :class:`OscEncodeError` unless ``address`` is a valid OSC 1.0 message address.

    It must start with ``/`` and hold only printable ASCII, without space or ``#*,?[]{}``
    (:func:`venues.names.osc_address_faults`); empty parts (``//``) are let through.
    """
    if not isinstance(address, str):
        raise OscEncodeError(f"the address must be a str, not {type(address).__name__}", value=address)
    for fault in osc_address_faults(address):
        if fault.rule is Rule.OSC_NO_SLASH:
            raise OscEncodeError("an OSC address must start with '/'", address=address)
        if fault.rule is Rule.OSC_BAD_CHARACTER:
            ch, pos = fault.part, fault.at
            if not "!" <= ch <= "~":
                raise OscEncodeError(
                    f"character {ch!r} at position {pos} is not printable ASCII",
                    address=address,
                    hint="OSC 1.0 addresses are printable ASCII without spaces",
                )
            raise OscEncodeError(
                f"character {ch!r} at position {pos} is reserved in OSC 1.0 addresses",
                address=address,
                hint="remove any of ' #*,?[]{}' (they are pattern characters)",
            )
        # Rule.OSC_EMPTY_PART: OSC 1.0 does not forbid it; the encoder sends what it is given.


_address_cache: dict[str, bytes] = {}
_ADDRESS_CACHE_MAX = 4096


def _address_bytes(address: str) -> bytes:
    cached = _address_cache.get(address)
    if cached is not None:
        return cached
    validate_address(address)
    encoded = _pad_string(address.encode("ascii"))
    if len(_address_cache) >= _ADDRESS_CACHE_MAX:
        _address_cache.clear()
    _address_cache[address] = encoded
    return encoded


def _string_bytes(value: str, address: str, index: int) -> bytes:
    if "\x00" in value:
        raise OscEncodeError(
            "a string argument cannot contain NUL (OSC strings are NUL-terminated)",
            address=address,
            index=index,
            value=value,
        )
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise OscEncodeError(f"not encodable as UTF-8: {exc.reason}", address=address, index=index,
                             value=value) from exc
    return _pad_string(raw)


def _encode_typed(tag: str, value: object, address: str, index: int) -> tuple[str, bytes]:
    try:
        if tag in _NO_PAYLOAD:
            return tag, b""
        if tag in ("s", "S"):
            if not isinstance(value, str):
                raise TypeError(f"tag {tag!r} needs a str")
            return tag, _string_bytes(value, address, index)
        if tag == "b":
            if not isinstance(value, bytes | bytearray | memoryview):
                raise TypeError("tag 'b' needs bytes")
            return tag, _pad_blob(bytes(value))
        if tag == "c":
            if not (isinstance(value, str) and len(value) == 1 and ord(value) < 128):
                raise TypeError("tag 'c' needs one ASCII character")
            return tag, _I32.pack(ord(value))
        if tag in ("i", "h", "t"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"tag {tag!r} needs an int")
            packer = _I32 if tag == "i" else _I64 if tag == "h" else _U64
            return tag, packer.pack(value)
        if tag in ("f", "d"):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TypeError(f"tag {tag!r} needs a float")
            return tag, (_F32 if tag == "f" else _F64).pack(value)
    except (TypeError, struct.error, OverflowError) as exc:
        raise OscEncodeError(str(exc), address=address, index=index, value=value) from exc
    raise OscEncodeError(
        f"unsupported type tag {tag!r}",
        address=address,
        index=index,
        value=value,
        hint="use one of i h f d s S b t c T F N I",
    )


def encode_message(address: str, args: Sequence[EncodableArg] = ()) -> bytes:
    """Encode one OSC 1.0 message.

    Raises :class:`OscEncodeError` for an invalid address, an int beyond int64, a float beyond
    float32 range (wrap it in ``Typed("d", x)``), a string holding NUL, or an unknown tag.
    """
    head = _address_bytes(address)
    tags = [","]
    payload: list[bytes] = []
    for index, arg in enumerate(args):
        if isinstance(arg, bool):  # before int: bool is an int subclass
            tags.append("T" if arg else "F")
        elif isinstance(arg, int):
            if _INT32_MIN <= arg <= _INT32_MAX:
                tags.append("i")
                payload.append(_I32.pack(arg))
            elif _INT64_MIN <= arg <= _INT64_MAX:
                tags.append("h")
                payload.append(_I64.pack(arg))
            else:
                raise OscEncodeError("integer beyond the int64 range of OSC 'h'", address=address,
                                     index=index, value=arg)
        elif isinstance(arg, float):
            try:
                payload.append(_F32.pack(arg))
            except OverflowError as exc:
                raise OscEncodeError(
                    "beyond float32 range", address=address, index=index, value=arg,
                    hint='send it as a float64 with Typed("d", value)',
                ) from exc
            tags.append("f")
        elif isinstance(arg, str):
            tags.append("s")
            payload.append(_string_bytes(arg, address, index))
        elif arg is None:
            tags.append("N")
        elif isinstance(arg, bytes | bytearray | memoryview):
            tags.append("b")
            payload.append(_pad_blob(bytes(arg)))
        elif isinstance(arg, Typed | OscTyped):
            tag, data = _encode_typed(arg.tag, arg.value, address, index)
            tags.append(tag)
            payload.append(data)
        else:
            raise OscEncodeError(
                f"cannot send a {type(arg).__name__} over OSC",
                address=address, index=index, value=arg,
                hint="use int, float, str, bytes, bool, None or Typed(tag, value)",
            )
    return head + _pad_string("".join(tags).encode("ascii")) + b"".join(payload)


def encode_bundle(timetag_ntp: int, elements: Sequence[bytes]) -> bytes:
    """Encode an OSC 1.0 bundle of already encoded messages or bundles.

    ``timetag_ntp`` is a 64-bit NTP timestamp (:func:`controller.wire.ns_to_ntp`), or
    :data:`IMMEDIATELY`.
    """
    if not isinstance(timetag_ntp, int) or not 0 <= timetag_ntp <= _U64_MAX:
        raise OscEncodeError(f"bundle timetag {timetag_ntp!r} is not a 64-bit unsigned NTP timestamp",
                             hint="convert ns with controller.wire.ns_to_ntp")
    parts = [BUNDLE_TAG, _U64.pack(timetag_ntp)]
    for index, element in enumerate(elements):
        if len(element) == 0 or len(element) & 3:
            raise OscEncodeError(
                f"bundle element {index} is {len(element)} bytes; OSC packets are a non-zero "
                "multiple of 4 bytes",
                hint="pass the output of encode_message or encode_bundle",
            )
        parts.append(_I32.pack(len(element)))
        parts.append(bytes(element))
    return b"".join(parts)


class MessageTemplate:
    """A prebuilt message for one address and fixed-width type tags.

    >>> t = MessageTemplate("/facade/brightness", "if")
    >>> t.encode(3, 0.5) == encode_message("/facade/brightness", [3, 0.5])
    True

    ``tags`` may hold ``i h f d t c`` (one argument each, in order, to :meth:`encode`; ``c`` takes
    ``ord(char)``) and the payload-free ``T F N I`` (no argument). Strings and blobs have no fixed
    width: use :func:`encode_message` for those.

    The address and tag string are encoded and validated once; :meth:`encode` packs the values
    with one precompiled :class:`struct.Struct` behind that prefix. (Measured here: one
    ``pack`` and one concatenation cost ~0.1 us, a ``pack_into`` into a shared bytearray plus the
    copy out ~0.3 us, and the concatenation is thread-safe, so that is what it does.)
    """

    __slots__ = ("_codes", "_pack", "_prefix", "address", "nargs", "size", "tags")

    def __init__(self, address: str, tags: str) -> None:
        codes = []
        for tag in tags:
            if tag in _FIXED_CODES:
                codes.append(_FIXED_CODES[tag])
            elif tag not in _NO_PAYLOAD:
                raise OscEncodeError(
                    f"type tag {tag!r} has no fixed width and cannot be templated",
                    address=address,
                    hint="templates take i h f d t c T F N I; use encode_message for strings and blobs",
                )
        packer = struct.Struct(">" + "".join(codes))
        self.address = address
        self.tags = tags
        self.nargs = len(codes)
        self._codes = "".join(codes)
        self._prefix = _address_bytes(address) + _pad_string(("," + tags).encode("ascii"))
        self._pack = packer.pack
        self.size = len(self._prefix) + packer.size

    def encode(self, *args: float | int) -> bytes:
        """The message with these values, one per fixed-width tag."""
        try:
            return self._prefix + self._pack(*args)
        except (struct.error, OverflowError, TypeError) as exc:
            raise self._error(args, exc) from exc

    def _error(self, args: tuple[float | int, ...], exc: Exception) -> OscEncodeError:
        if len(args) != self.nargs:
            return OscEncodeError(f"template ,{self.tags} takes {self.nargs} values, got {len(args)}",
                                  address=self.address)
        return OscEncodeError(f"values {args!r} do not fit template ,{self.tags}: {exc}",
                              address=self.address)


class BundleTemplate:
    """A prebuilt bundle: :meth:`encode` fills in the timetag and the values of templated elements.

    ``elements`` are encoded packets (``bytes``, sent unchanged) or :class:`MessageTemplate`\\ s;
    :meth:`encode` takes the NTP timetag and then, in element order, the values of every template.
    Everything constant (header, sizes, addresses, tags, fixed elements) is joined once at
    construction, so an encode is a few ``struct.pack`` calls and one ``join``.
    """

    __slots__ = ("_head", "_segments", "nargs", "size")

    def __init__(self, elements: Sequence[bytes | MessageTemplate]) -> None:
        segments: list[tuple[bytes, struct.Struct]] = []
        const = bytearray()
        size = 16
        for index, element in enumerate(elements):
            if isinstance(element, MessageTemplate):
                const += _I32.pack(element.size) + element._prefix
                segments.append((bytes(const), struct.Struct(">" + element._codes)))
                const = bytearray()
                size += 4 + element.size
            else:
                if len(element) == 0 or len(element) & 3:
                    raise OscEncodeError(f"bundle element {index} is {len(element)} bytes; OSC packets "
                                         "are a non-zero multiple of 4 bytes")
                const += _I32.pack(len(element)) + bytes(element)
                size += 4 + len(element)
        # The trailing constant run rides as a segment with an empty packer.
        segments.append((bytes(const), struct.Struct(">")))
        self._head = BUNDLE_TAG
        self._segments = tuple((c, p.pack, len(p.format) - 1) for c, p in segments)
        self.nargs = sum(n for _, _, n in self._segments)
        self.size = size

    def encode(self, timetag_ntp: int, *args: float | int) -> bytes:
        """The bundle with this NTP timetag (or :data:`IMMEDIATELY`) and these template values."""
        try:
            if len(args) != self.nargs:
                raise TypeError(f"takes {self.nargs} template values, got {len(args)}")
            out = [self._head, _U64.pack(timetag_ntp)]
            pos = 0
            for const, pack, n in self._segments:
                out.append(const)
                out.append(pack(*args[pos : pos + n]))
                pos += n
        except (struct.error, OverflowError, TypeError) as exc:
            raise OscEncodeError(f"bundle template: {exc}", value=(timetag_ntp, *args)) from exc
        return b"".join(out)


# --------------------------------------------------------------------------- decoding


def _read_string(data: bytes, pos: int, end: int) -> tuple[str, int]:
    nul = data.find(b"\x00", pos, end)
    if nul < 0:
        raise OscDecodeError("string without a terminating NUL", offset=pos, size=len(data))
    nxt = (nul + 4) & ~3
    if nxt > end:
        raise OscDecodeError("string padding runs past the end", offset=nul, size=len(data))
    try:
        return data[pos:nul].decode("utf-8"), nxt
    except UnicodeDecodeError as exc:
        raise OscDecodeError(f"string is not UTF-8 ({exc.reason})", offset=pos, size=len(data)) from exc


def _need(data: bytes, pos: int, n: int, end: int, what: str) -> None:
    if pos + n > end:
        raise OscDecodeError(f"truncated {what}: needs {n} bytes, {end - pos} left", offset=pos,
                             size=len(data))


def _decode_message(data: bytes, pos: int, end: int) -> OscMessage:
    start = pos
    address, pos = _read_string(data, pos, end)
    if not address.startswith("/"):
        raise OscDecodeError(f"address {address[:64]!r} does not start with '/'", offset=start,
                             size=len(data))
    if pos == end:  # OSC 1.0: older senders may omit the type tag string; no arguments then
        return OscMessage(address, "", ())
    tag_at = pos
    tagstr, pos = _read_string(data, pos, end)
    if not tagstr.startswith(","):
        raise OscDecodeError("type tag string does not start with ','", offset=tag_at, size=len(data))
    tags = tagstr[1:]
    args: list[OscValue] = []
    for tag in tags:
        if tag == "i" or tag == "c" or tag == "r":
            _need(data, pos, 4, end, f"'{tag}' argument")
            if tag == "i":
                args.append(_I32.unpack_from(data, pos)[0])
            elif tag == "r":
                args.append(_U32.unpack_from(data, pos)[0])
            else:
                args.append(chr(_U32.unpack_from(data, pos)[0] & 0x7F))
            pos += 4
        elif tag == "f":
            _need(data, pos, 4, end, "'f' argument")
            args.append(_F32.unpack_from(data, pos)[0])
            pos += 4
        elif tag in ("s", "S"):
            value, pos = _read_string(data, pos, end)
            args.append(value)
        elif tag == "b":
            _need(data, pos, 4, end, "blob size")
            n = _I32.unpack_from(data, pos)[0]
            if n < 0:
                raise OscDecodeError(f"negative blob size {n}", offset=pos, size=len(data))
            pos += 4
            _need(data, pos, n, end, "blob")
            args.append(data[pos : pos + n])
            pos += n + (-n & 3)
            if pos > end:
                raise OscDecodeError("blob padding runs past the end", offset=pos, size=len(data))
        elif tag in ("h", "t", "d"):
            _need(data, pos, 8, end, f"'{tag}' argument")
            packer = _I64 if tag == "h" else _U64 if tag == "t" else _F64
            args.append(packer.unpack_from(data, pos)[0])
            pos += 8
        elif tag == "m":
            _need(data, pos, 4, end, "'m' argument")
            args.append(data[pos : pos + 4])
            pos += 4
        elif tag == "T":
            args.append(True)
        elif tag == "F":
            args.append(False)
        elif tag in ("N", "I"):
            args.append(None)
        else:
            raise OscDecodeError(f"unsupported type tag {tag!r}", offset=tag_at, size=len(data))
    if pos != end:
        raise OscDecodeError(f"{end - pos} bytes left over after the arguments", offset=pos,
                             size=len(data))
    return OscMessage(address, tags, tuple(args))


def _decode(data: bytes, pos: int, end: int, depth: int, max_depth: int) -> OscMessage | OscBundle:
    if (end - pos) & 3:
        raise OscDecodeError(f"packet size {end - pos} is not a multiple of 4", offset=pos, size=len(data))
    if end - pos == 0:
        raise OscDecodeError("empty packet", offset=pos, size=len(data))
    if data.startswith(BUNDLE_TAG, pos, end):
        if depth >= max_depth:
            raise OscDecodeError(f"bundles nested deeper than {max_depth}", offset=pos, size=len(data))
        _need(data, pos, 16, end, "bundle header")
        timetag = _U64.unpack_from(data, pos + 8)[0]
        pos += 16
        elements: list[OscMessage | OscBundle] = []
        while pos < end:
            _need(data, pos, 4, end, "bundle element size")
            n = _I32.unpack_from(data, pos)[0]
            pos += 4
            if n <= 0 or n & 3:
                raise OscDecodeError(f"bundle element size {n} is not a positive multiple of 4",
                                     offset=pos - 4, size=len(data))
            _need(data, pos, n, end, "bundle element")
            elements.append(_decode(data, pos, pos + n, depth + 1, max_depth))
            pos += n
        return OscBundle(timetag, tuple(elements))
    if data[pos] != 0x2F:  # '/'
        raise OscDecodeError("neither a message (starts with '/') nor a bundle ('#bundle')", offset=pos,
                             size=len(data))
    return _decode_message(data, pos, end)


def decode_packet(data: bytes, *, max_depth: int = _MAX_DEPTH) -> OscMessage | OscBundle:
    """Parse one OSC 1.0 packet (a UDP datagram's payload).

    Raises :class:`OscDecodeError`, and nothing else, for any malformed input. The work is linear
    in ``len(data)``; bundles may nest at most ``max_depth`` levels.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    return _decode(data, 0, len(data), 0, max_depth)


def messages(packet: OscMessage | OscBundle) -> list[OscMessage]:
    """Every message of a decoded packet, bundles flattened in order (nesting is bounded by
    :func:`decode_packet`'s ``max_depth``)."""
    if isinstance(packet, OscMessage):
        return [packet]
    out: list[OscMessage] = []
    for element in packet.elements:
        out.extend(messages(element))
    return out
