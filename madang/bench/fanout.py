"""``madang bench fanout``: the shipped show to N real MQTT headsets past one broker.

The Han River show scaled to ``devices`` headsets (:func:`madang.bench.sync._scale_headsets`) is
played by the real controller runtime (:func:`simulators.harness.play_real`) over real sockets to
simulated headsets in ``processes`` child processes, each headset connected to its zone's broker
of a topology (:func:`simulators.topology.start_topology`: ``single``, ``bridged`` Mosquittos,
``nats``). What it measures, and why each figure is taken where it is:

* ``fanout_ms``: from the controller handing a group cue message to its MQTT client (the runtime's
  ``MqttLink._send``, wrapped for the run: the instant the bytes leave for the broker) to the last
  headset's socket receipt (``play_real(arrivals=True)``, true ns on the same host clock);
  p50/p99/max over the cue messages of the run.
* ``fired``/``missed``/``spread_p99_us``: the sync report's (every device fires each cue meant for
  it at the same instant); ``devices_fired``: how many distinct MQTT headsets fired at least
  once (the show's OSC devices play too and count in ``fired``).
* ``msgs_per_device_per_cue`` / ``msgs_per_device_per_min``: every message each headset received
  and sent, counted in the headsets by kind (:func:`simulators.devices.realtime.message_kind`),
  divided by headsets and by distinct group cue messages (``cues``; each is sent twice,
  ``cue_sends``: the repeat a device deduplicates) or by minutes of the run (settling included:
  the clock-sync burst before the first GO is part of what a device costs).
* ``brokers``: each broker's CPU seconds over the run (utime+stime of ``/proc/PID/stat``) and its
  own ``$SYS/broker/messages/{received,sent}`` counters at the end (Mosquitto publishes them every
  10 s, so they trail by up to that). In ``bridged``, every message the hub moves other than the
  controller's own is one that crossed a bridge.
* ``loadavg``: the machine's load averages before and after (a shared machine: read the figures
  beside it).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from controller.core import DEFAULT_SYNC_BUDGET_NS
from controller.runtime import Runtime
from cues.compiler import compile_show
from madang.bench.sync import _scale_headsets
from simulators.devices.venue import SimulatedVenue
from simulators.harness import play_real, shipped_show
from simulators.harness.bridging import narrow_topics
from simulators.report import FIRE_KINDS
from simulators.topology import KINDS, Topology, start_topology
from venues.broker import parse_broker_url
from venues.errors import MadangError

__all__ = ["run"]

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_HEADSETS_PER_PROCESS = 750  # default split of the headsets over child processes (docs/benchmarks.md)


class FanoutError(MadangError, ValueError):
    """A bad argument of ``madang bench fanout`` (the message says which and what to do)."""


def run(
    *,
    topology: str,
    devices: int,
    duration_s: float = 30.0,
    profile: str = "lan",
    seed: int = 0,
    processes: int | None = None,
    leaves: int = 3,
    ping_rate: int | None = None,
    sync_budget_us: float | None = None,
    direct: bool = False,
    wide: bool = False,
) -> dict[str, Any]:
    """Play ``duration_s`` seconds of the show to ``devices`` headsets on ``topology``; the JSON
    described in the module docstring. ``processes``: headset child processes (default one per
    750 headsets); ``ping_rate``: the controller's clock-sync pings per second (``madang run``'s
    ``--ping-rate``; default the runtime's); ``sync_budget_us``: the sync gate's budget (``madang
    run --sync-budget``; default the runtime's 5 ms). ``direct``: bridged leaves dial the hub
    straight, without the cuttable relays (``start_topology(relay=False)``). Each leaf bridges only
    its own devices' topics (:func:`simulators.harness.bridging.narrow_topics`, what ``madang
    broker-config --bridge`` writes for a venue); ``wide``: the whole tree to every leaf
    (:data:`simulators.topology.BRIDGE_TOPICS`), to compare."""
    if topology not in KINDS:
        raise FanoutError(f"no topology {topology!r}: choose one of {', '.join(KINDS)}")
    if devices < 1:
        raise FanoutError(f"--devices {devices}: give at least 1 headset")
    procs = processes or max(1, math.ceil(devices / _HEADSETS_PER_PROCESS))
    timeline, venue = compile_show(shipped_show("han-river"))
    timeline, venue = _scale_headsets(timeline, venue, devices)
    load0 = os.getloadavg()
    published: list[tuple[int, str, bytes]] = []
    options: dict[str, Any] = {}
    if topology == "bridged" and not wide:
        options["topics"] = narrow_topics(venue.devices, leaves)
    with start_topology(topology, leaves=leaves, relay=not direct, **options) as topo:
        roles = _broker_roles(topo)
        cpu0 = _broker_cpu(topo)
        relay0 = _cpu(topo.relay_pids())
        t0 = time.monotonic()
        rep, sim, _ = asyncio.run(
            play_real(
                timeline,
                venue,
                profile=profile,
                seed=seed,
                duration_s=duration_s,
                topology=topo,
                headset_process=True,
                headset_processes=procs,
                arrivals=True,
                faults=_watch_publishes(published),
                ping_rate=ping_rate,
                sync_budget_us=DEFAULT_SYNC_BUDGET_NS / 1000 if sync_budget_us is None else sync_budget_us,
            )
        )
        run_s = time.monotonic() - t0
        cpu1 = _broker_cpu(topo)
        relay1 = _cpu(topo.relay_pids())
        sys_counters = {url: _sys_messages(url) for url, _, _ in roles} if topology != "nats" else {}
    load1 = os.getloadavg()
    n_app = sum(1 for d in venue.devices if d.mqtt is not None and d.id in sim.clocks)
    group = [(t, p) for t, topic, p in published if not topic.startswith("madang/cue/dev/")]
    n_cues = max(1, len({p for _, p in group}))
    counts: dict[str, int] = rep["device_msgs"]
    minutes = run_s / 60.0
    return {
        "topology": topology,
        "devices": devices,
        "mqtt_headsets": n_app,
        "leaves": len(topo.leaf_urls),
        "processes": procs,
        "direct": direct,
        "bridge_topics": ("wide" if wide else "per-leaf") if topology == "bridged" else None,
        "profile": profile,
        "seed": seed,
        "show_s": duration_s,
        "run_s": round(run_s, 2),
        "cues": len({p for _, p in group}),
        "cue_sends": len(group),
        "cues_fired": rep["cues_fired"],
        "fired": rep["fires"],
        "devices_fired": _devices_fired(sim, {d.id for d in venue.devices if d.mqtt is not None}),
        "missed": rep["missed"],
        "late_devices": rep["late_devices"],
        "spread_p50_us": rep["spread_p50_us"],
        "spread_p99_us": rep["spread_p99_us"],
        "spread_max_us": rep["spread_max_us"],
        "fanout_ms": _fanout(group, rep.get("arrivals", [])),
        "settle": rep["settle"],
        "msgs": counts,
        "msgs_per_device_per_cue": {k: round(v / n_app / n_cues, 3) for k, v in counts.items()},
        "msgs_per_device_per_min": {k: round(v / n_app / minutes, 2) for k, v in counts.items()},
        "brokers": [
            {
                "url": url,
                "role": role,
                "cpu_s": round(cpu1.get(pid, 0.0) - cpu0.get(pid, 0.0), 2),
                "sys_messages": sys_counters.get(url, {}),
            }
            for url, role, pid in roles
        ],
        "broker_cpu_s": round(sum(cpu1.get(p, 0.0) - cpu0.get(p, 0.0) for p in cpu1), 2),
        # The bridged topology's relays (simulators/relay.py, one per bridge, so a bridge can be
        # cut) are Python processes copying bytes: CPU a real star of Mosquittos does not spend.
        "relay_cpu_s": round(sum(relay1.get(p, 0.0) - relay0.get(p, 0.0) for p in relay1), 2),
        "loadavg_before": [round(x, 2) for x in load0],
        "loadavg_after": [round(x, 2) for x in load1],
    }


def _watch_publishes(out: list[tuple[int, str, bytes]]) -> Any:
    """A ``play_real`` fault hook that injects nothing: it notes when the runtime hands each cue
    message to its MQTT client (true ns), by wrapping the link's ``_send`` once it exists."""

    async def hook(sim: SimulatedVenue, rt: Runtime) -> None:
        while rt.mqtt is None:
            await asyncio.sleep(0.01)
        link = rt.mqtt
        send = link._send

        def noted(inner: Any, entry: Any) -> bool:
            ok = send(inner, entry)
            if ok and entry.topic.startswith("madang/cue"):
                out.append((time.time_ns(), entry.topic, bytes(entry.payload)))
            return ok

        link._send = noted  # type: ignore[method-assign]

    return hook


