"""An OSCQuery client written for the tests from the proposal (github.com/Vidvox/OSCQueryProposal),
independent of controller.web.oscquery: plain HTTP with http.client, LISTEN over a websockets
client, OSC decoded by python-osc, discovery by zeroconf's browser.

It reads what a surface like Chataigne reads: the tree (``GET /``), one attribute
(``GET /path?VALUE``), ``GET /?HOST_INFO``; and it listens as the LISTEN extension says: a text
frame ``{"COMMAND": "LISTEN", "DATA": path}``, then binary frames, each an OSC message.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_message import OscMessage
from websockets.sync.client import ClientConnection, connect
from zeroconf import ServiceBrowser, ServiceListener, Zeroconf

OSCQUERY = "_oscjson._tcp.local."


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # decoded JSON, or None for an empty body
    content_type: str


def get(host: str, port: int, target: str, headers: dict[str, str] | None = None) -> Reply:
    """``GET target`` over a fresh HTTP/1.1 connection."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", target, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
        ctype = resp.getheader("Content-Type", "")
        body = json.loads(raw) if raw and "json" in ctype else (raw.decode() if raw else None)
        return Reply(resp.status, body, ctype)
    finally:
        conn.close()


def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a tree, depth first."""
    yield node
    for child in (node.get("CONTENTS") or {}).values():
        yield from walk(child)


def methods(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The nodes that take or give OSC (those with a TYPE), by FULL_PATH."""
    return {n["FULL_PATH"]: n for n in walk(tree) if "TYPE" in n}


class Listener:
    """A LISTEN socket: what it receives, decoded, kept in order."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None) -> None:
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(f"ws://{host}:{port}/", additional_headers=headers, open_timeout=10)
        )
        self.received: list[tuple[str, tuple[Any, ...]]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                frame = self.ws.recv()
                if isinstance(frame, bytes):
                    msg = OscMessage(frame)
                    with self._lock:
                        self.received.append((msg.address, tuple(msg.params)))
        except Exception:  # noqa: BLE001 (the socket closed under us: the test reads what came)
            return

    def listen(self, path: str) -> None:
        self.ws.send(json.dumps({"COMMAND": "LISTEN", "DATA": path}))

    def ignore(self, path: str) -> None:
        self.ws.send(json.dumps({"COMMAND": "IGNORE", "DATA": path}))

    def values(self, path: str) -> list[Any]:
        with self._lock:
            return [args[0] for a, args in self.received if a == path and args]

    def close(self) -> None:
        self._stack.close()
        self._thread.join(5)


@dataclass(frozen=True)
class Found:
    name: str
    host: str
    port: int


def discover(
    name_prefix: str, port: int | None = None, timeout: float = 20.0, service: str = OSCQUERY
) -> Found:
    """Browse ``service`` (default ``_oscjson._tcp``) on loopback until a service whose instance
    name starts with ``name_prefix`` (and, given, whose port is ``port``) resolves."""
    zc = Zeroconf(interfaces=["127.0.0.1"])
    names: list[str] = []

    class _L(ServiceListener):
        def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            names.append(name)

        def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            names.append(name)

        def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            pass

    browser = ServiceBrowser(zc, service, _L())
    try:
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            for name in list(names):
                if not name.startswith(name_prefix):
                    continue
                info = zc.get_service_info(service, name, timeout=2000)
                if info is None or (port is not None and info.port != port):
                    seen.add(name)
                    continue
                host = socket.inet_ntoa(info.addresses[0])
                return Found(name, host, int(info.port or 0))
            time.sleep(0.1)
        raise AssertionError(
            f"no {service} service named {name_prefix}* (port {port}) in {timeout} s; "
            f"saw {sorted(set(names))}"
        )
    finally:
        browser.cancel()
        zc.close()
