"""The browser operator console: the cue list, the transport buttons, the device grid, the log.

Theory of operation
-------------------
One more surface around the same runtime, like the terminal view and the OSC control port: its
page (``/console``, static HTML/JS/CSS, no build step) opens a WebSocket (``/console/ws``) and

1. **signs in** with its first message, ``{"op": "hello", "token": "...", "name": "..."}``
   (the token travels in the URL's *fragment*, ``/console#token=...``, which a browser never
   sends in a request, so it lands in no access log; the page moves it to ``sessionStorage`` and
   clears it from the address bar). :class:`~controller.access.Access` says which role the
   token grants; a wrong one is refused, closed and counted, and
   :class:`~controller.access.Attempts` refuses a source outright once it has used its allowance.
   A token is never logged, printed (except a generated one, once, at start) or echoed back.
2. **commands**: ``{"cmd": "go"}``, ``{"cmd": "load", "at": 60}``, ``{"cmd": "go", "cue":
   "bloom", "force": true}``... :func:`parse_console` turns each into the OSC control port's
   address and arguments and parses it with the same table (:func:`controller.control.parse_command`),
   so both surfaces accept, refuse and name commands alike. An operator's command goes to the
   runtime's one command path (``Runtime._command``: the same refusals, the same log and
   operator log, with who sent it as the source: ``console operator 127.0.0.1 (SM desk)``). A
   viewer's command is refused here, before it reaches anything, and that refusal is written to
   the operator log too, with who sent it: a forged GO is seen.
3. **updates** pushed by the console's own task, never from the firing path: at most
   ``rate_hz`` times a second (10) it takes the runtime's :class:`~controller.view.ViewModel`
   (the one the terminal renders: one model, two renderers) and the device grid, encodes each part
   (``state``, ``log``, ``grid``) once, and writes it to every signed-in socket only when its bytes
   changed. The device list itself (ids, zones, kinds) goes once, in the ``welcome``; the grid is
   then two strings of one character per device (presence, sync), 2.4 kB at 1,200 devices.
   A socket that cannot keep up (more than ``max_buffer`` bytes waiting) is cut, never waited for.

Nothing here decides anything about the show: what a command does, whether it is accepted, what
the cue list shows, all come from the runtime and its core.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State as WsState

from controller.access import Access, Attempts, Role
from controller.clock import Clock
from controller.control import Connect, Query, Refusal, Subscribe, parse_command
from controller.playback import Command
from controller.view import ViewModel, spread_text
from controller.web.hub import RateLimit, text_frame
from controller.web.server import WebServer
from venues.model import Venue

__all__ = [
    "CONSOLE_COMMANDS",
    "ConsoleDesk",
    "ConsoleHooks",
    "ConsoleSession",
    "DeviceGrid",
    "parse_console",
    "state_message",
]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"

MAX_MESSAGE = 4096  # bytes: a console message is a hello or a command
HELLO_TIMEOUT_S = 5.0
MAX_SESSIONS = 64
MAX_BUFFER = 2 * 1024 * 1024
LOG_LINES = 60  # operator log lines pushed (the newest)
COMMANDS = RateLimit(per_s=10.0, burst=20.0)  # a person taps; a script that floods is throttled
_NAME = re.compile(r"[^\w .@#:/-]")

SYNC_CODES = {"none": "-", "waiting": "w", "over": "b", "ok": "s"}
"""The grid's sync column: not pinged (``-``), no clock model yet (``w``), over the budget
(``b``), synced within it (``s``)."""
PRESENCE_CODES = {"online": "o", "late": "l", "offline": "x", "unknown": "u", "vacant": "v"}
"""The grid's presence column, one letter per :meth:`controller.presence.Presence.classify` state."""


@dataclass(frozen=True, slots=True)
class DeviceGrid:
    """Every device's presence and sync, one character each, in the venue's device order
    (:data:`PRESENCE_CODES`, :data:`SYNC_CODES`)."""

    presence: str
    sync: str


