"""``madang bench ws``: cues to WebSocket devices, against the same cues to MQTT headsets.

The real controller (:class:`~controller.runtime.Runtime`, in this process) plays a show to
``devices`` simulated WebXR clients (``ws-00001`` ...) in a child process
(:class:`~simulators.devices.worker.HeadsetWorker`) over real sockets to its WebSocket server;
then, for the baseline, the same show to as many MQTT headsets through a private Mosquitto. The
show sends ``cues`` group cues 0.5 s apart, while an OSC display is sent a message every 20 ms
through the firing edge (so its lateness is measured while the hub fans out). Every device
records when each cue message reached its socket and when it fired.

The JSON:

* ``connect_s``: from the server's start to every WebSocket device connected;
* ``fanout_ms``: a cue's fan-out, from its first to its last device's socket (the worst cue);
  ``baseline_mqtt_fanout_ms``: the same for the MQTT headsets, through the broker;
* ``fired``, ``missed``: the WebSocket devices' executions of the cues, against what was due;
* ``spread_p50_us``, ``spread_p99_us``, ``spread_max_us``: their fire instants against each
  cue's median (true time); ``baseline_mqtt_spread_p99_us`` the same for the MQTT headsets;
* ``edge_lateness_p99_us``: the firing edge's lateness over the run (it sends through the
  fan-outs);
* ``join_s``: from the controller's start to the moment no device waits for its first ping (all
  connected, each had its first ping under the global ping cap, ``ping_cap``);
  ``ping_rate_peak``: the most pings the controller sent in one second (sampled every 0.1 s,
  from the start to GO); ``pings_deferred``: pings the cap put off;
* ``hub``: the hub's counters (frames, slow connections cut); ``hub_fanout_ms``: the controller's
  side of the fan-out, from the hand-over of a message to many sessions to its last write
  (``fanout_ms`` adds the devices' side: a simulated client's loop reads 2,000 sockets too).

Figures and commands: docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from controller.playback import Go
from controller.runtime import Runtime
from cues.compiler import compile_show
from simulators.devices.venue import SimulatedVenue
from simulators.harness import play_real
from simulators.report import FIRE_KINDS, spread_stats

__all__ = ["run"]

S = 1_000_000_000


def _files(folder: Path, kind: str, n: int, cues: int) -> Path:
    """A venue of ``n`` devices of one side (``ws``: WebXR clients, ``mq``: MQTT headsets) and an
    OSC probe display, and a show: ``cues`` group cues 0.5 s apart, a probe every 20 ms."""
    width = max(5, len(str(n)))
    transport = "ws: {}" if kind == "ws" else "mqtt: {}"
    venue = [
        "venue: bench-ws",
        "zones: [web]",
        "devices:",
        f'  - {{id: "{kind}-{{{1:0{width}d}..{n:0{width}d}}}", kind: xr, zone: web, sync: app, {transport}}}',
        "  - {id: probe, kind: probe, zone: web, sync: none, osc: {port: 9}}",
    ]
    (folder / "venue.yaml").write_text("\n".join(venue) + "\n", encoding="utf-8")
    lines = ["show: Bench ws", "venue: venue.yaml", "cues:", "  - id: fanout", "    timeline:"]
    lines.extend(
        f"      - {{at: {1.0 + 0.5 * k}s, mqtt: {{targets: 'kind:xr', topic: b/cue, payload: {{n: {k}}}}}}}"
        for k in range(cues)
    )
    t, end = 0.0, 1.0 + 0.5 * cues
    while t <= end:
        lines.append(f"      - {{at: {t:.2f}s, osc: {{targets: probe, address: /probe, args: [1]}}}}")
        t += 0.02
    (folder / "show.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "show.yaml"


def run(
    *,
    devices: int = 2000,
    mqtt: int | None = None,
    cues: int = 3,
    profile: str = "lan",
    seed: int = 1,
    settle_s: float = 120.0,
    ping_rate: int | None = None,
) -> dict[str, Any]:
    """``madang bench ws`` (see the module docstring); ``mqtt``: MQTT headsets for the baseline
    (default: as many as ``devices``; 0: none). The two sides play one after the other, each
    with its own controller and broker: at 2,000 devices each, their ping bursts together (80,000
    messages a second through one controller) would measure the controller's overload instead.

    GO is pressed once the devices are connected and the sync gate is READY, or (forced) when
    ``settle_s`` has passed since they connected: on a loaded machine a few of 2,000 devices may
    stay predicted over the 5 ms budget for minutes, and the bench then measures what the
    audience would see rather than waiting (``gate_at_go`` says how the venue stood, and after
    how long)."""
    n_mqtt = devices if mqtt is None else mqtt
    t0 = time.monotonic()
    ws = _side("ws", devices, cues, profile, seed, settle_s, ping_rate)
    base = _side("mq", n_mqtt, cues, profile, seed, settle_s, ping_rate) if n_mqtt else None
    return {
        "devices": devices,
        "mqtt_devices": n_mqtt,
        "cues": cues,
        "profile": profile,
        "connect_s": ws["connect_s"],
        "ping_cap": ping_rate,
        "join_s": ws["join_s"],
        "ping_rate_peak": ws["ping_rate_peak"],
        "pings_deferred": ws["pings_deferred"],
        "baseline_mqtt_join_s": None if base is None else base["join_s"],
        "baseline_mqtt_ping_rate_peak": None if base is None else base["ping_rate_peak"],
        "fanout_ms": ws["fanout_ms"],
        "fanout_per_cue_ms": ws["fanout_per_cue_ms"],
        "hub_fanout_ms": ws["hub_fanout_ms"],
        "baseline_mqtt_fanout_ms": None if base is None else base["fanout_ms"],
        "fired": ws["fired"],
        "missed": ws["missed"],
        "spread_p50_us": ws["spread_p50_us"],
        "spread_p99_us": ws["spread_p99_us"],
        "spread_max_us": ws["spread_max_us"],
        "baseline_mqtt_spread_p99_us": None if base is None else base["spread_p99_us"],
        "baseline_mqtt_missed": None if base is None else base["missed"],
        "edge_lateness_p50_us": ws["edge_lateness_p50_us"],
        "edge_lateness_p99_us": ws["edge_lateness_p99_us"],
        "baseline_mqtt_edge_lateness_p99_us": None if base is None else base["edge_lateness_p99_us"],
        "hub": ws["hub"],
        "gate_at_go": ws["gate_at_go"],
        "baseline_mqtt_gate_at_go": None if base is None else base["gate_at_go"],
        "wall_s": round(time.monotonic() - t0, 1),
    }


def _side(
    kind: str, n: int, cues: int, profile: str, seed: int, settle_s: float, ping_rate: int | None
) -> dict[str, Any]:
    """One side's run: ``n`` devices (``ws``: WebXR clients; ``mq``: MQTT headsets)."""
    gate: dict[str, Any] = {}
    pings: dict[str, Any] = {"join_s": None, "peak": 0}

    async def sample(rt: Runtime) -> None:
        """Pings sent, sampled every 0.1 s: the most in one second; when nobody waits any more."""
        t0 = time.monotonic()
        seen: list[tuple[float, int]] = []
        while True:
            stats = rt.sync.ping_stats() if rt.sync is not None else {}  # type: ignore[attr-defined]
            now = time.monotonic()
            seen.append((now, int(stats.get("sent") or 0)))
            while seen[0][0] < now - 1.0:
                seen.pop(0)
            pings["peak"] = max(pings["peak"], seen[-1][1] - seen[0][1])
            pings["deferred"] = stats.get("deferred")
            connected = rt.web.hub.stats.connected if rt.web is not None and kind == "ws" else n
            if pings["join_s"] is None and connected >= n and stats.get("queued") == 0 and seen[-1][1] >= n:
                pings["join_s"] = round(now - t0, 2)
            await asyncio.sleep(0.1)

    async def go(sim: SimulatedVenue, rt: Runtime) -> None:
        sampler = asyncio.create_task(sample(rt))
        try:
            await _go(sim, rt)
        finally:
            sampler.cancel()

    async def _go(sim: SimulatedVenue, rt: Runtime) -> None:
        while rt.web is not None and rt.web.hub.stats.connected < n:  # the WebXR clients connect
            await asyncio.sleep(0.1)
        t0 = time.monotonic()
        await asyncio.sleep(min(3.0, settle_s))
        while not rt.core.readiness(rt.clock.wall_ns()).ready and time.monotonic() - t0 < settle_s:
            await asyncio.sleep(0.25)
        gate.update(rt.core.readiness(rt.clock.wall_ns()).as_dict())
        gate["waited_s"] = round(time.monotonic() - t0, 1)
        rt._command(Go(force=True), source="bench")

    with tempfile.TemporaryDirectory(prefix="madang-bench-ws-") as tmp:
        timeline, venue = compile_show(_files(Path(tmp), kind, n, cues))
        report, sim, rt = asyncio.run(
            play_real(
                timeline,
                venue,
                profile=profile,
                seed=seed,
                headset_process=True,
                arrivals=True,
                auto_go=False,
                faults=go,
                ping_rate=ping_rate,
            )
        )
    seqs = {a.seq for a in timeline.actions if a.devices and a.devices[0].startswith(f"{kind}-")}
    arrivals = _first_arrivals(report.pop("arrivals", []))
    cols = sim.records().columns()
    mask = np.isin(cols["what"], FIRE_KINDS) & np.isin(cols["seq"], list(seqs))
    dev, _ = spread_stats(cols["seq"][mask], cols["device"][mask], cols["true_ns"][mask])
    fired = len(set(zip(cols["seq"][mask].tolist(), cols["device"][mask].tolist(), strict=True)))
    due = n * len([s for s in seqs if s in rt.core.emitted_seqs])
    ctl = report["controller"]
    return {
        "connect_s": report["settle"].get("ws_connect_s"),
        "join_s": pings["join_s"],
        "ping_rate_peak": pings["peak"],
        "pings_deferred": pings.get("deferred"),
        "fanout_ms": _worst_fanout(arrivals, seqs),
        "fanout_per_cue_ms": _fanouts(arrivals, seqs),
        "hub_fanout_ms": _hub_fanout(rt),
        "fired": fired,
        "missed": due - fired,
        "spread_p50_us": _pct(dev, 50),
        "spread_p99_us": _pct(dev, 99),
        "spread_max_us": _pct(dev, 100),
        "edge_lateness_p50_us": ctl.get("edge_lateness_p50_us"),
        "edge_lateness_p99_us": ctl.get("edge_lateness_p99_us"),
        "hub": {
            k: v
            for k, v in (ctl.get("web") or {}).items()
            if k in ("frames_out", "frames_in", "slow", "peak")
        },
        "gate_at_go": {
            k: gate.get(k) for k in ("ready", "need", "within", "unsettled", "over", "worst", "waited_s")
        },
    }


