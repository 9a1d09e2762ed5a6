"""``madang bench fuzz``: a show plays while a surface of the controller is flooded with hostile input.

The real controller (:class:`~controller.runtime.Runtime`, in this process) plays a show to a
simulated venue over real sockets and a private Mosquitto (:func:`~simulators.harness.play_real`):
timetag OSC displays and MQTT headsets (in a child process), a cue every 0.5 s. Once the show
plays, a child process sends ``messages`` hostile messages (:class:`~simulators.hostile.Hostile`,
seeded) at ``rate`` a second to one surface, on loopback only:

* ``osc-control``: the OSC control port (which asks for a passcode, as a port open to a venue
  network would: every forged ``/go`` or ``/panic`` must be refused);
* ``osc-device``: the UDP port where devices' pongs and fire reports arrive;
* ``mqtt``: the broker, on the devices' report topics (forged pongs, fire reports and statuses
  under the venue's own device ids, unknown ids, bad JSON, 1 MB payloads);
* ``ws``: the WebSocket device endpoint, as a device of the venue that no cue targets.

Then the same show plays without the flood, for the baseline. The JSON:

* ``sent``: hostile messages sent (``sent_by_kind``), ``send_errors``: ones the kernel refused;
  ``received``: what the surface read (for ``mqtt`` and ``ws`` with the devices' own messages);
  a UDP flood faster than the loop reads is shed by the kernel (the socket's receive buffer);
* ``dropped_by_reason``: every drop counter of the controller that moved (control port, core,
  MQTT link, UDP receiver, WebSocket hub), the sum in ``dropped``;
* ``crashes``: tracebacks logged and receive-callback errors during the flooded run (a show
  that did not complete counts one);
* ``rss_growth_mb``: this process's resident memory (the controller and the OSC displays) at the
  end of the flood, less at its start;
* ``missed``, ``spread_p99_us``: the flooded show's missed cue executions and its devices' spread
  (true time); ``baseline_missed``, ``baseline_spread_p99_us``: the clean run's;
  ``spread_ratio``: the two spreads' ratio (goal: at most 1.5);
* ``flood_s``, ``rate_achieved``: how long the flood took and its rate.

Figures and commands: docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from controller.access import Access
from controller.runtime import Runtime
from cues.compiler import compile_show
from simulators.devices.venue import SimulatedVenue
from simulators.harness import play_real
from simulators.hostile import Hostile

__all__ = ["SURFACES", "run"]

S = 1_000_000_000
SURFACES = ("osc-control", "osc-device", "mqtt", "ws")
_DISPLAYS, _HEADSETS = 4, 8


def _files(folder: Path, seconds: float, ws: bool) -> Path:
    """The venue (displays, headsets, and for ``ws`` two WebSocket devices no cue targets) and a
    show of one cue whose timeline sends to the displays and the headsets in turn, every 0.5 s."""
    venue = [
        "venue: bench-fuzz",
        "zones: [yard]",
        "devices:",
        *(
            f"  - {{id: disp-{i}, kind: display, zone: yard, sync: timetag, osc: {{port: {9000 + i}}}}}"
            for i in range(1, _DISPLAYS + 1)
        ),
        f'  - {{id: "xr-{{1..{_HEADSETS}}}", kind: xr, zone: yard, sync: app, mqtt: {{}}}}',
    ]
    if ws:
        venue.append('  - {id: "intruder-{1..2}", kind: intruder, zone: yard, sync: app, ws: {}}')
    (folder / "venue.yaml").write_text("\n".join(venue) + "\n", encoding="utf-8")
    lines = ["show: Bench fuzz", "venue: venue.yaml", "cues:", "  - id: fuzz", "    timeline:"]
    k, t = 0, 1.0
    while t < seconds:
        action = (
            f"mqtt: {{targets: 'kind:xr', topic: f/cue, payload: {{n: {k}}}}}"
            if k % 2
            else f"osc: {{targets: 'kind:display', address: /f, args: [{k}]}}"
        )
        lines.append(f"      - {{at: {t:.2f}s, {action}}}")
        k, t = k + 1, t + 0.5
    (folder / "show.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "show.yaml"


def run(
    *,
    surface: str = "osc-control",
    messages: int = 100_000,
    rate: float = 20_000.0,
    seed: int = 1,
    kinds: list[str] | None = None,
) -> dict[str, Any]:
    """``madang bench fuzz`` (see the module docstring); ``kinds``: only these hostile kinds
    (:data:`simulators.hostile.OSC_KINDS`, :data:`~simulators.hostile.MQTT_KINDS`)."""
    Hostile(seed, [], kinds=kinds)  # an unknown kind fails here, before anything starts
    if surface not in SURFACES:
        raise ValueError(f"--surface is one of {', '.join(SURFACES)}, not {surface!r}")
    flood_s = messages / rate
    seconds = flood_s * 1.25 + 5.0  # room for a sender a little slower than asked
    t0 = time.monotonic()
    fuzz = _play(surface, messages, rate, seed, seconds, kinds)
    clean = _play(None, 0, rate, seed, min(seconds, 30.0), None)
    base = clean["spread_p99_us"]
    ratio = None if not base or fuzz["spread_p99_us"] is None else round(fuzz["spread_p99_us"] / base, 2)
    return {
        "surface": surface,
        "messages": messages,
        "rate": rate,
        "seed": seed,
        "kinds": kinds or "all",
        **{k: v for k, v in fuzz.items() if k != "spread_p99_us"},
        "spread_p99_us": fuzz["spread_p99_us"],
        "baseline_missed": clean["missed"],
        "baseline_spread_p99_us": base,
        "spread_ratio": ratio,
        "wall_s": round(time.monotonic() - t0, 1),
    }


class _Tracebacks(logging.Handler):
    """Counts log records that carry a traceback (an exception that reached a handler)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.count += 1
            if self.first is None:
                self.first = f"{record.name}: {record.getMessage()}: {record.exc_info[1]!r}"


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _play(
    surface: str | None, messages: int, rate: float, seed: int, seconds: float, kinds: list[str] | None
) -> dict[str, Any]:
    flood: dict[str, Any] = {}
    tracebacks = _Tracebacks()

    async def attack(sim: SimulatedVenue, rt: Runtime) -> None:
        if surface is None:
            return
        while not rt.core.engine.snapshot.running:
            await asyncio.sleep(0.05)
        if rt.control is not None:  # the port asks for a passcode, as one open to a venue would
            rt.control.access = Access.generated()
        target = _target(surface, rt)
        devices = [d.id for d in rt.venue.devices if not d.id.startswith("intruder")]
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        progress = ctx.Value("q", 0)
        proc = ctx.Process(
            target=_send,
            args=(surface, target, messages, rate, seed, devices, rt.timeline.show, kinds, out, progress),
        )
        rss0, t0 = _rss_mb(), time.monotonic()
        proc.start()
        try:
            while proc.is_alive() and out.empty():
                await asyncio.sleep(0.1)
            flood.update(out.get(timeout=5) if not out.empty() else {"sender_failed": proc.exitcode})
        finally:  # the show ended first (or the run failed): the flood stops with it
            if proc.is_alive():
                proc.terminate()
                flood["truncated"] = progress.value < messages
            proc.join(5)
            flood.setdefault("sent", progress.value)
            flood.setdefault("elapsed_s", time.monotonic() - t0)
            flood["flood_s"] = round(float(flood["elapsed_s"]), 2)
            flood["rss_growth_mb"] = round(_rss_mb() - rss0, 1)

    logging.getLogger().addHandler(tracebacks)
    completed = True
    try:
        with tempfile.TemporaryDirectory(prefix="madang-bench-fuzz-") as tmp:
            timeline, venue = compile_show(_files(Path(tmp), seconds, surface == "ws"))
            report, _sim, rt = asyncio.run(
                play_real(
                    timeline,
                    venue,
                    seed=seed,
                    headset_process=True,
                    faults=attack,
                    duration_s=seconds + 1.0,
                )
            )
    finally:
        logging.getLogger().removeHandler(tracebacks)
    if surface is not None and (not flood or flood.get("sender_failed") is not None):
        completed = False  # the show ended before the flood could start (or the sender failed)
    drops = _drops(rt) if surface is not None else {}
    received = _received(surface, rt) if surface is not None else 0
    callback_errors = drops.pop("mqtt.callback_errors", 0) + drops.pop("udp.callback_errors", 0)
    sent = int(flood.get("sent", 0))
    return {
        "sent": sent,
        "sent_by_kind": flood.get("by_kind", {}),
        "send_errors": flood.get("send_errors", 0),
        "flood_truncated": bool(flood.get("truncated")),  # the show ended before the flood did
        "received": received,
        "dropped": sum(v for k, v in drops.items() if k != "core.osc_malformed"),  # within bad_messages
        "dropped_by_reason": drops,
        "crashes": tracebacks.count + callback_errors + (0 if completed else 1),
        "first_crash": tracebacks.first,
        "rss_growth_mb": flood.get("rss_growth_mb"),
        "flood_s": flood.get("flood_s"),
        "rate_achieved": round(sent / flood["flood_s"]) if flood.get("flood_s") else None,
        "missed": report.get("missed"),
        "spread_p99_us": report.get("spread_p99_us"),
        "cues_fired": report.get("actions_fired"),
        "show_completed": completed and rt.core.finished,
    }


