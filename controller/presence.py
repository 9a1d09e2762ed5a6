"""Presence: what the controller knows of each device's liveness, from what it hears of it.

Pure bookkeeping with ``now`` passed in. The core feeds it every message a device sends (a pong,
a status, a fire report) and asks it whether a status means the device (re)joined and whether it
really restarted; the operator's counts (online, late, offline, unknown) come from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controller.wire import Status

__all__ = ["DeviceHealth", "Presence"]

S = 1_000_000_000


@dataclass(slots=True)
class DeviceHealth:
    """What the controller knows of one device's presence."""

    status: str = "unknown"  # unknown | ready | alive | offline
    last_seen_ns: int | None = None
    boot: int | None = None  # the device's boot instant (its own clock), from its status
    fired: int = 0


class Presence:
    """Every device's :class:`DeviceHealth`, by id."""

    def __init__(self, devices: Iterable[str]) -> None:
        self.health: dict[str, DeviceHealth] = {d: DeviceHealth() for d in devices}

    def seen(self, device: str, now: int) -> DeviceHealth:
        """A message from ``device`` arrived at ``now``; a device first heard of is ``alive``."""
        h = self.health[device]
        h.last_seen_ns = now
        return h

    def answered(self, device: str, now: int) -> None:
        """A pong: the device is there, even before it says so in a status."""
        h = self.seen(device, now)
        if h.status == "unknown":
            h.status = "alive"

    def receive_status(self, device: str, status: Status, now: int) -> tuple[bool, bool]:
        """A status message; returns ``(ready, rebooted)``: whether it says the device has just
        (re)connected, and whether its clock sync must (re)start: it really restarted (it was
        offline, or its boot instant changed), or it is heard for the first time (it joins: the
        ping burst the controller sent at start went to nobody, docs/protocol.md)."""
        h = self.seen(device, now)
        was = h.status
        h.status = status.state
        ready = status.state == "ready"
        rebooted = ready and (
            was in ("offline", "unknown")
            or (status.boot is not None and h.boot is not None and status.boot != h.boot)
        )
        if status.boot is not None:
            h.boot = status.boot
        return ready, rebooted

    @staticmethod
    def classify(h: DeviceHealth, now: int, *, offline_after_ns: int = 12 * S) -> str:
        """One device's presence for the operator: ``online``, ``late`` (no news for
        ``offline_after_ns``), ``offline``, ``unknown`` (never heard) or ``vacant`` (an audience
        slot no phone holds)."""
        if h.status == "vacant":
            return "vacant"
        if h.status == "offline":
            return "offline"
        if h.last_seen_ns is None:
            return "unknown"
        return "late" if now - h.last_seen_ns > offline_after_ns else "online"

    def counts(self, now: int, *, offline_after_ns: int = 12 * S) -> dict[str, int]:
        """Counts for the operator: online, late (no news for a while), offline, unknown."""
        out = {"online": 0, "late": 0, "offline": 0, "unknown": 0, "vacant": 0}
        for h in self.health.values():
            out[self.classify(h, now, offline_after_ns=offline_after_ns)] += 1
        return out

    def states(self, now: int, *, offline_after_ns: int = 12 * S) -> dict[str, str]:
        """Every device's :meth:`classify`, by id (the console's device grid)."""
        return {d: self.classify(h, now, offline_after_ns=offline_after_ns) for d, h in self.health.items()}
