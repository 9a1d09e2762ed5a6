"""The OSC control port: QLab-style commands so Companion, a Stream Deck or TouchOSC can drive a show.

Theory of operation
-------------------
:data:`ADDRESSES` is the one table of control addresses: pattern, arguments, what it does, and
how it parses. :func:`parse_command` is pure: an OSC address and its arguments in, an engine
command (or a query, a subscription, or a refusal with a reason) out, by the first row whose
pattern matches. :func:`address_table` renders the same rows as the table in docs/operator.md
(``python -m madang.gendocs`` rewrites it; a test checks that the doc holds exactly that).

:class:`ControlPort` is the thin asyncio adapter: it receives datagrams, refuses any whose source
address is not allowed (loopback by default), decodes them with our bounded OSC decoder, hands
commands to a callback and sends a reply to the sender, as QLab does: ``/reply{address}`` with one
string argument holding JSON ``{"address": ..., "status": "ok" | "error" | "denied", "data": ...}``.

**Feedback** (QLab's ``/updates``, for Companion feedbacks and button text): ``/updates 1``
subscribes the sender; from then on every change of the transport or the playhead, whoever made
it (a key, another surface, the show itself), is pushed to every subscribed surface.
:class:`Subscriptions` is the pure bookkeeping (bounded; a surface that sends nothing for
:data:`SUBSCRIPTION_TTL_NS` is dropped, so it must renew, as QLab asks of UDP clients, with
``/updates 1`` or ``/thump`` or any other message), :func:`plan_updates` decides what goes to whom
from the previous and the current state, and the port only sends, never queueing more than
:data:`MAX_PENDING_BYTES` behind a slow socket: a surface can never hold up the show.

**Authority** (QLab's workspace passcodes): when the port requires a passcode
(:func:`passcode_required`: one was configured, or the port admits sources beyond loopback), a
source must first send ``/connect <passcode>``; the secret of :class:`~controller.access.Access`
decides its role. The ``operator`` passcode drives; the ``viewer`` passcode may only ask
(``/state``, ``/thump``) and subscribe (``/updates``). A session is per source address and port
and lapses after :data:`~controller.access.SESSION_IDLE_NS` without a message (any message renews
it); ``/disconnect`` ends it. A wrong passcode is refused (``badpass``), counted, and after
:class:`~controller.access.Attempts`' allowance the source's ``/connect`` is refused unchecked for
a while. The source allowlist still applies first: a passcode never admits a source it refuses.

**Bounds**: at most :data:`RATE_PER_S` messages a second per source host (burst
:data:`RATE_BURST`), datagrams up to :data:`MAX_DATAGRAM` bytes; what is over is dropped and
counted (:class:`ControlStats`), never queued.

Malformed packets are counted and dropped; they never reach the engine.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from typing import Any, TypeAlias, cast

import msgspec

from controller.access import Access, Attempts, Role, Sessions
from controller.limits import Rates
from controller.osc import OscDecodeError, OscMessage, decode_packet, encode_message, messages
from controller.playback import (
    Arm,
    Command,
    Go,
    LoadAt,
    Panic,
    Pause,
    PlayheadNext,
    PlayheadPrevious,
    Reset,
    Resume,
    Seek,
    SetRate,
    Stop,
    TogglePause,
)

__all__ = [
    "ADDRESSES",
    "MAX_SUBSCRIBERS",
    "PASSCODE_MODES",
    "RATE_BURST",
    "RATE_PER_S",
    "SUBSCRIPTION_TTL_NS",
    "UPDATE_ADDRESSES",
    "Address",
    "Connect",
    "ControlPort",
    "ControlStats",
    "Push",
    "Query",
    "Refusal",
    "Subscribe",
    "Subscriptions",
    "address_table",
    "parse_command",
    "passcode_required",
    "plan_updates",
]

log = logging.getLogger(__name__)

MAX_DATAGRAM = 64 * 1024
NS_PER_S = 1_000_000_000
MAX_SECONDS = 1e7
"""The largest show time ``/seek`` and ``/load`` take (115 days): beyond it is no show's, and a
huge number (1e308) must be refused, not overflow."""
MAX_SUBSCRIBERS = 32
"""Surfaces that may subscribe to updates at once (a venue has a handful; the bound is for safety)."""
SUBSCRIPTION_TTL_NS = 61 * NS_PER_S
"""A subscription lapses this long after the last message from its surface (QLab: renew within 60 s)."""
MAX_PENDING_BYTES = 256 * 1024
"""Updates are dropped (and counted), not queued, once this much waits behind the control socket."""
RATE_PER_S = 200.0
"""Control messages a second one source host may send, sustained (a Stream Deck sends a handful)."""
RATE_BURST = 400
"""Control messages one source host may send at once before :data:`RATE_PER_S` applies."""
PASSCODE_MODES = ("auto", "on", "off")
"""``--control-passcode``: ``auto`` (required when a secret is configured or the port admits a
source beyond loopback), ``on`` (always), ``off`` (the allowlist alone)."""
_LOGGED_MALFORMED = 10
_LOOPBACK = (ip_network("127.0.0.0/8"), ip_network("::1/128"))


def passcode_required(mode: str, allow: Sequence[str], configured: bool) -> bool:
    """Whether the control port asks for ``/connect <passcode>`` first: ``mode`` from
    :data:`PASSCODE_MODES`, ``allow`` the source allowlist, ``configured`` whether a secret was
    given (a file or the environment). ``auto`` keeps a loopback-only port with no configured
    secret as it always was (Companion and scripts on the same machine work unchanged)."""
    if mode not in PASSCODE_MODES:
        raise ValueError(f"--control-passcode is one of {', '.join(PASSCODE_MODES)}, not {mode!r}")
    if mode != "auto":
        return mode == "on"
    beyond = False
    for a in allow:
        net = ip_network(a, strict=False)
        if not any(net.version == lo.version and net.subnet_of(lo) for lo in _LOOPBACK):  # type: ignore[arg-type]
            beyond = True
    return configured or beyond


@dataclass(frozen=True, slots=True)
class Query:
    """A request that changes nothing: ``/state`` (the transport as JSON), ``/thump`` (alive?)."""

    what: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    """``/updates 1`` (``on``) or ``/updates 0``: start or stop pushing updates to the sender."""

    on: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """A control message that is understood to be wrong: the reason goes back to the sender."""

    reason: str


@dataclass(frozen=True, slots=True)
class Connect:
    """``/connect <passcode>`` (``passcode`` None: ``/disconnect``): start or end a session."""

    passcode: str | None


Parsed: TypeAlias = Command | Query | Subscribe | Refusal | Connect
_Parse = Callable[[Mapping[str, str], Sequence[object]], Parsed]


@dataclass(frozen=True, slots=True)
class Address:
    """One control address: ``pattern`` (``{name}`` matches one path segment), its ``args`` as
    the operator types them, what it ``does``, and how it becomes a command (``parse``)."""

    pattern: str
    args: str
    does: str
    parse: _Parse
    osc_types: str = ""
    """The OSC type tags it takes (OSCQuery's ``TYPE``; "" for none, where any argument is ignored)."""
    osc_range: tuple[float, float] | tuple[int, ...] | None = None
    """OSCQuery's ``RANGE`` of the one argument: ``(min, max)`` for a float, the values for an int."""

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        """The ``{name}`` segments of ``parts`` if they fit the pattern, else ``None``."""
        mine = [p for p in self.pattern.split("/") if p]
        if len(mine) != len(parts):
            return None
        found: dict[str, str] = {}
        for want, got in zip(mine, parts, strict=True):
            if want.startswith("{") and want.endswith("}"):
                found[want[1:-1]] = got
            elif want != got:
                return None
        return found


def _fixed(cmd: Callable[[], Parsed]) -> _Parse:
    return lambda _m, _a: cmd()


def _seconds(make: Callable[[int], Parsed], address: str, alternative: str) -> _Parse:
    def parse(_m: Mapping[str, str], args: Sequence[object]) -> Parsed:
        seconds = _one_number(args)
        if seconds is None or not 0 <= seconds <= MAX_SECONDS:
            return Refusal(
                f"{address} takes one number of seconds from 0 to {MAX_SECONDS:.0f}, or use {alternative}"
            )
        return make(round(seconds * NS_PER_S))

    return parse


def _rate(_m: Mapping[str, str], args: Sequence[object]) -> Parsed:
    rate = _one_number(args)
    if rate is None or not 0.05 <= rate <= 16:
        return Refusal("/rate takes one number between 0.05 and 16")
    return SetRate(rate=rate)


def _updates(_m: Mapping[str, str], args: Sequence[object]) -> Parsed:
    flag = _one_number(args)
    if flag not in (0.0, 1.0):
        return Refusal("/updates takes 1 (push updates to me) or 0 (stop)")
    return Subscribe(on=flag == 1.0)


def _connect(_m: Mapping[str, str], args: Sequence[object]) -> Parsed:
    if len(args) != 1 or not isinstance(args[0], str | int) or isinstance(args[0], bool):
        return Refusal("/connect takes one argument, the passcode (operator or view-only)")
    return Connect(str(args[0]))


ADDRESSES: tuple[Address, ...] = (
    Address("/connect", "<passcode>", "start a session with the operator or the view-only passcode "
            "(when the port asks for one); renew within 60 s with any message", _connect, "s"),
    Address("/disconnect", "", "end this source's session", _fixed(lambda: Connect(None))),
    Address("/go", "", "GO: start the standby cue", _fixed(Go)),
    Address("/go/force", "", "GO even where a device guard (the sync gate) would refuse it",
            _fixed(lambda: Go(cue=None, force=True))),
    Address("/go/force/{cue}", "", "start cue `{cue}` now, past a device guard",
            lambda m, _a: Go(cue=m["cue"], force=True)),
    Address("/go/{cue}", "", "start cue `{cue}` now (the playhead moves there)",
            lambda m, _a: Go(cue=m["cue"])),
    Address("/cue/{cue}/start", "", "same as `/go/{cue}` (QLab)", lambda m, _a: Go(cue=m["cue"])),
    Address("/pause", "", "hold everything where it is", _fixed(Pause)),
    Address("/resume", "", "carry on from the hold", _fixed(Resume)),
    Address("/togglePause", "", "pause when playing, resume when paused (QLab)", _fixed(TogglePause)),
    Address("/stop", "", "stop: every device to its safe state; arm again to play", _fixed(Stop)),
    Address("/panic", "", "every device to its safe state now; arm again to play", _fixed(Panic)),
    Address("/arm", "", "arm again after a stop, a panic or the end (the playhead stays; "
            "after the end it is back on the first cue)", _fixed(Arm)),
    Address("/reset", "", "back to the top: armed on the first cue, devices keep what they show (QLab)",
            _fixed(Reset)),
    Address("/load", "<seconds>",
            "arm at that show time: devices get its catch-up state, GO plays on from there",
            _seconds(lambda ns: LoadAt(show_ns=ns), "/load", "/load/{cue}"), "f", (0.0, MAX_SECONDS)),
    Address("/load/{cue}", "", "arm on cue `{cue}`: devices get the state just before it, GO plays it",
            lambda m, _a: LoadAt(cue=m["cue"])),
    Address("/cue/{cue}/load", "", "same as `/load/{cue}` (QLab)", lambda m, _a: LoadAt(cue=m["cue"])),
    Address("/playhead/next", "", "move the standby cue forward", _fixed(PlayheadNext)),
    Address("/playhead/previous", "", "move the standby cue back", _fixed(PlayheadPrevious)),
    Address("/seek", "<seconds>",
            "jump to a show time while armed, playing or paused (catch-up state is sent)",
            _seconds(lambda ns: Seek(show_ns=ns), "/seek", "/seek/{cue}"), "f", (0.0, MAX_SECONDS)),
    Address("/seek/{cue}", "", "jump to cue `{cue}`", lambda m, _a: Seek(cue=m["cue"])),
    Address("/rate", "<factor>", "playback rate, 0.05 to 16 (rehearsal at 2x)", _rate, "f", (0.05, 16.0)),
    Address("/state", "", "reply with the transport state as JSON (changes nothing)",
            _fixed(lambda: Query("state"))),
    Address("/updates", "<1 or 0>", "push every transport and playhead change to me (`/update/...`), "
            "or stop; renew within 60 s", _updates, "i", (0, 1)),
    Address("/thump", "", "reply `thump` and renew my subscription (QLab's heartbeat)",
            _fixed(lambda: Query("thump"))),
)
"""Every control address, first match wins (so `/go/force` is not a cue called "force": start
such a cue with `/cue/force/start`)."""


def parse_command(address: str, args: Sequence[object]) -> Parsed:
    """Map one control message to an engine command, a query, a subscription, or a refusal."""
    parts = [p for p in address.split("/") if p]
    if not parts:
        return Refusal("empty address")
    for row in ADDRESSES:
        found = row.match(parts)
        if found is not None:
            return row.parse(found, args)
    return Refusal(f"unknown address {address}; see docs/operator.md for the control addresses")


def address_table() -> str:
    """:data:`ADDRESSES` as the Markdown table of docs/operator.md."""
    lines = ["| address | arguments | what it does |", "| --- | --- | --- |"]
    for row in ADDRESSES:
        args = f"`{row.args}`" if row.args else ""
        lines.append(f"| `{row.pattern}` | {args} | {row.does} |")
    return "\n".join(lines) + "\n"


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


# --- feedback: who is subscribed, what is pushed ----------------------------------------------

Peer: TypeAlias = tuple[str, int]


class Subscriptions:
    """The surfaces that asked for updates, each until ``ttl_ns`` after the last message from it.
    Pure: every call takes ``now`` (monotonic nanoseconds)."""

    def __init__(self, limit: int = MAX_SUBSCRIBERS, ttl_ns: int = SUBSCRIPTION_TTL_NS) -> None:
        self.limit = limit
        self.ttl_ns = ttl_ns
        self._until: dict[Peer, int] = {}

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, peer: object) -> bool:
        return peer in self._until

    def subscribe(self, peer: Peer, now: int) -> str | None:
        """Subscribe (or renew) ``peer``; the reason when it cannot be (too many surfaces)."""
        self.expire(now)
        if peer not in self._until and len(self._until) >= self.limit:
            return (f"{self.limit} surfaces are subscribed already; send /updates 0 from one you no "
                    "longer use, or wait for one to lapse (60 s without a message)")
        self._until[peer] = now + self.ttl_ns
        return None

    def unsubscribe(self, peer: Peer) -> bool:
        """Stop pushing to ``peer``; whether it was subscribed."""
        return self._until.pop(peer, None) is not None

    def seen(self, peer: Peer, now: int) -> None:
        """Any message from a subscribed surface renews its subscription."""
        if peer in self._until:
            self._until[peer] = now + self.ttl_ns

    def expire(self, now: int) -> list[Peer]:
        """Drop (and return) the subscriptions that lapsed by ``now``."""
        gone = [p for p, until in self._until.items() if until <= now]
        for p in gone:
            del self._until[p]
        return gone

    def peers(self, now: int) -> list[Peer]:
        """The surfaces subscribed at ``now``, in the order they subscribed."""
        self.expire(now)
        return list(self._until)


