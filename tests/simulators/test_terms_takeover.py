"""Never two live: two real controller cores drive one simulated venue in virtual time, the second
under a higher term (a standby that took over while the first, cut off from it, carries on).

Every byte goes through the controller's own encoders and the simulated devices' own reading of
docs/protocol.md. The devices must never obey the replaced controller once they have heard from
its successor: its cues and keyed bundles are dropped and counted (``stale_term`` rows), and no
device executes anything under a lower term than one it executed before. Plain OSC messages to an
``echo`` device carry no term: they are fenced on the controller side only, as the protocol says.
"""

from __future__ import annotations

from pathlib import Path

from controller.core import ControllerCore
from controller.delivery import MqttPublish, UdpSend
from controller.playback import Arm, Command, Go, Load
from cues.compiler import compile_show
from simulators.devices.venue import SimulatedVenue
from simulators.record import EXECUTIONS
from simulators.report import sync_report

S = 1_000_000_000
MS = 1_000_000

VENUE = """\
venue: fence
zones: [yard]
safe:
  xr: {brightness: 0}
  display: {brightness: 0}
devices:
  - {id: "xr-{1..3}", kind: xr, zone: yard, mqtt: {}, sync: app}
  - {id: led-t, kind: display, zone: yard, osc: {host: 127.0.0.1, port: 9801}, sync: timetag}
  - {id: led-e, kind: display, zone: yard, osc: {host: 127.0.0.1, port: 9802}, sync: echo}
"""

SHOW = """\
show: Fence
venue: fence.yaml
cues:
  - id: one
    actions:
      - mqtt: {targets: "kind:xr", topic: "xr/{device}/scene", payload: {scene: one}}
      - osc: {targets: "kind:display", address: /scene, args: [1]}
  - id: two
    actions:
      - mqtt: {targets: "kind:xr", topic: "xr/{device}/scene", payload: {scene: two}}
      - osc: {targets: "kind:display", address: /scene, args: [2]}
"""


def test_devices_never_obey_a_replaced_controller(tmp_path: Path) -> None:
    (tmp_path / "fence.yaml").write_text(VENUE, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(SHOW, encoding="utf-8")
    timeline, venue = compile_show(tmp_path / "show.yaml")
    sim = SimulatedVenue(venue, mode="virtual", profile="wifi", seed=11)
    sim.start()
    vt = sim.vt
    assert vt is not None
    vc = sim.controller
    old = ControllerCore(timeline, venue, term=1, controller_id="madang-a")
    new = ControllerCore(timeline, venue, term=2, controller_id="madang-b")

    def send(item: UdpSend | MqttPublish) -> None:
        if isinstance(item, UdpSend):
            vc.send_osc(item.device, item.data)
        else:
            vc.publish(item.topic, item.payload, retain=item.retain)

    t0 = vt.now
    script: list[tuple[int, ControllerCore, Command]] = [
        (0, old, Load()),
        (0, old, Arm()),
        (0, old, Go(force=True)),  # cue one, under term 1
        (2 * S, new, Load()),  # the standby takes over: its state (term 2) reaches the headsets
        (2 * S, new, Arm()),
        (2 * S, new, Go(force=True)),  # cue one again: the same keys, not executed twice
        (4 * S, old, Go(force=True)),  # the old controller, cut off, plays cue two under term 1
        (6 * S, new, Go(force=True)),  # the live one plays cue two
    ]
    now = t0
    while now < t0 + 9 * S:
        while script and t0 + script[0][0] <= now:
            _, core, cmd = script.pop(0)
            core.command(cmd, now)
        for core in (old, new):
            for item in core.poll(now):
                if isinstance(item, UdpSend | MqttPublish):
                    if item.at_ns > now:
                        vt.call_at(item.at_ns, send, item)
                    else:
                        send(item)
        now += MS
        sim.run_until(now)

    rec = sim.records()
    rows = rec.rows(EXECUTIONS)
    fenced = ["xr-1", "xr-2", "xr-3", "led-t"]
    for did in fenced:
        mine = [(r.value, r.term) for r in rows if r.device_id == did]
        scenes = [v["scene"] if isinstance(v, dict) else int(v) for v, _ in mine]  # type: ignore[call-overload]
        assert scenes in (["one", "two"], [1, 2]), (did, mine)
        assert [t for _, t in mine] == [1, 2], (did, mine)  # cue two only from the live controller
    # Each fenced device dropped the replaced controller's cue two (and its repeats), and says so.
    stale = rec.stale_term()
    assert set(stale) == set(fenced) and all(n >= 1 for n in stale.values()), stale
    assert rec.term_regressions() == []
    report = sync_report(rec)
    assert report["stale_term"] == sum(stale.values()) and report["term_regressions"] == 0
    # The echo device gets plain OSC, which carries no term: it obeyed both controllers.
    echo = [r.value for r in rows if r.device_id == "led-e" and r.param == "/scene"]
    assert echo.count(2.0) == 2 and "led-e" not in stale
