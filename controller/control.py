"""The OSC control port: QLab-style commands so Companion, a Stream Deck or TouchOSC can drive a show.

Theory of operation
-------------------
:func:`parse_command` is pure: an OSC address and its arguments in, an engine command (or a
query, or a refusal with a reason) out. :class:`ControlPort` is the thin asyncio adapter: it
receives datagrams, refuses any whose source address is not allowed (loopback by default),
decodes them with our bounded OSC decoder, hands commands to a callback and sends a reply to the
sender, as QLab does: ``/reply{address}`` with one string argument holding JSON
``{"address": ..., "status": "ok" | "error" | "denied", "data": ...}``.

Addresses (QLab's where QLab has one):

==========================  ==================================================
``/go``                     GO: start the standby cue
``/go/{cue}``               start cue ``{cue}`` (and move the playhead there)
``/cue/{cue}/start``        same as ``/go/{cue}``
``/stop``                   stop: every device to its safe state
``/pause`` ``/resume``      hold everything / carry on
``/panic``                  every device to its safe state now
``/playhead/next``          move the standby cue forward
``/playhead/previous``      move the standby cue back
``/seek <seconds>``         jump to a show time (catch-up state is sent)
``/seek/{cue}``             jump to a cue
``/rate <factor>``          playback rate (rehearsal at 2x)
``/state``                  reply with the transport state (no change)
==========================  ==================================================

Malformed packets are counted and dropped; they never reach the engine.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from typing import Any, cast

import msgspec

from controller.osc import OscDecodeError, OscMessage, decode_packet, encode_message, messages
from controller.playback import (
    Command,
    Go,
    Panic,
    Pause,
    PlayheadNext,
    PlayheadPrevious,
    Resume,
    Seek,
    SetRate,
    Stop,
)

__all__ = ["ControlPort", "ControlStats", "Query", "Refusal", "parse_command"]

log = logging.getLogger(__name__)

MAX_DATAGRAM = 64 * 1024
NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Query:
    """A request for state that changes nothing (``/state``)."""

    what: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """A control message that is understood to be wrong: the reason goes back to the sender."""

    reason: str


def parse_command(address: str, args: Sequence[object]) -> Command | Query | Refusal:
    """Map one control message to an engine command, a query, or a refusal with a reason."""
    parts = [p for p in address.split("/") if p]
    if not parts:
        return Refusal("empty address")
    head = parts[0]
    if head == "go" and len(parts) == 1:
        return Go(cue=None)
    if head == "go" and len(parts) == 2:
        return Go(cue=parts[1])
    if head == "cue" and len(parts) == 3 and parts[2] == "start":
        return Go(cue=parts[1])
    if len(parts) == 1 and head in _SIMPLE:
        return _SIMPLE[head]()
    if head == "playhead" and len(parts) == 2:
        if parts[1] == "next":
            return PlayheadNext()
        if parts[1] == "previous":
            return PlayheadPrevious()
    if head == "seek":
        if len(parts) == 2:
            return Seek(cue=parts[1])
        seconds = _one_number(args)
        if seconds is None or seconds < 0:
            return Refusal("/seek takes one number of seconds >= 0, or use /seek/{cue}")
        return Seek(show_ns=round(seconds * NS_PER_S))
    if head == "rate" and len(parts) == 1:
        rate = _one_number(args)
        if rate is None or not 0.05 <= rate <= 16:
            return Refusal("/rate takes one number between 0.05 and 16")
        return SetRate(rate=rate)
    if head == "state" and len(parts) == 1:
        return Query("state")
    return Refusal(f"unknown address {address}; see docs/operator.md for the control addresses")


_SIMPLE: dict[str, Callable[[], Command]] = {
    "stop": Stop,
    "pause": Pause,
    "resume": Resume,
    "panic": Panic,
}


def _one_number(args: Sequence[object]) -> float | None:
    if len(args) != 1:
        return None
    v = args[0]
    if isinstance(v, bool) or not isinstance(v, int | float):
        if isinstance(v, str):
            try:
                f = float(v)
            except ValueError:
                return None
            return f if math.isfinite(f) else None
        return None
    f = float(v)
    return f if math.isfinite(f) else None


@dataclass
class ControlStats:
    """Counters the operator view and the post-show report show."""

    received: int = 0
    accepted: int = 0
    rejected: int = 0
    denied: int = 0
    malformed: int = 0
    oversize: int = 0
    last_denied: str = ""
    denied_logged: set[str] = field(default_factory=set)


Handler = Callable[[Command | Query, tuple[str, int]], tuple[str, Any]]
"""Called with a command or query and the sender; returns (status, data) for the reply."""


class ControlPort(asyncio.DatagramProtocol):
    """The asyncio adapter of the control port. Create with :meth:`open`."""

    def __init__(self, handler: Handler, allow: Sequence[str] = ("127.0.0.0/8", "::1/128")) -> None:
        self._handler = handler
        self._allow = [ip_network(a, strict=False) for a in allow]
        self.stats = ControlStats()
        self._transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(
        cls, handler: Handler, *, host: str = "0.0.0.0", port: int = 53000, allow: Sequence[str] | None = None
    ) -> ControlPort:
        """Bind the control port; ``port=0`` picks a free one (see :attr:`port`)."""
        loop = asyncio.get_running_loop()
        proto = cls(handler, allow or ("127.0.0.0/8", "::1/128"))
        await loop.create_datagram_endpoint(lambda: proto, local_addr=(host, port))
        return proto

    @property
    def port(self) -> int:
        """The UDP port actually bound."""
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        """Stop listening."""
        if self._transport is not None:
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        st = self.stats
        st.received += 1
        if not self._allowed(addr[0]):
            st.denied += 1
            st.last_denied = addr[0]
            if addr[0] not in st.denied_logged and len(st.denied_logged) < 1000:
                st.denied_logged.add(addr[0])
                log.warning(
                    "control command refused from a source that is not allowed",
                    extra={"source": addr[0], "hint": "add it with --control-allow"},
                )
            return
        if len(data) > MAX_DATAGRAM:
            st.oversize += 1
            return
        try:
            packet = decode_packet(data)
        except OscDecodeError as err:
            st.malformed += 1
            log.warning("malformed control packet dropped", extra={"source": addr[0], "error": str(err)})
            return
        for msg in messages(packet):
            self._dispatch(msg, addr)

    def _allowed(self, host: str) -> bool:
        try:
            ip = ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self._allow)

    def _dispatch(self, msg: OscMessage, addr: tuple[str, int]) -> None:
        st = self.stats
        parsed = parse_command(msg.address, msg.args)
        if isinstance(parsed, Refusal):
            st.rejected += 1
            self._reply(msg.address, "error", parsed.reason, addr)
            return
        try:
            status, data = self._handler(parsed, addr)
        except Exception:  # the show must go on: a handler bug must not kill the control port
            log.exception("control handler failed", extra={"address": msg.address})
            status, data = "error", "internal error; see the controller log"
        if status == "ok":
            st.accepted += 1
        else:
            st.rejected += 1
        self._reply(msg.address, status, data, addr)

    def _reply(self, address: str, status: str, data: Any, addr: tuple[str, int]) -> None:
        if self._transport is None:
            return
        body = msgspec.json.encode({"address": address, "status": status, "data": data}).decode()
        self._transport.sendto(encode_message("/reply" + address, [body]), addr)

