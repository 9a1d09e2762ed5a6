"""The browser console's desk (controller/web/console.py): sign-in, roles, commands, pushes.

The sans-I/O half (hello, receive, push) is driven with literal times; the socket half runs on a
real WebServer on a free loopback port with real ``websockets`` clients. The runtime is stood in
for by :class:`Desk`'s hooks, which record what the console asked of it: what the runtime does
with a command is tested with the runtime (tests/integration/test_console_page.py).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from controller.access import Access, Attempts
from controller.clock import SystemClock
from controller.control import Refusal, parse_command
from controller.playback import Go, LoadAt, Panic, PlayheadNext, Seek, SetRate, Stop, TogglePause
from controller.presence import DeviceHealth, Presence
from controller.telemetry import Telemetry
from controller.view import LogLine, ViewModel
from controller.web.console import (
    CONSOLE_COMMANDS,
    LOG_LINES,
    ConsoleDesk,
    ConsoleHooks,
    ConsoleSession,
    DeviceGrid,
    parse_console,
)
from controller.web.server import WebServer
from venues.loader import load_venue

S = 1_000_000_000
OPERATOR, VIEWER = "operator-secret-1", "viewer-secret-22"

VENUE = """\
venue: console-yard
zones: [north, south]
devices:
  - {id: "xr-{1..3}", kind: xr, zone: north, sync: app, mqtt: {}}
  - {id: disp-1, kind: display, zone: south, sync: none, osc: {port: 9000}}
