"""OSCQuery: the control port's namespace as a JSON tree over HTTP, its values over WebSocket.

Theory of operation
-------------------
The OSCQuery proposal (Vidvox, github.com/Vidvox/OSCQueryProposal) lets a surface (Chataigne,
TouchOSC, Open Stage Control, a Max patch) discover what an OSC server understands: an HTTP
``GET /path`` answers the JSON node of that OSC address (``FULL_PATH``, ``CONTENTS``, ``TYPE``,
``ACCESS``, ``VALUE``, ``RANGE``, ``DESCRIPTION``), ``GET /path?ATTRIBUTE`` one attribute of it,
and ``GET /?HOST_INFO`` where to send OSC (``OSC_PORT``, ``OSC_TRANSPORT``) and which optional
parts the server speaks (``EXTENSIONS``). With the ``LISTEN`` extension, a WebSocket opened on
the same port takes ``{"COMMAND": "LISTEN", "DATA": "/path"}`` (and ``IGNORE``) as text frames
and streams that path's value changes back as binary frames, each one OSC message.

Here the tree is *the control port's*: :func:`build_tree` renders
:data:`controller.control.ADDRESSES` (the same table docs/operator.md is generated from) with each
``{cue}`` pattern expanded to the show's cues, plus the values the port pushes to ``/updates``
subscribers (:data:`controller.control.UPDATE_ADDRESSES`: the transport state, the playhead, the
playing cue), readable and listenable. OSC itself still goes to the control port's UDP socket
(``HOST_INFO``'s ``OSC_PORT``): OSCQuery opens no second way in, so its source allowlist, its
passcodes, rates and refusals apply to every command unchanged. Nothing here accepts OSC.

**Authority.** The HTTP and WebSocket side answers only sources the control port's allowlist
admits (403 otherwise, counted). When the control port asks for a passcode
(:func:`~controller.control.passcode_required`), what only a session may ask over OSC (``/state``:
the values, and the show's cue names) needs the viewer's or the operator's secret here too, as
``Authorization: Bearer <secret>``: without it the tree holds the fixed addresses (public in
docs/operator.md) but no ``VALUE`` and no per-cue nodes, and ``LISTEN`` is refused. OSCQuery
clients cannot present a secret, so such a venue drives them with the fixed addresses after
``/connect`` (docs/oscquery.md).

:func:`answer` is pure: the tree, a path and a query in, an HTTP status and a JSON body out.
:class:`OscQueryServer` is the thin adapter (``websockets``' ``process_request`` answers the plain
GETs, its handler the LISTEN sockets); :meth:`OscQueryServer.update` takes the ``/state`` data
whenever the transport may have changed and sends each listener what changed
(:func:`~controller.control.plan_updates`, the same decision the ``/updates`` push makes).

**Bounds.** Client frames up to :data:`MAX_CLIENT_FRAME` bytes (a LISTEN is a few dozen);
:data:`MAX_LISTENERS` sockets at once; per socket, :data:`MAX_QUEUED` messages waiting, past
which updates are dropped and counted; at most :data:`MAX_CUE_NODES` cues are expanded into the
tree. A malformed command is counted and ignored, never answered with a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from ipaddress import ip_address, ip_network
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from controller.access import Access
from controller.control import ADDRESSES, UPDATE_ADDRESSES, plan_updates
from controller.limits import Rates
from controller.osc import encode_message

__all__ = [
    "EXTENSIONS",
    "HTTP_RATE_BURST",
    "HTTP_RATE_PER_S",
    "MAX_CLIENT_FRAME",
    "MAX_CUE_NODES",
    "MAX_LISTENERS",
    "MAX_QUEUED",
    "OscQueryServer",
    "OscQueryStats",
    "answer",
    "build_tree",
    "current_values",
    "find_node",
    "host_info",
]

log = logging.getLogger(__name__)

MAX_CLIENT_FRAME = 4096
"""The largest frame a client may send (a LISTEN command is a few dozen bytes)."""
MAX_LISTENERS = 32
"""WebSocket clients at once (a venue has a handful of surfaces; the bound is for safety)."""
MAX_QUEUED = 64
"""Updates waiting for one slow socket before further ones are dropped (and counted)."""
MAX_CUE_NODES = 2000
HTTP_RATE_PER_S = 20.0
"""Requests (GETs and socket opens) a second one source host may make, sustained (burst
:data:`HTTP_RATE_BURST`): a surface reads the tree once, then listens."""
HTTP_RATE_BURST = 40
"""Cues expanded into the tree (``/go/{cue}`` and friends); a larger show lists the first ones."""

EXTENSIONS: dict[str, bool] = {
    "ACCESS": True,
    "VALUE": True,
    "RANGE": True,
    "DESCRIPTION": True,
    "LISTEN": True,
    "TAGS": False,
    "EXTENDED_TYPE": False,
    "UNIT": False,
    "CRITICAL": False,
    "CLIPMODE": False,
    "OVERLOADS": False,
    "PATH_CHANGED": False,
    "PATH_ADDED": False,
    "PATH_REMOVED": False,
    "PATH_RENAMED": False,
    "HTML": False,
}
"""``HOST_INFO``'s ``EXTENSIONS``: what of the proposal's optional parts this server speaks."""

_ACCESS_NONE, _ACCESS_READ, _ACCESS_WRITE = 0, 1, 2
_ATTRIBUTES = frozenset({"FULL_PATH", "CONTENTS", "TYPE", "ACCESS", "VALUE", "RANGE", "DESCRIPTION"})
# OSC 1.0: an address part holds printable ASCII but not these (and '/' separates parts).
_OSC_PART = re.compile(r"^[!-~]+$")
_OSC_RESERVED = set(" #*,/?[]{}")
_UPDATE_DESCRIPTIONS = {
    "/update/state": "the whole transport state as JSON (what /state answers)",
    "/update/transport": "the transport state: armed, playing, paused, stopped, panicked...",
    "/update/playhead": "the standby cue (the one GO plays next); empty for none",
    "/update/cue": "the cue playing now; empty for none",
}


def _valid_part(text: str) -> bool:
    return bool(_OSC_PART.match(text)) and not (_OSC_RESERVED & set(text))


def _container(path: str, description: str = "") -> dict[str, Any]:
    node: dict[str, Any] = {"FULL_PATH": path, "ACCESS": _ACCESS_NONE, "CONTENTS": {}}
    if description:
        node["DESCRIPTION"] = description
    return node


def _place(root: dict[str, Any], path: str) -> tuple[dict[str, Any], bool]:
    """The node at ``path`` (containers made on the way) and whether it was already a method."""
    node = root
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        contents = node.setdefault("CONTENTS", {})
        child = contents.get(part)
        if child is None:
            child = _container("/" + "/".join(parts[: i + 1]))
            contents[part] = child
        node = child
    return node, "TYPE" in node


def _method(node: dict[str, Any], types: str, access: int, description: str) -> None:
    node["TYPE"] = types
    node["ACCESS"] = access
    node["DESCRIPTION"] = description
    if not node.get("CONTENTS"):
        node.pop("CONTENTS", None)


def build_tree(
    cues: Sequence[str] = (), values: Mapping[str, str] | None = None, *, full: bool = True
) -> dict[str, Any]:
    """The OSCQuery root node of the control namespace.

    ``cues``: the show's cue ids, expanded into every ``{cue}`` address (the first
    :data:`MAX_CUE_NODES`; an id that is not a valid OSC address part, or whose address an earlier
    row already holds, is left out: the control port's first match wins there too). ``values``:
    the current value of each of :data:`~controller.control.UPDATE_ADDRESSES`
    (:func:`current_values`). ``full`` False: no ``VALUE`` and no per-cue nodes (a port that asks
    for a passcode, asked without one; module docstring)."""
    root = _container("/", "Madang's control namespace: send OSC to HOST_INFO's OSC_PORT")
    cue_ids = [c for c in cues if _valid_part(c)][:MAX_CUE_NODES] if full else []
    for row in ADDRESSES:
        argless = "" if row.osc_types else " (no argument)"
        if "{cue}" in row.pattern:
            for cue in cue_ids:
                node, taken = _place(root, row.pattern.replace("{cue}", cue))
                if not taken:
                    _method(node, "N", _ACCESS_WRITE, row.does.replace("{cue}", cue) + argless)
            continue
        node, taken = _place(root, row.pattern)
        if taken:
            continue
        _method(node, row.osc_types or "N", _ACCESS_WRITE, row.does + argless)
        if row.osc_range is not None:
            rng = row.osc_range
            if row.osc_types == "f" and len(rng) == 2:
                node["RANGE"] = [{"MIN": rng[0], "MAX": rng[1]}]
            else:
                node["RANGE"] = [{"VALS": list(rng)}]
    for address in UPDATE_ADDRESSES:
        node, _ = _place(root, address)
        _method(node, "s", _ACCESS_READ, _UPDATE_DESCRIPTIONS.get(address, "a value of the transport"))
        if full and values is not None and address in values:
            node["VALUE"] = [values[address]]
    parent, _ = _place(root, "/update")
    parent["DESCRIPTION"] = "values the control port pushes to /updates subscribers; LISTEN to them here"
    return root


def current_values(state: Mapping[str, Any]) -> dict[str, str]:
    """The value of each update address for the ``/state`` data ``state``."""
    return {p.address: p.args[0] for p in plan_updates(None, state, [("", 0)]) if p.args}


def find_node(tree: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    """The node at OSC address ``path`` (``/`` for the root), or None."""
    node: Mapping[str, Any] = tree
    for part in (p for p in path.split("/") if p):
        contents = node.get("CONTENTS") or {}
        child = contents.get(part)
        if child is None:
            return None
        node = child
    return node


def host_info(name: str, osc_port: int, osc_ip: str | None = None) -> dict[str, Any]:
    """``?HOST_INFO``: the server's name, where OSC goes (UDP), and :data:`EXTENSIONS`. The
    WebSocket is on the same port as HTTP, so ``WS_PORT`` is left out (the proposal's default)."""
    info: dict[str, Any] = {
        "NAME": name,
        "OSC_PORT": osc_port,
        "OSC_TRANSPORT": "UDP",
        "EXTENSIONS": dict(EXTENSIONS),
    }
    if osc_ip:
        info["OSC_IP"] = osc_ip
    return info


def answer(
    tree: Mapping[str, Any], target: str, info: Mapping[str, Any]
) -> tuple[HTTPStatus, Any]:
    """The answer to ``GET target`` (a path with an optional query): status and JSON body (None
    for no body). ``?HOST_INFO`` on any path gives ``info``; ``?ATTRIBUTE`` one attribute as
    ``{"ATTRIBUTE": value}`` (204 when the node has none); no query the whole node; an unknown
    path 404, an unknown query 400."""
    parts = urlsplit(target)
    path = unquote(parts.path) or "/"
    query = parts.query
    if query == "HOST_INFO":
        return HTTPStatus.OK, dict(info)
    node = find_node(tree, path)
    if node is None:
        return HTTPStatus.NOT_FOUND, {"error": f"no OSC address {path} here; GET / for the tree"}
    if not query:
        return HTTPStatus.OK, node
    if query not in _ATTRIBUTES:
        return HTTPStatus.BAD_REQUEST, {
            "error": f"unknown query {query!r}; ask HOST_INFO or one of {', '.join(sorted(_ATTRIBUTES))}"
        }
    if query not in node:
        return HTTPStatus.NO_CONTENT, None
    return HTTPStatus.OK, {query: node[query]}


# --- the adapter ------------------------------------------------------------------------------


@dataclass
class OscQueryStats:
    """Counters for the post-show report."""

    requests: int = 0
    denied: int = 0  # a source the allowlist refuses, or a LISTEN socket without a secret
    rate_limited: int = 0  # over HTTP_RATE_PER_S from one host: 429
    not_found: int = 0
    bad_requests: int = 0
    sockets: int = 0  # WebSocket clients accepted
    sockets_refused: int = 0  # over MAX_LISTENERS
    listens: int = 0
    bad_commands: int = 0  # not JSON, not a known COMMAND, or a path that has no value
    updates_sent: int = 0
    updates_dropped: int = 0  # a slow socket had MAX_QUEUED waiting
    by_reason: Counter[str] = field(default_factory=Counter)


@dataclass
class _Client:
    conn: ServerConnection
    listening: set[str] = field(default_factory=set)
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(MAX_QUEUED))


