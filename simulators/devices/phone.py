"""A simulated audience phone: what the light page (controller/web/static/audience.js) does on the
wire, in Python, for tests and benchmarks that need many phones without many browsers.

It speaks only docs/protocol.md ("WebSocket", "The audience"): it joins the audience pool at one of
``urls`` (``ws://host:port/audience/ws?zone=...``), takes the welcome, says ``ready``, answers
pings, keeps the cues it receives (dropping those under a lower term than the highest it has
heard: "Controller terms") and taps or votes on the topics the welcome names. When the connection
closes it tries the next address of its list (the welcome's ``controllers``, else the ones it was
given), with a backoff, and asks for its slot back with the rejoin token: so a phone follows a
takeover to the standby controller (docs/standby.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import WebSocketException

__all__ = ["AudiencePhone", "Received"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Received:
    """A cue message the phone accepted: its cue, sequence, term and the address it came from."""

    cue: str
    seq: int
    term: int | None
    url: str


@dataclass
class AudiencePhone:
    """One phone. ``urls``: the audience WebSocket addresses to try, in order (the first is the
    one a QR code gave). Start :meth:`run` as a task; :meth:`tap` once :attr:`joined` is set."""

    urls: list[str]
    clock: Callable[[], int] = time.time_ns
    backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    device: str | None = None
    zone: str | None = None
    url: str | None = None  # the address it is connected to now
    cues: list[Received] = field(default_factory=list)
    floor: int | None = None  # the highest controller term heard
    stale: int = 0  # commands dropped for a lower term
    connections: int = 0
    tap_topic: str | None = None
    vote_topic: str | None = None
    _rejoin: str | None = None
    _ws: Any = None
    _boot: int = 0
    _i: int = 0  # the address of urls tried last
    welcome: dict[str, Any] = field(default_factory=dict)  # the last welcome

    def __post_init__(self) -> None:
        self.joined = asyncio.Event()
        self._boot = self.clock()

    async def run(self) -> None:
        """Connect, and on every close try the next address with a growing backoff; runs until
        cancelled."""
        backoff = self.backoff_s
        while True:
            here = self.urls[self._i % len(self.urls)]
            url = self._url(here)
            try:
                async with ws_connect(url, max_size=64 * 1024, open_timeout=3) as ws:
                    self._ws = ws
                    self.connections += 1
                    self.url = here
                    async for frame in ws:
                        if self._frame(frame if isinstance(frame, str) else frame.decode()):
                            backoff = self.backoff_s
            except (TimeoutError, OSError, WebSocketException) as e:
                log.debug("audience phone: connection lost", extra={"device": self.device, "error": str(e)})
            finally:
                self._ws = None
                self.joined.clear()
            self._i += 1  # the next controller of the list
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    def _url(self, base: str) -> str:
        if self.device is None or self._rejoin is None:
            return base
        parts = urlsplit(base)
        q = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("device", "rejoin")]
        q += [("device", self.device), ("rejoin", self._rejoin)]
        return urlunsplit(parts._replace(query=urlencode(q)))

    def _frame(self, text: str) -> bool:
        """One frame; True for a welcome."""
        try:
            env = json.loads(text)
            topic, msg = env["topic"], env["payload"]
        except (ValueError, KeyError, TypeError):
            return False
        if not isinstance(msg, dict):
            return False
        if topic == "madang/ws/welcome":
            self.welcome = msg
            self.device, self.zone = msg.get("device"), msg.get("zone")
            self._rejoin = msg.get("rejoin")
            self.tap_topic, self.vote_topic = msg.get("tap"), msg.get("vote")
            others = msg.get("controllers")
            if isinstance(others, list) and others and all(isinstance(u, str) for u in others):
                self._learn(others)
            self._send(f"madang/dev/{self.device}/status", {"state": "ready", "boot": self._boot, "proto": 1})
            self.joined.set()
            return True
        if topic == f"madang/dev/{self.device}/ping":
            t2 = self.clock()
            self._send(
                f"madang/dev/{self.device}/pong",
                {"seq": msg.get("seq"), "t1": msg.get("t1"), "t2": t2, "t3": self.clock()},
            )
            return False
        if topic == "madang/controller/state":
            web = msg.get("web")  # the pair's web servers, http://host:port (docs/protocol.md)
            if isinstance(web, list) and 0 < len(web) <= 8 and all(isinstance(u, str) for u in web):
                path = urlsplit(self.urls[0]).path
                self._learn(
                    [f"{'wss' if u.startswith('https:') else 'ws'}://{urlsplit(u).netloc}{path}" for u in web]
                )
        term = msg.get("term")
        if isinstance(term, int):
            if self.floor is not None and term < self.floor:
                self.stale += 1
                return False
            self.floor = term if self.floor is None else max(self.floor, term)
        if (topic == "madang/cue" or topic.startswith("madang/cue/")) and isinstance(msg.get("cue"), str):
            seq = msg.get("seq")
            self.cues.append(Received(msg["cue"], seq if isinstance(seq, int) else -1, term, self.url or ""))
        return False

    def _learn(self, controllers: list[str]) -> None:
        """The welcome (and the controller state) list every controller's audience address
        (docs/protocol.md): keep the one connected first, then the others in the listed order."""
        query = urlsplit(self.urls[0]).query
        known = [urlunsplit(urlsplit(u)._replace(query=query)) for u in controllers]
        current = self.urls[0] if self.url is None else self.url
        rest = [u for u in known if urlsplit(u)[:3] != urlsplit(current)[:3]]
        if [current, *rest] != self.urls:
            self.urls = [current, *rest]
            self._i = 0

    def _send(self, topic: str, payload: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None:
            return
        body = json.dumps({"topic": topic, "payload": payload})
        task = asyncio.get_running_loop().create_task(ws.send(body))
        task.add_done_callback(_quiet)

    def tap(self) -> bool:
        """Tap (False when not joined)."""
        if self.tap_topic is None or self._ws is None:
            return False
        self._send(self.tap_topic, {"local": self.clock()})
        return True

    def vote(self, choice: str) -> bool:
        """Vote for ``choice`` (False when not joined)."""
        if self.vote_topic is None or self._ws is None:
            return False
        self._send(self.vote_topic + choice, {"local": self.clock()})
        return True

    def fired(self, cue: str) -> bool:
        """Whether a message of ``cue`` has arrived."""
        return any(r.cue == cue for r in self.cues)


def _quiet(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        if task.exception() is not None:
            log.debug("audience phone: a send failed", extra={"error": str(task.exception())})
