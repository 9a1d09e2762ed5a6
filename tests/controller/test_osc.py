"""Tests for controller.osc: byte-for-byte against python-osc, liblo's oscdump, decoder fuzzing."""

from __future__ import annotations

import contextlib
import math
import queue
import socket
import struct
import time
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle_builder import IMMEDIATELY as PO_IMMEDIATELY
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from controller.osc import (
    IMMEDIATELY,
    BundleTemplate,
    EncodableArg,
    MessageTemplate,
    OscBundle,
    OscDecodeError,
    OscEncodeError,
    OscMessage,
    Typed,
    decode_packet,
    encode_bundle,
    encode_message,
)
from controller.wire.ntp import ns_to_ntp
from cues.timeline import OscTyped
from venues.errors import MadangError

_ADDRESS_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in " #*,?[]{}")
addresses = st.text(alphabet=_ADDRESS_CHARS, min_size=0, max_size=40).map(lambda s: "/" + s)
# python-osc picks 'h' for -2**31 (bit_length 32) although it fits int32; we send 'i' (the
# narrower, OSC 1.0 type). That one value is tested separately below.
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1).filter(lambda i: i != -(2**31))
floats32 = st.floats(width=32, allow_nan=False)
texts = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
                max_size=30)
blobs = st.binary(min_size=1, max_size=40)  # python-osc refuses empty blobs; we allow them
plain_args = st.one_of(ints, floats32, texts, blobs, st.booleans(), st.none())


def pythonosc_message(address: str, args: list[Any], tags: str | None = None) -> bytes:
    builder = OscMessageBuilder(address=address)
    for i, arg in enumerate(args):
        builder.add_arg(arg, tags[i] if tags else None)
    dgram: bytes = builder.build().dgram
    return dgram


@given(addresses, st.lists(plain_args, max_size=8))
def test_message_matches_pythonosc_byte_for_byte(address: str, args: list[EncodableArg]) -> None:
    assert encode_message(address, args) == pythonosc_message(address, list(args))


