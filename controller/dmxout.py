"""The DMX driver: renders :class:`~controller.dmx.DmxOutput` frames ahead and fires them on time.

Theory of operation
-------------------
An asyncio task wakes ``lead_ns`` (8 ms) before each frame instant of the venue's frame rate,
asks the pure :class:`~controller.dmx.DmxOutput` for the frame *for that instant* (the show's
state at it), and hands its packets to the :class:`~controller.edge.FiringEdge` for the instant:
the edge thread writes every universe's packet and the sync packet back to back, so the
universes of one frame leave together. Frame instants lie on a grid from the driver's start on
the show (wall) clock; the edge runs on the monotonic clock, so each instant is converted at the
moment it is scheduled. If the loop wakes too late for an instant (a loaded host), that frame is
skipped and counted (``skipped``): the next one carries the state for its own instant anyway.

A standby controller (``live()`` false) renders nothing: only the live controller drives DMX.
:meth:`DmxDriver.close` sends a last frame at once (the safe state after a stop or panic) and
the sACN stream-termination packets.

The socket may broadcast (Art-Net to 2.255.255.255 or a subnet's broadcast address) and
multicast (sACN, TTL from ``multicast_ttl``). A send that fails is counted in ``dropped`` and
logged once per error kind; it never stops the show.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence

from controller.clock import Clock
from controller.dmx import Addr, DmxOutput, DmxSource
from controller.edge import FiringEdge

__all__ = ["DmxDriver", "DmxSocket"]

log = logging.getLogger(__name__)


class DmxSocket:
    """A non-blocking UDP socket that may broadcast and multicast; counts what it could not send."""

    def __init__(self, *, local_addr: Addr = ("0.0.0.0", 0), multicast_ttl: int = 8) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, multicast_ttl)
        self._sock.bind(local_addr)
        self.sent = 0
        self.dropped = 0
        self._warned: set[str] = set()

    def send_batch(self, packets: Sequence[tuple[bytes, Addr]]) -> int:
        """Send every packet now, back to back; returns how many the kernel took."""
        ok = 0
        for data, addr in packets:
            try:
                self._sock.sendto(data, addr)
            except OSError as exc:
                self.dropped += 1
                kind = type(exc).__name__
                if kind not in self._warned:
                    self._warned.add(kind)
                    log.warning("DMX send failed", extra={"addr": f"{addr[0]}:{addr[1]}", "error": str(exc)})
                continue
            ok += 1
        self.sent += ok
        return ok

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()


class DmxDriver:
    """Pumps a venue's DMX frames: ``run()`` as a task, ``close()`` at the end."""

    def __init__(
        self,
        output: DmxOutput,
        source: Callable[[], DmxSource],
        edge: FiringEdge,
        clock: Clock,
        *,
        live: Callable[[], bool] = lambda: True,
        lead_ns: int = 8_000_000,
        sock: DmxSocket | None = None,
    ) -> None:
        self.output = output
        self._source = source
        self._edge = edge
        self._clock = clock
        self._live = live
        self.lead_ns = lead_ns
        self.sock = sock if sock is not None else DmxSocket()
        self.skipped = 0
        self.base_ns: int | None = None
        self._k = 0

    async def run(self) -> None:
        """Render and schedule frames until cancelled."""
        clock, out = self._clock, self.output
        self.base_ns = clock.wall_ns() + self.lead_ns
        self._k = 0
        while True:
            due = out.instant(self.base_ns, self._k)
            wait = due - self.lead_ns - clock.wall_ns()
            if wait > 0:
                await asyncio.sleep(wait / 1e9)
            now = clock.wall_ns()
            if now >= due:  # woke too late for this instant: skip to the next one still ahead
                k = self._k
                while out.instant(self.base_ns, self._k) <= now:
                    self._k += 1
                self.skipped += self._k - k
                continue
            self._k += 1
            if not self._live():
                continue
            frame = out.render(due, self._source())
            if frame.packets:
                mono = due - (clock.wall_ns() - clock.monotonic_ns())
                packets = frame.packets
                self._edge.schedule(mono, lambda p=packets: self._fire(p))  # type: ignore[misc]

    def _fire(self, packets: Sequence[tuple[bytes, Addr]]) -> None:
        self.sock.send_batch(packets)

    def close(self) -> None:
        """Send a last frame now (the safe state after a stop or panic), end the sACN streams,
        and close the socket."""
        if self._live():
            now = self._clock.wall_ns()
            frame = self.output.render(now, self._source())
            self.sock.send_batch(frame.packets)
            self.sock.send_batch(self.output.terminate())
        self.sock.close()

    def counters(self) -> dict[str, int]:
        """Frames, packets, unchanged universes not resent, skipped frames, failed sends."""
        return {
            "frames": self.output.frames,
            "packets": self.output.packets,
            "suppressed": self.output.suppressed,
            "skipped": self.skipped,
            "dropped": self.sock.dropped,
        }
