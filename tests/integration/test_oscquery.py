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

from simulators.broker import MosquittoBroker
from tests.integration.conftest import DATA, Controller, OscSink, write_venue
from tests.oscquery_client import Listener, discover, get, methods

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHOW = DATA / "yard-control.yaml"


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

    def announced() -> int | None:
        ctl._read()
        m = re.search(r"OSCQuery http://127\.0\.0\.1:(\d+)/", ctl.stderr)
        return int(m.group(1)) if m else None

    port = ctl.until(announced, "the OSCQuery address on stderr")
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
