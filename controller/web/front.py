"""The controller's web front: one server, the WebSocket hub, the audience desk and their routes.

:class:`WebFront` is what the runtime holds. It serves

* ``/ws?device={id}`` (and any other ``ws: {path}`` of the venue): the venue's WebSocket devices
  (docs/protocol.md, "WebSocket");
* ``/audience`` (the light page), its socket ``/audience/ws`` (the venue's ``audience.path``)
  and its script, when the venue has an audience pool;
* ``/media/{name}``: the show's crowd images (PNG files of the show folder that its ``light:``
  actions name), for the light page to sample;

and lets later surfaces add theirs through :attr:`WebFront.server` (``add_page``,
``add_socket``: docs/operator.md, "Web"). Everything a frame says goes to ``deliver`` (the
runtime's MQTT path into the player); everything the core publishes comes in through
:meth:`WebFront.publish`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from controller.clock import Clock
from controller.delivery import MqttPublish
from controller.web.audience import AudienceDesk, Slot
from controller.web.devkeys import DeviceKeys
from controller.web.hub import Deliver, WsHub, device_topics, envelope, text_frame
from controller.web.server import StampedConnection, WebServer
from venues.model import Device, Venue

__all__ = ["STATIC", "WELCOME_TOPIC", "WebFront"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
"""The pages' files (plain HTML and JavaScript, no build step)."""

WELCOME_TOPIC = "madang/ws/welcome"
"""The first frame an audience connection gets: its slot (docs/protocol.md, "The audience")."""

_enc = msgspec.json.Encoder()


class _Peer:
    """A websockets connection as the hub writes to it: complete frames (the hub builds them,
    :func:`~controller.web.hub.text_frame`) go straight to the transport, never through an
    ``await``. Only while the connection is open: a closing handshake has begun otherwise, after
    which no data frame may follow (RFC 6455 section 5.5.1)."""

    __slots__ = ("conn",)

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn

    def write(self, frame: bytes) -> None:
        conn = self.conn
        transport = conn.transport
        if conn.protocol.state is not State.OPEN or transport is None or transport.is_closing():
            return
        try:
            transport.write(frame)
        except (OSError, RuntimeError) as err:
            log.debug("WebSocket write failed", extra={"error": str(err)})

    def buffered(self) -> int:
        transport = self.conn.transport
        return 0 if transport is None else int(transport.get_write_buffer_size())

    def abort(self, reason: str) -> None:
        log.info("WebSocket connection cut", extra={"reason": reason})
        transport = self.conn.transport
        if transport is not None:
            transport.abort()


