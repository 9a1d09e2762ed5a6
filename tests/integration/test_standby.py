"""A hot standby (issue 11), end to end with real processes: the devices in their own process
(``madang simulate --record``), a primary ``madang run ... --standby-port PORT`` and its standby
``madang run ... --standby-of tcp://127.0.0.1:PORT``, both on the venue's real broker.

* The primary is killed with SIGKILL mid-show: the standby takes over through the broker, the
  show plays to its end, no device executes anything twice, the last cue reaches every device.
* The link between the two is cut while both live (a TCP proxy between them stops forwarding):
  the standby takes over, the primary reads the higher term on the broker and steps down; no
  device executes a command of a lower term after one of a higher; after the link heals, exactly
  one controller is live.

Staged, not timed: each step waits for what the devices or the controllers say (the record, the
control port's ``/state``); nothing asserts how long anything took.
"""

from __future__ import annotations

import contextlib
import json
import select
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from tests.integration.conftest import free_tcp_port, free_udp_port, wait_until
from tests.integration.test_exits import SIM_YARD, WAIT_S, Madang
from tests.integration.test_resume import KEYED, _rows, _start, _venue

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE = 0.4


@pytest.fixture
def procs() -> Iterator[list[Madang]]:
    started: list[Madang] = []
    yield started
    for m in started:
        m.close()


def _ask(m: Madang, address: str) -> dict[str, Any] | None:
    """Send ``address`` to a controller's control port; its reply (None: no answer yet)."""
    assert m.control_port is not None
    sock = m._ctl  # (the Madang wrapper's own control socket)
    sock.sendto(OscMessageBuilder(address).build().dgram, ("127.0.0.1", m.control_port))
    sock.settimeout(0.3)
    try:
        while True:
            data, _ = sock.recvfrom(65536)
            body: dict[str, Any] = json.loads(OscMessage(data).params[0])
            if body.get("address") == address:
                return body
    except TimeoutError:
        return None


def _state(m: Madang) -> dict[str, Any] | None:
    """The whole ``/state`` reply's data (None: no answer yet)."""
    body = _ask(m, "/state")
    return None if body is None else body.get("data")


def _role(m: Madang) -> dict[str, Any]:
    st = _state(m)
    return {} if st is None else dict(st.get("role") or {})


def _pair(
    procs: list[Madang], mapped: Path, url: str, tmp_path: Path, link_port: int, *, via: int | None = None
) -> tuple[Madang, Madang, Path, Path]:
    """A primary serving its standby on ``link_port`` and the standby following it (through
    port ``via`` when given: a proxy); both in step before this returns."""
    base = ("run", str(SIM_YARD), "--venue", str(mapped), "--broker", url, "--go-all", "--exit-at-end",
            "--no-view", "--rate", str(RATE))  # fmt: skip
    p_port, s_port = free_udp_port(), free_udp_port()
    p_report, s_report = tmp_path / "primary.json", tmp_path / "standby.json"
    primary = _start(procs, *base, "--control-port", str(p_port), "--journal", str(tmp_path / "j-primary"),
                     "--standby-port", str(link_port), "--report", str(p_report))  # fmt: skip
    primary.control_port = p_port
    wait_until(lambda: _role(primary).get("live") or primary.proc.poll() is not None, WAIT_S, "the primary")
    assert primary.proc.poll() is None, primary.read()[1][-3000:]
    target = via if via is not None else link_port
    standby = _start(procs, *base, "--control-port", str(s_port), "--journal", str(tmp_path / "j-standby"),
                     "--standby-of", f"tcp://127.0.0.1:{target}", "--report", str(s_report))  # fmt: skip
    standby.control_port = s_port

    def in_step() -> bool:
        assert standby.proc.poll() is None, standby.read()[1][-3000:]
        role = _role(standby)
        return role.get("role") == "standby" and bool((role.get("pair") or {}).get("in_step"))

    wait_until(in_step, WAIT_S, "the standby to follow in step")
    got = _state(standby)
    assert got is not None and got["role"]["live"] is False
    return primary, standby, p_report, s_report


