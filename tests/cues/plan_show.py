"""A hand-built show for the plan and chart tests: Han River in miniature, five cues in three sequences."""

from __future__ import annotations

from cues.timeline import (
    Action,
    CueSpan,
    Ease,
    EventTrigger,
    Fade,
    Go,
    MqttSend,
    OscSend,
    OscTyped,
    Sequence,
    Timeline,
)
from venues.model import Device, MqttEndpoint, OscEndpoint, Sync, Venue

S = 1_000_000_000


def make_venue() -> Venue:
    """Han River in miniature: 12 facades in three zones, 3 barges, 1,260 headsets."""
    devices: list[Device] = []
    for i in range(1, 13):
        zone = "yeouido" if i <= 4 else "banpo" if i <= 10 else "ttukseom"
        devices.append(
            Device(f"fac-{i:02d}", "facade", zone, Sync.TIMETAG, osc=OscEndpoint("127.0.0.1", 9000 + i))
        )
    devices += [
        Device(f"barge-{i}", "barge", "banpo", Sync.ECHO, osc=OscEndpoint("127.0.0.1", 9100 + i))
        for i in range(1, 4)
    ]
    for i in range(1, 1261):
        zone = "banpo" if i <= 1200 else "yeouido"
        devices.append(
            Device(f"xr-{i:04d}", "xr", zone, Sync.APP, mqtt=MqttEndpoint(f"madang/dev/xr-{i:04d}"))
        )
    groups = {
        "facades": tuple(d.id for d in devices if d.kind == "facade"),
        "barges": tuple(d.id for d in devices if d.kind == "barge"),
        "xr-audience": tuple(d.id for d in devices if d.kind == "xr"),
    }
    return Venue(
        "han-river", "Han River", ("yeouido", "banpo", "ttukseom"), "127.0.0.1:1883", tuple(devices), groups
    )


def make_timeline(venue: Venue) -> Timeline:
    """Five cues in three sequences: GO, auto-follow with pre-wait, auto-continue, an event
    wait with a timeout, and a second GO."""
    ids = [d.id for d in venue.devices]
    facades = venue.groups["facades"]
    yeouido_facades = tuple(d.id for d in venue.devices if d.zone == "yeouido" and d.kind == "facade")
    banpo_xr = tuple(d.id for d in venue.devices if d.zone == "banpo" and d.kind == "xr")
    xr = venue.groups["xr-audience"]
    cues = (
        CueSpan("preshow", "Dusk falls", 0, Go.MANUAL, 0, 0, 8 * S, sequence=0),
        CueSpan("bloom", "Bloom", 1, Go.AUTO_FOLLOW, 8 * S, 10 * S, 16 * S, post_wait_ns=3 * S, sequence=0),
        CueSpan("ripple", "Ripple", 2, Go.AUTO_CONTINUE, 11 * S, 11 * S, 15 * S, sequence=0),
        CueSpan(
            "lotus",
            "Lotus",
            3,
            Go.AUTO_FOLLOW,
            16 * S,
            16 * S,
            36 * S,
            trigger=EventTrigger("mqtt", "xr/+/ready", count=1000, timeout_ns=30 * S, on_timeout="go"),
            sequence=1,
        ),
        CueSpan("finale", "Night", 4, Go.MANUAL, 36 * S, 36 * S, 46 * S, sequence=2),
    )
    ops: list[tuple[int, str, tuple[str, ...], OscSend | MqttSend | Fade]] = [
        (0, "preshow", facades, OscSend("/scene", ("dusk", 0.5, OscTyped("h", 7)))),
        (0, "preshow", xr, MqttSend("xr/{device}/scene", {"scene": "dusk"}, qos=1)),
        (0, "preshow", facades, Fade("brightness", 0.0, 0.4, 8 * S, Ease("in-out-sine"))),
        (10 * S, "bloom", yeouido_facades, Fade("brightness", None, 1.0, 6 * S, Ease("out-back"))),
        (10 * S, "bloom", venue.groups["barges"], OscSend("/fx", ("bloom", True))),
        (11 * S, "ripple", banpo_xr, MqttSend("xr/{device}/video", {"clip": "ripple.mp4", "seek": 0})),
        (11 * S, "ripple", banpo_xr, Fade("opacity", 0.0, 1.0, 4 * S, Ease("steps", (4, 0)))),
        (16 * S, "lotus", facades, OscSend("/scene", ("lotus",))),
        (16 * S, "lotus", banpo_xr[:64], Fade("hue", 0.2, 0.8, 20 * S, Ease("in-out-elastic"))),
        (20 * S, "lotus", ("fac-01", "fac-05"), OscSend("/strobe", (None, b"\x00\x01"))),
        (36 * S, "finale", tuple(ids), OscSend("/scene", ("night",))),
        (36 * S, "finale", facades, Fade("brightness", 1.0, 0.0, 10 * S, Ease("in-expo"))),
        (36 * S, "finale", xr, MqttSend("madang/show/end", None, retain=True)),
    ]
    actions = tuple(
        Action(at, cue, seq, devices, op)
        for seq, (at, cue, devices, op) in enumerate(sorted(ops, key=lambda o: o[0]))
    )
    sequences = (
        Sequence(0, ("preshow", "bloom", "ripple"), 0, 16 * S),
        Sequence(1, ("lotus",), 16 * S, 36 * S),
        Sequence(2, ("finale",), 36 * S, 46 * S),
    )
    return Timeline(
        "han-river-night-bloom", "han-river", cues, sequences, actions, 46 * S, device_count=len(ids)
    )
