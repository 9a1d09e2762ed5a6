"""Helpers for the simulator tests: a small venue and OSC bundle building with exact timetags."""

from __future__ import annotations

import struct
from typing import Any

from simulators.devices._wire import encode_osc, ns_to_ntp
from venues.model import Device, MqttEndpoint, OscEndpoint, Sync, Venue, WsEndpoint


def bundle(timetag: int, *messages: bytes) -> bytes:
    """An OSC 1.0 bundle with a raw 64-bit NTP timetag."""
    out = b"#bundle\x00" + struct.pack(">Q", timetag)
    for m in messages:
        out += struct.pack(">i", len(m)) + m
    return out


def msg(address: str, *args: tuple[Any, str]) -> bytes:
    return encode_osc(address, tuple(args))


def key(show: str, seq: int) -> bytes:
    return encode_osc("/madang/key", ((show, "s"), (seq, "i")))


def timed(local_ns: int) -> int:
    return ns_to_ntp(local_ns)


def display(did: str = "led-1", sync: Sync = Sync.TIMETAG, zone: str = "north") -> Device:
    return Device(
        id=did,
        kind="facade",
        zone=zone,
        sync=sync,
        osc=OscEndpoint("10.0.0.5", 7000),
        safe={"brightness": 0.0},
    )


def headset(did: str = "xr-0001", zone: str = "north", ws: bool = False) -> Device:
    return Device(
        id=did,
        kind="headset",
        zone=zone,
        sync=Sync.APP,
        mqtt=None if ws else MqttEndpoint("madang/dev/{id}"),
        ws=WsEndpoint() if ws else None,
        attrs={"seat": "A12"},
        safe={"brightness": 0.0, "volume": 0.2},
        interpolates=True,
    )


def small_venue(n_displays: int = 3, n_headsets: int = 20) -> Venue:
    devs = [
        display(f"led-{i}", Sync.TIMETAG if i % 3 else Sync.ECHO, "north" if i % 2 else "south")
        for i in range(n_displays)
    ]
    devs += [headset(f"xr-{i:04d}", "north" if i % 2 else "south") for i in range(n_headsets)]
    return Venue(
        id="test",
        name="Test",
        zones=("north", "south"),
        broker="mqtt://127.0.0.1:1883",
        devices=tuple(devs),
        groups={},
    )
