"""The browser operator console in a real browser against ``madang run --simulate``.

Headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright) opens the console twice
with the two URLs ``madang run`` prints: as a **viewer**, the page has no GO button, and a GO
forged over the console's socket with the viewer's token is refused and written to the operator
log with who sent it (the show stays armed); as the **operator**, it waits for the sync gate's
READY, presses GO, and sees the cue go live and the device grid fill (every headset online).
Every wait is on a state the page shows, never on a time. The run's stderr holds each generated
token once, in its URL, and nowhere else. Screenshots go to docs/images/console.png and
docs/images/console-viewer.png.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing_tool
from tests.integration.conftest import REPO, free_udp_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = "/usr/bin/chromium"
SIM = REPO / "tests" / "data" / "sim"
HEADSETS = 60
SHOTS = REPO / "docs" / "images"
WAIT_S = 90.0  # generous: a loaded two-core machine; every wait ends as soon as the state shows


def _venue(tmp_path: Path) -> Path:
    """The sim-yard venue with ``HEADSETS`` headsets (a grid worth looking at)."""
    text = (SIM / "sim-yard-venue.yaml").read_text(encoding="utf-8")
    half = HEADSETS // 2
    text = text.replace("xr-{1..3}", f"xr-{{01..{half:02d}}}").replace(
        "xr-{4..6}", f"xr-{{{half + 1}..{HEADSETS}}}"
    )
    path = tmp_path / "venue.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_operator_drives_and_viewer_only_watches(tmp_path: Path) -> None:
    if not os.path.exists(CHROMIUM):
        missing_tool("chromium", "chromium")
    playwright = pytest.importorskip("playwright.async_api")
    err = tmp_path / "stderr.txt"
    report = tmp_path / "report.json"
    argv = [
        sys.executable, "-m", "madang", "run", str(SIM / "sim-yard.yaml"),
        "--venue", str(_venue(tmp_path)), "--simulate", "--web-port", "0",
        "--control-port", str(free_udp_port()), "--no-view", "--rate", "0.2", "--report", str(report),
    ]  # fmt: skip
    with err.open("w") as err_file:
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            urls = _wait_urls(proc, err)
            result = asyncio.run(_drive(playwright, urls))
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 0, err.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stderr = err.read_text()
    for role, url in urls.items():
        token = url.split("#token=", 1)[1]
        assert stderr.count(token) == 1, f"the {role} token is printed once, in its URL, and logged nowhere"
    assert result["viewer_go_buttons"] == 0
    assert result["forged"]["status"] == "denied"
    assert result["state_after_forged"] == "armed"
    web = json.loads(report.read_text())["controller"]["web"]["console"]
    assert web["denied"] >= 1 and web["signed_in"] >= 2


def _wait_urls(proc: subprocess.Popen[bytes], err: Path) -> dict[str, str]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = dict(re.findall(r"madang: console (operator|viewer) (\S+)", err.read_text()))
        if len(found) == 2:
            return found
        assert proc.poll() is None, err.read_text()[-3000:]
        time.sleep(0.05)
    raise AssertionError("madang run printed no console URLs")


async def _until(page: Any, js: str, what: str) -> Any:
    """Wait until ``js`` is truthy in the page (a state it shows, not a time)."""
    try:
        handle = await page.wait_for_function(js, timeout=WAIT_S * 1000, polling=100)
    except Exception as exc:  # Playwright's TimeoutError: say which state never came
        shown = await page.evaluate(
            "JSON.stringify({state: window.madangConsole.state, log: window.madangConsole.log})"
        )
        raise AssertionError(f"the console never showed {what}; it shows {shown[:3000]}") from exc
    return await handle.json_value()


_LOG_HAS = "(window.madangConsole.log || []).find(l => {cond})"


async def _drive(pw: Any, urls: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with pw.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            # A tablet in landscape (iPad-sized), where the console is meant to be used.
            ctx = await browser.new_context(viewport={"width": 1180, "height": 820}, has_touch=True)
            errors: list[str] = []
            viewer = await ctx.new_page()
            viewer.on("pageerror", lambda e: errors.append(str(e)))
            await viewer.goto(urls["viewer"])
            await _until(
                viewer, "document.body.dataset.role === 'viewer' && window.madangConsole.state", "viewer"
            )
            assert await viewer.evaluate("location.hash") == ""  # the token left the address bar
            out["viewer_go_buttons"] = await viewer.locator("#go").count()
            assert await viewer.locator("#panic").count() == 0
            assert "VIEWER" in await viewer.inner_text("#role-banner")
            # A forged GO: the viewer's own token on a socket of its own, sending what an operator's
            # GO button sends. It must be refused, and seen in the operator log with who sent it.
            out["forged"] = await viewer.evaluate(
                """() => new Promise((resolve, reject) => {
                    const ws = new WebSocket(`ws://${location.host}/console/ws`);
                    const token = sessionStorage.getItem("madang.console.token");
                    ws.onopen = () => ws.send(JSON.stringify({op: "hello", token, name: "forger"}));
                    ws.onmessage = (ev) => {
                        const m = JSON.parse(ev.data);
                        if (m.type === "welcome") ws.send(JSON.stringify({cmd: "go", id: 99}));
                        if (m.type === "reply" && m.id === 99) { ws.close(); resolve(m); }
                    };
                    ws.onerror = () => reject(new Error("socket error"));
                })"""
            )
            await _until(
                viewer,
                _LOG_HAS.format(cond="l.what === 'GO' && !l.ok && l.source.startsWith('console viewer') "
                                "&& l.source.includes('forger') && l.detail.includes('viewer role')"),
                "the forged GO refused in the operator log",
            )  # fmt: skip
            out["state_after_forged"] = await viewer.evaluate("window.madangConsole.state.state")

            op = await ctx.new_page()
            op.on("pageerror", lambda e: errors.append(str(e)))
            await op.goto(urls["operator"])
            await _until(
                op, "document.body.dataset.role === 'operator' && window.madangConsole.state", "operator"
            )
            assert "OPERATOR" in await op.inner_text("#role-banner")
            await _until(op, "window.madangConsole.state.ready === true", "the sync gate READY")
            await op.locator("#go").tap()
            await _until(op, "document.querySelector('#cues tr[data-role=running]')", "a running cue")
            await _until(op, "window.madangConsole.state.state === 'playing'", "PLAYING")
            await _until(
                op,
                _LOG_HAS.format(cond="l.what === 'GO' && l.ok && l.source.startsWith('console operator')"),
                "the operator's GO in the operator log",
            )
            await _until(
                op,
                f"(window.madangConsole.presence.match(/o/g) || []).length >= {HEADSETS}",
                "the device grid filled (every headset online)",
            )
            await _until(
                op, "document.querySelector('#cues td.spread').textContent.startsWith('spread')", "a spread"
            )
            assert await op.locator("#grid .c").count() == HEADSETS + 4
            SHOTS.mkdir(parents=True, exist_ok=True)
            await op.screenshot(path=str(SHOTS / "console.png"), full_page=True)
            await _until(viewer, "window.madangConsole.state.state === 'playing'", "PLAYING on the viewer")
            await viewer.screenshot(path=str(SHOTS / "console-viewer.png"))
            assert errors == []
        finally:
            await browser.close()
    return out


def test_a_lost_link_is_shown_at_once_and_the_page_reconnects_by_itself(tmp_path: Path) -> None:
    """The controller's web server goes away under a signed-in operator's page (a Wi-Fi drop, a
    restarted controller): the page says CONNECTION LOST, disables its buttons (nothing is sent
    into the void), and signs in again by itself once the server is back, on a tablet in portrait."""
    if not os.path.exists(CHROMIUM):
        missing_tool("chromium", "chromium")
    playwright = pytest.importorskip("playwright.async_api")
    from controller.access import Access
    from controller.clock import SystemClock
    from controller.view import ViewModel
    from controller.web.console import ConsoleDesk, ConsoleHooks, DeviceGrid
    from controller.web.server import WebServer
    from tests.integration.conftest import free_tcp_port
    from venues.loader import load_venue

    venue = load_venue(_venue(tmp_path))
    access = Access.generated()
    vm = ViewModel(
        show="Sim Yard", venue="yard", state="armed", standby_cue="open", ready=True, ready_text="READY"
    )
    commands: list[Any] = []

    def command(cmd: Any, source: str) -> tuple[str, Any]:
        commands.append((cmd, source))
        return "ok", {"state": "playing"}

    desk = ConsoleDesk(
        venue,
        access,
        ConsoleHooks(
            command=command,
            note=lambda *_: None,
            view=lambda: vm,
            grid=lambda: DeviceGrid("o" * len(venue.devices), "s" * len(venue.devices)),
        ),
        clock=SystemClock(),
    )
    port = free_tcp_port()

    async def serve() -> tuple[WebServer, asyncio.Task[None]]:
        server = WebServer(port=port)
        desk.add_routes(server)
        await server.start()
        return server, asyncio.create_task(desk.run())

    async def main() -> None:
        server, task = await serve()
        async with playwright.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = await browser.new_page(viewport={"width": 820, "height": 1180}, has_touch=True)
                await page.goto(f"http://127.0.0.1:{port}/console#token={access.operator}")
                await _until(page, "document.body.dataset.link === 'live'", "connected")
                assert await page.locator("#lost").is_hidden()
                await page.locator("#go").tap()
                await _until(page, "window.madangConsole.replies.length === 1", "the GO's reply")
                task.cancel()
                await server.close()  # the controller's side of every socket goes away
                await _until(
                    page, "['lost', 'reconnecting'].includes(document.body.dataset.link)", "the link lost"
                )
                assert await page.locator("#lost").is_visible()
                assert await page.locator("#go").is_disabled() and await page.locator("#panic").is_disabled()
                server, task = await serve()
                await _until(page, "document.body.dataset.link === 'live'", "connected again")
                assert await page.locator("#lost").is_hidden() and await page.locator("#go").is_enabled()
                await page.locator("#go").tap()
                await _until(page, "window.madangConsole.replies.length === 2", "the second GO's reply")
                # The terminal's keys: Space is GO, and Enter does nothing (no button keeps the
                # focus after a tap, so Enter cannot press one again).
                await page.keyboard.press("Enter")
                await page.keyboard.press("Space")
                await _until(page, "window.madangConsole.replies.length === 3", "the Space key's GO reply")
            finally:
                await browser.close()
                task.cancel()
                await server.close()

    asyncio.run(main())
    assert len(commands) == 3 and all(
        source.startswith("console operator 127.0.0.1") for _, source in commands
    )
