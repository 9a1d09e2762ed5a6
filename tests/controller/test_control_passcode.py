"""The control port's passcodes and bounds, over real UDP sockets on loopback.

A :class:`~controller.control.ControlPort` is opened in this process with a handler that records
what reached it; a client socket plays Companion (or an attacker on the same network). The port's
clock is injected, so session expiry and the wrong-passcode window are tested without waiting.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from controller.access import Access, Attempts
from controller.control import ControlPort, Query, passcode_required
from controller.limits import Rates
from controller.osc import decode_packet, encode_message
from controller.playback import Command, Go, Panic

S = 1_000_000_000
OPERATOR, VIEWER = "operator-secret-1", "viewer-secret-22"


class Client:
    """A UDP socket that sends control messages and reads the replies."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(encode_message(address, list(args)), ("127.0.0.1", self.port))

    async def reply(self, address: str) -> tuple[str, Any]:
        """The next ``/reply{address}``: (status, data)."""
        loop = asyncio.get_running_loop()
        while True:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), 5)
            msg = decode_packet(data)
            if getattr(msg, "address", "") == "/reply" + address:
                body = json.loads(str(msg.args[0]))  # type: ignore[union-attr]
                return body["status"], body["data"]

    async def ask(self, address: str, *args: Any) -> tuple[str, Any]:
        self.send(address, *args)
        return await self.reply(address)


def _run(test: Callable[[ControlPort, list[Command | Query], list[int]], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        seen: list[Command | Query] = []
        now = [0]

        def handler(cmd: Command | Query, _src: tuple[str, int]) -> tuple[str, Any]:
            seen.append(cmd)
            return "ok", {"state": "armed"} if isinstance(cmd, Query) else None

        port = await ControlPort.open(handler, host="127.0.0.1", port=0, clock=lambda: now[0], **kw)
        try:
            await test(port, seen, now)
        finally:
            port.close()

    asyncio.run(main())


def test_without_a_passcode_nothing_drives_and_a_wrong_one_is_refused_and_counted() -> None:
    async def t(port: ControlPort, seen: list[Command | Query], now: list[int]) -> None:
        c = Client(port.port)
        status, data = await c.ask("/go")
        assert status == "denied" and "/connect" in data
        assert await c.ask("/panic") == ("denied", data)
        assert (await c.ask("/state"))[0] == "denied"
        assert (await c.ask("/updates", 1))[0] == "denied"
        assert await c.ask("/connect", "guess-guess") == ("error", "badpass")
        assert seen == []
        assert port.stats.unauthenticated == 4
        assert port.stats.bad_passcode == 1

    _run(t, access=Access(OPERATOR, VIEWER))


def test_the_operator_passcode_drives_the_viewer_one_only_watches() -> None:
    async def t(port: ControlPort, seen: list[Command | Query], now: list[int]) -> None:
        op, viewer = Client(port.port), Client(port.port)
        assert await op.ask("/connect", OPERATOR) == ("ok", {"role": "operator", "renew_within_s": 60})
        assert (await op.ask("/go"))[0] == "ok"
        assert (await viewer.ask("/connect", VIEWER))[1]["role"] == "viewer"
        status, why = await viewer.ask("/panic")
        assert status == "denied" and "view-only" in why
        assert (await viewer.ask("/state")) == ("ok", {"state": "armed"})
        assert (await viewer.ask("/updates", 1))[0] == "ok"
        assert (await viewer.ask("/thump")) == ("ok", "thump")
        assert seen.count(Go()) == 1 and Panic() not in seen
        assert port.stats.view_only == 1
        # The viewer's session is per address and port: another socket of the same host has none.
        other = Client(port.port)
        assert (await other.ask("/state"))[0] == "denied"

    _run(t, access=Access(OPERATOR, VIEWER))


def test_a_session_expires_when_quiet_and_disconnect_ends_it() -> None:
    async def t(port: ControlPort, seen: list[Command | Query], now: list[int]) -> None:
        c = Client(port.port)
        await c.ask("/connect", OPERATOR)
        now[0] = 50 * S
        assert (await c.ask("/go"))[0] == "ok"  # renewed until 111 s
        now[0] = 112 * S
        assert (await c.ask("/go"))[0] == "denied"
        await c.ask("/connect", OPERATOR)
        assert await c.ask("/disconnect") == ("ok", {"disconnected": True})
        assert (await c.ask("/stop"))[0] == "denied"
        assert seen == [Go()]

    _run(t, access=Access(OPERATOR, VIEWER))


def test_wrong_passcodes_are_rate_limited_per_host_even_the_right_one_for_a_while() -> None:
    async def t(port: ControlPort, seen: list[Command | Query], now: list[int]) -> None:
        port.attempts = Attempts(allowance=3, window_ns=60 * S)
        c = Client(port.port)
        for i in range(3):
            assert await c.ask("/connect", f"wrong-{i}") == ("error", "badpass")
        status, why = await c.ask("/connect", OPERATOR)
        assert status == "denied" and "too many wrong passcodes" in why
        # Another port of the same host is the same guesser.
        assert (await Client(port.port).ask("/connect", OPERATOR))[0] == "denied"
        assert port.stats.bad_passcode == 3 and port.stats.passcode_blocked == 2
        now[0] = 61 * S  # the window has passed
        assert (await c.ask("/connect", OPERATOR))[0] == "ok"
        assert (await c.ask("/go"))[0] == "ok"

    _run(t, access=Access(OPERATOR, VIEWER))


def test_without_access_connect_still_answers_ok_and_commands_work() -> None:
    async def t(port: ControlPort, seen: list[Command | Query], now: list[int]) -> None:
        c = Client(port.port)
        assert await c.ask("/connect", "anything") == ("ok", {"role": "operator", "passcode": "not required"})
        assert (await c.ask("/go"))[0] == "ok"

    _run(t)


def test_a_flood_from_one_source_is_dropped_past_its_rate_and_counted() -> None:
    async def t(port: ControlPort, seen: list[Command | Query], now: list[int]) -> None:
        port.rates = Rates(rate_per_s=10, burst=20)
        c, other = Client(port.port), Client(port.port)
        for _ in range(50):
            c.send("/thump")
            await asyncio.sleep(0)  # no kernel drop: the port reads each one
        while port.stats.received < 50:
            await asyncio.sleep(0.01)
        assert port.stats.rate_limited == 30
        assert port.stats.accepted == 20
        # The same host from another port shares the budget (the bucket is per host) ...
        other.send("/state")
        await asyncio.sleep(0.05)
        assert port.stats.rate_limited == 31 and seen == []
        now[0] = 10 * S  # ... which refills with time
        assert (await other.ask("/state"))[0] == "ok"

    _run(t)


@pytest.mark.parametrize(
    ("mode", "allow", "configured", "required"),
    [
        ("auto", ["127.0.0.0/8", "::1/128"], False, False),
        ("auto", ["127.0.0.1/32"], False, False),
        ("auto", ["127.0.0.0/8", "192.168.1.0/24"], False, True),
        ("auto", ["::/0"], False, True),
        ("auto", ["127.0.0.0/8"], True, True),
        ("on", ["127.0.0.0/8"], False, True),
        ("off", ["0.0.0.0/0"], True, False),
    ],
)
def test_when_a_passcode_is_required(mode: str, allow: list[str], configured: bool, required: bool) -> None:
    assert passcode_required(mode, allow, configured) is required


def test_an_unknown_mode_says_which_are_known() -> None:
    with pytest.raises(ValueError, match="auto, on, off"):
        passcode_required("maybe", [], False)