"""


class Desk:
    """A ConsoleDesk whose hooks record what it asked of the runtime."""

    def __init__(self, tmp_path: Path, *, attempts: Attempts | None = None) -> None:
        path = tmp_path / "venue.yaml"
        path.write_text(VENUE, encoding="utf-8")
        self.venue = load_venue(path)
        self.commands: list[tuple[Any, str]] = []
        self.notes: list[tuple[str, str, bool, str]] = []
        self.vm = ViewModel(show="Yard", venue="Yard", state="armed", standby_cue="open")
        self.grid = DeviceGrid("ouxo", "sw--")
        self.desk = ConsoleDesk(
            self.venue,
            Access(OPERATOR, VIEWER),
            ConsoleHooks(
                command=self._command,
                note=lambda source, what, ok, detail: self.notes.append((source, what, ok, detail)),
                view=lambda: self.vm,
                grid=lambda: self.grid,
            ),
            clock=SystemClock(),
            attempts=attempts,
            rate_hz=50.0,
        )

    def _command(self, cmd: Any, source: str) -> tuple[str, Any]:
        self.commands.append((cmd, source))
        return "ok", {"state": "playing", "cue": "open"}

    def session(
        self, token: str, address: str = "10.0.0.5", name: str = ""
    ) -> tuple[ConsoleSession, list[bytes]]:
        role, source, reply = self.desk.hello(
            json.dumps({"op": "hello", "token": token, "name": name}), address, 0
        )
        assert role is not None, reply
        written: list[bytes] = []
        s = ConsoleSession(role, source, write=written.append)
        self.desk.sessions.append(s)
        return s, written


# -- commands: the console's messages in the control port's table --------------------------------


@pytest.mark.parametrize(
    ("msg", "cmd"),
    [
        ({"cmd": "go"}, Go()),
        ({"cmd": "go", "force": True}, Go(force=True)),
        ({"cmd": "go", "cue": "bloom"}, Go(cue="bloom")),
        ({"cmd": "go", "cue": "force"}, Go(cue="force")),  # a cue called force is not a forced GO
        ({"cmd": "go", "cue": "bloom", "force": True}, Go(cue="bloom", force=True)),
        ({"cmd": "load", "at": 60}, LoadAt(show_ns=60 * S)),
        ({"cmd": "load", "cue": "bloom"}, LoadAt(cue="bloom")),
        ({"cmd": "seek", "at": 1.5}, Seek(show_ns=1_500_000_000)),
        ({"cmd": "seek", "cue": "moon"}, Seek(cue="moon")),
        ({"cmd": "rate", "rate": 2}, SetRate(rate=2.0)),
        ({"cmd": "panic"}, Panic()),
        ({"cmd": "stop"}, Stop()),
        ({"cmd": "toggle-pause"}, TogglePause()),
        ({"cmd": "next"}, PlayheadNext()),
    ],
)
def test_console_messages_become_the_control_ports_commands(msg: dict[str, Any], cmd: Any) -> None:
    assert parse_console(msg) == cmd


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        ({"cmd": "launch"}, "unknown console command 'launch'; the commands are: go, load"),
        ({"cmd": "go", "cue": "a/b"}, "cue must be a cue id"),
        ({"cmd": "go", "cue": ""}, "cue must be a cue id"),
        ({"cmd": "load", "at": -1}, "/load takes one number of seconds from 0 to 10000000"),
        ({"cmd": "load"}, "/load takes one number of seconds from 0 to 10000000"),
        ({"cmd": "rate", "rate": 99}, "/rate takes one number between 0.05 and 16"),
        ({}, "unknown console command"),
    ],
)
def test_bad_console_messages_are_refused_with_the_reason(msg: dict[str, Any], reason: str) -> None:
    got = parse_console(msg)
    assert isinstance(got, Refusal) and reason in got.reason, got


def test_the_command_table_says_what_each_message_parses_as() -> None:
    for msg, address in CONSOLE_COMMANDS:
        filled = msg.replace(": C", ': "bloom"').replace(": S", ": 60").replace(": R", ": 2")
        path, *args = address.replace("/C", "/bloom").split()
        want = parse_command(path, [float(a.replace("S", "60").replace("R", "2")) for a in args])
        assert parse_console(json.loads(filled)) == want, msg


def test_docs_list_every_console_command_with_its_control_address() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operator.md").read_text(encoding="utf-8")
    for msg, address in CONSOLE_COMMANDS:
        assert f"| `{msg}` | `{address}` |" in doc, msg


# -- sign-in -----------------------------------------------------------------------------------


def test_each_token_signs_in_its_role_and_the_welcome_lists_the_devices_by_zone(tmp_path: Path) -> None:
    d = Desk(tmp_path)
    role, source, welcome = d.desk.hello(
        json.dumps({"op": "hello", "token": OPERATOR, "name": "SM desk"}), "10.0.0.5", 0
    )
    assert str(role) == "operator" and source == "console operator 10.0.0.5 (SM desk)"
    assert welcome["may_drive"] is True
    assert welcome["devices"] == [
        {"zone": "north", "devices": [[0, "xr-1", "xr"], [1, "xr-2", "xr"], [2, "xr-3", "xr"]]},
        {"zone": "south", "devices": [[3, "disp-1", "display"]]},
    ]
    role, source, welcome = d.desk.hello(json.dumps({"op": "hello", "token": VIEWER}), "10.0.0.6", 0)
    assert str(role) == "viewer" and source == "console viewer 10.0.0.6" and welcome["may_drive"] is False
    assert [(n[1], n[2]) for n in d.notes] == [("sign in", True), ("sign in", True)]
    assert OPERATOR not in json.dumps([welcome, d.notes]) and VIEWER not in json.dumps([welcome, d.notes])


def test_a_wrong_token_is_refused_and_logged_and_a_guesser_is_then_refused_unchecked(tmp_path: Path) -> None:
    d = Desk(tmp_path, attempts=Attempts(allowance=3, window_ns=60 * S))
    for i in range(3):
        role, _, reply = d.desk.hello(json.dumps({"op": "hello", "token": f"guess-{i}"}), "10.9.9.9", i)
        assert role is None and reply["type"] == "denied" and "wrong or missing token" in reply["reason"]
    # The allowance is spent: even the right token is not checked until the window has passed.
    role, _, reply = d.desk.hello(json.dumps({"op": "hello", "token": OPERATOR}), "10.9.9.9", 3)
    assert role is None and "too many wrong tokens" in reply["reason"]
    assert d.desk.counts["wrong_token"] == 3 and d.desk.counts["blocked"] == 1
    # Another source is not held up by this one.
    role, _, _ = d.desk.hello(json.dumps({"op": "hello", "token": OPERATOR}), "10.0.0.5", 3)
    assert str(role) == "operator"
    role, _, _ = d.desk.hello(json.dumps({"op": "hello", "token": OPERATOR}), "10.9.9.9", 61 * S)
    assert str(role) == "operator"
    refused = [n for n in d.notes if not n[2]]
    assert len(refused) == 3 and all(n[0] == "console 10.9.9.9" for n in refused)
    assert "guess" not in json.dumps(d.notes)  # a token is never logged
    for bad in (b"not json", json.dumps({"token": OPERATOR}), json.dumps({"op": "hello", "token": 7})):
        role, _, _ = d.desk.hello(bad, "10.0.0.7", 0)
        assert role is None


# -- commands by role --------------------------------------------------------------------------


def test_an_operators_command_goes_down_the_runtimes_command_path_with_who_sent_it(tmp_path: Path) -> None:
    d = Desk(tmp_path)
    s, _ = d.session(OPERATOR, name="SM desk")
    reply = d.desk.receive(s, json.dumps({"cmd": "go", "id": 4}), 0)
    assert reply == {"type": "reply", "id": 4, "status": "ok", "data": {"state": "playing", "cue": "open"}}
    assert d.commands == [(Go(), "console operator 10.0.0.5 (SM desk)")]


def test_a_viewers_forged_command_is_refused_logged_with_who_and_never_reaches_the_runtime(
    tmp_path: Path,
) -> None:
    d = Desk(tmp_path)
    s, _ = d.session(VIEWER, address="10.0.0.8")
    d.notes.clear()
    for msg in ({"cmd": "go", "id": 1}, {"cmd": "panic"}, {"cmd": "load", "at": 60}):
        reply = d.desk.receive(s, json.dumps(msg), 0)
        assert (
            reply is not None
            and reply["status"] == "denied"
            and "viewer role may only watch" in reply["data"]
        )
    assert d.commands == []
    assert [(n[0], n[1], n[2]) for n in d.notes] == [
        ("console viewer 10.0.0.8", "GO", False),
        ("console viewer 10.0.0.8", "panic", False),
        ("console viewer 10.0.0.8", "load 60 s", False),
    ]
    assert all(n[3].startswith("refused: the viewer role may only watch") for n in d.notes)
    assert d.desk.counts["denied"] == 3
    assert d.desk.receive(s, json.dumps({"op": "ping", "id": 9}), 0) == {"type": "pong", "id": 9}


def test_bad_and_flooded_messages_are_answered_and_counted_never_raised(tmp_path: Path) -> None:
    d = Desk(tmp_path)
    s, _ = d.session(OPERATOR)
    for bad in (b"\xff\xfe", "[1, 2]", "x" * 5000, json.dumps({"cmd": "launch"})):
        reply = d.desk.receive(s, bad, 0)
        assert reply is not None and reply["status"] == "error"
    assert d.desk.counts["malformed"] == 4 and d.commands == []
    s2, _ = d.session(OPERATOR)
    replies = [d.desk.receive(s2, json.dumps({"cmd": "next"}), S) for _ in range(30)]
    throttled = [r for r in replies if r is not None and r["data"] == "too many commands; slow down"]
    assert len(d.commands) == 20 and len(throttled) == 10  # the bucket's burst, then nothing
    assert d.desk.receive(s2, json.dumps({"cmd": "next"}), 2 * S) is not None and len(d.commands) == 21


# -- pushes ------------------------------------------------------------------------------------


def test_updates_are_encoded_once_and_written_only_when_they_change(tmp_path: Path) -> None:
    d = Desk(tmp_path)
    _, wa = d.session(OPERATOR)
    _, wb = d.session(VIEWER)
    d.vm.log = [LogLine(f"20:00:{i:02d}", "key Space", "GO", True, "-> playing") for i in range(100)]
    assert d.desk.push(d.desk.updates(True)) == 6
    assert wa == wb and len(wa) == 3
    kinds = [json.loads(f[2:] if f[1] < 126 else f[4:])["type"] for f in wa]
    assert kinds == ["state", "log", "grid"]
    log = json.loads(wa[1][4:])
    assert len(log["lines"]) == LOG_LINES and log["lines"][-1]["clock"] == "20:00:99"
    state = json.loads(wa[0][4:] if wa[0][1] == 126 else wa[0][2:])
    assert state["state"] == "armed" and state["standby_cue"] == "open" and state["consoles"] == 2
    assert d.desk.push(d.desk.updates(True)) == 0  # nothing changed: nothing written
    d.vm.state = "playing"
    assert d.desk.push(d.desk.updates(False)) == 2 and len(wa) == 4  # only the state
    d.grid = DeviceGrid("oooo", "ss--")
    assert d.desk.push(d.desk.updates(True)) == 2 and json.loads(wa[-1][2:])["presence"] == "oooo"


def test_a_console_that_cannot_keep_up_is_cut_not_waited_for(tmp_path: Path) -> None:
    d = Desk(tmp_path)
    a, wa = d.session(OPERATOR)
    slow = ConsoleSession(a.role, "slow", write=lambda f: None, buffered=lambda: 10 * 1024 * 1024)
    d.desk.sessions.append(slow)
    d.desk.push(d.desk.updates(True))
    assert slow not in d.desk.sessions and a in d.desk.sessions and d.desk.counts["slow"] == 1
    assert len(wa) == 3


# -- the grid's sources ------------------------------------------------------------------------


def test_presence_classifies_each_device_as_the_counts_do() -> None:
    p = Presence(["a", "b", "c", "d", "e"])
    p.answered("a", 0)
    p.answered("b", 0)
    p.health["c"].status = "offline"
    p.health["d"].status = "vacant"
    states = p.states(20 * S)
    assert states == {"a": "late", "b": "late", "c": "offline", "d": "vacant", "e": "unknown"}
    p.answered("a", 19 * S)
    assert p.states(20 * S)["a"] == "online"
    counts = p.counts(20 * S)
    assert counts == {"online": 1, "late": 1, "offline": 1, "unknown": 1, "vacant": 1}
    assert Presence.classify(DeviceHealth(), 0) == "unknown"


class _Sync:
    """The one query of the clock-sync service the fire errors of app cues need."""

    def to_ref(self, device: str, local: int) -> int | None:
        return local


def test_each_cues_live_spread_is_the_fire_errors_of_its_reports(tmp_path: Path) -> None:
    d = Desk(tmp_path)
    tel = Telemetry(d.venue)
    tel.sent_cue(7, 10 * S, "bloom")
    tel.sent_cue(8, 12 * S, "bloom")
    tel.sent_cue(9, 14 * S, "moon")
    tel.sent_cue(10, 16 * S)  # an app cue sent without its cue id: counted for the device only
    assert tel.cue_spread() == {}
    sync: Any = _Sync()
    tel.receive_fired("xr-1", 7, 10 * S + 1_000_000, True, sync)  # 1 ms late
    tel.receive_fired("xr-2", 7, 10 * S - 500_000, True, sync)  # 0.5 ms early
    tel.receive_fired("xr-3", 8, 12 * S + 200_000, True, sync)
    tel.receive_fired("xr-1", 9, 14 * S, True, sync)
    tel.receive_fired("xr-2", 10, 16 * S, True, sync)
    tel.receive_fired("xr-3", 7, 99 * S, False, sync)  # no model: no measurable error
    spread = tel.cue_spread()
    assert set(spread) == {"bloom", "moon"}
    assert spread["bloom"].reports == 3 and spread["bloom"].spread_us == 1500.0
    assert spread["moon"].reports == 1 and spread["moon"].spread_us == 0.0
    assert tel.cue_spread() is spread  # nothing new: not recomputed


# -- over real sockets -------------------------------------------------------------------------


def test_over_a_real_socket_a_viewer_watches_and_its_forged_go_is_refused(tmp_path: Path) -> None:
    d = Desk(tmp_path)

    async def main() -> None:
        server = WebServer(port=0)
        d.desk.add_routes(server)
        await server.start()
        task = asyncio.create_task(d.desk.run())
        url = f"ws://127.0.0.1:{server.port}/console/ws"
        try:
            with pytest.raises(InvalidStatus) as err:
                async with connect(url, origin="https://evil.example"):  # type: ignore[arg-type]
                    pass
            assert err.value.response.status_code == 403
            async with connect(url) as ws:
                await ws.send(json.dumps({"op": "hello", "token": "wrong-token-1"}))
                assert json.loads(await ws.recv())["type"] == "denied"
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
            async with connect(url, origin=f"http://127.0.0.1:{server.port}") as ws:  # type: ignore[arg-type]
                await ws.send(json.dumps({"op": "hello", "token": VIEWER}))
                got: dict[str, Any] = {}
                async with asyncio.timeout(5):
                    while not {"welcome", "state", "log", "grid"} <= set(got):
                        m = json.loads(await ws.recv())
                        got[m["type"]] = m
                assert got["welcome"]["role"] == "viewer" and got["state"]["standby_cue"] == "open"
                assert got["grid"] == {"type": "grid", "presence": "ouxo", "sync": "sw--"}
                await ws.send(json.dumps({"cmd": "go", "id": 1}))
                async with asyncio.timeout(5):
                    while (m := json.loads(await ws.recv()))["type"] != "reply":
                        pass
                assert m["status"] == "denied" and m["id"] == 1
            assert d.commands == []
            assert any(n[1] == "GO" and not n[2] and n[0] == "console viewer 127.0.0.1" for n in d.notes)
            assert d.desk.counts["wrong_token"] == 1 and server.refused["origin"] == 1
        finally:
            task.cancel()
            await server.close()

    asyncio.run(main())


# -- the runtime's side: tokens from files, the URLs printed -----------------------------------


def test_the_runtime_prints_generated_tokens_only_and_reads_given_ones_from_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from controller.access import ENV, AccessError
    from controller.runtime import Runtime, RuntimeOptions
    from cues.compiler import compile_show

    for var in ENV.values():
        monkeypatch.delenv(var, raising=False)
    timeline, venue = compile_show(Path(__file__).resolve().parents[1] / "data" / "sim" / "sim-yard.yaml")
    (tmp_path / "op.txt").write_text("stage-manager-secret\n", encoding="utf-8")

    async def urls(**opts: Any) -> str:
        rt = Runtime(timeline, venue, RuntimeOptions(view=False, control_port=None, web_port=0, **opts))
        await rt._open_web()
        assert rt.web is not None
        await rt.web.close()
        if rt._console_task is not None:
            rt._console_task.cancel()
        return capsys.readouterr().err

    printed = asyncio.run(urls(operator_token_file=tmp_path / "op.txt"))
    assert "stage-manager-secret" not in printed
    assert (
        "madang: console operator http://127.0.0.1:" in printed
        and "#token=<the operator token you gave>" in printed
    )
    viewer = printed.split("madang: console viewer ", 1)[1].split()[0].split("#token=", 1)[1]
    assert len(viewer) >= 20  # generated, and printed: nobody else knows it
    printed = asyncio.run(urls(console=False))
    assert "console" not in printed
    (tmp_path / "short.txt").write_text("abc\n", encoding="utf-8")
    with pytest.raises(AccessError, match=r"operator secret from .*short.txt is 3 characters long"):
        Runtime(
            timeline,
            venue,
            RuntimeOptions(view=False, web_port=0, operator_token_file=tmp_path / "short.txt"),
        )


def test_past_the_bound_of_open_consoles_one_is_told_busy_not_signed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import controller.web.console as console

    monkeypatch.setattr(console, "MAX_SESSIONS", 1)
    d = Desk(tmp_path)

    async def main() -> None:
        server = WebServer(port=0)
        d.desk.add_routes(server)
        await server.start()
        url = f"ws://127.0.0.1:{server.port}/console/ws"
        try:
            async with connect(url) as first:
                await first.send(json.dumps({"op": "hello", "token": OPERATOR}))
                assert json.loads(await first.recv())["type"] == "welcome"
                async with connect(url) as second:
                    await second.send(json.dumps({"op": "hello", "token": VIEWER}))
                    reply = json.loads(await asyncio.wait_for(second.recv(), 5))
                    assert reply["type"] == "busy" and "1 consoles are open" in reply["reason"]
                    with pytest.raises(ConnectionClosed):
                        await asyncio.wait_for(second.recv(), 5)
            assert d.desk.counts["full"] == 1
        finally:
            await server.close()

    asyncio.run(main())