@given(
    addresses,
    st.lists(
        st.one_of(
            st.builds(lambda v: Typed("d", v), st.floats(allow_nan=False)),
            st.builds(lambda v: Typed("h", v), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
            st.builds(lambda v: Typed("i", v), st.integers(min_value=-(2**31), max_value=2**31 - 1)),
            st.builds(lambda v: Typed("f", v), floats32),
            st.builds(lambda v: Typed("s", v), texts),
        ),
        max_size=6,
    ),
)
def test_typed_args_match_pythonosc(address: str, args: list[Typed]) -> None:
    expected = pythonosc_message(address, [a.value for a in args], "".join(a.tag for a in args))
    assert encode_message(address, args) == expected


def test_int32_min_is_an_int32_and_cues_osctyped_is_honoured() -> None:
    assert encode_message("/x", [-(2**31)]) == pythonosc_message("/x", [-(2**31)], "i")
    assert encode_message("/x", [OscTyped("d", 0.5), OscTyped("h", 7)]) == pythonosc_message(
        "/x", [0.5, 7], "dh"
    )
    assert encode_message("/x", [2**31]) == pythonosc_message("/x", [2**31], "h")


@given(
    st.integers(min_value=1, max_value=2**32 - 2_208_988_801),  # 0 is python-osc's IMMEDIATELY
    st.integers(min_value=0, max_value=2**16 - 1),
    st.lists(st.tuples(addresses, st.lists(plain_args, max_size=4)), min_size=1, max_size=4),
)
def test_bundle_matches_pythonosc(
    seconds: int, frac16: int, messages: list[tuple[str, list[Any]]]
) -> None:
    # Seconds that are exact in a double, so python-osc's float conversion is exact too.
    builder = OscBundleBuilder(cast(int, seconds + frac16 / 2**16))
    for address, args in messages:
        msg_builder = OscMessageBuilder(address=address)
        for arg in args:
            msg_builder.add_arg(arg)
        builder.add_content(msg_builder.build())
    ntp = ((seconds + 2_208_988_800) << 32) | (frac16 << 16)
    ours = encode_bundle(ntp, [encode_message(a, args) for a, args in messages])
    assert ours == builder.build().dgram


def test_immediate_bundle_matches_pythonosc() -> None:
    builder = OscBundleBuilder(PO_IMMEDIATELY)
    builder.add_content(OscMessageBuilder(address="/go").build())
    assert encode_bundle(IMMEDIATELY, [encode_message("/go", [])]) == builder.build().dgram


@given(
    addresses,
    st.lists(
        st.one_of(
            st.tuples(st.just("i"), st.integers(min_value=-(2**31), max_value=2**31 - 1)),
            st.tuples(st.just("h"), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
            st.tuples(st.just("f"), floats32),
            st.tuples(st.just("d"), st.floats(allow_nan=False)),
            st.tuples(st.sampled_from("TFN"), st.none()),
        ),
        max_size=8,
    ),
)
def test_message_template_equals_generic_encoder(address: str, fields: list[tuple[str, object]]) -> None:
    tags = "".join(t for t, _ in fields)
    template = MessageTemplate(address, tags)
    values = [v for t, v in fields if t not in "TFN"]
    typed = [Typed(t, v) for t, v in fields]  # type: ignore[arg-type]
    expected = encode_message(address, typed)
    assert template.encode(*values) == expected  # type: ignore[arg-type]
    assert template.size == len(expected)
    assert expected == pythonosc_message(address, [v for _, v in fields], tags)


def test_message_template_patches_values_each_time() -> None:
    t = MessageTemplate("/facade/brightness", "if")
    a = t.encode(1, 0.25)
    b = t.encode(2, 0.75)
    assert a == encode_message("/facade/brightness", [1, 0.25])
    assert b == encode_message("/facade/brightness", [2, 0.75])
    assert a != b


def test_message_template_rejects_bad_values_and_tags() -> None:
    t = MessageTemplate("/x", "if")
    with pytest.raises(OscEncodeError, match="takes 2 values, got 1"):
        t.encode(1)
    with pytest.raises(OscEncodeError, match="do not fit"):
        t.encode(2**40, 0.0)
    with pytest.raises(OscEncodeError, match="do not fit"):
        t.encode(1, 1e300)
    with pytest.raises(OscEncodeError, match="no fixed width"):
        MessageTemplate("/x", "is")


def test_bundle_template_equals_generic_encoder() -> None:
    key = encode_message("/madang/key", ["han-river", 42])
    fade = MessageTemplate("/facade/brightness", "if")
    pos = MessageTemplate("/barge/pos", "dd")
    bt = BundleTemplate([key, fade, pos, encode_message("/tail", [])])
    tt = ns_to_ntp(1_763_694_012_500_000_000)
    got = bt.encode(tt, 3, 0.5, 1.25, -2.5)
    expected = encode_bundle(
        tt,
        [key, fade.encode(3, 0.5), pos.encode(1.25, -2.5), encode_message("/tail", [])],
    )
    assert got == expected
    assert bt.size == len(got)
    assert bt.encode(IMMEDIATELY, 4, 0.0, 0.0, 0.0)[8:16] == struct.pack(">Q", 1)
    with pytest.raises(OscEncodeError, match="takes 4 template values"):
        bt.encode(tt, 1)
    with pytest.raises(OscEncodeError):
        bt.encode(-1, 3, 0.5, 1.25, -2.5)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("facade", "must start with '/'"),
        ("/a b", "' ' at position 2"),
        ("/a*", "reserved"),
        ("/a,b", "reserved"),
        ("/a{b}", "reserved"),
        ("/caf\u00e9", "not printable ASCII"),
        ("/tab\there", "not printable ASCII"),
    ],
)
def test_invalid_addresses_are_refused_with_reasons(address: str, reason: str) -> None:
    with pytest.raises(OscEncodeError, match=reason) as info:
        encode_message(address, [])
    assert isinstance(info.value, MadangError)
    assert isinstance(info.value, ValueError)
    assert repr(address) in str(info.value)


