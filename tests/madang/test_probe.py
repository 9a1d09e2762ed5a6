"""``madang check --probe`` (madang/probe.py) against a small OSCQuery device served in this test:
a media server's tree written by hand from the proposal, over a real HTTP socket (http.server),
and a show with one right and some wrong addresses."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from madang.cli import main
from madang.probe import Tree, fetch_tree

# A media server's namespace as its OSCQuery server would answer GET / (Vidvox's proposal).
DEVICE_TREE: dict[str, Any] = {
    "FULL_PATH": "/",
    "CONTENTS": {
        "layer1": {
            "FULL_PATH": "/layer1",
            "CONTENTS": {
                "clip1": {
                    "FULL_PATH": "/layer1/clip1",
                    "CONTENTS": {
                        "connect": {"FULL_PATH": "/layer1/clip1/connect", "TYPE": "i", "ACCESS": 3,
                                    "RANGE": [{"VALS": [0, 1]}]},
                    },
                },
                "opacity": {"FULL_PATH": "/layer1/opacity", "TYPE": "f", "ACCESS": 3,
                            "RANGE": [{"MIN": 0.0, "MAX": 1.0}], "VALUE": [1.0]},
            },
        },
        "fps": {"FULL_PATH": "/fps", "TYPE": "f", "ACCESS": 1, "VALUE": [60.0]},
    },
}


class _Device(BaseHTTPRequestHandler):
    tree: Any = DEVICE_TREE

    def do_GET(self) -> None:
        body = json.dumps(self.tree).encode() if not isinstance(self.tree, bytes) else self.tree
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def device() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Device)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


VENUE = """\
venue: probe-yard
name: Probe yard
zones: [north]
broker: mqtt://127.0.0.1:1
devices:
  - {id: media-1, kind: media, zone: north, osc: {host: 127.0.0.1, port: 9001, oscquery: PORT}, sync: none}
  - {id: media-2, kind: media, zone: north, osc: {host: 127.0.0.1, port: 9002, oscquery: PORT}, sync: none}
  - {id: lamp-1, kind: lamp, zone: north, osc: {host: 127.0.0.1, port: 9003}, sync: none}
groups:
  media: "kind:media"
"""

SHOW = """\
show: Probe
venue: probe-yard
cues:
  - id: one
    go: manual
    actions:
      - osc: {targets: media, address: /layer1/clip1/connect, args: [1]}
      - osc: {targets: media, address: /layer1/clip1/conect, args: [1]}
      - osc: {targets: media-1, address: /layer1/opacity, args: [half]}
      - osc: {targets: lamp-1, address: /anything, args: [1]}
  - id: two
    go: manual
    actions:
      - fade: {targets: media-1, param: opacity, address: /layer1/opacity, from: 0, to: 2, over: 1s}
      - osc: {targets: media-2, address: /fps, args: [30.0]}