@dataclass(frozen=True)
class ConsoleHooks:
    """What the console asks of the runtime (it holds nothing else of it)."""

    command: Callable[[Command, str], tuple[str, Any]]
    """Run a command down the one command path: ``(cmd, source) -> ("ok" | "error", data)``."""
    note: Callable[[str, str, bool, str], None]
    """One operator log line the console itself decided: ``(source, what, ok, detail)``."""
    view: Callable[[], ViewModel]
    """The view model now (the terminal's)."""
    grid: Callable[[], DeviceGrid]
    """The device grid now."""


# --- commands: the console's messages in the control port's table ----------------------------

_FIXED = {
    "pause": "/pause",
    "resume": "/resume",
    "toggle-pause": "/togglePause",
    "stop": "/stop",
    "panic": "/panic",
    "arm": "/arm",
    "reset": "/reset",
    "next": "/playhead/next",
    "previous": "/playhead/previous",
}

CONSOLE_COMMANDS: tuple[tuple[str, str], ...] = (
    ('{"cmd": "go"}', "/go"),
    ('{"cmd": "go", "force": true}', "/go/force"),
    ('{"cmd": "go", "cue": C}', "/cue/C/start"),
    ('{"cmd": "go", "cue": C, "force": true}', "/go/force/C"),
    *((f'{{"cmd": "{k}"}}', a) for k, a in _FIXED.items()),
    ('{"cmd": "load", "at": S}', "/load S"),
    ('{"cmd": "load", "cue": C}', "/cue/C/load"),
    ('{"cmd": "seek", "at": S}', "/seek S"),
    ('{"cmd": "seek", "cue": C}', "/seek/C"),
    ('{"cmd": "rate", "rate": R}', "/rate R"),
)
"""Every console command and the control address it is parsed as (docs/operator.md, "The
browser console")."""


def parse_console(msg: Mapping[str, Any]) -> Command | Refusal:
    """A console command message as the control port's command (or the refusal, with why)."""
    name = msg.get("cmd")
    cue = msg.get("cue")
    if cue is not None and (not isinstance(cue, str) or not cue or "/" in cue or len(cue) > 200):
        return Refusal("cue must be a cue id (a non-empty string without '/')")
    args: list[object] = []
    if name == "go":
        force = msg.get("force", False) is True
        address = (
            ("/go/force" if force else "/go")
            if cue is None
            else (f"/go/force/{cue}" if force else f"/cue/{cue}/start")
        )
    elif name in ("load", "seek"):
        if cue is not None:
            address = f"/cue/{cue}/load" if name == "load" else f"/seek/{cue}"
        else:
            address, args = f"/{name}", [msg.get("at")]
    elif name == "rate":
        address, args = "/rate", [msg.get("rate")]
    elif isinstance(name, str) and name in _FIXED:
        address = _FIXED[name]
    else:
        known = ", ".join(["go", "load", "seek", "rate", *_FIXED])
        return Refusal(f"unknown console command {str(name)[:40]!r}; the commands are: {known}")
    parsed = parse_command(address, args)
    if isinstance(parsed, Refusal):
        return parsed  # the control port's reason: its address names the command
    if isinstance(parsed, Query | Subscribe | Connect):
        return Refusal(f"{name} is not a transport command")
    return parsed


def command_label(msg: Mapping[str, Any]) -> str:
    """What a refused message asked for, for the operator log (``GO``, ``load 60 s``)."""
    name = str(msg.get("cmd", "?"))[:24]
    label = "GO" if name == "go" else name
    if msg.get("force") is True and name == "go":
        label = "forced GO"
    if isinstance(msg.get("cue"), str):
        label += f" {str(msg['cue'])[:40]}"
    elif isinstance(msg.get("at"), int | float):
        label += f" {msg['at']:g} s"
    return label


# --- the snapshot the page renders -----------------------------------------------------------


