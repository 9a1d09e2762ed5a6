"""End to end: a running ``madang run --oscquery 0`` found over mDNS on loopback, its tree read
and GO driven through it by the independent OSCQuery client of tests/oscquery_client.py, as
Chataigne or Open Stage Control would: discover ``_oscjson._tcp``, GET the tree and HOST_INFO,
LISTEN to the transport, send OSC to HOST_INFO's OSC_PORT (python-osc builds it)."""

from __future__ import annotations

import json
import re
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder
from websockets.exceptions import InvalidStatus

from simulators.broker import MosquittoBroker
from tests.integration.conftest import DATA, Controller, OscSink, write_venue
from tests.oscquery_client import Listener, discover, get, methods

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHOW = DATA / "yard-control.yaml"


def _oscquery_port(ctl: Controller) -> int:
    """The port ``--oscquery 0`` took, from the line the run prints at start."""

    def announced() -> int | None:
        ctl._read()
        m = re.search(r"OSCQuery http://127\.0\.0\.1:(\d+)/", ctl.stderr)
        return int(m.group(1)) if m else None

    port: int = ctl.until(announced, "the OSCQuery address on stderr")
    return port


def test_discover_read_the_tree_and_go_through_oscquery(
    tmp_path: Path,
    fresh_mosquitto: MosquittoBroker,
    osc_sink: Callable[[], OscSink],
    controllers: Callable[..., Controller],
) -> None:
    t, n, x = osc_sink(), osc_sink(), osc_sink()
    venue = write_venue(tmp_path, t=t.port, n=n.port, x=x.port)
    report = tmp_path / "report.json"
    ctl = controllers(SHOW, venue, fresh_mosquitto.url, "--oscquery", "0", "--report", str(report))
    ctl.wait_ready()

    port = _oscquery_port(ctl)
    found = discover("Madang yard-control", port)  # mDNS on loopback: the service resolves
    assert (found.host, found.port) == ("127.0.0.1", port)
    osc = discover("Madang yard-control", ctl.control_port, service="_osc._udp.local.")
    assert osc.port == ctl.control_port

    tree = get(found.host, found.port, "/").body
    nodes = methods(tree)
    assert {"/go", "/go/one", "/go/two", "/panic", "/update/transport"} <= set(nodes)
    assert nodes["/update/transport"]["VALUE"] == ["armed"]
    info = get(found.host, found.port, "/?HOST_INFO").body
    assert info["OSC_TRANSPORT"] == "UDP" and info["OSC_PORT"] == ctl.control_port

    lis = Listener(found.host, found.port)
    try:
        lis.listen("/update/transport")
        ctl.until(lambda: lis.values("/update/transport") == ["armed"], "the transport's value on LISTEN")
        # GO, as the surface sends it: the node's address with its TYPE ("N": no argument needed).
        assert nodes["/go"]["TYPE"] == "N"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(OscMessageBuilder("/go").build().dgram, (found.host, info["OSC_PORT"]))
        ctl.until(lambda: t.messages("/one") and n.messages("/one"), "cue one on the displays")
        ctl.until(lambda: "playing" in lis.values("/update/transport"), "playing on the LISTEN socket")
        assert get(found.host, found.port, "/update/cue?VALUE").body == {"VALUE": ["one"]}
    finally:
        lis.close()
    ctl.signal(signal.SIGTERM)
    assert ctl.wait() == 0, ctl.stderr[-3000:]
    assert "Traceback" not in ctl.stderr
    oq = json.loads(report.read_text(encoding="utf-8"))["oscquery"]
    assert oq["listens"] == 1 and oq["updates_sent"] >= 2 and oq["denied"] == 0


def test_with_passcodes_oscquery_opens_no_way_around_the_control_port(
    tmp_path: Path,
    fresh_mosquitto: MosquittoBroker,
    osc_sink: Callable[[], OscSink],
    controllers: Callable[..., Controller],
) -> None:
    """Secrets configured: the control port asks for /connect. The tree read without a secret has
    the commands but no values and no cues, LISTEN is refused, and a GO sent to HOST_INFO's port
    without a session is denied; the viewer's secret as a bearer shows the values, and only the
    operator's /connect drives."""
    t, n, x = osc_sink(), osc_sink(), osc_sink()
    venue = write_venue(tmp_path, t=t.port, n=n.port, x=x.port)
    operator, viewer = "op-passcode-2026", "view-passcode-2026"
    (tmp_path / "op").write_text(operator + "\n", encoding="utf-8")
    (tmp_path / "view").write_text(viewer + "\n", encoding="utf-8")
    ctl = controllers(
        SHOW, venue, fresh_mosquitto.url, "--oscquery", "0", "--no-mdns",
        "--operator-token-file", str(tmp_path / "op"), "--viewer-token-file", str(tmp_path / "view"),
    )
    ctl.wait_ready()

    port = _oscquery_port(ctl)
    bare = methods(get("127.0.0.1", port, "/").body)
    assert "/go" in bare and "/connect" in bare and "/go/one" not in bare
    assert "VALUE" not in bare["/update/transport"]
    with pytest.raises(InvalidStatus):
        Listener("127.0.0.1", port)
    seen = get("127.0.0.1", port, "/update/transport?VALUE", {"Authorization": f"Bearer {viewer}"})
    assert seen.body == {"VALUE": ["armed"]}

    osc_port = get("127.0.0.1", port, "/?HOST_INFO").body["OSC_PORT"]
    assert osc_port == ctl.control_port
    assert ctl.command("/go")["status"] == "denied"  # what the tree offers still needs a session
    assert ctl.command("/connect", operator)["data"]["role"] == "operator"
    assert ctl.command("/go")["status"] == "ok"
    ctl.until(lambda: t.messages("/one"), "cue one after /connect")
