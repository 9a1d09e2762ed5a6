"""A device that joins mid-show (a headset reboots) gets catch-up state, a fresh clock model from
its ping burst, and fires the next cue in sync with the others: the whole controller (engine,
delivery, clock sync) against simulated devices in seeded virtual time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cues.compiler import compile_show
from simulators.devices.venue import SimulatedVenue
from simulators.harness import play_virtual

S = 1_000_000_000

VENUE = """\
venue: join-test
name: Join test
zones: [a]
devices:
  - id: "xr-{01..12}"
    kind: xr
    zone: a
    mqtt: {}
    sync: app
    interpolates: true
groups:
  audience: "kind:xr"
"""

SHOW = """\
show: Join Test
venue: venue.yaml
cues:
  - id: lobby
    actions:
      - mqtt: {targets: audience, topic: "xr/{device}/scene", payload: {scene: lobby}}
  - id: bloom
    go: auto-follow
    pre_wait: 8s
    actions:
      - mqtt: {targets: audience, topic: "xr/{device}/scene", payload: {scene: bloom}}
  - id: finale
    go: auto-follow
    pre_wait: 2s
    actions:
      - mqtt: {targets: audience, topic: "xr/{device}/scene", payload: {scene: finale}}
"""


def _run(tmp_path: Path, profile: str) -> tuple[SimulatedVenue, dict[str, object]]:
    (tmp_path / "venue.yaml").write_text(VENUE)
    (tmp_path / "show.yaml").write_text(SHOW)
    timeline, venue = compile_show(tmp_path / "show.yaml")

    def faults(sim: SimulatedVenue) -> None:
        assert sim.vt is not None
        # GO lands 3 s in (settle) + 0.25 s (GO latency): crash 1 s after the first cue, back 1 s later.
        sim.vt.call_at(sim.vt.now + 4_500_000_000, sim.reboot, "xr-07", 1 * S)

    res = play_virtual(timeline, venue, profile=profile, seed=3, on_start=faults)
    return res.sim, res.report


def _fires(sim: SimulatedVenue, scene: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in sim.records().rows():
        if r.what == "cue" and isinstance(r.value, dict) and r.value.get("scene") == scene:
            out.setdefault(r.device_id, r.true_ns)
    return out


def test_rebooted_headset_catches_up_and_fires_the_next_cue_in_sync(tmp_path: Path) -> None:
    sim, report = _run(tmp_path, "lan")
    rows = [r for r in sim.records().rows() if r.device_id == "xr-07"]
    lobby = [r for r in rows if r.what == "cue" and r.value == {"scene": "lobby"}]
    assert len(lobby) == 1, "xr-07 fired the first cue before it crashed"
    state = [r for r in rows if r.what == "state" and r.true_ns > lobby[0].true_ns]
    assert state, "after its reboot xr-07 received catch-up state"
    assert isinstance(state[0].value, dict)
    mqtt_state = state[0].value.get("mqtt", {})
    assert {"scene": "lobby"} in mqtt_state.values(), mqtt_state

    for scene in ("bloom", "finale"):
        fires = _fires(sim, scene)
        assert set(fires) == {f"xr-{i:02d}" for i in range(1, 13)}, f"every headset fired {scene}"
        others = np.array([t for d, t in fires.items() if d != "xr-07"], dtype=np.int64)
        err_us = abs(fires["xr-07"] - float(np.median(others))) / 1000
        assert err_us < 500, f"xr-07 fired {scene} {err_us:.0f} us away from the others"
    assert report["missed"] == 0


def test_same_seed_same_answer(tmp_path: Path) -> None:
    a_sim, a = _run(tmp_path, "wifi")
    b_sim, b = _run(tmp_path, "wifi")
    assert a == b
    assert [r.true_ns for r in a_sim.records().rows()] == [r.true_ns for r in b_sim.records().rows()]