def _executions(rows: list[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        if r["what"] in ("cue", "osc", "fade") and r["seq"] >= 0:
            out.setdefault((r["device_id"], r["seq"]), []).append(r)
    return out


def test_the_standby_takes_over_a_killed_primary_and_nothing_fires_twice(
    procs: list[Madang], tmp_path: Path
) -> None:
    sim, mapped, record, url = _venue(procs, tmp_path)
    primary, standby, _, s_report = _pair(procs, mapped, url, tmp_path, free_tcp_port())
    # GO and panic sent to the standby are refused with the reason, not obeyed.
    for address in ("/go", "/panic"):
        reply = _ask(standby, address)
        assert reply is not None and reply["status"] == "error", reply
        assert "hot standby" in reply["data"] and "live controller" in reply["data"], reply
    wait_until(
        lambda: any(r["what"] == "cue" and r["key"] == "river" for r in _rows(record))
        or primary.proc.poll() is not None,
        WAIT_S, "the devices to execute cue river",
    )  # fmt: skip
    assert primary.proc.poll() is None, primary.read()[1][-3000:]
    primary.proc.send_signal(signal.SIGKILL)
    primary.wait()
    assert standby.wait() == 0, standby.stderr[-3000:]  # it took over and played to the end
    assert "Traceback" not in standby.stderr
    sim.proc.send_signal(signal.SIGTERM)
    assert sim.wait() == 0, sim.stderr[-3000:]

    report = json.loads(s_report.read_text(encoding="utf-8"))
    assert report["role"]["live"] is True and report["role"]["role"] == "took-over"
    assert report["resumed"]["mismatches"] == 0
    rows = _rows(record)
    twice = {k: v for k, v in _executions(rows).items() if len(v) > 1}
    assert not twice, twice
    for d in KEYED[:6]:
        assert any(r["device_id"] == d and r["what"] == "cue" and r["key"] == "finale" for r in rows), d
    # Headsets and timed screens hold what was sent ahead: a takeover within a lead misses nothing
    # for them (what it missed for the on-receipt displays it reports).
    missed_keyed = {(d, m["seq"]) for m in report["resumed"]["missed"] for d in m["devices"] if d in KEYED}
    assert not missed_keyed, missed_keyed
    terms = {r["term"] for r in rows if r["what"] == "cue"}
    assert len(terms) == 2 and report["role"]["term"] == max(terms)  # the primary's, then the standby's


class _Proxy:
    """A TCP proxy on 127.0.0.1 to ``target``: the peer link goes through it; :meth:`cut` stops
    forwarding (both sides keep their connections, nothing arrives: a partition), :meth:`heal`
    forwards again."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self._closing = threading.Event()
        self._socks: list[socket.socket] = [self.listener]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self.open.clear()

    def heal(self) -> None:
        self.open.set()

    def _run(self) -> None:
        pairs: dict[socket.socket, socket.socket] = {}
        while not self._closing.is_set():
            readable, _, _ = select.select([self.listener, *pairs], [], [], 0.02)
            for s in readable:
                if s is self.listener:
                    client, _ = self.listener.accept()
                    upstream = socket.create_connection(("127.0.0.1", self.target))
                    pairs[client], pairs[upstream] = upstream, client
                    self._socks += [client, upstream]
                    continue
                if not self.open.is_set():
                    continue  # cut: leave it in the kernel's buffers
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    other = pairs.pop(s)
                    pairs.pop(other, None)
                    for x in (s, other):
                        with contextlib.suppress(OSError):
                            x.close()
                    continue
                with contextlib.suppress(OSError):
                    pairs[s].sendall(data)
            if not self.open.is_set():
                self._closing.wait(0.01)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=2)
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.close()


def test_a_cut_link_between_the_pair_never_leaves_two_controllers_live(
    procs: list[Madang], tmp_path: Path
) -> None:
    sim, mapped, record, url = _venue(procs, tmp_path)
    link = free_tcp_port()
    proxy = _Proxy(link)
    try:
        primary, standby, p_report, s_report = _pair(procs, mapped, url, tmp_path, link, via=proxy.port)
        wait_until(lambda: any(r["what"] == "cue" and r["key"] == "river" for r in _rows(record)), WAIT_S,
                   "the devices to execute cue river")  # fmt: skip
        proxy.cut()  # both alive, each cut off from the other; both still reach the broker
        wait_until(lambda: _role(standby).get("live") is True, WAIT_S, "the standby to take over")
        wait_until(lambda: _role(primary).get("live") is False, WAIT_S, "the primary to step down")
        assert _role(primary).get("role") == "deposed"
        proxy.heal()
        for _ in range(5):  # healed: still exactly one live, the standby
            assert _role(standby).get("live") is True and _role(primary).get("live") is False
        assert standby.wait() == 0, standby.stderr[-3000:]  # it plays the show to its end
        primary.proc.send_signal(signal.SIGTERM)  # the deposed one stays deposed until told to go
        assert primary.wait() == 0, primary.stderr[-3000:]
    finally:
        proxy.close()
    sim.proc.send_signal(signal.SIGTERM)
    assert sim.wait() == 0, sim.stderr[-3000:]
    assert "Traceback" not in primary.stderr + standby.stderr

    rows = _rows(record)
    # No device executed a command of a lower term after one of a higher (the fence holds).
    seen: dict[str, int] = {}
    for r in sorted(rows, key=lambda r: r["true_ns"]):
        if r["what"] in ("cue", "osc", "fade", "state", "panic") and r.get("term"):
            assert r["term"] >= seen.get(r["device_id"], 0), r
            seen[r["device_id"]] = r["term"]
    twice = {k: v for k, v in _executions(rows).items() if len(v) > 1}
    assert not twice, twice
    for d in KEYED[:6]:
        assert any(r["device_id"] == d and r["what"] == "cue" and r["key"] == "finale" for r in rows), d
    p, s = (json.loads(x.read_text(encoding="utf-8")) for x in (p_report, s_report))
    assert p["role"]["live"] is False and s["role"]["live"] is True
    assert s["role"]["term"] > p["role"]["term"]