def state_message(vm: ViewModel) -> dict[str, Any]:
    """The ``state`` update: the view model less the log (its own message), with each cue's
    spread already in words (both views say it the same way)."""
    cues = [
        {
            "n": row.number,
            "cue": row.cue,
            "name": row.name,
            "go": row.go,
            "notes": row.notes,
            "role": row.role,
            "clock": None if row.clock is None else msgspec.to_builtins(row.clock),
            "trigger": None if row.trigger is None else msgspec.to_builtins(row.trigger),
            "event": row.event,
            "spread": None if row.spread is None else spread_text(row.spread),
            "spread_us": None if row.spread is None else row.spread.spread_us,
        }
        for row in vm.cues
    ]
    body: dict[str, Any] = msgspec.to_builtins(vm)
    for k in ("log", "keys", "help", "cues"):
        body.pop(k, None)
    body["cues"] = cues
    body["type"] = "state"
    return body


def log_message(vm: ViewModel) -> dict[str, Any]:
    """The ``log`` update: the newest :data:`LOG_LINES` lines of the operator log."""
    lines = list(vm.log)[-LOG_LINES:]
    return {"type": "log", "lines": [msgspec.to_builtins(x) for x in lines]}


# --- sessions --------------------------------------------------------------------------------


@dataclass(eq=False)
class ConsoleSession:
    """One signed-in console: its role, who it is (``source``: the operator log's name for it)."""

    role: Role
    source: str
    write: Callable[[bytes], None] = field(repr=False)
    buffered: Callable[[], int] = field(repr=False, default=lambda: 0)
    bucket: list[float] = field(default_factory=lambda: [COMMANDS.burst, 0.0])
    sent: dict[str, bytes] = field(default_factory=dict)  # the last bytes of each update kind
    refused: int = 0


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