"""


def _files(tmp_path: Path, port: int, show: str = SHOW) -> tuple[Path, Path]:
    venue = tmp_path / "venue.yaml"
    venue.write_text(VENUE.replace("PORT", str(port)), encoding="utf-8")
    path = tmp_path / "show.yaml"
    path.write_text(show, encoding="utf-8")
    return path, venue


def _line_col(text: str, needle: str) -> tuple[int, int]:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i, line.index("osc:" if "osc:" in line else "fade:") + 1
    raise AssertionError(needle)


def test_probe_finds_the_wrong_addresses_and_types_at_their_place(
    tmp_path: Path, device: ThreadingHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    show, venue = _files(tmp_path, device.server_address[1])
    assert main(["check", str(show), "--venue", str(venue)]) == 0  # without --probe: clean
    capsys.readouterr()
    assert main(["check", str(show), "--venue", str(venue), "--probe", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    found = {(f["line"], f["severity"]): f for f in out["findings"]}
    line, col = _line_col(SHOW, "/conect")
    typo = found[(line, "error")]
    assert typo["col"] == col and typo["file"].endswith("show.yaml")
    assert "/layer1/clip1/conect" in typo["message"] and "'media-1', 'media-2'" in typo["message"]
    assert "has no such address" in typo["message"] and "/layer1/clip1/connect" in typo["hint"]
    opacity = found[(_line_col(SHOW, "args: [half]")[0], "error")]
    assert "with the types 's'; the device takes 'f'" in opacity["message"]
    fade = found[(_line_col(SHOW, "fade:")[0], "warning")]
    assert "with 2, above the device's RANGE maximum 1" in fade["message"]
    ro = found[(_line_col(SHOW, "/fps")[0], "error")]
    assert "read-only" in ro["message"]
    right = _line_col(SHOW, "/clip1/connect, args")[0]
    assert not any(f["line"] == right for f in out["findings"])  # the right one is clean
    assert not any("lamp-1" in f["message"] for f in out["findings"])  # no oscquery: not probed
    assert len(out["findings"]) == 4


def test_text_output_names_file_line_col(
    tmp_path: Path, device: ThreadingHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    show, venue = _files(tmp_path, device.server_address[1])
    assert main(["check", str(show), "--venue", str(venue), "--probe"]) == 1
    err = capsys.readouterr().err
    line, col = _line_col(SHOW, "/conect")
    assert f"show.yaml:{line}:{col}: cue 'one' sends /layer1/clip1/conect to devices" in err
    assert "probed 1 OSCQuery server" in err


def test_a_device_that_does_not_answer_is_an_error_that_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    show, venue = _files(tmp_path, port)
    assert main(["check", str(show), "--venue", str(venue), "--probe"]) == 1
    err = capsys.readouterr().err
    url = f"http://127.0.0.1:{port}"
    assert f"the OSCQuery server {url} of devices 'media-1', 'media-2' did not answer" in err
    assert "leave out --probe" in err


def test_fetch_tree_refuses_what_is_not_a_tree(device: ThreadingHTTPServer) -> None:
    url = f"http://127.0.0.1:{device.server_address[1]}"
    assert fetch_tree(url).root == DEVICE_TREE
    _Device.tree = b"<html>not json</html>"
    try:
        assert "not JSON" in (fetch_tree(url).error or "")
        _Device.tree = b"[" * 200_000
        assert "nested too deep" in (fetch_tree(url).error or "")
        _Device.tree = b'{"FULL_PATH": "/", "CONTENTS": {"a": 5, "b": {"CONTENTS": []}}}'
        tree = fetch_tree(url)
        assert tree.root is not None  # odd, but a node: the checks below must survive it
    finally:
        _Device.tree = DEVICE_TREE
    assert fetch_tree("ftp://x:1") == Tree("ftp://x:1", error="is not http://host:port")


def test_a_bad_oscquery_field_is_a_venue_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, venue = _files(tmp_path, 0)
    venue.write_text(VENUE.replace("oscquery: PORT", "oscquery: 'gopher://x'", 1).replace("PORT", "5"),
                     encoding="utf-8")
    assert main(["check", str(venue)]) == 1
    err = capsys.readouterr().err
    line = VENUE.splitlines()[5]
    assert f"venue.yaml:6:{line.index('PORT') + 1}: oscquery 'gopher://x' is neither a TCP port" in err


def test_probe_reads_madangs_own_oscquery_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One Madang driving another's control port (a sub-controller on a barge): the probe reads
    the other's tree as served by ``--oscquery`` and knows its cues, types and ranges."""
    import asyncio

    from controller.web.oscquery import OscQueryServer

    loop = asyncio.new_event_loop()
    srv = OscQueryServer(name="Madang barge", osc_port=53000, cues=["intro", "bloom"],
                         state=lambda: {"state": "armed"}, host="127.0.0.1")
    loop.run_until_complete(srv.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        show = SHOW.split("cues:")[0] + """cues:
  - id: one
    go: manual
    actions:
      - osc: {targets: media-1, address: /go/bloom}
      - osc: {targets: media-1, address: /go/finale}
      - osc: {targets: media-1, address: /rate, args: [32.0]}
"""
        path, venue = _files(tmp_path, srv.port, show)
        assert main(["check", str(path), "--venue", str(venue), "--probe", "--json"]) == 1
        out = json.loads(capsys.readouterr().out)
        by_line = {f["line"]: f for f in out["findings"]}
        assert len(by_line) == 2
        finale = by_line[_line_col(show, "/go/finale")[0]]
        assert "has no such address" in finale["message"] and "/go/bloom" in finale["hint"]
        rate = by_line[_line_col(show, "/rate")[0]]
        assert rate["severity"] == "warning" and "above the device's RANGE maximum 16" in rate["message"]
    finally:
        asyncio.run_coroutine_threadsafe(srv.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_an_odd_tree_gives_findings_not_a_crash(
    tmp_path: Path, device: ThreadingHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    show, venue = _files(tmp_path, device.server_address[1])
    _Device.tree = {"FULL_PATH": "/", "CONTENTS": {"layer1": 5, "fps": {"CONTENTS": [], "TYPE": 7}}}
    try:
        assert main(["check", str(show), "--venue", str(venue), "--probe"]) == 1
    finally:
        _Device.tree = DEVICE_TREE
    err = capsys.readouterr().err
    assert "has no such address" in err and "Traceback" not in err
