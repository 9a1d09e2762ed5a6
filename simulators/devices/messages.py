"""What device cores hand back to whoever drives them: datagrams to send and messages to publish."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Datagram", "DeviceCore", "Publish"]


@dataclass(frozen=True, slots=True)
class Datagram:
    """A UDP datagram to send; ``to`` is the source address of the message it answers
    (a ``(host, port)`` tuple in real time, an endpoint name in virtual time)."""

    data: bytes
    to: object


@dataclass(frozen=True, slots=True)
class Publish:
    """A message to publish (MQTT) or send in the WebSocket envelope."""

    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 0


class DeviceCore(Protocol):
    """What every sans-I/O device core offers its driver (virtual time or real sockets).

    The driver calls ``tick(now)`` when ``due_at()`` (true ns) arrives, and sends what it returns.
    """

    @property
    def index(self) -> int: ...

    def due_at(self) -> int | None: ...

    def tick(self, true_now: int) -> list[Datagram] | list[Publish]: ...
