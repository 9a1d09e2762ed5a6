"""One entry point per decoder that takes hostile bytes: each must return, or raise only the
error its caller handles (a crash here is a crash of the show).

* :func:`osc_packet`: an OSC datagram, as the control port and the device report port read it
  (:func:`controller.osc.decode_packet`, then the control parser and the device report decoder);
* :func:`device_json`: a device's MQTT or WebSocket report, as the core reads it
  (:func:`controller.wire.decode_report` for each report kind, and the controller state);
* :func:`show_yaml`: a show file's text (:func:`venues.source.parse_yaml`, then the show loader
  with includes refused), whose errors are :class:`~venues.errors.SourceErrors` findings.

Run them coverage-guided with atheris (``python -m tests.fuzz osc -runs=100000``), or as
Hypothesis properties (tests/fuzz/test_decoders.py).
"""

from __future__ import annotations

from pathlib import Path

from controller import wire
from controller.control import parse_command
from controller.osc import OscDecodeError, decode_packet, messages
from cues.loader import load_show_doc
from venues.errors import SourceErrors
from venues.source import Doc, parse_yaml

__all__ = ["TARGETS", "device_json", "osc_packet", "seeds", "show_yaml"]

_REPO = Path(__file__).resolve().parents[2]


def osc_packet(data: bytes) -> None:
    """Decode ``data`` as OSC; parse each message as a control command and as a device report."""
    try:
        packet = decode_packet(data)
    except OscDecodeError:
        return
    for msg in messages(packet):
        parse_command(msg.address, msg.args)
        wire.decode_osc_report(msg.address, msg.args)


def device_json(data: bytes) -> None:
    """Decode ``data`` as every device report kind and as a controller state (never raises)."""
    for kind in wire.DEVICE_REPORTS:
        wire.decode_report(kind, data)
    wire.decode_controller_state(data)


def _no_includes(path: Path, display: str) -> Doc:
    raise SourceErrors([])


def show_yaml(data: bytes) -> None:
    """Parse ``data`` as a show file and load it (includes refused); only findings may come out."""
    try:
        doc = parse_yaml(data, "fuzz.yaml", max_nodes=100_000)
    except SourceErrors:
        return
    load_show_doc(doc, Path("fuzz.yaml"), read=_no_includes)


TARGETS = {"osc": osc_packet, "json": device_json, "show": show_yaml}
"""The targets by the name ``python -m tests.fuzz NAME`` takes."""


def seeds(name: str) -> list[bytes]:
    """Valid inputs for target ``name``, the start of a coverage-guided run."""
    if name == "osc":
        from controller.osc import Typed, encode_bundle, encode_message

        return [
            encode_message("/go", []),
            encode_message("/seek", [1.5]),
            encode_message("/connect", ["passcode"]),
            encode_message("/madang/pong", [1, Typed("h", 2), Typed("h", 3), Typed("h", 4)]),
            encode_message("/madang/fired", [7, Typed("h", 123)]),
            encode_bundle(1 << 32, [wire.key_osc("show", 1, 1), encode_message("/f", [1, 0.5, "x"])]),
        ]
    if name == "json":
        return [
            b'{"seq": 1, "t1": 2, "t2": 3, "t3": 4}',
            b'{"state": "ready", "boot": 5}',
            b'{"show": "s", "cue": "c", "seq": 3, "local": 9, "synced": true}',
            b'{"state": "playing", "term": 2, "controller": "m"}',
        ]
    shows = [*(_REPO / "tests" / "data").glob("*.yaml"), *(_REPO / "config" / "shows").glob("*.yaml")]
    return [p.read_bytes() for p in sorted(shows)]
