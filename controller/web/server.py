"""One asyncio HTTP + WebSocket server for every web surface, with a route table.

Theory of operation
-------------------
``websockets`` (asyncio API) serves both: a request that asks to upgrade on a *socket route*
becomes a WebSocket connection handed to that route's handler; any other request is answered in
``process_request`` from the *page routes* (a page, a static file, an image), or with 404. There
is no other HTTP server, so there is one port to open, print and firewall.

The route table is the hook for later surfaces: :meth:`WebServer.add_page` and
:meth:`WebServer.add_socket` take an exact path (``/console``, ``/console/ws``), so a surface
adds its page and its socket without touching this module (docs/operator.md, "Web"). Paths are
matched exactly, without the query string; ``/`` lists the pages.

Browser sockets are checked against their ``Origin``: allowed when it is in the allow list, or
when it is the server's own origin (same-origin: its host and port are the request's ``Host``).
A request with no ``Origin`` (not a browser: a headset app, a test client) is not a
cross-site request and passes; the check defends browsers against other sites' pages, not the
network against clients (tokens do that, for the console). A refused origin is answered 403 and
counted.

Limits: frames above ``max_frame`` close the connection (1009); the hub drops and counts frames
above the protocol's 64 KiB itself; no per-message compression (it costs each send a deflate, and
cue fan-out is the hot path); the protocol's keepalive pings find dead phones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

__all__ = ["MAX_FILE", "Route", "SocketHandler", "StampedConnection", "WebServer"]

log = logging.getLogger(__name__)

SocketHandler = Callable[[ServerConnection], Awaitable[None]]
"""A socket route's handler: it owns the connection until it returns."""

MAX_FILE = 8 * 1024 * 1024  # a page route's file is read per request, up to this size

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}


_MESSAGE_OPCODES = frozenset({Opcode.TEXT, Opcode.BINARY, Opcode.CONT})


class StampedConnection(ServerConnection):
    """A server connection that notes, for each message, when the bytes that completed it reached
    the loop (``data_received``): a pong's receive instant (RFC 5905's ``t4``) is then not the
    instant its handler got round to it, milliseconds later under a fan-out. The handler takes
    one stamp per message it reads, in order (:meth:`arrived`)."""

    stamp: Callable[[], int] = staticmethod(lambda: 0)  # the server sets its clock (wall ns)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._stamps: deque[int] = deque()
        self._rx = 0

    def data_received(self, data: bytes) -> None:
        self._rx = self.stamp()
        super().data_received(data)

    def process_event(self, event: object) -> None:
        if isinstance(event, Frame) and event.fin and event.opcode in _MESSAGE_OPCODES:
            self._stamps.append(self._rx)
        super().process_event(event)  # type: ignore[arg-type]

    def arrived(self) -> int | None:
        """When the next message (the one just read) arrived; None when unknown."""
        return self._stamps.popleft() if self._stamps else None


@dataclass(frozen=True)
class Route:
    """One entry of the route table: a page (``body`` or ``file``) or a socket (``handler``)."""

    path: str
    title: str = ""
    content_type: str = "text/html; charset=utf-8"
    body: bytes | None = None
    file: Path | None = None
    handler: SocketHandler | None = None
    browser: bool = True  # a socket browsers open: Origin is checked

    @property
    def socket(self) -> bool:
        """True for a WebSocket route."""
        return self.handler is not None