def test_invalid_arguments_say_which_and_why() -> None:
    with pytest.raises(OscEncodeError, match=r"argument 1 \(1e\+300\): beyond float32.*Typed\(\"d\""):
        encode_message("/x", [1, 1e300])
    with pytest.raises(OscEncodeError, match="int64"):
        encode_message("/x", [2**64])
    with pytest.raises(OscEncodeError, match="NUL"):
        encode_message("/x", ["a\x00b"])
    with pytest.raises(OscEncodeError, match="cannot send a list"):
        encode_message("/x", [[1, 2]])  # type: ignore[list-item]
    with pytest.raises(OscEncodeError, match="unsupported type tag 'q'"):
        encode_message("/x", [Typed("q", 1)])
    with pytest.raises(OscEncodeError, match="needs an int"):
        encode_message("/x", [Typed("i", 1.5)])
    with pytest.raises(OscEncodeError, match="not a 64-bit unsigned"):
        encode_bundle(2**64, [])
    with pytest.raises(OscEncodeError, match="multiple of 4"):
        encode_bundle(IMMEDIATELY, [b"/ab"])


def test_empty_blob_is_legal_osc() -> None:
    data = encode_message("/x", [b""])
    assert data == b"/x\x00\x00,b\x00\x00\x00\x00\x00\x00"
    assert decode_packet(data) == OscMessage("/x", "b", (b"",))


# --------------------------------------------------------------------------- decoding


def _f32(x: float) -> float:
    value: float = struct.unpack(">f", struct.pack(">f", x))[0]
    return value


@given(addresses, st.lists(plain_args, max_size=8))
def test_decode_round_trips(address: str, args: list[EncodableArg]) -> None:
    msg = decode_packet(encode_message(address, args))
    assert isinstance(msg, OscMessage)
    assert msg.address == address
    expected = [_f32(a) if isinstance(a, float) else a for a in args]
    assert list(msg.args) == expected
    assert len(msg.tags) == len(args)


def test_decode_nested_bundle_and_pong() -> None:
    pong = encode_message("/madang/pong", [17, Typed("h", 1), Typed("h", 2**40), Typed("h", -3)])
    inner = encode_bundle(5, [pong])
    outer = decode_packet(encode_bundle(IMMEDIATELY, [inner, encode_message("/go", [True, None])]))
    assert outer == OscBundle(
        IMMEDIATELY,
        (
            OscBundle(5, (OscMessage("/madang/pong", "ihhh", (17, 1, 2**40, -3)),)),
            OscMessage("/go", "TN", (True, None)),
        ),
    )
    other = decode_packet(pythonosc_message("/t", [1.5, "x", b"\x01"], "dsb"))
    assert other == OscMessage("/t", "dsb", (1.5, "x", b"\x01"))