@dataclass(frozen=True, slots=True)
class Push:
    """One update for one surface: OSC ``address`` with ``args``."""

    peer: Peer
    address: str
    args: tuple[str, ...]


_VOLATILE = frozenset({"show_ns"})  # moves all the time while playing: sent with a change, not one
_SCALARS = (("state", "/update/transport"), ("standby", "/update/playhead"), ("cue", "/update/cue"))
UPDATE_ADDRESSES: tuple[str, ...] = ("/update/state", *(a for _, a in _SCALARS))
"""What :func:`plan_updates` pushes (one string argument each): the whole state as JSON, then the
transport state, the standby cue and the playing cue (OSCQuery serves them as readable values)."""


def state_json(data: Mapping[str, Any]) -> str:
    """The ``/state`` reply's JSON, which ``/update/state`` carries too (one parser for both)."""
    return msgspec.json.encode({"address": "/state", "status": "ok", "data": data}).decode()


def plan_updates(
    previous: Mapping[str, Any] | None, current: Mapping[str, Any], peers: Sequence[Peer]
) -> list[Push]:
    """What to push to whom when the transport went from ``previous`` to ``current`` (the
    ``/state`` data; ``None``: the surface knows nothing yet). Nothing when only the show time
    moved; otherwise ``/update/state`` with the whole state, and ``/update/transport``,
    ``/update/playhead``, ``/update/cue`` with the one value each (``""`` for none) for those that
    changed, so a Companion feedback can match one plain string."""
    if previous is not None and all(
        previous.get(k) == v for k, v in current.items() if k not in _VOLATILE
    ) and previous.keys() == current.keys():
        return []
    msgs: list[tuple[str, tuple[str, ...]]] = [("/update/state", (state_json(current),))]
    for key, address in _SCALARS:
        if previous is None or previous.get(key) != current.get(key):
            value = current.get(key)
            msgs.append((address, ("" if value is None else str(value),)))
    return [Push(peer, a, args) for peer in peers for a, args in msgs]


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
    rate_limited: int = 0  # over the per-source rate (RATE_PER_S): dropped unread
    internal_errors: int = 0  # a message that raised inside the port (a bug: logged once)
    unauthenticated: int = 0  # a command or query before /connect (the port asks for a passcode)
    view_only: int = 0  # a drive command from a view-only session
    bad_passcode: int = 0  # /connect with a wrong passcode
    passcode_blocked: int = 0  # /connect refused unchecked: too many wrong passcodes from the host
    connected: int = 0  # sessions started
    updates_sent: int = 0
    updates_dropped: int = 0  # not sent: the socket had too much waiting (never queued behind it)
    subscriptions_lapsed: int = 0
    send_errors: int = 0