class ConsoleDesk:
    """Signs consoles in, turns their messages into commands, pushes updates (module docstring).

    The sans-I/O half is :meth:`hello` and :meth:`receive` (a message in, replies out, ``now``
    given); :meth:`serve` is the socket adapter and :meth:`run` the push task.
    """

    def __init__(
        self,
        venue: Venue,
        access: Access,
        hooks: ConsoleHooks,
        *,
        clock: Clock,
        attempts: Attempts | None = None,
        rate_hz: float = 10.0,
        grid_every_s: float = 1.0,
    ) -> None:
        self.venue = venue
        self.access = access
        self.hooks = hooks
        self.clock = clock
        self.attempts = attempts if attempts is not None else Attempts()  # (an empty one is falsy)
        self.rate_hz = rate_hz
        self.grid_every_s = grid_every_s
        self.sessions: list[ConsoleSession] = []
        self.counts: dict[str, int] = {
            "signed_in": 0,
            "wrong_token": 0,
            "blocked": 0,
            "denied": 0,
            "malformed": 0,
            "throttled": 0,
            "slow": 0,
            "full": 0,
            "pushed": 0,
        }
        self._wake = asyncio.Event()
        zones: dict[str, list[list[Any]]] = {}
        for i, d in enumerate(venue.devices):
            zones.setdefault(d.zone or "-", []).append([i, d.id, d.kind])
        self._devices = [{"zone": z, "devices": ds} for z, ds in zones.items()]

    # -- sans-I/O ----------------------------------------------------------------------------

    def hello(self, text: bytes | str, address: str, now: int) -> tuple[Role | None, str, dict[str, Any]]:
        """The first message of a socket from ``address``: ``(role, source, reply)``; role None:
        refused (the reply says why; close the socket)."""
        if self.attempts.blocked(address, now):
            self.counts["blocked"] += 1
            return (
                None,
                "",
                {
                    "type": "denied",
                    "reason": "too many wrong tokens from this address; "
                    "wait a minute, then open the URL madang printed",
                },
            )
        msg = self._decode(text)
        token = msg.get("token") if msg is not None and msg.get("op") == "hello" else None
        role = self.access.role_of(token) if isinstance(token, str) and len(token) <= 256 else None
        if role is None:
            self.attempts.failed(address, now)
            self.counts["wrong_token"] += 1
            log.warning("console sign-in refused: wrong or missing token", extra={"source": address})
            self.hooks.note(f"console {address}", "sign in", False, "refused: wrong or missing token")
            return (
                None,
                "",
                {
                    "type": "denied",
                    "reason": "wrong or missing token: open the console "
                    "with the URL madang printed at start (it ends in #token=...)",
                },
            )
        self.attempts.succeeded(address)
        name = msg.get("name") if msg is not None else None
        label = _NAME.sub("", name)[:32].strip() if isinstance(name, str) else ""
        source = f"console {role} {address}" + (f" ({label})" if label else "")
        self.counts["signed_in"] += 1
        log.info("console signed in", extra={"source": source, "role": str(role)})
        self.hooks.note(source, "sign in", True, f"as {role}")
        welcome = {
            "type": "welcome",
            "role": str(role),
            "source": source,
            "may_drive": role.may_drive,
            "devices": self._devices,
            "presence_codes": PRESENCE_CODES,
            "sync_codes": SYNC_CODES,
        }
        return role, source, welcome

    def receive(self, session: ConsoleSession, text: bytes | str, now: int) -> dict[str, Any] | None:
        """One message of a signed-in console: the reply to send it (None: nothing)."""
        if not COMMANDS.take(session.bucket, now):
            self.counts["throttled"] += 1
            return {"type": "reply", "status": "error", "data": "too many commands; slow down"}
        msg = self._decode(text)
        if msg is None:
            self.counts["malformed"] += 1
            return {"type": "reply", "status": "error", "data": "not a JSON object of at most 4 KiB"}
        ref = msg.get("id") if isinstance(msg.get("id"), int) else None
        if msg.get("op") == "ping":
            return {"type": "pong", "id": ref}
        if not session.role.may_drive:
            # An access rule, not a show decision: a viewer's token may not drive. Seen in the
            # operator log with who sent it, so a forged command does not go unnoticed.
            self.counts["denied"] += 1
            session.refused += 1
            what = command_label(msg)
            reason = "the viewer role may only watch; open the console with the operator's URL to drive"
            log.warning("console command denied: viewer", extra={"source": session.source, "command": what})
            self.hooks.note(session.source, what, False, f"refused: {reason}")
            return {"type": "reply", "id": ref, "status": "denied", "data": reason}
        cmd = parse_console(msg)
        if isinstance(cmd, Refusal):
            self.counts["malformed"] += 1
            self.hooks.note(session.source, command_label(msg), False, f"refused: {cmd.reason}")
            return {"type": "reply", "id": ref, "status": "error", "data": cmd.reason}
        status, data = self.hooks.command(cmd, session.source)
        self._wake.set()  # push the change now, not at the next tick
        return {"type": "reply", "id": ref, "status": status, "data": data}

    def updates(self, now_grid: bool) -> dict[str, bytes]:
        """The current updates, encoded once: ``state`` and ``log`` (and ``grid`` when
        ``now_grid``)."""
        vm = self.hooks.view()
        state = state_message(vm)
        state["consoles"] = len(self.sessions)
        out = {"state": _enc.encode(state), "log": _enc.encode(log_message(vm))}
        if now_grid:
            g = self.hooks.grid()
            out["grid"] = _enc.encode({"type": "grid", "presence": g.presence, "sync": g.sync})
        return out

    def push(self, updates: Mapping[str, bytes]) -> int:
        """Write each update whose bytes changed to each session; cut the slow ones. Returns the
        frames written."""
        frames: dict[str, bytes] = {}
        written = 0
        for s in list(self.sessions):
            if s.buffered() > MAX_BUFFER:
                self.counts["slow"] += 1
                self._drop(s, "slow")
                continue
            for kind, data in updates.items():
                if s.sent.get(kind) == data:
                    continue
                frame = frames.get(kind)
                if frame is None:
                    frame = frames[kind] = text_frame(data)
                s.write(frame)
                s.sent[kind] = data
                written += 1
        self.counts["pushed"] += written
        return written

    def _drop(self, s: ConsoleSession, why: str) -> None:
        with contextlib.suppress(ValueError):
            self.sessions.remove(s)
        log.info("console cut", extra={"source": s.source, "reason": why})

    @staticmethod
    def _decode(text: bytes | str) -> dict[str, Any] | None:
        if len(text) > MAX_MESSAGE:
            return None
        try:
            msg = _dec.decode(text)
        except msgspec.DecodeError:
            return None
        return msg if isinstance(msg, dict) else None

    # -- the socket and the push task --------------------------------------------------------

    def add_routes(self, server: WebServer) -> None:
        """The console's page, its script and style, and its socket on ``server``."""
        server.add_page("/console", file=STATIC / "console.html", title="console")
        server.add_page("/static/console.js", file=STATIC / "console.js")
        server.add_page("/static/console.css", file=STATIC / "console.css")
        server.add_socket("/console/ws", self.serve, browser=True)

    async def serve(self, conn: ServerConnection) -> None:
        """The ``/console/ws`` handler: sign in, then commands until the socket closes."""
        peer = conn.remote_address
        address = str(peer[0]) if peer else "?"
        try:
            first = await asyncio.wait_for(conn.recv(), HELLO_TIMEOUT_S)
        except (TimeoutError, ConnectionClosed):
            return
        role, source, reply = self.hello(first, address, self.clock.monotonic_ns())
        if role is None:
            await _send_close(conn, reply, 1008, "denied")
            return
        if len(self.sessions) >= MAX_SESSIONS:
            self.counts["full"] += 1
            await _send_close(
                conn,
                {"type": "busy", "reason": f"{MAX_SESSIONS} consoles are open; close one (retrying)"},
                1013,
                "full",
            )
            return
        session = ConsoleSession(
            role, source, write=lambda f: _write(conn, f), buffered=lambda: _buffered(conn)
        )
        session.write(text_frame(_enc.encode(reply)))
        self.sessions.append(session)
        self._wake.set()
        try:
            async for text in conn:
                out = self.receive(session, text, self.clock.monotonic_ns())
                if out is not None:
                    session.write(text_frame(_enc.encode(out)))
        except ConnectionClosed:
            pass
        finally:
            self._drop(session, "closed")
            log.info("console left", extra={"source": source})

    async def run(self) -> None:
        """Push updates at most ``rate_hz`` times a second (and after each command) while any
        console is signed in; the grid at most every ``grid_every_s``."""
        loop = asyncio.get_running_loop()
        last_grid = -1e9
        period = 1.0 / self.rate_hz
        while True:
            self._wake.clear()
            if self.sessions:
                t = loop.time()
                grid = t - last_grid >= self.grid_every_s or any("grid" not in s.sent for s in self.sessions)
                if grid:
                    last_grid = t
                try:
                    self.push(self.updates(grid))
                except Exception:  # a rendering bug must not end the console's task, nor the show
                    log.exception("console update failed")
                await asyncio.sleep(period)  # the throttle: never more than rate_hz
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), period if self.sessions else 1.0)

    def close_all(self) -> None:
        """Forget every session (the server closes their sockets)."""
        self.sessions.clear()

    def report(self) -> dict[str, Any]:
        """The counters for the post-show report (``web.console``)."""
        return {**self.counts, "open": len(self.sessions), "attempts_refused": self.attempts.refused}


def _write(conn: ServerConnection, frame: bytes) -> None:
    transport = conn.transport
    if conn.protocol.state is not WsState.OPEN or transport is None or transport.is_closing():
        return
    try:
        transport.write(frame)
    except (OSError, RuntimeError) as err:
        log.debug("console write failed", extra={"error": str(err)})


def _buffered(conn: ServerConnection) -> int:
    transport = conn.transport
    return 0 if transport is None else int(transport.get_write_buffer_size())


async def _send_close(conn: ServerConnection, reply: dict[str, Any], code: int, reason: str) -> None:
    with contextlib.suppress(ConnectionClosed):
        await conn.send(_enc.encode(reply).decode())
        await conn.close(code, reason)