def _fanout(group: list[tuple[int, bytes]], arrivals: Iterable[tuple[str, int, bytes]]) -> dict[str, Any]:
    """Per distinct group cue message: the last headset's receipt minus the controller's first
    send (ms)."""
    sent: dict[bytes, int] = {}
    for t, p in group:
        sent.setdefault(p, t)
    # The controller sends each cue message again shortly after (a repeat a device deduplicates
    # by key): a device's receipt is its first copy's, and the fan-out is the last such receipt.
    first: dict[tuple[bytes, str], int] = {}
    for did, at, payload in arrivals:
        if payload in sent and at < first.get((payload, did), at + 1):
            first[(payload, did)] = at
    last: dict[bytes, int] = {}
    for (payload, _did), at in first.items():
        last[payload] = max(at, last.get(payload, 0))
    spans = np.array([(last[p] - t) / 1e6 for p, t in sent.items() if p in last], dtype=np.float64)
    if not spans.size:
        return {"p50": None, "p99": None, "max": None, "messages": 0}
    return {
        "p50": round(float(np.percentile(spans, 50)), 2),
        "p99": round(float(np.percentile(spans, 99)), 2),
        "max": round(float(spans.max()), 2),
        "messages": int(spans.size),
    }


def _devices_fired(sim: SimulatedVenue, headsets: set[str]) -> int:
    """How many of the MQTT ``headsets`` fired at least one cue."""
    fired = {f.device_id for f in sim.records().rows(FIRE_KINDS) if f.seq >= 0}
    return len(headsets & fired)