def _target(surface: str, rt: Runtime) -> tuple[str, int, str]:
    """Where the flood goes: (host, port, path or device)."""
    if surface == "osc-control":
        assert rt.control is not None
        return ("127.0.0.1", rt.control.port, "")
    if surface == "osc-device":
        assert rt.udp is not None
        host, port = rt.udp.local_addr
        return ("127.0.0.1" if host in ("0.0.0.0", "") else host, port, "")
    if surface == "mqtt":
        assert rt.mqtt is not None
        port = int(rt.mqtt.url.rsplit(":", 1)[1])
        return ("127.0.0.1", port, "")
    assert rt.web is not None
    base = rt.web.server.base_url().replace("http://", "ws://")
    return (base, 0, "/ws?device=intruder-1")


_COUNTED = (
    "bad_messages",
    "osc_malformed",
    "osc_unsolicited",
    "pongs_dropped",
    "fired_implausible",
    "fired_untargeted",
    "fired_duplicate",
    "late_joins_limited",
    "unknown_device",
    "events_ignored",
    "device_rate_limited",
    "source_rate_limited",
    "sync_restarts_limited",
)


def _received(surface: str, rt: Runtime) -> int:
    """What reached the surface's socket and was read (the rest of ``sent`` the kernel dropped,
    its receive buffer full: the loop read slower than the flood came)."""
    if surface == "osc-control" and rt.control is not None:
        return rt.control.stats.received
    if surface == "osc-device" and rt.udp is not None:
        return rt.udp.stats().received
    if surface == "mqtt" and rt.mqtt is not None:
        return rt.mqtt.stats.received  # with the devices' own reports
    if rt.web is not None:
        return int(rt.web.hub.stats.frames_in)  # with the devices' own frames
    return 0


