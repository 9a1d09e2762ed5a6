"""Phones follow a takeover: a primary ``madang run --standby-port`` and its standby
``--standby-of``, each with its web server, on a real Mosquitto; audience phones (real WebSocket
clients, simulators.devices.phone) join the primary's light page socket. The primary's welcome
lists the standby's address (learned over the pair's link); the primary is killed with SIGKILL; the
phones reconnect to the standby and keep receiving the show's cues, under its higher term.

Staged, not timed: each step waits for what the phones or the controllers say."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.broker import MosquittoBroker
from simulators.clock import DeviceClock
from simulators.devices.app import AppDevice
from simulators.devices.phone import AudiencePhone
from simulators.devices.realtime import WsApp
from simulators.network import Path as NetPath
from simulators.record import Recorder
from tests.conftest import missing_tool
from tests.integration.conftest import free_tcp_port, free_udp_port, wait_until
from tests.integration.test_exits import WAIT_S, Madang
from tests.integration.test_standby import _role
from venues.loader import load_venue

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

VENUE = """\
venue: stand
zones: [east]
devices:
  - {id: led-1, kind: facade, zone: east, sync: none, osc: {port: 9000}}
  - {id: "web-{1..2}", kind: xr, zone: east, sync: app, ws: {}}
audience:
  capacity: 20
  zones: [east]
