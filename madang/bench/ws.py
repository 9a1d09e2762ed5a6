"""``madang bench ws``: cues to WebSocket devices, against the same cues to MQTT headsets.

One controller (the real :class:`~controller.runtime.Runtime`, in this process) plays a show to
``devices`` simulated WebXR clients (``ws-00001`` ...) and as many MQTT headsets (``mq-00001``
...), all in one child process (:class:`~simulators.devices.worker.HeadsetWorker`) over real
sockets: the controller's WebSocket server and a private Mosquitto. The show sends ``cues``
group cues to the WebSocket devices, then the same number to the MQTT headsets, while an OSC
display is sent a message every 20 ms through the firing edge (so its lateness is measured while
the hub fans out). Every device records when each cue message reached its socket and when it
fired.

The JSON:

* ``connect_s``: from the server's start to every WebSocket device connected;
* ``fanout_ms``: a cue's fan-out, from its first to its last device's socket (the worst cue);
  ``baseline_mqtt_fanout_ms``: the same for the MQTT headsets, through the broker;
* ``fired``, ``missed``: the WebSocket devices' executions of the cues, against what was due;
* ``spread_p50_us``, ``spread_p99_us``, ``spread_max_us``: their fire instants against each
  cue's median (true time); ``baseline_mqtt_spread_p99_us`` the same for the MQTT headsets;
* ``edge_lateness_p99_us``: the firing edge's lateness over the run (it sends through the
  fan-outs);
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

from cues.compiler import compile_show
from simulators.harness import play_real
from simulators.report import FIRE_KINDS, spread_stats

__all__ = ["run"]

S = 1_000_000_000


def _files(folder: Path, devices: int, mqtt: int, cues: int) -> Path:
    width = max(5, len(str(max(devices, mqtt))))
    venue = [
        "venue: bench-ws",
        "zones: [web, broker]",
        "devices:",
        f'  - {{id: "ws-{{{1:0{width}d}..{devices:0{width}d}}}", kind: xr, zone: web, sync: app, ws: {{}}}}',
        "  - {id: probe, kind: probe, zone: web, sync: none, osc: {port: 9}}",
    ]
    if mqtt:
        venue.append(
            f'  - {{id: "mq-{{{1:0{width}d}..{mqtt:0{width}d}}}", kind: xrm, zone: broker, '
            "sync: app, mqtt: {}}"
        )
    (folder / "venue.yaml").write_text("\n".join(venue) + "\n", encoding="utf-8")
    lines = ["show: Bench ws", "venue: venue.yaml", "cues:", "  - id: fanout", "    timeline:"]
    end = 1.0 + 0.5 * cues * (2 if mqtt else 1)
    for k in range(cues):
        lines.append(
            f"      - {{at: {1.0 + 0.5 * k}s, "
            f"mqtt: {{targets: 'kind:xr', topic: bench/cue, payload: {{n: {k}}}}}}}"
        )
        if mqtt:
            at = 1.0 + 0.5 * (cues + k)
            lines.append(
                f"      - {{at: {at}s, mqtt: {{targets: 'kind:xrm', topic: bench/cue, payload: {{n: {k}}}}}}}"
            )
    t = 0.0
    while t <= end:
        lines.append(f"      - {{at: {t:.2f}s, osc: {{targets: probe, address: /probe, args: [1]}}}}")
        t += 0.02
    (folder / "show.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "show.yaml"


def run(
    *, devices: int = 2000, mqtt: int | None = None, cues: int = 3, profile: str = "lan", seed: int = 1
) -> dict[str, Any]:
    """``madang bench ws`` (see the module docstring); ``mqtt``: MQTT headsets for the baseline
    (default: as many as ``devices``; 0: none)."""
    n_mqtt = devices if mqtt is None else mqtt
    with tempfile.TemporaryDirectory(prefix="madang-bench-ws-") as tmp:
        timeline, venue = compile_show(_files(Path(tmp), devices, n_mqtt, cues))
        t0 = time.monotonic()
        report, sim, rt = asyncio.run(
            play_real(
                timeline,
                venue,
                profile=profile,
                seed=seed,
                headset_process=True,
                arrivals=True,
                ready_timeout_s=600.0,
                settle_s=3.0,
            )
        )
        wall = time.monotonic() - t0
    ws_seqs = {a.seq for a in timeline.actions if a.devices and a.devices[0].startswith("ws-")}
    mq_seqs = {a.seq for a in timeline.actions if a.devices and a.devices[0].startswith("mq-")}
    arrivals = _first_arrivals(report.pop("arrivals", []))
    cols = sim.records().columns()
    fire = np.isin(cols["what"], FIRE_KINDS) & (cols["seq"] >= 0)

    def spread(seqs: set[int]) -> tuple[np.ndarray[Any, Any], int]:
        mask = fire & np.isin(cols["seq"], list(seqs))
        pooled, _ = spread_stats(cols["seq"][mask], cols["device"][mask], cols["true_ns"][mask])
        pairs = set(zip(cols["seq"][mask].tolist(), cols["device"][mask].tolist(), strict=True))
        return pooled, len(pairs)

    ws_dev, ws_fired = spread(ws_seqs)
    mq_dev, _ = spread(mq_seqs)
    due = devices * len([s for s in ws_seqs if s in rt.core.emitted_seqs])
    ctl = report["controller"]
    return {
        "devices": devices,
        "mqtt_devices": n_mqtt,
        "cues": cues,
        "profile": profile,
        "connect_s": report["settle"].get("ws_connect_s"),
        "fanout_ms": _worst_fanout(arrivals, ws_seqs),
        "fanout_per_cue_ms": _fanouts(arrivals, ws_seqs),
        "baseline_mqtt_fanout_ms": _worst_fanout(arrivals, mq_seqs) if n_mqtt else None,
        "fired": ws_fired,
        "missed": due - ws_fired,
        "spread_p50_us": _pct(ws_dev, 50),
        "spread_p99_us": _pct(ws_dev, 99),
        "spread_max_us": _pct(ws_dev, 100),
        "baseline_mqtt_spread_p99_us": _pct(mq_dev, 99) if n_mqtt else None,
        "edge_lateness_p99_us": ctl.get("edge_lateness_p99_us"),
        "edge_lateness_p50_us": ctl.get("edge_lateness_p50_us"),
        "hub": {
            k: v
            for k, v in (ctl.get("web") or {}).items()
            if k in ("frames_out", "frames_in", "slow", "peak")
        },
        "hub_fanout_ms": _hub_fanout(rt),
        "settle_s": report["settle"].get("waited_s"),  # from the start to the GO (the gate READY)
        "wall_s": round(wall, 1),
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