class WebServer:
    """The controller's web server (see the module docstring). ``await start()``, then
    :attr:`port` and :meth:`urls`; ``await close()``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        origins: Sequence[str] = (),
        max_frame: int = 256 * 1024,
        stamp: Callable[[], int] | None = None,
    ) -> None:
        """``stamp``: the clock (wall ns) that stamps each message's arrival
        (:class:`StampedConnection`); default ``time.time_ns``."""
        self._connection = type(
            "Stamped", (StampedConnection,), {"stamp": staticmethod(stamp or time.time_ns)}
        )
        self.host = host
        self.port = port
        self.origins = frozenset(o.rstrip("/") for o in origins)
        self.max_frame = max_frame
        self.routes: dict[str, Route] = {}
        self.refused: Counter[str] = Counter()  # requests refused, by reason
        self._server: Server | None = None

    # -- the route table ---------------------------------------------------------------------

    def add_page(
        self,
        path: str,
        *,
        body: bytes | None = None,
        file: Path | None = None,
        content_type: str | None = None,
        title: str = "",
    ) -> None:
        """Serve ``body`` (or ``file``, read at each request) at ``path``. ``title``: listed on
        ``/`` and printed at start when given."""
        if (body is None) == (file is None):
            raise ValueError("a page has a body or a file")
        ctype = content_type or _TYPES.get((file or Path(path)).suffix, "application/octet-stream")
        self._add(Route(path, title, ctype, body=body, file=file))

    def add_socket(self, path: str, handler: SocketHandler, *, browser: bool = True, title: str = "") -> None:
        """Accept WebSocket connections at ``path`` and hand each to ``handler``. ``browser``:
        the ``Origin`` is checked (module docstring)."""
        self._add(Route(path, title, handler=handler, browser=browser))

    def _add(self, route: Route) -> None:
        if not route.path.startswith("/") or "?" in route.path:
            raise ValueError(f"route path {route.path!r}: give an absolute path without a query")
        if route.path in self.routes:
            raise ValueError(f"route {route.path!r} is already served")
        self.routes[route.path] = route

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and serve (port 0: any free port; :attr:`port` is then the one bound)."""
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            compression=None,
            max_size=self.max_frame,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=2,
            server_header="madang",
            create_connection=self._connection,
        )
        sockets = list(self._server.sockets)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("web server listening", extra={"host": self.host, "port": self.port})

    async def close(self) -> None:
        """Stop accepting and close every connection (bounded by the close timeout)."""
        if self._server is None:
            return
        self._server.close(close_connections=True)
        try:
            await asyncio.wait_for(self._server.wait_closed(), 5)
        except TimeoutError:
            log.warning("web server: connections still closing after 5 s")
        self._server = None

    def base_url(self) -> str:
        """``http://host:port`` as a browser on this machine reaches it."""
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def urls(self) -> dict[str, str]:
        """The titled routes' URLs (pages as ``http://``, sockets as ``ws://``), by title."""
        base = self.base_url()
        out: dict[str, str] = {}
        for r in self.routes.values():
            if r.title:
                out[r.title] = ("ws" + base[4:] if r.socket else base) + r.path
        return out

    # -- requests ----------------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        route = self.routes.get(path)
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if route is None:
            if path == "/" and not upgrade:
                return self._index(conn)
            self.refused["not_found"] += 1
            return conn.respond(HTTPStatus.NOT_FOUND, "Not found\n")
        if route.socket:
            if not upgrade:
                self.refused["not_upgrade"] += 1
                return conn.respond(HTTPStatus.UPGRADE_REQUIRED, "This is a WebSocket endpoint\n")
            if route.browser and not self._origin_ok(request):
                self.refused["origin"] += 1
                log.warning(
                    "WebSocket refused: origin not allowed",
                    extra={"origin": request.headers.get("Origin"), "path": path},
                )
                return conn.respond(HTTPStatus.FORBIDDEN, "Origin not allowed\n")
            return None  # the handshake goes on
        body = route.body
        if body is None:
            assert route.file is not None
            try:
                if route.file.stat().st_size > MAX_FILE:
                    raise OSError("too large")
                body = route.file.read_bytes()
            except OSError as err:
                self.refused["file"] += 1
                log.warning("web page file unreadable", extra={"path": path, "error": str(err)})
                return conn.respond(HTTPStatus.NOT_FOUND, "Not found\n")
        headers = Headers(
            [
                ("Content-Type", route.content_type),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
                ("X-Content-Type-Options", "nosniff"),
                # Cross-origin isolation: the browser then gives performance.now() its fine
                # resolution (5 us, not 100 us), which the light page's clock sync needs.
                ("Cross-Origin-Opener-Policy", "same-origin"),
                ("Cross-Origin-Embedder-Policy", "require-corp"),
                ("Cross-Origin-Resource-Policy", "same-origin"),
            ]
        )
        return Response(HTTPStatus.OK.value, "OK", headers, body)

    def _index(self, conn: ServerConnection) -> Response:
        pages = [r for r in self.routes.values() if not r.socket and r.title]
        items = "".join(f'<li><a href="{r.path}">{r.title}</a></li>' for r in pages)
        body = f"<!doctype html><title>Madang</title><h1>Madang</h1><ul>{items}</ul>\n".encode()
        headers = Headers([("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
        return Response(HTTPStatus.OK.value, "OK", headers, body)

    def _origin_ok(self, request: Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser (module docstring)
        origin = origin.rstrip("/")
        if origin in self.origins or "*" in self.origins:
            return True
        parts = urlsplit(origin)
        host = request.headers.get("Host", "")
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()

    async def _handle(self, conn: ServerConnection) -> None:
        route = self.routes.get(urlsplit(conn.request.path).path if conn.request else "")
        if route is None or route.handler is None:
            await conn.close(1008, "no such socket")
            return
        await route.handler(conn)
