"""``madang bench sync``: the spread of fire instants across simulated headsets.

The shipped Han River show, scaled to ``devices`` headsets (:func:`_scale_headsets`: fewer by
subsetting, more by cloning the last ones, each clone with its own id and topic root), played by the
real controller against its simulated venue, in seeded virtual time
(:func:`simulators.harness.play_virtual`) or over real sockets
(:func:`simulators.harness.play_real`). The JSON is the sync report's spread and misses, and in
virtual time also the run's cost and the clock models' error against the simulated true clocks.
Figures and commands: ``docs/benchmarks.md``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from cues.compiler import compile_show
from cues.timeline import Timeline
from simulators.devices.venue import SimulatedVenue
from simulators.harness import limit_headsets, play_real, play_virtual, shipped_show
from venues.model import Device, MqttEndpoint, Sync, Venue, WsEndpoint

__all__ = ["POLL_NS", "SYNC_NS", "phone_share", "run"]

MS = 1_000_000
S = 1_000_000_000

# The bench polls the controller core every 10 ms of virtual time (play_virtual's default is 1 ms):
# its reactions to what arrives wait up to 10 ms, which changes no fire instant (cues leave 400 ms
# ahead, precise sends 30 ms ahead, every receipt is stamped when it arrives) and, at ten
# thousand headsets, costs a third less CPU than 1 ms (docs/benchmarks.md).
POLL_NS = 10 * MS
# The clock sync's traffic rides a 50 ms grid (play_virtual's sync_quantum_ns): over Wi-Fi, where
# each ping is jittered by +-300 ms anyway, the figures stay as they were for a fifth less CPU.
SYNC_NS = 50 * MS
# An unattended GO the sync gate holds this long is forced (play_virtual's go_force_after_ns), so
# the whole show plays: on wifi-crowded an all-device gate is never READY at thousands of devices
# (some are always predicted over the 5 ms budget), and at 10,000 on wifi a manual cue could wait
# past the player's 60 s and end the run three cues in. The JSON says how many GOs were forced
# (``go_forced``) and the most devices that held one (``not_ready_at_go``).
GO_FORCE_NS = 10 * S
# The share of the audience that is phones when the run does not say (``--phones``): half on
# ``wifi-crowded``, the profile of a crowd holding phones (a riverbank festival's audience is a mix
# of the venue's headsets and the phones that open the light page); none elsewhere, so that the
# 10,000-headset figures of ``wifi`` and ``lan`` stay what they measure (docs/benchmarks.md).
_DEFAULT_PHONES = {"wifi-crowded": 0.5}


def phone_share(profile: str, phones: float | None = None) -> float:
    """The share of audience devices that are phones: ``phones`` if given, else the profile's default."""
    share = _DEFAULT_PHONES.get(profile, 0.0) if phones is None else phones
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"--phones {share}: a share of the audience, from 0 to 1")
    return share


def run(
    *,
    devices: int,
    profile: str,
    virtual: bool,
    seed: int,
    duration_s: float | None = None,
    go_latency_ms: float = 250.0,
    phones: float | None = None,
) -> dict[str, Any]:
    """``madang bench sync``: spread of fire instants over ``devices`` simulated headsets.

    ``duration_s`` is seconds of show after the first GO; ``None``: the whole show in virtual
    time, 60 s over real sockets. A virtual run also reports its cost: ``wall_s``, ``cpu_s``
    (``time.process_time``) and ``events`` (virtual-time events run); everything else in the
    result is a function of the arguments alone (same seed, same JSON but for ``wall_s``/``cpu_s``).
    ``go_latency_ms`` is the controller's GO latency (``madang run --go-latency``). ``phones``:
    the share of the ``devices`` that are audience phones (:func:`_make_phones`; ``None``: the
    profile's default, :func:`phone_share`). A virtual run also reports ``rss_mb``, the process's
    peak resident memory so far (``ru_maxrss``: the compile and the run included).
    """
    share = phone_share(profile, phones)
    timeline, venue = compile_show(shipped_show("han-river"))
    timeline, venue = _scale_headsets(timeline, venue, devices)
    timeline, venue = _make_phones(timeline, venue, share)
    if virtual:
        duration_ns = None if duration_s is None else round(duration_s * S)
        res = play_virtual(
            timeline,
            venue,
            profile=profile,
            seed=seed,
            duration_ns=duration_ns,
            go_delay_ns=round(go_latency_ms * MS),
            poll_quantum_ns=POLL_NS,
            sync_lane=True,  # the headsets' clock-sync traffic on arrays (docs/simulators.md)
            sync_quantum_ns=SYNC_NS,
            telemetry=False,
            go_force_after_ns=GO_FORCE_NS,
        )
        rep = res.report
    else:
        real_s = 60.0 if duration_s is None else duration_s
        rep, _, _ = asyncio.run(
            play_real(
                timeline, venue, profile=profile, seed=seed, duration_s=real_s, go_delay_ms=go_latency_ms
            )
        )
    out = {
        k: rep[k]
        for k in (
            "devices",
            "cues_fired",
            "missed",
            "late_devices",
            "spread_p50_us",
            "spread_p99_us",
            "spread_max_us",
            "baseline_spread_p50_us",
            "baseline_spread_p99_us",
        )
    }
    out.update({"profile": profile, "virtual": virtual, "seed": seed, "go_latency_ms": go_latency_ms})
    n_phones = sum(1 for d in venue.devices if d.sync is Sync.APP and d.mqtt is None and d.ws is not None)
    out["phones"] = n_phones
    out["headsets"] = sum(1 for d in venue.devices if d.sync is Sync.APP) - n_phones
    if virtual:
        out["poll_ms"] = POLL_NS / MS
        out["show_s"] = round((res.sim.now - res.show_start_ns) / S, 3)
        out["events"] = res.events
        out["go_forced"] = rep["go"]["forced"]
        out["not_ready_at_go"] = rep["go"]["not_ready"]
        out["wall_s"] = round(res.wall_s, 2)
        out["cpu_s"] = round(res.cpu_s, 2)
        out["rss_mb"] = _peak_rss_mb()
        out.update(_model_errors(res.sim, res.sync))
    else:
        out["show_s"] = real_s
    return out