def _drops(rt: Runtime) -> dict[str, int]:
    """Every drop counter of the controller, by surface, that is not zero."""
    out: dict[str, int] = {f"core.{k}": rt.core.counters[k] for k in _COUNTED}
    if rt.control is not None:
        st = rt.control.stats
        for k in (
            "rate_limited",
            "oversize",
            "malformed",
            "rejected",
            "unauthenticated",
            "bad_passcode",
            "passcode_blocked",
            "denied",
            "view_only",
        ):
            out[f"control.{k}"] = int(getattr(st, k))
    if rt.mqtt is not None:
        ms = rt.mqtt.stats
        out["mqtt.oversize"], out["mqtt.bad_topic"] = ms.oversize, ms.bad_topic
        out["mqtt.callback_errors"] = ms.callback_errors
    if rt.udp is not None:
        us = rt.udp.stats()
        out["udp.oversize"], out["udp.callback_errors"] = us.oversize, us.callback_errors
    if rt.web is not None:
        for k, v in rt.web.hub.stats.dropped.items():
            out[f"ws.{k}"] = int(v)
    return {k: v for k, v in out.items() if v}


def _send(
    surface: str,
    target: tuple[str, int, str],
    messages: int,
    rate: float,
    seed: int,
    devices: list[str],
    show: str,
    kinds: list[str] | None,
    out: Any,
    progress: Any,
) -> None:
    """The flood, in a child process: ``messages`` hostile messages at ``rate`` a second."""
    hostile = Hostile(seed, devices, show, kinds)
    by_kind: Counter[str] = Counter()
    errors = 0
    sent = 0
    t0 = time.monotonic()

    def pace() -> None:
        progress.value = sent
        ahead = sent / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)

    if surface in ("osc-control", "osc-device"):
        # From 254 loopback addresses in turn: each source host has its own rate budget, so most
        # of the flood is parsed rather than turned away by the rate limit (both are measured).
        socks = []
        for k in range(1, 255):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((f"127.0.0.{k}", 0))
            socks.append(sock)
        addr = (target[0], target[1])
        while sent < messages:
            kind, data = hostile.osc()
            try:
                socks[sent % len(socks)].sendto(data, addr)
            except OSError:
                errors += 1
            by_kind[kind] += 1
            sent += 1
            if sent % 200 == 0:
                pace()
        for sock in socks:
            sock.close()
    elif surface == "mqtt":
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fuzz-{seed}")
        client.max_queued_messages_set(10_000)
        client.connect(target[0], target[1])
        client.loop_start()
        info = None
        while sent < messages:
            kind, topic, payload = hostile.mqtt()
            info = client.publish(topic, payload)
            if info.rc != 0:
                errors += 1
                time.sleep(0.001)  # the client's queue is full: let it drain
            by_kind[kind] += 1
            sent += 1
            if sent % 200 == 0:
                pace()
        if info is not None:
            info.wait_for_publish(30)
        client.loop_stop()
        client.disconnect()
    else:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        url = target[0] + target[2]
        while sent < messages:
            try:
                with connect(url, open_timeout=5) as ws:
                    while sent < messages:
                        kind, frame = hostile.ws()
                        ws.send(frame)
                        by_kind[kind] += 1
                        sent += 1
                        if sent % 200 == 0:
                            pace()
            except (OSError, WebSocketException, TimeoutError):
                errors += 1  # cut (slow, or the real client took its id back): connect again
                time.sleep(0.05)
    elapsed = time.monotonic() - t0
    out.put({"sent": sent, "by_kind": dict(by_kind), "send_errors": errors, "elapsed_s": elapsed})