Handler = Callable[[Command | Query, tuple[str, int]], tuple[str, Any]]
"""Called with a command or query and the sender; returns (status, data) for the reply.
``Query("state")`` must answer the transport state (it is also what updates push)."""


class ControlPort(asyncio.DatagramProtocol):
    """The asyncio adapter of the control port. Create with :meth:`open`; call :meth:`update`
    with the ``/state`` data whenever the transport may have changed (it pushes only changes)."""

    def __init__(
        self,
        handler: Handler,
        allow: Sequence[str] = ("127.0.0.0/8", "::1/128"),
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        subscriptions: Subscriptions | None = None,
        access: Access | None = None,
        attempts: Attempts | None = None,
        rates: Rates | None = None,
    ) -> None:
        """``access``: the passcodes (None: none asked, the allowlist alone decides)."""
        self._handler = handler
        self._allow = [ip_network(a, strict=False) for a in allow]
        self.access = access
        self.attempts = attempts or Attempts()
        self.sessions = Sessions()
        self.rates = rates or Rates(RATE_PER_S, RATE_BURST)
        self._auth_logged: set[str] = set()
        self.stats = ControlStats()
        self._transport: asyncio.DatagramTransport | None = None
        self._clock = clock
        self.subscriptions = subscriptions or Subscriptions()
        self._last: dict[str, Any] | None = None  # the state last pushed
        self._error_logged = False

    @classmethod
    async def open(
        cls,
        handler: Handler,
        *,
        host: str = "0.0.0.0",
        port: int = 53000,
        allow: Sequence[str] | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        access: Access | None = None,
    ) -> ControlPort:
        """Bind the control port; ``port=0`` picks a free one (see :attr:`port`). With ``access``,
        a source must ``/connect <passcode>`` before anything else."""
        loop = asyncio.get_running_loop()
        proto = cls(handler, allow or ("127.0.0.0/8", "::1/128"), clock=clock, access=access)
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

    def error_received(self, exc: Exception) -> None:
        # A surface that went away (ICMP port unreachable) or a full socket: counted, logged once.
        self.stats.send_errors += 1
        if not self._error_logged:
            self._error_logged = True
            log.warning("control port send failed", extra={"error": str(exc)})

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
        if not self.rates.allow(addr[0], self._clock()):
            st.rate_limited += 1
            return
        if len(data) > MAX_DATAGRAM:
            st.oversize += 1
            return
        try:
            packet = decode_packet(data)
        except OscDecodeError as err:
            st.malformed += 1
            if st.malformed <= _LOGGED_MALFORMED:  # a flood must not flood the log
                log.warning(
                    "malformed control packet dropped (the first %d are logged; all are counted)",
                    _LOGGED_MALFORMED,
                    extra={"source": addr[0], "error": str(err)},
                )
            return
        self.subscriptions.seen(addr, self._clock())
        for msg in messages(packet):
            try:
                self._dispatch(msg, addr)
            except Exception:  # a bug here must not reach the loop: counted, logged once
                st.internal_errors += 1
                if st.internal_errors == 1:
                    log.exception("control message failed", extra={"address": msg.address, "source": addr[0]})

    def _allowed(self, host: str) -> bool:
        try:
            ip = ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self._allow)

    def _dispatch(self, msg: OscMessage, addr: tuple[str, int]) -> None:
        st = self.stats
        parsed = parse_command(msg.address, msg.args)
        if isinstance(parsed, Connect):
            self._connect(msg.address, parsed, addr)
            return
        if self.access is not None and not self._authorised(parsed, msg.address, addr):
            return
        if isinstance(parsed, Refusal):
            st.rejected += 1
            self._reply(msg.address, "error", parsed.reason, addr)
            return
        if isinstance(parsed, Subscribe):
            self._subscribe(msg.address, parsed, addr)
            return
        if parsed == Query("thump"):
            st.accepted += 1
            self._reply(msg.address, "ok", "thump", addr)
            return
        status, data = self._call(parsed, addr, msg.address)
        if status == "ok":
            st.accepted += 1
        else:
            st.rejected += 1
        self._reply(msg.address, status, data, addr)
        if status == "ok" and not isinstance(parsed, Query):
            self.refresh()  # every surface sees what this one did, now

    def _authorised(self, parsed: Parsed, address: str, addr: tuple[str, int]) -> bool:
        """With passcodes: a session must exist; a view-only one may ask and subscribe only."""
        st = self.stats
        role = self.sessions.role(addr, self._clock())
        if role is None:
            st.unauthenticated += 1
            self._note_refused(addr[0], "no session")
            self._reply(address, "denied", "this port asks for a passcode: send /connect <passcode> "
                        "first (the operator's to drive, the view-only one to watch)", addr)
            return False
        if role is Role.VIEWER and not isinstance(parsed, Query | Subscribe | Refusal):
            st.view_only += 1
            self._reply(address, "denied", "this session has the view-only passcode: it may /state, "
                        "/updates and /thump; /connect with the operator's passcode to drive", addr)
            return False
        return True

    def _connect(self, address: str, c: Connect, addr: tuple[str, int]) -> None:
        st = self.stats
        now = self._clock()
        if c.passcode is None:
            was = self.sessions.end(addr)
            self.subscriptions.unsubscribe(addr)
            st.accepted += 1
            self._reply(address, "ok", {"disconnected": was}, addr)
            return
        if self.access is None:  # nothing asked: a Companion set up with a passcode still works
            st.accepted += 1
            self._reply(address, "ok", {"role": str(Role.OPERATOR), "passcode": "not required"}, addr)
            return
        host = addr[0]
        if self.attempts.blocked(host, now):
            st.passcode_blocked += 1
            wait_s = self.attempts.window_ns // NS_PER_S
            self._reply(address, "denied", f"too many wrong passcodes from {host}; try again in up to "
                        f"{wait_s} s", addr)
            return
        role = self.access.role_of(c.passcode)
        if role is None:
            self.attempts.failed(host, now)
            st.bad_passcode += 1
            self._note_refused(host, "wrong passcode")
            self._reply(address, "error", "badpass", addr)
            return
        self.attempts.succeeded(host)
        for gone in self.sessions.connect(addr, role, now):
            if isinstance(gone, tuple):
                self.subscriptions.unsubscribe(cast(Peer, gone))
        st.accepted += 1
        st.connected += 1
        log.info("control session started", extra={"source": f"{host}:{addr[1]}", "role": str(role)})
        idle_s = self.sessions.idle_ns // NS_PER_S - 1
        self._reply(address, "ok", {"role": str(role), "renew_within_s": idle_s}, addr)

    def _note_refused(self, host: str, why: str) -> None:
        """Log a refused source once (a flood must not flood the log)."""
        if host not in self._auth_logged and len(self._auth_logged) < 32:
            self._auth_logged.add(host)
            log.warning("control message refused", extra={"source": host, "reason": why})

    def _call(self, parsed: Command | Query, addr: tuple[str, int], address: str) -> tuple[str, Any]:
        try:
            return self._handler(parsed, addr)
        except Exception:  # the show must go on: a handler bug must not kill the control port
            log.exception("control handler failed", extra={"address": address})
            return "error", "internal error; see the controller log"

    def _subscribe(self, address: str, sub: Subscribe, addr: tuple[str, int]) -> None:
        st = self.stats
        if not sub.on:
            was = self.subscriptions.unsubscribe(addr)
            st.accepted += 1
            self._reply(address, "ok", {"updates": 0, "was_subscribed": was}, addr)
            return
        fresh = addr not in self.subscriptions
        refused = self.subscriptions.subscribe(addr, self._clock())
        if refused is not None:
            st.rejected += 1
            self._reply(address, "error", refused, addr)
            return
        st.accepted += 1
        renew_s = self.subscriptions.ttl_ns // NS_PER_S - 1
        self._reply(address, "ok", {"updates": 1, "renew_within_s": renew_s}, addr)
        if fresh:
            log.info("surface subscribed to updates", extra={"source": f"{addr[0]}:{addr[1]}"})
            status, data = self._call(Query("state"), addr, address)
            if status == "ok" and isinstance(data, Mapping):
                self._send_pushes(plan_updates(None, data, [addr]))

    def update(self, data: Mapping[str, Any]) -> None:
        """The transport state now (the ``/state`` data): push what changed to every subscriber."""
        now = self._clock()
        lapsed = self.subscriptions.expire(now)
        if lapsed:
            self.stats.subscriptions_lapsed += len(lapsed)
            log.info("update subscriptions lapsed", extra={"sources": [f"{h}:{p}" for h, p in lapsed]})
        if not len(self.subscriptions):
            self._last = None  # a new subscriber starts from its own full update
            return
        current = dict(data)
        pushes = plan_updates(self._last, current, self.subscriptions.peers(now))
        self._last = current
        self._send_pushes(pushes)

    def refresh(self) -> None:
        """Ask the handler for the state and push what changed (after a command from any source)."""
        if not len(self.subscriptions):
            return
        status, data = self._call(Query("state"), ("", 0), "/state")
        if status == "ok" and isinstance(data, Mapping):
            self.update(data)

    def _send_pushes(self, pushes: Sequence[Push]) -> None:
        t = self._transport
        if t is None:
            return
        for p in pushes:
            if _pending_bytes(t) > MAX_PENDING_BYTES:
                self.stats.updates_dropped += 1
                continue
            t.sendto(encode_message(p.address, list(p.args)), p.peer)
            self.stats.updates_sent += 1

    def _reply(self, address: str, status: str, data: Any, addr: tuple[str, int]) -> None:
        if self._transport is None:
            return
        body = msgspec.json.encode({"address": address, "status": status, "data": data}).decode()
        self._transport.sendto(encode_message("/reply" + address, [body]), addr)


def _pending_bytes(t: asyncio.DatagramTransport) -> int:
    """What the transport holds unsent (asyncio's selector transports buffer without a bound)."""
    size = getattr(t, "get_write_buffer_size", None)
    return int(size()) if callable(size) else 0
