"""The OSCQuery server (controller/web/oscquery.py): the tree from the control port's own table,
answers per the proposal, authority, and LISTEN, against the independent client of
tests/oscquery_client.py over real sockets on loopback (the server in this process)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from controller.access import Access
from controller.control import ADDRESSES, UPDATE_ADDRESSES, Refusal, parse_command
from controller.playback import Go
from controller.web.mdns import interfaces_for
from controller.web.oscquery import (
    MAX_CUE_NODES,
    OscQueryServer,
    answer,
    build_tree,
    current_values,
    find_node,
)
from tests.oscquery_client import Listener, get, methods

OPERATOR, VIEWER = "operator-secret-1", "viewer-secret-22"
ARMED = {"state": "armed", "standby": "one", "cue": None, "show_ns": 0}
PLAYING = {"state": "playing", "standby": "two", "cue": "one", "show_ns": 5}


# -- the tree, pure --------------------------------------------------------------------------


def test_every_fixed_control_address_is_a_node_with_its_types() -> None:
    tree = build_tree(["one", "two"])
    nodes = methods(tree)
    for row in ADDRESSES:
        if "{" in row.pattern:
            continue
        node = nodes[row.pattern]
        assert node["TYPE"] == (row.osc_types or "N")
        assert node["ACCESS"] == 2  # write-only: commands
        assert row.does in node["DESCRIPTION"]
    assert nodes["/rate"]["RANGE"] == [{"MIN": 0.05, "MAX": 16.0}]
    assert nodes["/updates"]["RANGE"] == [{"VALS": [0, 1]}]
    assert nodes["/connect"]["TYPE"] == "s"


def test_cue_patterns_expand_and_each_node_parses_as_the_control_port_would() -> None:
    """A node's address, sent to the control port, is the command its description says: a cue
    called ``force`` keeps ``/go/force`` the forced GO (the port's first match wins)."""
    nodes = methods(build_tree(["one", "force", "bad cue", "a/b"]))
    assert parse_command("/go/one", []) == Go(cue="one")
    assert "/go/one" in nodes and "/cue/one/start" in nodes and "/load/one" in nodes
    assert nodes["/go/force"]["DESCRIPTION"].startswith("GO even where")
    assert parse_command("/go/force/force", []) == Go(cue="force", force=True)
    assert not any("bad cue" in p or "/a/b" in p for p in nodes)  # not valid OSC address parts
    for path, node in nodes.items():
        if node["ACCESS"] == 2 and node["TYPE"] == "N":  # argless: the node's address alone is a command
            assert not isinstance(parse_command(path, []), Refusal), path


def test_full_path_matches_position_and_values_are_the_pushed_ones() -> None:
    tree = build_tree(["one"], current_values(PLAYING))
    for path, node in methods(tree).items():
        assert find_node(tree, path) is node
    assert find_node(tree, "/update/transport")["VALUE"] == ["playing"]  # type: ignore[index]
    assert find_node(tree, "/update/cue")["VALUE"] == ["one"]  # type: ignore[index]
    state = json.loads(find_node(tree, "/update/state")["VALUE"][0])  # type: ignore[index]
    assert state["data"]["state"] == "playing"
    assert set(UPDATE_ADDRESSES) <= set(methods(tree))


def test_restricted_tree_has_no_values_and_no_cues() -> None:
    tree = build_tree(["one"], current_values(ARMED), full=False)
    nodes = methods(tree)
    assert "/go" in nodes and "/go/one" not in nodes
    assert all("VALUE" not in n for n in nodes.values())


def test_cue_expansion_is_bounded() -> None:
    nodes = methods(build_tree([f"c{i}" for i in range(MAX_CUE_NODES + 50)]))
    assert f"/go/c{MAX_CUE_NODES - 1}" in nodes and f"/go/c{MAX_CUE_NODES}" not in nodes


def test_answers() -> None:
    tree = build_tree(["one"], current_values(ARMED))
    info = {"OSC_PORT": 1}
    assert answer(tree, "/?HOST_INFO", info) == (HTTPStatus.OK, info)
    assert answer(tree, "/rate?TYPE", info) == (HTTPStatus.OK, {"TYPE": "f"})
    assert answer(tree, "/update/playhead?VALUE", info) == (HTTPStatus.OK, {"VALUE": ["one"]})
    assert answer(tree, "/go?VALUE", info) == (HTTPStatus.NO_CONTENT, None)
    assert answer(tree, "/nowhere", info)[0] == HTTPStatus.NOT_FOUND
    assert answer(tree, "/go?NONSENSE", info)[0] == HTTPStatus.BAD_REQUEST
    assert answer(tree, "/go%2Fone", info)[0] == HTTPStatus.OK  # percent-encoded slash


def test_mdns_announces_where_a_client_could_connect() -> None:
    assert interfaces_for(["127.0.0.0/8", "::1/128"]) == ["127.0.0.1"]
    assert interfaces_for(["127.0.0.1", "10.0.0.0/24"]) is None


# -- the server over real sockets --------------------------------------------------------------


Serve = Callable[..., Awaitable[OscQueryServer]]


@pytest.fixture
def state() -> dict[str, Any]:
    return dict(ARMED)


async def _server(state: dict[str, Any], **kw: Any) -> OscQueryServer:
    srv = OscQueryServer(
        name="Madang test", osc_port=53999, cues=["one", "two"], state=lambda: state, host="127.0.0.1", **kw
    )
    await srv.start()
    return srv


def test_http_tree_host_info_and_attributes(state: dict[str, Any]) -> None:
    async def main() -> None:
        srv = await _server(state)
        try:
            root = await asyncio.to_thread(get, "127.0.0.1", srv.port, "/")
            assert root.status == 200 and root.content_type == "application/json"
            assert root.body["FULL_PATH"] == "/"
            assert "/go/two" in methods(root.body)
            info = await asyncio.to_thread(get, "127.0.0.1", srv.port, "/?HOST_INFO")
            assert info.body["OSC_PORT"] == 53999 and info.body["OSC_TRANSPORT"] == "UDP"
            assert info.body["EXTENSIONS"]["LISTEN"] is True
            node = await asyncio.to_thread(get, "127.0.0.1", srv.port, "/go/one")
            assert node.body["FULL_PATH"] == "/go/one"
            value = await asyncio.to_thread(get, "127.0.0.1", srv.port, "/update/transport?VALUE")
            assert value.body == {"VALUE": ["armed"]}
            missing = await asyncio.to_thread(get, "127.0.0.1", srv.port, "/no/such")
            assert missing.status == 404 and srv.stats.not_found == 1
        finally:
            await srv.close()

    asyncio.run(main())


def test_a_source_the_allowlist_refuses_gets_403(state: dict[str, Any]) -> None:
    async def main() -> None:
        srv = await _server(state, allow=["10.9.0.0/16"])
        try:
            r = await asyncio.to_thread(get, "127.0.0.1", srv.port, "/")
            assert r.status == 403 and srv.stats.denied == 1
            with pytest.raises(InvalidStatus):
                await asyncio.to_thread(connect, f"ws://127.0.0.1:{srv.port}/")
        finally:
            await srv.close()

    asyncio.run(main())


def test_with_a_passcode_values_cues_and_listen_need_a_secret(state: dict[str, Any]) -> None:
    async def main() -> None:
        srv = await _server(state, access=Access(OPERATOR, VIEWER))
        try:
            bare = await asyncio.to_thread(get, "127.0.0.1", srv.port, "/")
            assert "/go" in methods(bare.body) and "/go/one" not in methods(bare.body)
            assert "VALUE" not in methods(bare.body)["/update/transport"]
            wrong = await asyncio.to_thread(
                get, "127.0.0.1", srv.port, "/update/transport?VALUE", {"Authorization": "Bearer nope-nope-1"}
            )
            assert wrong.status == 204
            viewer = await asyncio.to_thread(
                get, "127.0.0.1", srv.port, "/update/transport?VALUE", {"Authorization": f"Bearer {VIEWER}"}
            )
            assert viewer.body == {"VALUE": ["armed"]}
            with pytest.raises(InvalidStatus) as refused:
                await asyncio.to_thread(connect, f"ws://127.0.0.1:{srv.port}/")
            assert refused.value.response.status_code == 403
            bearer = {"Authorization": f"Bearer {VIEWER}"}
            lis = await asyncio.to_thread(Listener, "127.0.0.1", srv.port, bearer)
            lis.listen("/update/transport")
            await _until(lambda: lis.values("/update/transport") == ["armed"])
            await asyncio.to_thread(lis.close)
        finally:
            await srv.close()

    asyncio.run(main())


async def _until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_listen_streams_changes_as_osc_and_ignore_stops_them(state: dict[str, Any]) -> None:
    async def main() -> None:
        srv = await _server(state)
        try:
            lis = await asyncio.to_thread(Listener, "127.0.0.1", srv.port)
            lis.listen("/update/transport")
            lis.listen("/update/cue")
            lis.ws.send("not json")
            lis.ws.send(json.dumps({"COMMAND": "LISTEN", "DATA": "/go"}))  # no value there
            lis.ws.send(json.dumps({"COMMAND": "EXPLODE", "DATA": "/"}))
            lis.ws.send(b"\x00binary")
            lis.ws.send("[" * 4000)  # nested past the JSON parser's recursion limit
            await _until(lambda: srv.stats.bad_commands == 5 and srv.stats.listens == 2)
            assert srv.listening
            await _until(lambda: lis.values("/update/transport") == ["armed"])
            state.update(PLAYING)
            srv.update(state)
            srv.update(state)  # nothing changed: nothing sent
            await _until(lambda: lis.values("/update/cue") == ["", "one"])
            assert lis.values("/update/transport") == ["armed", "playing"]
            lis.ignore("/update/transport")
            await asyncio.sleep(0.05)  # the IGNORE reaches the server before the next change
            state.update(state="paused")
            srv.update(state)
            state.update(state="playing", cue="two")
            srv.update(state)
            await _until(lambda: lis.values("/update/cue")[-1:] == ["two"])
            assert lis.values("/update/transport") == ["armed", "playing"]
            assert "/update/state" not in {a for a, _ in lis.received}
            await asyncio.to_thread(lis.close)
            await _until(lambda: not srv.listening)
            assert srv.report()["sockets"] == 1
        finally:
            await srv.close()

    asyncio.run(main())


def test_run_refuses_oscquery_without_the_control_port(capsys: pytest.CaptureFixture[str]) -> None:
    from madang.cli import main

    show = str(Path(__file__).resolve().parents[1] / "data" / "yard-control.yaml")
    assert main(["run", show, "--control-port", "-1", "--oscquery", "0", "--no-view"]) == 2
    assert "--oscquery serves the control port's addresses" in capsys.readouterr().err


def test_requests_over_the_rate_get_429_and_the_tree_is_not_rebuilt(state: dict[str, Any]) -> None:
    from controller.web.oscquery import HTTP_RATE_BURST

    async def main() -> None:
        srv = await _server(state, clock=lambda: 0)  # time stands still: no token comes back
        try:
            first = await asyncio.to_thread(get, "127.0.0.1", srv.port, "/")
            built = srv._trees[True]
            statuses = [first.status]
            for _ in range(HTTP_RATE_BURST):
                statuses.append((await asyncio.to_thread(get, "127.0.0.1", srv.port, "/")).status)
            assert statuses.count(200) == HTTP_RATE_BURST and statuses[-1] == 429
            assert srv.stats.rate_limited == 1 and srv._trees[True] is built
            state.update(PLAYING)  # a new value reaches a fresh answer, from the same tree
            srv.rates = type(srv.rates)(1000.0, 10)
            again = await asyncio.to_thread(get, "127.0.0.1", srv.port, "/update/transport")
            assert again.body["VALUE"] == ["playing"]
            root = await asyncio.to_thread(get, "127.0.0.1", srv.port, "/")
            assert methods(root.body)["/update/cue"]["VALUE"] == ["one"]
        finally:
            await srv.close()

    asyncio.run(main())