def test_decode_rejects_deep_nesting_without_recursing_forever() -> None:
    packet = encode_message("/x", [])
    for _ in range(8):
        packet = encode_bundle(IMMEDIATELY, [packet])
    assert isinstance(decode_packet(packet), OscBundle)  # 8 levels: allowed
    deeper = encode_bundle(IMMEDIATELY, [packet])
    with pytest.raises(OscDecodeError, match="nested deeper than 8"):
        decode_packet(deeper)
    # A bundle claiming to contain itself over and over (size fields lie) is bounded too.
    evil = b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 10_000) + b"#bundle\x00"
    with pytest.raises(OscDecodeError):
        decode_packet(evil)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"/ab", "multiple of 4"),
        (b"/abc", "NUL"),
        (b"xyz\x00", "neither a message"),
        (b"/a\x00\x00,i\x00\x00", "truncated 'i'"),
        (b"/a\x00\x00,q\x00\x00", "unsupported type tag 'q'"),
        (b"/a\x00\x00i\x00\x00\x00", "does not start with ','"),
        (b"/a\x00\x00,b\x00\x00\xff\xff\xff\xff", "negative blob size"),
        (b"/a\x00\x00,b\x00\x00\x00\x00\x00\x09abcd", "truncated blob"),
        (b"/a\x00\x00,\x00\x00\x00\x00\x00\x00\x01", "left over"),
        (b"#bundle\x00\x00\x00", "multiple of 4"),
        (b"#bundle\x00\x00\x00\x00\x00", "truncated bundle header"),
        (b"#bundle\x00" + b"\x00" * 8 + b"\x00\x00\x00\x06", "positive multiple of 4"),
        (b"/\xff\x00\x00", "not UTF-8"),
    ],
)
def test_decode_errors_say_what_and_where(data: bytes, reason: str) -> None:
    with pytest.raises(OscDecodeError, match=reason) as info:
        decode_packet(data)
    assert isinstance(info.value, MadangError)
    assert f"({len(data)} bytes)" in str(info.value)


@settings(max_examples=500)
@given(st.binary(max_size=256))
def test_fuzz_random_bytes_only_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(OscDecodeError):
        decode_packet(data)


@settings(max_examples=500)
@given(
    addresses,
    st.lists(plain_args, max_size=5),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=4),
    st.integers(min_value=0),
)
def test_fuzz_mutated_packets_only_raise_decode_error(
    address: str, args: list[EncodableArg], flips: list[tuple[int, int]], cut: int
) -> None:
    inner = encode_message(address, args)
    data = bytearray(encode_bundle(IMMEDIATELY, [inner, encode_bundle(7, [inner])]))
    for pos, value in flips:
        data[pos % len(data)] = value
    data = data[: len(data) - cut % len(data)] if cut % 3 == 0 else data
    with contextlib.suppress(OscDecodeError):
        decode_packet(bytes(data))


# --------------------------------------------------------------------------- liblo's oscdump
# (the ``oscdump`` fixture is in tests/conftest.py)


def _next_line(lines: queue.Queue[str], skip: str = "/probe") -> str:
    while True:
        line = lines.get(timeout=5)
        if skip not in line:
            return line


def test_oscdump_decodes_a_message(oscdump: tuple[int, queue.Queue[str]]) -> None:
    port, lines = oscdump
    data = encode_message(
        "/facade/7/brightness", [42, 0.5, "lotus", b"\x01\x02", True, False, None, 2**40, Typed("d", 0.125)]
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(data, ("127.0.0.1", port))
    fields = _next_line(lines).split(" ")
    assert fields[1:4] == ["/facade/7/brightness", "ifsbTFNhd", "42"]
    assert math.isclose(float(fields[4]), 0.5)
    assert fields[5] == '"lotus"'
    assert " ".join(fields[6:9]) == "[2b 0x1 0x2]"
    assert fields[9:13] == ["#T", "#F", "Nil", str(2**40)]
    assert math.isclose(float(fields[13]), 0.125)


def test_oscdump_decodes_a_timetagged_bundle(oscdump: tuple[int, queue.Queue[str]]) -> None:
    port, lines = oscdump
    # A timetag just in the past: liblo dispatches it at once and prints the timetag it carried.
    tt = ns_to_ntp(time.time_ns() - 1_000_000_000)
    template = BundleTemplate([encode_message("/madang/key", ["show", 9]), MessageTemplate("/fade", "if")])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(template.encode(tt, 3, 0.75), ("127.0.0.1", port))
    first = _next_line(lines).split(" ")
    second = _next_line(lines).split(" ")
    stamp = f"{tt >> 32:08x}.{tt & 0xFFFFFFFF:08x}"
    assert first == [stamp, "/madang/key", "si", '"show"', "9"]
    assert second[:4] == [stamp, "/fade", "if", "3"]
    assert math.isclose(float(second[4]), 0.75)
