"""The controller's side of docs/protocol.md: what it sends parses as the document says, and what it
receives is decoded or refused (counted by the caller), never raised."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller import wire
from controller.osc import decode_packet, encode_bundle, encode_message, messages
from simulators.clock import DeviceClock
from simulators.devices import AppDevice, OscDisplay
from simulators.devices._wire import decode_json, parse_osc
from simulators.record import Recorder
from tests.simulators._helpers import display, headset


def test_the_ping_reads_as_the_device_side_reads_it() -> None:
    # The simulated devices implement docs/protocol.md independently: both encodings parse there.
    assert decode_json(wire.ping_json(17, 1_763_694_000_123_456_789)) == {
        "seq": 17,
        "t1": 1_763_694_000_123_456_789,
    }
    (item,) = parse_osc(wire.ping_osc(17, 1_763_694_000_123_456_789))
    assert (item.address, list(item.args)) == ("/madang/ping", [17, 1_763_694_000_123_456_789])
    # seq as int32, t1 always as int64 (OSC 1.0 'h'), even when it would fit in 32 bits
    assert wire.ping_osc(3, 5)[:20] == b"/madang/ping\x00\x00\x00\x00,ih\x00"


def test_the_other_messages_carry_the_documented_fields() -> None:
    assert json.loads(wire.clock_json(5, -2, 41_250, 180_000, term=3)) == {
        "epoch": 5,
        "offset_ns": -2,
        "drift_ppb": 41_250,
        "uncertainty_ns": 180_000,
        "term": 3,
    }
    cue = json.loads(wire.cue_json("show", "bloom", 42, 12_500, 500, {"panic": {}}, term=2))
    assert cue == {
        "show": "show",
        "cue": "bloom",
        "seq": 42,
        "at": 12_500,
        "show_ns": 500,
        "op": {"panic": {}},
        "term": 2,
    }
    state = json.loads(
        wire.controller_state_json(
            state="playing",
            show="s",
            cue="a",
            standby=None,
            show_ns=3,
            at=4,
            rate=1.0,
            seq=9,
            term=7,
            controller="madang-host-12",
        )
    )
    assert state["state"] == "playing" and state["at"] == 4 and state["seq"] == 9
    assert state["term"] == 7 and state["controller"] == "madang-host-12"
    assert json.loads(wire.OFFLINE_STATE) == {"state": "offline"}
    offline = json.loads(wire.offline_state_json(term=4, controller="b"))
    assert offline == {"state": "offline", "term": 4, "controller": "b"}
    (msg,) = messages(decode_packet(wire.key_osc("s", 42, 5)))
    assert (msg.address, list(msg.args)) == ("/madang/key", ["s", 42, 5])


def test_the_term_reads_as_the_device_side_reads_it() -> None:
    # docs/protocol.md, "Controller terms": JSON "term", and the key's third OSC int32.
    assert decode_json(wire.cue_json("s", "c", 1, 2, 3, {"panic": {}}, term=9))["term"] == 9
    assert decode_json(wire.clock_json(1, 2, 3, 4, term=9))["term"] == 9
    (item,) = parse_osc(wire.key_osc("han-river", 42, wire.MAX_TERM))
    assert item.address == "/madang/key" and item.args == ("han-river", 42, wire.MAX_TERM)
    # ,sii: the term is an int32 whatever its value (a 64-bit 'h' would not read as one).
    assert b",sii\x00" in wire.key_osc("s", 1, 1)


def test_a_term_is_a_positive_int32() -> None:
    assert wire.check_term(1) == 1 and wire.check_term(wire.MAX_TERM) == wire.MAX_TERM
    for bad in (0, -1, wire.MAX_TERM + 1, True, 1.0, "2"):
        with pytest.raises(ValueError, match="a controller term is an integer from 1"):
            wire.check_term(bad)  # type: ignore[arg-type]


def test_the_controller_state_decodes_for_a_standby() -> None:
    body = wire.controller_state_json(
        state="playing",
        show="s",
        cue=None,
        standby=None,
        show_ns=None,
        at=1,
        rate=1.0,
        seq=1,
        term=3,
        controller="a",
    )
    assert wire.decode_controller_state(body) == wire.ControllerState("playing", 3, "a")
    # An older controller's state, or a will without a term: no term, still a state.
    assert wire.decode_controller_state(wire.OFFLINE_STATE) == wire.ControllerState("offline", None, "")
    for bad, parsed in (
        (b"nope", False),
        (b"[]", False),
        (b'{"term": 2}', True),
        (b'{"state": "playing", "term": 0}', True),
        (b'{"state": "playing", "term": "2"}', True),
        (b'{"state": "playing", "term": true}', True),
        (b'{"state": "playing", "controller": 5}', True),
    ):
        got = wire.decode_controller_state(bad)
        assert isinstance(got, wire.Malformed) and got.parsed is parsed, bad


def test_reports_decode() -> None:
    assert wire.decode_report("pong", b'{"seq": 1, "t1": 2, "t2": 3, "t3": 4}') == wire.Pong(1, 2, 3, 4)
    ready = wire.decode_report("status", b'{"state": "ready", "boot": 7, "proto": 1}')
    assert ready == wire.Status("ready", 7)
    assert wire.decode_report("status", b'{"state": "alive", "boot": true}') == wire.Status("alive", None)
    assert wire.decode_report("fired", b'{"seq": 42, "local": 9, "synced": true}') == wire.Fired(42, 9, True)
    # A report without its fields is still an acknowledgement.
    assert wire.decode_report("fired", b"{}") == wire.Fired(None, None, False)
    pong = encode_message("/madang/pong", [1, 2, 3, 4])
    (msg,) = messages(decode_packet(pong))
    assert wire.decode_osc_report(msg.address, msg.args) == wire.Pong(1, 2, 3, 4)
    assert wire.decode_osc_report("/madang/fired", [42, 9]) == wire.Fired(42, 9, True)
    assert wire.decode_osc_report("/ready", [1]) is None  # an event, not a report


def test_what_is_not_a_report_is_malformed_with_the_reason() -> None:
    cases = {
        ("pong", b"not json"): False,
        ("pong", b"[1, 2]"): False,
        ("pong", b'{"seq": 1, "t1": 2}'): True,
        ("status", b'{"state": 3}'): True,
        ("pong", b" " * (wire.MAX_PAYLOAD + 1)): False,
    }
    for (kind, payload), parsed in cases.items():
        got = wire.decode_report(kind, payload)
        assert isinstance(got, wire.Malformed) and got.reason and got.parsed is parsed, (kind, payload[:20])
    for args in ([1, 2, 3], [1, 2, 3, "4"], [True, 2, 3, 4]):
        assert isinstance(wire.decode_osc_report("/madang/pong", args), wire.Malformed)
    assert isinstance(wire.decode_osc_report("/madang/fired", [1.5, 2]), wire.Malformed)


@given(st.binary(max_size=256), st.sampled_from(wire.DEVICE_REPORTS))
def test_any_bytes_decode_or_are_malformed(payload: bytes, kind: str) -> None:
    got = wire.decode_report(kind, payload)
    assert isinstance(got, wire.Pong | wire.Status | wire.Fired | wire.Malformed)


def test_the_simulated_devices_honour_the_terms_the_encoders_write() -> None:
    # The controller's bytes, read by devices built from docs/protocol.md alone: a higher term is
    # obeyed and raises the floor, a lower one is dropped and counted, none at all is obeyed.
    t0 = 1_763_694_000 * 1_000_000_000
    app = AppDevice(headset(), DeviceClock(epoch_ns=t0), Recorder())
    app.connect(t0)
    op = {"mqtt": {"topic": "xr/{device}/scene", "payload": {"scene": "a"}}}
    app.receive("madang/cue", wire.cue_json("s", "one", 1, t0, 0, op, term=2), t0)
    app.receive("madang/cue", wire.cue_json("s", "two", 2, t0, 0, op, term=1), t0)
    state = wire.controller_state_json(
        state="playing",
        show="s",
        cue="one",
        standby=None,
        show_ns=0,
        at=t0,
        rate=1.0,
        seq=1,
        term=3,
        controller="b",
    )
    app.receive(wire.STATE_TOPIC, state, t0)
    app.receive("madang/cue", wire.cue_json("s", "three", 3, t0, 0, op, term=2), t0)
    assert [(r.seq, r.term) for r in app.recorder.rows(("cue",))] == [(1, 2)]
    assert app.term_floor == 3 and app.dropped["stale_term"] == 2
    led = OscDisplay(display(), DeviceClock(epoch_ns=t0), Recorder())
    for seq, term in ((1, 2), (2, 1), (3, 3)):
        packet = encode_bundle(
            wire.NTP_IMMEDIATELY, [wire.key_osc("s", seq, term), encode_message("/x", [seq])]
        )
        led.receive(packet, t0, None)
    assert [(r.seq, r.term) for r in led.recorder.rows(("osc",))] == [(1, 2), (3, 3)]
    assert led.recorder.stale_term() == {"led-1": 1}
