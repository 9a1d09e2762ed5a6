"""Hostile input, seeded: what an attacker or a broken device sends to a controller's surfaces.

Theory of operation
-------------------
:class:`Hostile` makes one message at a time for a surface, from a seeded generator, so a fuzz run
is reproducible and its memory does not grow with the count. Each message is one of the kinds an
attacker tries (:data:`OSC_KINDS`, :data:`MQTT_KINDS`): random bytes, truncated and oversized OSC,
deep bundles, far timetags, bad type tags, invalid JSON, wrong types, huge numbers, unknown device
ids, 1 MB payloads, forged pongs and fire reports, forged statuses. The bytes are built here from
the public wire formats (OSC 1.0, docs/protocol.md), as any outside sender would: nothing of the
controller is imported. Used by ``madang bench fuzz`` and by the fuzz tests.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Sequence

__all__ = ["MQTT_KINDS", "OSC_KINDS", "Hostile", "osc_bundle", "osc_message"]

OSC_KINDS = (
    "random_bytes",
    "truncated",
    "oversized",
    "deep_bundle",
    "far_timetag",
    "bad_typetag",
    "wrong_args",
    "huge_numbers",
    "unknown_address",
    "forged_pong",
    "forged_fired",
    "control_command",
)
MQTT_KINDS = (
    "invalid_json",
    "wrong_types",
    "huge_numbers",
    "deep_json",
    "unknown_device",
    "big_payload",
    "forged_pong",
    "forged_fired",
    "forged_status",
    "random_topic",
)
# How often each kind comes, relative to 1: oversized and 1 MB payloads cost the sender and the
# broker most (a fuzz run tests the controller, not loopback's bandwidth), so they are rarer.
_OSC_WEIGHTS = [0.1 if k == "oversized" else 1.0 for k in OSC_KINDS]
_MQTT_WEIGHTS = [0.02 if k == "big_payload" else 1.0 for k in MQTT_KINDS]
_CONTROL = ("/go", "/panic", "/stop", "/seek", "/rate", "/load", "/updates", "/connect", "/state", "/go/x")


def _pad(b: bytes) -> bytes:
    return b + b"\x00" * (4 - len(b) % 4)


def osc_message(address: str, args: Sequence[tuple[str, object]]) -> bytes:
    """An OSC 1.0 message: ``args`` as (type tag, value) with tags i, h, f, d, s, b, T, F, N."""
    tags, body = ",", b""
    for tag, v in args:
        tags += tag
        if tag == "i":
            body += struct.pack(">i", v)
        elif tag == "h":
            body += struct.pack(">q", v)
        elif tag == "f":
            body += struct.pack(">f", v)
        elif tag == "d":
            body += struct.pack(">d", v)
        elif tag == "s":
            body += _pad(str(v).encode())
        elif tag == "b":
            data = bytes(v)  # type: ignore[call-overload]
            body += struct.pack(">i", len(data)) + data + b"\x00" * (-len(data) % 4)
    return _pad(address.encode()) + _pad(tags.encode()) + body


def osc_bundle(timetag: int, elements: list[bytes]) -> bytes:
    """An OSC 1.0 bundle of ``elements`` (each a message or bundle) at NTP ``timetag``."""
    out = b"#bundle\x00" + struct.pack(">Q", timetag)
    for e in elements:
        out += struct.pack(">i", len(e)) + e
    return out


class Hostile:
    """Hostile messages for one controller, seeded. ``devices``: ids the venue knows (forgeries
    name them); ``show``: the show's name (forged fire reports name it)."""

    def __init__(
        self, seed: int, devices: Sequence[str], show: str = "", kinds: Sequence[str] | None = None
    ) -> None:
        """``kinds``: only these (of :data:`OSC_KINDS` and :data:`MQTT_KINDS`); default all."""
        self.rng = random.Random(seed)
        unknown = set(kinds or ()) - set(OSC_KINDS) - set(MQTT_KINDS)
        if unknown:
            raise ValueError(f"unknown hostile kinds {sorted(unknown)}; known: {OSC_KINDS + MQTT_KINDS}")
        pick = set(kinds or OSC_KINDS + MQTT_KINDS)
        self._osc = [(k, w) for k, w in zip(OSC_KINDS, _OSC_WEIGHTS, strict=True) if k in pick] or [
            ("random_bytes", 1.0)
        ]
        self._mqtt = [(k, w) for k, w in zip(MQTT_KINDS, _MQTT_WEIGHTS, strict=True) if k in pick] or [
            ("invalid_json", 1.0)
        ]
        self.devices = list(devices) or ["nobody"]
        self.show = show
        self.n = 0

    def _int(self) -> int:
        return self.rng.choice([0, -1, 1, 2**31 - 1, -(2**31), self.rng.randrange(-(2**31), 2**31)])

    # -- OSC ------------------------------------------------------------------------------------

    def osc(self, kind: str | None = None) -> tuple[str, bytes]:
        """One hostile OSC datagram: (its kind, its bytes)."""
        r = self.rng
        kind = kind or r.choices([k for k, _ in self._osc], [w for _, w in self._osc])[0]
        self.n += 1
        if kind == "random_bytes":
            return kind, r.randbytes(r.randrange(1, 200))
        if kind == "truncated":
            good = osc_message("/madang/fired", [("i", 7), ("h", 123456789)])
            return kind, good[: r.randrange(1, len(good))]
        if kind == "oversized":
            return kind, osc_message("/x", [("b", b"\x00" * 65_000)])
        if kind == "deep_bundle":
            inner = osc_message("/deep", [("i", 1)])
            for _ in range(r.randrange(20, 200)):
                inner = osc_bundle(1, [inner])
            return kind, inner
        if kind == "far_timetag":
            tt = r.choice([0xFFFFFFFF_FFFFFFFF, 2, 0x7FFFFFFF_00000000, r.getrandbits(64)])
            return kind, osc_bundle(tt, [osc_message("/madang/fired", [("i", 1), ("h", 1)])])
        if kind == "bad_typetag":
            return kind, _pad(b"/go") + _pad(b",zq\xff") + r.randbytes(8)
        if kind == "wrong_args":
            return kind, osc_message(r.choice(_CONTROL), [("s", "x" * r.randrange(0, 300)), ("f", 1.5)])
        if kind == "huge_numbers":
            value = r.choice([float("inf"), float("nan"), 1e308, -1e308])
            return kind, osc_message(r.choice(["/rate", "/seek", "/load", "/madang/pong"]), [("d", value)])
        if kind == "unknown_address":
            return kind, osc_message(f"/madang/dev/fuzz-{self.n}/{r.randrange(10**9)}", [("i", self.n)])
        if kind == "forged_pong":
            args = [("i", self._int()), ("h", r.getrandbits(62)), ("h", r.getrandbits(62)), ("h", 1)]
            return kind, osc_message("/madang/pong", args)
        if kind == "forged_fired":
            return kind, osc_message("/madang/fired", [("i", r.randrange(0, 64)), ("h", r.getrandbits(62))])
        return "control_command", osc_message(r.choice(_CONTROL), [])

    # -- MQTT -----------------------------------------------------------------------------------

    def mqtt(self, kind: str | None = None) -> tuple[str, str, bytes]:
        """One hostile MQTT message: (its kind, topic, payload)."""
        r = self.rng
        kind = kind or r.choices([k for k, _ in self._mqtt], [w for _, w in self._mqtt])[0]
        self.n += 1
        device = r.choice(self.devices)
        report = r.choice(["pong", "status", "fired"])
        topic = f"madang/dev/{device}/{report}"
        if kind == "invalid_json":
            return kind, topic, r.choice([b"{", b"[1,", b"\xff\xfe", b'{"seq": }', r.randbytes(40)])
        if kind == "wrong_types":
            body: dict[str, object] = {
                "seq": "x",
                "t1": [],
                "t2": {},
                "t3": None,
                "state": 5,
                "local": "now",
                "synced": "yes",
            }
            return kind, topic, json.dumps(body).encode()
        if kind == "huge_numbers":
            big = r.choice(["1e400", str(2**70), "-1e400", "123456789012345678901234567890"])
            return kind, topic, f'{{"seq": {big}, "t1": {big}, "t2": 1, "t3": 1, "local": {big}}}'.encode()
        if kind == "deep_json":
            depth = r.choice([64, 1000, 5000])
            return kind, topic, b"[" * depth + b"]" * depth
        if kind == "unknown_device":
            return kind, f"madang/dev/fuzz-{self.n}/{report}", b'{"state": "ready", "seq": 1}'
        if kind == "big_payload":
            return kind, topic, b"x" * (1024 * 1024)
        if kind == "forged_pong":
            body = {"seq": r.randrange(0, 2**31), "t1": r.getrandbits(62), "t2": r.getrandbits(62), "t3": 1}
            return kind, f"madang/dev/{device}/pong", json.dumps(body).encode()
        if kind == "forged_fired":
            body2: dict[str, object] = {"show": self.show, "cue": "x", "seq": r.randrange(-5, 64), "local": 1}
            return kind, f"madang/dev/{device}/fired", json.dumps(body2).encode()
        if kind == "forged_status":
            body3 = {"state": r.choice(["ready", "alive", "offline", "nonsense"]), "boot": r.getrandbits(40)}
            return kind, f"madang/dev/{device}/status", json.dumps(body3).encode()
        return "random_topic", f"fuzz/{r.randrange(10**6)}/{self.n}", r.randbytes(r.randrange(0, 64))

    # -- WebSocket ------------------------------------------------------------------------------

    def ws(self) -> tuple[str, str | bytes]:
        """One hostile WebSocket frame for a device session: (its kind, the frame)."""
        kind, topic, payload = self.mqtt()
        r = self.rng
        pick = r.randrange(4)
        if pick == 0:
            return kind, payload  # not an envelope at all
        if pick == 1:
            return "wrong_envelope", json.dumps({"topic": r.choice([5, None, [], "#"]), "payload": 1})
        try:
            inner: object = json.loads(payload)
        except (ValueError, RecursionError):
            inner = payload.decode("latin-1")[:1000]
        return kind, json.dumps({"topic": topic, "payload": inner})