_dec = msgspec.json.Decoder()


def _first_arrivals(rows: Iterable[tuple[str, int, bytes]]) -> dict[int, dict[str, int]]:
    """seq -> device -> the first arrival of that cue's message at the device's socket."""
    out: dict[int, dict[str, int]] = {}
    for device, at, payload in rows:
        try:
            seq = _dec.decode(payload).get("seq")
        except (msgspec.DecodeError, AttributeError):
            continue
        if isinstance(seq, int) and seq >= 0:
            per = out.setdefault(seq, {})
            if device not in per or at < per[device]:
                per[device] = at
    return out


def _fanouts(arrivals: dict[int, dict[str, int]], seqs: set[int]) -> list[float]:
    out = []
    for seq in sorted(seqs):
        got = list(arrivals.get(seq, {}).values())
        if got:
            out.append(round((max(got) - min(got)) / 1e6, 3))
    return out


def _worst_fanout(arrivals: dict[int, dict[str, int]], seqs: set[int]) -> float | None:
    got = _fanouts(arrivals, seqs)
    return max(got) if got else None


def _hub_fanout(rt: Any) -> dict[str, float] | None:
    """The hub's own fan-out of group messages: hand-over to its last write (controller side)."""
    if rt.web is None or not rt.web.hub.fanout_ns:
        return None
    spans = np.array(rt.web.hub.fanout_ns, dtype=np.float64) / 1e6
    return {
        "n": int(spans.size),
        "p50": round(float(np.percentile(spans, 50)), 3),
        "p99": round(float(np.percentile(spans, 99)), 3),
        "max": round(float(spans.max()), 3),
    }


def _pct(values: np.ndarray[Any, Any], q: float) -> float | None:
    if values.size == 0:
        return None
    return round(float(np.percentile(values, q)), 1)
