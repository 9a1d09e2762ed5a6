"""``madang bench console``: is the browser console usable at a venue's worth of devices?

A :class:`~controller.web.console.ConsoleDesk` serves a venue of ``devices`` devices in four
zones on a real web server (loopback, a free port), with a cue list of ``cues`` cues and a full
operator log; its device grid changes ``churn`` of its devices every update (seeded), a busy
night's worth. Measured:

* the messages' sizes in bytes: ``welcome`` (the device list, once per sign-in), ``state``,
  ``log``, ``grid`` (each pushed only when it changed);
* ``update_us`` p50/p99: the controller's cost of one update round, the view model to encoded
  bytes (the grid included) and written to one console: the CPU the console takes from the loop
  that also runs the pump, at most 10 times a second;
* ``runtime_us``: the same round from a real :class:`~controller.runtime.Runtime` of the shipped
  Han River show (1,217 devices, armed, no sockets): ``state`` (the view model to bytes, up to
  10 times a second) and ``grid`` (every device's presence and sync, once a second);
* with ``browser`` (Debian's ``/usr/bin/chromium`` through Playwright), the page's own costs,
  timed in the page (``window.madangConsole.timings``): ``build_ms`` to build the grid at sign-in,
  ``grid_ms`` and ``state_ms`` p50/max to apply one update, and ``go_reply_ms``: a tap on GO to
  its reply on screen, while the grid churns.

Figures and commands: docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from controller.access import Access
from controller.clock import SystemClock
from controller.playback import Command
from controller.view import CueRow, LogLine, ViewModel
from controller.web.console import ConsoleDesk, ConsoleHooks, ConsoleSession, DeviceGrid
from controller.web.server import WebServer
from venues.loader import load_venue

__all__ = ["run"]

CHROMIUM = "/usr/bin/chromium"
ZONES = ("yeouido", "banpo", "ttukseom", "jamsil")


def _venue(folder: Path, devices: int) -> Any:
    per = -(-devices // len(ZONES))
    lines = [f"venue: bench-console\nzones: [{', '.join(ZONES)}]\ndevices:"]
    for z, zone in enumerate(ZONES):
        lo, hi = z * per + 1, min(devices, (z + 1) * per)
        if lo <= hi:
            lines.append(
                f'  - {{id: "xr-{{{lo:05d}..{hi:05d}}}", kind: xr, zone: {zone}, sync: app, mqtt: {{}}}}'
            )
    path = folder / "venue.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_venue(path)


class _Venue:
    """What a busy night looks like to the console: churning presence and sync."""

    def __init__(self, devices: int, cues: int, churn: float, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = devices
        self.churn = churn
        self.presence = ["o"] * devices
        self.sync = ["s"] * devices
        self.commands = 0
        rows = [
            CueRow(i + 1, f"cue-{i + 1:03d}", f"Cue {i + 1}", "GO" if i % 3 == 0 else "auto-cont",
                   notes="a note for the operator" if i % 4 == 0 else "", role="standby" if i == 0 else "")
            for i in range(cues)
        ]  # fmt: skip
        log = [LogLine(f"20:{i // 60:02d}:{i % 60:02d}", "console operator 10.0.0.5 (SM desk)", "GO", True,
                       "-> playing") for i in range(200)]  # fmt: skip
        self.vm = ViewModel(
            show="Bench", venue="Bench", state="playing", cues=rows, standby_cue="cue-001", log=log,
            devices=devices, online=devices, synced=devices, pinged=devices, ready=True, ready_text="READY",
        )  # fmt: skip

    def view(self) -> ViewModel:
        self.vm.show_ns += 100_000_000  # the clock moves: the state changes every update
        return self.vm

    def grid(self) -> DeviceGrid:
        for i in self.rng.sample(range(self.n), max(1, int(self.n * self.churn))):
            self.presence[i] = self.rng.choice("oooolx")
            self.sync[i] = self.rng.choice("ssssbw")
        return DeviceGrid("".join(self.presence), "".join(self.sync))

    def command(self, cmd: Command, source: str) -> tuple[str, Any]:
        self.commands += 1
        return "ok", {"state": "playing", "cue": "cue-001"}


def run(*, devices: int = 1200, cues: int = 40, churn: float = 0.05, rounds: int = 200,
        browser: bool = True, seed: int = 1) -> dict[str, Any]:  # fmt: skip
    """The figures (module docstring) as a dict."""
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_run(Path(tmp), devices, cues, churn, rounds, browser, seed))


async def _run(
    tmp: Path, devices: int, cues: int, churn: float, rounds: int, browser: bool, seed: int
) -> dict[str, Any]:
    fake = _Venue(devices, cues, churn, seed)
    access = Access.generated()
    desk = ConsoleDesk(
        _venue(tmp, devices),
        access,
        ConsoleHooks(command=fake.command, note=lambda *_: None, view=fake.view, grid=fake.grid),
        clock=SystemClock(),
        grid_every_s=0.2,  # five grid changes a second: busier than the runtime's one
    )
    role, _, welcome = desk.hello(f'{{"op":"hello","token":"{access.operator}"}}', "127.0.0.1", 0)
    assert role is not None
    out: dict[str, Any] = {"devices": devices, "cues": cues, "churn": churn}
    first = desk.updates(True)
    out["bytes"] = {"welcome": len(msgspec.json.encode(welcome)), **{k: len(v) for k, v in first.items()}}
    sink = ConsoleSession(role, "bench", write=lambda f: None)
    desk.sessions.append(sink)
    costs = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        desk.push(desk.updates(True))
        costs.append(time.perf_counter_ns() - t0)
    desk.sessions.clear()
    us = np.array(costs) / 1000
    out["update_us"] = {
        "p50": round(float(np.percentile(us, 50)), 1),
        "p99": round(float(np.percentile(us, 99)), 1),
    }
    out["runtime_us"] = _runtime(rounds)
    if browser and Path(CHROMIUM).exists():
        out["browser"] = await _browser(desk, access)
    else:
        out["browser"] = None
    return out


def _runtime(rounds: int) -> dict[str, Any]:
    from controller.runtime import Runtime, RuntimeOptions
    from cues.compiler import compile_show
    from simulators.harness import shipped_show

    timeline, venue = compile_show(shipped_show("han-river"))
    rt = Runtime(timeline, venue, RuntimeOptions(view=False, control_port=None, console=False))
    rt.player.start(rt.clock.wall_ns())
    access = Access.generated()
    hooks = ConsoleHooks(
        command=lambda c, s: ("ok", None), note=lambda *_: None, view=rt.view_model, grid=rt.device_grid
    )
    desk = ConsoleDesk(venue, access, hooks, clock=SystemClock())
    role, _, _ = desk.hello(f'{{"op":"hello","token":"{access.operator}"}}', "127.0.0.1", 0)
    assert role is not None
    desk.sessions.append(ConsoleSession(role, "bench", write=lambda f: None))
    out: dict[str, Any] = {"devices": len(venue.devices)}
    for name, grid in (("state", False), ("grid", True)):
        costs = []
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            desk.push(desk.updates(grid))
            costs.append(time.perf_counter_ns() - t0)
        us = np.array(costs) / 1000
        out[name] = {
            "p50": round(float(np.percentile(us, 50)), 1),
            "p99": round(float(np.percentile(us, 99)), 1),
        }
    return out


async def _browser(desk: ConsoleDesk, access: Access) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    server = WebServer(port=0)
    desk.add_routes(server)
    await server.start()
    task = asyncio.create_task(desk.run())
    try:
        async with async_playwright() as p:
            b = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = await b.new_page(viewport={"width": 1180, "height": 820}, has_touch=True)
                await page.goto(f"{server.base_url()}/console#token={access.operator}")
                await page.wait_for_function(
                    "window.madangConsole.timings.grid_ms.length >= 20", timeout=60_000
                )
                t = await page.evaluate("window.madangConsole.timings")
                taps = []
                for i in range(10):
                    n = await page.evaluate("window.madangConsole.replies.length")
                    t0 = time.perf_counter()
                    await page.locator("#go").tap()
                    await page.wait_for_function(f"window.madangConsole.replies.length > {n}", timeout=10_000)
                    taps.append((time.perf_counter() - t0) * 1000)
                    await asyncio.sleep(0.3 if i % 2 else 0.1)  # not a double-tap rhythm
                cells = await page.locator("#grid .c").count()
            finally:
                await b.close()
    finally:
        task.cancel()
        await server.close()

    def stats(xs: list[float]) -> dict[str, float]:
        return {"p50": round(float(np.percentile(xs, 50)), 2), "max": round(float(max(xs)), 2)}

    return {
        "cells": cells,
        "build_ms": round(float(t["build_ms"]), 2),
        "grid_ms": stats(t["grid_ms"]),
        "state_ms": stats(t["state_ms"]),
        "go_reply_ms": stats(taps),
    }