class WebFront:
    """The web server with the hub and the audience desk (see the module docstring)."""

    def __init__(
        self,
        venue: Venue,
        deliver: Deliver,
        *,
        clock: Clock,
        host: str = "127.0.0.1",
        port: int = 8080,
        origins: Sequence[str] = (),
        media: Mapping[str, Path | str] | None = None,
        show: str = "",
        device_keys: DeviceKeys | None = None,
    ) -> None:
        self.venue = venue
        # The WebSocket devices' keys (controller.web.devkeys): None, any connection naming a
        # device speaks for it (the runtime says so at start).
        self.device_keys = device_keys
        self.clock = clock
        self.show = show
        self.hub = WsHub(deliver, clock=clock)
        self.server = WebServer(host=host, port=port, origins=origins, stamp=clock.wall_ns)
        self.desk = AudienceDesk(venue.audience) if venue.audience is not None else None
        self.media = {name: Path(f) for name, f in (media or {}).items()}
        self.refused: dict[str, int] = {"unknown_device": 0, "audience_full": 0, "standby": 0}
        # Sends addressed to one device that only a WebSocket reaches skip the broker.
        self._ws_only = frozenset(d.id for d in venue.devices if d.ws is not None and d.mqtt is None)
        self._task: asyncio.Task[None] | None = None
        # The audience WebSocket addresses of the other controllers of a hot-standby pair (the
        # runtime keeps it current): the welcome lists them, so a phone that loses this one tries
        # those (docs/standby.md, "Phones and WebSocket devices").
        self.others: list[str] = []
        # Whether this controller drives the show (a hot standby does not, until it takes over):
        # devices that connect to a standby are sent on (1013) to the live one of their list.
        self.live: Callable[[], bool] = lambda: True
        self._routes()

    def allow_peer(self, ws_url: str) -> None:
        """Let pages served by the controller at ``ws_url`` (the other of a pair) open this one's
        sockets: a phone whose page came from the primary reconnects here after a takeover."""
        parts = urlsplit(ws_url)
        if parts.scheme in ("ws", "wss") and parts.netloc:
            origin = f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"
            if origin not in self.server.origins:
                self.server.origins = self.server.origins | {origin}

    def _routes(self) -> None:
        srv = self.server
        paths = sorted({d.ws.path for d in self.venue.devices if d.ws is not None and not d.pooled})
        for path in paths:
            srv.add_socket(path, self._device_socket, browser=True, title=f"devices {path}")
        pool = self.venue.audience
        if pool is not None:
            srv.add_page("/audience", file=STATIC / "audience.html", title="audience")
            srv.add_page("/static/audience.js", file=STATIC / "audience.js")
            srv.add_socket(pool.path, self._audience_socket, browser=True)
        for name, file in self.media.items():
            srv.add_page(f"/media/{name}", file=Path(file))

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the server and start the hub's fan-out task."""
        await self.server.start()
        self._task = asyncio.create_task(self.hub.run(), name="web-hub")

    async def close(self, drain_s: float = 1.0) -> None:
        """Send what is queued (at most ``drain_s``), then close every connection and the server."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.hub.idle.wait(), drain_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.hub.close_all("the controller is stopping")
        await self.server.close()

    def urls(self) -> dict[str, str]:
        """What to print at start: the server's titled routes."""
        return self.server.urls()

    # -- out ---------------------------------------------------------------------------------

    def publish(self, item: MqttPublish) -> bool:
        """One publish of the core. Returns True when it is for a device only a WebSocket
        reaches (the broker need not carry it)."""
        self.hub.publish(item)
        return item.device is not None and item.device in self._ws_only

    # -- sockets -----------------------------------------------------------------------------

    async def _not_live(self, conn: ServerConnection) -> bool:
        """Close a connection to a controller that is not live (a standby): try the next."""
        if self.live():
            return False
        self.refused["standby"] += 1
        await conn.close(1013, "this controller is the hot standby; try the live one")
        return True

    async def _device_socket(self, conn: ServerConnection) -> None:
        if await self._not_live(conn):
            return
        query = parse_qs(urlsplit(conn.request.path if conn.request else "").query)
        did = (query.get("device") or [""])[0]
        dev = self.venue.by_id.get(did)
        if dev is None or dev.ws is None or dev.pooled:
            self.refused["unknown_device"] += 1
            await conn.close(1008, "no such WebSocket device in the venue"[:120])
            return
        if self.device_keys is not None:
            key = (query.get("key") or [""])[0]
            remote = conn.remote_address
            source = str(remote[0]) if remote else "?"
            reason = self.device_keys.check(dev.id, key, source, self.clock.monotonic_ns())
            if reason is not None:  # refused before the hub hears of it: the live session stays
                first = self.device_keys.refused[reason] == 1
                (log.warning if first else log.debug)(
                    "WebSocket device refused (%s; the first of each reason is logged, all are counted)",
                    reason,
                    extra={"device": dev.id, "reason": reason, "source": source},
                )
                await conn.close(
                    1008, "device key refused" if reason != "rate_limited" else "too many wrong keys"
                )
                return
        await self._serve(conn, dev)

    async def _audience_socket(self, conn: ServerConnection) -> None:
        assert self.desk is not None
        if await self._not_live(conn):
            return
        query = parse_qs(urlsplit(conn.request.path if conn.request else "").query)

        def arg(name: str) -> str | None:
            v = (query.get(name) or [""])[0][:64]
            return v or None

        device, token = arg("device"), arg("rejoin")
        slot = self.desk.take(
            zone=arg("zone"),
            seat=arg("seat"),
            rejoin=(device, token) if device and token else None,
        )
        if slot is None:
            self.refused["audience_full"] += 1
            await conn.close(1013, "the audience is full here; try again later")
            return
        host = conn.request.headers.get("Host", "") if conn.request else ""
        own = f"ws://{host}{self.venue.audience.path if self.venue.audience else ''}" if host else ""
        try:
            await self._serve(conn, self.venue.device(slot.device), hello=self._welcome(slot, own))
        finally:
            self.desk.give_back(slot)

    def _welcome(self, slot: Slot, own: str = "") -> bytes:
        dev = self.venue.device(slot.device)
        pool = self.venue.audience
        assert pool is not None
        seat = slot.seat
        body: dict[str, Any] = {
            "device": dev.id,
            "root": dev.topic_root,
            "zone": dev.zone,
            "kind": dev.kind,
            "show": self.show,
            "seat": None if seat is None else seat.label,
            "position": None if seat is None else [seat.x, seat.y],
            "bounds": None if pool.bounds is None else list(pool.bounds),
            "rejoin": slot.token,
            "tap": f"madang/audience/{dev.zone}/{dev.id}/tap",
            "vote": f"madang/audience/{dev.zone}/{dev.id}/vote/",
            "subscriptions": list(device_topics(dev)),
            "media": {name: f"/media/{name}" for name in self.media},
            # Every controller's audience address, this one first: where to reconnect.
            "controllers": [u for u in [own, *self.others] if u],
            "proto": 1,
        }
        return envelope(WELCOME_TOPIC, _enc.encode(body))

    async def _serve(self, conn: ServerConnection, dev: Device, *, hello: bytes | None = None) -> None:
        peer = _Peer(conn)
        if hello is not None:
            peer.write(text_frame(hello))
        clock = self.clock
        session = self.hub.attach(dev, peer, clock.wall_ns())
        arrived = conn.arrived if isinstance(conn, StampedConnection) else (lambda: None)
        try:
            async for frame in conn:
                self.hub.receive(session, frame, arrived() or clock.wall_ns())
        except ConnectionClosed:
            pass
        finally:
            self.hub.detach(session, clock.wall_ns())

    # -- report ------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """The counters for the post-show report: the hub's, refusals, the audience's."""
        out: dict[str, Any] = {
            "url": self.server.base_url(),
            **self.hub.stats.as_dict(),
            "refused": {**self.refused, **dict(self.server.refused)},
        }
        if self.device_keys is not None:
            out["device_keys"] = self.device_keys.report()
        if self.desk is not None:
            out["audience"] = {"capacity": self.desk.pool.capacity, "taken": self.desk.taken}
        return out