def _broker_roles(topo: Topology) -> list[tuple[str, str, int]]:
    """(url, role, pid) of every broker: the hub (or NATS node 0) and the leaves."""
    pids = topo.pids()
    if topo.kind == "nats":
        return [(u, "node", p) for u, p in zip(topo.leaf_urls, pids, strict=False)]
    if topo.kind == "single":
        return [(topo.hub_url, "single", pids[0])]
    # pids(): hub first, then the leaves in leaf_urls order
    return [(topo.hub_url, "hub", pids[0])] + [
        (u, "leaf", p) for u, p in zip(topo.leaf_urls, pids[1:], strict=False)
    ]


def _broker_cpu(topo: Topology) -> dict[int, float]:
    """utime+stime (s) of each broker process, from /proc (Linux); {} where unreadable."""
    return _cpu(topo.pids())


def _cpu(pids: Iterable[int]) -> dict[int, float]:
    """utime+stime (s) of each process, from /proc (Linux); left out where unreadable."""
    out: dict[int, float] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return out


def _sys_messages(url: str, wait_s: float = 1.5) -> dict[str, int]:
    """A Mosquitto's ``$SYS/broker/messages/{received,sent}`` (retained: the last published
    values); {} from a broker that has none (NATS)."""
    import paho.mqtt.client as mqtt

    addr = parse_broker_url(url)
    got: dict[str, int] = {}

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        with contextlib.suppress(ValueError):
            got[msg.topic.rsplit("/", 1)[-1]] = int(msg.payload)

    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,  # type: ignore[attr-defined]
        client_id=f"madang-bench-sys-{os.getpid()}",
    )
    c.on_message = on_message
    try:
        c.connect(addr.host, addr.port, keepalive=10)
    except OSError:
        return {}
    c.subscribe("$SYS/broker/messages/+", 0)
    c.loop_start()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and len(got) < 2:
        time.sleep(0.05)
    c.loop_stop()
    c.disconnect()
    return got
