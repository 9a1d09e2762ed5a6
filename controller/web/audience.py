"""The audience desk: which slot of the venue's audience pool a joining phone gets.

The venue declares the pool (:class:`venues.model.AudiencePool`): ``capacity`` slots, each an
``app`` device over WebSocket, split among zones, and a seat map. A phone that opens the light
page connects to the pool's socket with what it knows (``?seat=A-12-7`` from the QR code or typed
in, ``?zone=yeouido`` picked, or nothing); the desk gives it a free slot:

* the seat's section names the zone when the seat is on the map (its position goes back to the
  page, which computes crowd effects from it);
* else the zone it picked, when the pool has it;
* else the zone with the most free slots.

A phone that comes back (a reload, a dropped Wi-Fi) presents the slot and the ``rejoin`` token it
was given, and gets the same slot back while it is still free, so its clock sync and the cues it
has deduplicated carry on. A full zone refuses (the page says so); nothing waits.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass

from venues.model import AudiencePool, Seat

__all__ = ["AudienceDesk", "Slot"]


@dataclass(frozen=True, slots=True)
class Slot:
    """A slot given to one connection: its device id, zone, seat (None: not on the map) and the
    token that takes it back after a reconnect."""

    device: str
    zone: str
    seat: Seat | None
    token: str


class AudienceDesk:
    """Hands out the pool's slots (see the module docstring). Not thread-safe: the loop's."""

    def __init__(self, pool: AudiencePool) -> None:
        self.pool = pool
        self._free: dict[str, deque[str]] = {z: deque(ids) for z, ids in pool.slots.items()}
        self._zone_of = {d: z for z, ids in pool.slots.items() for d in ids}
        self._taken: dict[str, Slot] = {}
        self._tokens: dict[str, str] = {}  # device -> the token of its last holder
        self.refused = 0

    @property
    def taken(self) -> int:
        """Slots held now."""
        return len(self._taken)

    def free(self, zone: str) -> int:
        """Free slots of a zone."""
        return len(self._free.get(zone, ()))

    def take(
        self, *, zone: str | None = None, seat: str | None = None, rejoin: tuple[str, str] | None = None
    ) -> Slot | None:
        """A free slot for a joining phone, or None (its zone is full)."""
        where = self.pool.seat(seat) if seat else None
        if rejoin is not None:
            device, token = rejoin
            z = self._zone_of.get(device)
            if (
                z is not None
                and device not in self._taken
                and secrets.compare_digest(self._tokens.get(device, ""), token)
                and (where is None or where.zone == z)
            ):
                self._free[z].remove(device)
                return self._give(device, z, where)
        if where is not None:
            z = where.zone
        elif zone is not None and zone in self._free:
            z = zone
        else:
            z = max(self._free, key=lambda k: len(self._free[k]))
        free = self._free[z]
        if not free:
            self.refused += 1
            return None
        return self._give(free.popleft(), z, where)

    def _give(self, device: str, zone: str, seat: Seat | None) -> Slot:
        slot = Slot(device, zone, seat, secrets.token_urlsafe(12))
        self._taken[device] = slot
        self._tokens[device] = slot.token
        return slot

    def give_back(self, slot: Slot) -> None:
        """The phone left: its slot is free again (last in line, so it can rejoin it soon)."""
        if self._taken.get(slot.device) is slot:
            del self._taken[slot.device]
            self._free[slot.zone].append(slot.device)