def _model_errors(sim: SimulatedVenue, sync: Any) -> dict[str, float]:
    """Clock-model error against the simulator's true clocks: offset (us) and drift (ppm), p99."""
    import numpy as np

    if sync is None:
        return {}
    now = sim.now
    off_err: list[float] = []
    drift_err: list[float] = []
    for did, clock in sim.clocks.items():
        m = sync.model(did)
        if m is None:
            continue
        off_err.append(abs(m.to_device(now) - clock.local(now)) / 1000.0)
        true_ppm = clock.drift_ppm if hasattr(clock, "drift_ppm") else 0.0
        drift_err.append(abs(m.drift_ppb / 1000.0 - float(true_ppm)))
    return {
        "offset_err_p99_us": float(np.percentile(off_err, 99)) if off_err else float("nan"),
        "drift_err_p99_ppm": float(np.percentile(drift_err, 99)) if drift_err else float("nan"),
        "synced_devices": len(off_err),
    }


def _scale_headsets(timeline: Timeline, venue: Venue, n: int) -> tuple[Timeline, Venue]:
    """The show with exactly ``n`` headsets: fewer by subsetting, more by cloning the last ones."""
    apps = [d for d in venue.devices if d.sync is Sync.APP]
    if n <= len(apps):
        return limit_headsets(timeline, venue, n)
    extra: list[Device] = []
    width = len(str(n))
    existing = {d.id for d in venue.devices}
    clone_of: dict[str, str] = {}
    i = 0
    while len(apps) + len(extra) < n:
        src = apps[i % len(apps)]
        new_id = f"xr-x{i:0{width}d}"
        i += 1
        if new_id in existing:
            continue
        attrs = dict(src.attrs)
        attrs["id"] = new_id
        extra.append(dataclasses.replace(src, id=new_id, attrs=attrs, mqtt=_clone_mqtt(src, new_id)))
        clone_of[new_id] = src.id
    by_src: dict[str, list[str]] = {}
    for new, src_id in clone_of.items():
        by_src.setdefault(src_id, []).append(new)
    devices = venue.devices + tuple(extra)
    groups = {
        g: tuple(members) + tuple(c for m in members for c in by_src.get(m, ()))
        for g, members in venue.groups.items()
    }
    v = dataclasses.replace(venue, devices=devices, groups=groups)
    actions = tuple(
        dataclasses.replace(a, devices=a.devices + tuple(c for d in a.devices for c in by_src.get(d, ())))
        for a in timeline.actions
    )
    return dataclasses.replace(timeline, actions=actions, device_count=len(devices)), v


def _clone_mqtt(src: Device, new_id: str) -> MqttEndpoint | None:
    """The clone's own topic root: the loader resolved ``{id}`` in the source's ``base``, and a
    clone that kept it would answer the source's pings and never get a clock model of its own."""
    if src.mqtt is None:
        return None
    parts = src.mqtt.base.split("/")
    if src.id not in parts:
        return MqttEndpoint(f"madang/dev/{new_id}")
    return MqttEndpoint("/".join(new_id if p == src.id else p for p in parts))


def _make_phones(timeline: Timeline, venue: Venue, share: float) -> tuple[Timeline, Venue]:
    """The show with ``share`` of its app devices turned into audience phones.

    A phone is what the light page makes of a browser (docs/protocol.md, "WebSocket" and "The
    audience"): an ``app`` device over WebSocket, with the same clock sync, clock model and cues
    as a headset, in the envelope instead of on the broker. In virtual time the controller's
    WebSocket server is not simulated: a phone is a ``ws:`` device (no ``mqtt:``), which the
    simulator connects to the virtual broker under its topic root (docs/simulators.md, "Phones in
    virtual time"). The phones are spread evenly among the app devices (device ``k`` is one when
    ``floor((k + 1) * share)`` steps up), keep their groups and attributes, and are renamed
    ``ph-...`` so that the report tells them apart.
    """
    if share <= 0.0:
        return timeline, venue
    apps = [d for d in venue.devices if d.sync is Sync.APP and not d.pooled]
    rename: dict[str, str] = {}
    taken = {d.id for d in venue.devices}
    for k, d in enumerate(apps):
        if int((k + 1) * share) > int(k * share):
            new_id = "ph-" + d.id.removeprefix("xr-")
            while new_id in taken:
                new_id += "p"
            taken.add(new_id)
            rename[d.id] = new_id
    if not rename:
        return timeline, venue

    def phone(d: Device) -> Device:
        new_id = rename[d.id]
        attrs = dict(d.attrs)
        attrs["id"] = new_id
        return dataclasses.replace(d, id=new_id, attrs=attrs, mqtt=None, ws=WsEndpoint())

    devices = tuple(phone(d) if d.id in rename else d for d in venue.devices)
    groups = {g: tuple(rename.get(m, m) for m in members) for g, members in venue.groups.items()}
    v = dataclasses.replace(venue, devices=devices, groups=groups)
    actions = tuple(
        dataclasses.replace(a, devices=tuple(rename.get(d, d) for d in a.devices)) for a in timeline.actions
    )
    return dataclasses.replace(timeline, actions=actions), v


def _peak_rss_mb() -> float:
    """The process's peak resident set so far, in MB (Linux reports ``ru_maxrss`` in KiB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