_LOOPBACK = ("127.0.0.0/8", "::1/128")


class OscQueryServer:
    """The OSCQuery server of a run (module docstring). ``await start()``; call :meth:`update`
    with the ``/state`` data whenever it may have changed; ``await close()``.

    ``state``: returns the current ``/state`` data (read for each GET). ``osc_port``: the control
    port's UDP port (``HOST_INFO``'s ``OSC_PORT``). ``allow``: the control port's allowlist.
    ``access``: the secrets when the control port asks for a passcode (None: it does not)."""

    def __init__(
        self,
        *,
        name: str,
        osc_port: int,
        cues: Sequence[str],
        state: Callable[[], Mapping[str, Any]],
        host: str = "0.0.0.0",
        port: int = 0,
        allow: Sequence[str] = _LOOPBACK,
        access: Access | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.name = name
        self.osc_port = osc_port
        self.cues = list(cues)
        self._state = state
        self.host = host
        self.port = port
        self._allow = [ip_network(a, strict=False) for a in allow]
        self.access = access
        self.stats = OscQueryStats()
        self._clients: list[_Client] = []
        self._last: dict[str, Any] | None = None
        self._server: Server | None = None
        self._logged: set[str] = set()
        self._trees: dict[bool, dict[str, Any]] = {}
        self._clock = clock
        self.rates = Rates(HTTP_RATE_PER_S, HTTP_RATE_BURST)

    async def start(self) -> None:
        """Bind and serve (``port`` 0: any free port; :attr:`port` is then the one bound)."""
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            compression=None,
            max_size=MAX_CLIENT_FRAME,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=2,
            server_header="madang-oscquery",
        )
        sockets = list(self._server.sockets)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("OSCQuery server listening", extra={"host": self.host, "port": self.port})

    async def close(self) -> None:
        """Stop serving and close every socket (bounded by the close timeout)."""
        if self._server is None:
            return
        self._server.close(close_connections=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)
        self._server = None

    # -- what a request may see ----------------------------------------------------------------

    def _allowed(self, conn: ServerConnection) -> bool:
        remote = conn.remote_address
        try:
            ip = ip_address(remote[0]) if remote else None
        except ValueError:
            ip = None
        if ip is not None and ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip is not None and any(ip in net for net in self._allow)

    def _full(self, request: Request) -> bool:
        """Whether this request may see values and cues (module docstring, "Authority")."""
        if self.access is None:
            return True
        auth = request.headers.get("Authorization", "")
        scheme, _, secret = auth.partition(" ")
        return scheme.lower() == "bearer" and self.access.role_of(secret.strip()) is not None

    def tree(self, *, full: bool = True) -> dict[str, Any]:
        """The tree as a request sees it now. Its shape is built once (a show's cues do not change
        during a run; a 2,000-cue tree takes tens of milliseconds to build, not to be paid per
        request on the show's loop); only the values are set afresh."""
        tree = self._trees.get(full)
        if tree is None:
            tree = self._trees[full] = build_tree(self.cues, None, full=full)
        if full:
            for address, value in current_values(self._state()).items():
                node = find_node(tree, address)
                if node is not None:
                    node["VALUE"] = [value]  # type: ignore[index]
        return tree

    def _body(self, full: bool, target: str) -> tuple[HTTPStatus, bytes]:
        """The answer's status and JSON bytes (msgspec: a 2,000-cue tree in ~3 ms, where the
        standard library's encoder takes ~40)."""
        status, body = answer(self.tree(full=full), target, self.info())
        return status, b"" if body is None else msgspec.json.encode(body)

    def info(self) -> dict[str, Any]:
        """``?HOST_INFO``."""
        return host_info(self.name, self.osc_port)

    def _refuse(self, conn: ServerConnection, status: HTTPStatus, reason: str, text: str) -> Response:
        st = self.stats
        st.by_reason[reason] += 1
        host = str(conn.remote_address[0]) if conn.remote_address else "?"
        if reason not in self._logged:
            self._logged.add(reason)
            log.warning("OSCQuery request refused", extra={"source": host, "reason": reason})
        return conn.respond(status, text)

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        st = self.stats
        st.requests += 1
        if not self._allowed(conn):
            st.denied += 1
            return self._refuse(
                conn, HTTPStatus.FORBIDDEN, "source", "source not allowed (--control-allow)\n"
            )
        host = str(conn.remote_address[0]) if conn.remote_address else "?"
        if not self.rates.allow(host, self._clock()):
            st.rate_limited += 1
            too_many = f"more than {HTTP_RATE_PER_S:g} requests a second\n"
            return self._refuse(conn, HTTPStatus.TOO_MANY_REQUESTS, "rate", too_many)
        full = self._full(request)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if not full:
                st.denied += 1
                return self._refuse(
                    conn, HTTPStatus.FORBIDDEN, "no_secret",
                    "the control port asks for a passcode: LISTEN needs Authorization: Bearer <secret>\n",
                )
            if len(self._clients) >= MAX_LISTENERS:
                st.sockets_refused += 1
                return self._refuse(
                    conn, HTTPStatus.SERVICE_UNAVAILABLE, "too_many", f"{MAX_LISTENERS} listeners already\n"
                )
            origin = request.headers.get("Origin")
            host = request.headers.get("Host", "").lower()
            if origin is not None and urlsplit(origin).netloc.lower() != host:
                st.denied += 1
                return self._refuse(conn, HTTPStatus.FORBIDDEN, "origin", "cross-site sockets are refused\n")
            return None  # the handshake goes on
        try:
            status, data = self._body(full, request.path)
        except Exception:  # a bug must not take the server down: counted, logged once
            log.exception("OSCQuery answer failed", extra={"path": request.path})
            status, data = HTTPStatus.INTERNAL_SERVER_ERROR, b'{"error": "internal error; see the log"}'
        if status == HTTPStatus.NOT_FOUND:
            st.not_found += 1
        elif status == HTTPStatus.BAD_REQUEST:
            st.bad_requests += 1
        headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return Response(status.value, status.phrase, headers, data)

    # -- LISTEN ------------------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        client = _Client(conn)
        self._clients.append(client)
        self.stats.sockets += 1
        writer = asyncio.create_task(self._write(client))
        try:
            async for frame in conn:
                if isinstance(frame, str):
                    self._command(client, frame)
                else:
                    self._bad(conn, "binary frame (this server takes OSC on its UDP OSC_PORT)")
        except ConnectionClosed:
            pass
        finally:
            self._clients.remove(client)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    def _bad(self, conn: ServerConnection, why: str) -> None:
        self.stats.bad_commands += 1
        if self.stats.bad_commands <= 10:  # a flood must not flood the log
            host = str(conn.remote_address[0]) if conn.remote_address else "?"
            log.warning("OSCQuery command ignored", extra={"source": host, "reason": why})

    def _command(self, client: _Client, text: str) -> None:
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError):  # 4 KiB of "[" nests past the parser's limit
            self._bad(client.conn, "not JSON")
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("DATA"), str):
            self._bad(client.conn, 'not {"COMMAND": ..., "DATA": "/path"}')
            return
        command, path = msg.get("COMMAND"), msg["DATA"]
        if command == "IGNORE":
            client.listening.discard(path)
            return
        if command != "LISTEN":
            self._bad(client.conn, f"unknown COMMAND {str(command)[:40]!r}")
            return
        if path not in UPDATE_ADDRESSES:
            self._bad(client.conn, f"LISTEN to {path[:80]!r}, which has no value")
            return
        client.listening.add(path)
        self.stats.listens += 1
        if self._last is None:  # later updates send what changed from now
            self._last = dict(self._state())
        value = current_values(self._state()).get(path)
        if value is not None:  # the value now, so the surface need not GET it first
            self._queue(client, encode_message(path, [value]))

    def _queue(self, client: _Client, packet: bytes) -> None:
        try:
            client.queue.put_nowait(packet)
        except asyncio.QueueFull:
            self.stats.updates_dropped += 1

    async def _write(self, client: _Client) -> None:
        while True:
            packet = await client.queue.get()
            try:
                await client.conn.send(packet)
            except ConnectionClosed:
                return
            self.stats.updates_sent += 1

    def report(self) -> dict[str, Any]:
        """The counters for the post-show report (``oscquery``)."""
        st = self.stats
        out: dict[str, Any] = {k: v for k, v in vars(st).items() if k != "by_reason"}
        out["refused"] = dict(st.by_reason)
        out["port"] = self.port
        return out

    @property
    def listening(self) -> bool:
        """Whether any socket listens to a value (else :meth:`update` need not be called)."""
        return any(c.listening for c in self._clients)

    def update(self, state: Mapping[str, Any]) -> None:
        """The transport state now (the ``/state`` data): send each listener what changed."""
        listening = [c for c in self._clients if c.listening]
        if not listening:
            self._last = None
            return
        current = dict(state)
        pushes = plan_updates(self._last, current, [("", 0)])
        self._last = current
        for p in pushes:
            packet = encode_message(p.address, list(p.args))
            for c in listening:
                if p.address in c.listening:
                    self._queue(c, packet)