"""

STEPS = 120  # a light every half second: a minute of show


def _show() -> str:
    lines = ["show: Phones follow", "venue: venue.yaml", "cues:", "  - id: glow", "    timeline:"]
    for i in range(STEPS):
        colour = "#ff2d95" if i % 2 else "#00e5ff"
        lines.append(
            f'      - {{at: {i * 0.5}s, light: {{targets: "kind:phone | kind:xr", color: "{colour}"}}}}'
        )
    return "\n".join(lines) + "\n"


@pytest.fixture
def procs() -> Iterator[list[Madang]]:
    started: list[Madang] = []
    yield started
    for m in started:
        m.close()


def _audience_ws(m: Madang) -> str:
    def found() -> str | None:
        assert m.proc.poll() is None, m.read()[1][-3000:]
        hit = re.search(r"web audience http://(\S+)/audience", m.read()[1])
        return None if hit is None else f"ws://{hit.group(1)}/audience/ws"

    url: str = wait_until(found, WAIT_S, "the audience URL")
    return url


def _pair_up(
    procs: list[Madang], tmp_path: Path, broker: MosquittoBroker, *extra: str
) -> tuple[Madang, str, str]:
    """A primary with its web server serving a standby with its own, both in step: (the primary,
    its audience socket address, the standby's)."""
    (tmp_path / "venue.yaml").write_text(VENUE, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(_show(), encoding="utf-8")
    link = free_tcp_port()
    base = ("run", str(tmp_path / "show.yaml"), "--broker", broker.url, "--go-all", "--exit-at-end",
            "--no-view", "--web-port", "0",
            # A loaded test machine: no takeover for a heartbeat gap (the kill is the only one).
            "--heartbeat-ms", "50", "--missed-heartbeats", "20", *extra)  # fmt: skip
    p_ctl, s_ctl = free_udp_port(), free_udp_port()
    primary = Madang(*base, "--control-port", str(p_ctl), "--journal", str(tmp_path / "j1"),
                     "--standby-port", str(link), control_port=p_ctl)  # fmt: skip
    procs.append(primary)
    live = lambda: _role(primary).get("live") or primary.proc.poll() is not None  # noqa: E731
    wait_until(live, WAIT_S, "the primary")
    standby = Madang(*base, "--control-port", str(s_ctl), "--journal", str(tmp_path / "j2"),
                     "--standby-of", f"tcp://127.0.0.1:{link}", control_port=s_ctl)  # fmt: skip
    procs.append(standby)

    def in_step() -> bool:
        assert standby.proc.poll() is None, standby.read()[1][-3000:]
        role = _role(standby)
        return role.get("role") == "standby" and bool((role.get("pair") or {}).get("in_step"))

    wait_until(in_step, WAIT_S, "the standby to follow in step")
    p_url, s_url = _audience_ws(primary), _audience_ws(standby)
    assert p_url != s_url
    return primary, p_url, s_url


def test_phones_reconnect_to_the_standby_after_a_takeover(procs: list[Madang], tmp_path: Path) -> None:
    broker = MosquittoBroker().start()
    try:
        primary, p_url, s_url = _pair_up(procs, tmp_path, broker)
        venue = load_venue(tmp_path / "venue.yaml")
        phones, devices, rec = asyncio.run(_phones(primary, p_url, s_url, venue))
    finally:
        broker.stop()
    # The venue's WebXR clients followed too: from the controller state's web list.
    s_devices = s_url.replace("/audience/ws", "/ws")
    for d in devices:
        assert d.url.startswith(s_devices), d.urls
    p_term = max(r.term or 0 for p in phones for r in p.cues if r.url.startswith(p_url))
    cols = rec.columns()
    for d in devices:  # they executed the standby's cues, under its term
        mine = (cols["what"] == "cue") & (cols["device"] == d.core.index)
        assert int((mine & (cols["term"] > p_term)).sum()) >= 1, cols["term"][mine]
    for p in phones:
        before = [r for r in p.cues if r.url.startswith(p_url)]
        after = [r for r in p.cues if r.url.startswith(s_url)]
        assert before and after, (len(before), len(after))
        p_term = max(r.term or 0 for r in before)
        assert min(r.term or 0 for r in after) > p_term  # the standby's commands, under its term
        assert p.connections >= 2 and p.url is not None and p.url.startswith(s_url)
        assert p.stale == 0


async def _phones(
    primary: Madang, p_url: str, s_url: str, venue: Any
) -> tuple[list[AudiencePhone], list[WsApp], Recorder]:
    phones = [AudiencePhone([f"{p_url}?zone=east"]) for _ in range(4)]
    tasks = [asyncio.create_task(p.run()) for p in phones]
    rec = Recorder()
    ws_devices = p_url.replace("/audience/ws", "/ws")
    devices = [
        WsApp(AppDevice(venue.device(did), DeviceClock(), rec), NetPath("lan", seed=i), ws_devices)
        for i, did in enumerate(("web-1", "web-2"))
    ]
    for d in devices:
        d.start()
    s_devices = s_url.replace("/audience/ws", "/ws")
    try:
        # The live controller's state names both web servers: the devices know where to go.
        await _until(lambda: all(len(d.urls) == 2 for d in devices), "the controller state's web list")
        await _until(lambda: all(p.joined.is_set() for p in phones), "phones to join the primary")
        # The primary's welcome lists the standby's address (learned over the pair's link).
        # (or, for one that joined before the primary heard it, its controller state's list).
        await _until(
            lambda: all(any(u.startswith(s_url) for u in p.urls) for p in phones), "the standby listed"
        )
        await _until(lambda: all(len(p.cues) >= 3 for p in phones), "cues from the primary")
        primary.proc.send_signal(signal.SIGKILL)
        primary.wait()
        await _until(
            lambda: all(sum(r.url.startswith(s_url) for r in p.cues) >= 3 for p in phones),
            "cues from the standby after the takeover",
        )
        await _until(lambda: all(d.url.startswith(s_devices) for d in devices), "devices on the standby")
        await asyncio.sleep(2.0)  # a few of the standby's cues
        return phones, devices, rec
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for d in devices:
            d.stop()


async def _until(cond: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def test_a_light_page_in_chromium_follows_the_takeover(procs: list[Madang], tmp_path: Path) -> None:
    """The page the primary served opens the standby's socket after the primary dies (the
    standby accepts the primary's origin) and plays the standby's cues under its term."""
    if not os.path.exists(CHROMIUM):
        missing_tool("chromium", "chromium")
    playwright = pytest.importorskip("playwright.async_api")
    broker = MosquittoBroker().start()
    try:
        # No WebXR client here: they would hold the sync gate (phones never do).
        primary, p_url, _ = _pair_up(procs, tmp_path, broker, "--degrade", "web-1", "--degrade", "web-2")
        page_url = p_url.replace("ws://", "http://").replace("/audience/ws", "/audience?zone=east")
        before, after = asyncio.run(_page(playwright, primary, page_url))
    finally:
        broker.stop()
    assert before["floor"] is not None and after["floor"] > before["floor"]
    assert after["connected"] and after["fired"] > before["fired"]
    assert after["controller"]["controller"] != before["controller"]["controller"]
    assert after["staleTerm"] == 0


async def _page(pw: Any, primary: Madang, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    async with pw.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = await (await browser.new_context(viewport={"width": 90, "height": 160})).new_page()
            await page.goto(url)

            async def st() -> dict[str, Any]:
                got: dict[str, Any] = await page.evaluate(
                    "JSON.parse(JSON.stringify(window.madang.state,"
                    " (k, v) => typeof v === 'bigint' ? String(v) : v))"
                )
                return got

            deadline = time.monotonic() + WAIT_S
            while (s := await st())["fired"] < 2 or not s["connected"]:
                assert time.monotonic() < deadline, (
                    f"the page did not play the primary's cues: {s}\n{primary.read()[1][-3000:]}"
                )
                await asyncio.sleep(0.1)
            before = await st()
            primary.proc.send_signal(signal.SIGKILL)
            primary.wait()
            while not ((s := await st())["connected"] and (s["floor"] or 0) > before["floor"]
                       and s["fired"] >= before["fired"] + 2):  # fmt: skip
                assert time.monotonic() < deadline, f"the page did not follow the takeover: {s}"
                await asyncio.sleep(0.1)
            return before, s
        finally:
            await browser.close()
