"""A venue's own MQTT topic root (``mqtt.base``) is what the controller speaks to and listens on.

The simulated headset (simulators/devices/app.py) already uses its device's ``base``; these tests
hold the controller side to the same rule (docs/venues.md, docs/protocol.md).
"""

from __future__ import annotations

from pathlib import Path

from controller.core import ControllerCore, PingBatch
from controller.delivery import MqttPublish
from controller.playback import Arm, Load
from controller.sync.service import SyncService
from controller.topics import device_filters
from cues.compiler import compile_show

S = 1_000_000_000

VENUE = """\
venue: site
zones: [north, south]
safe:
  lamp: {level: 0}
devices:
  - {id: "xr-{1..2}", kind: xr, zone: north, mqtt: {base: "site/{zone}/hmd/{id}"}, sync: app}
  - {id: xr-9, kind: xr, zone: south, mqtt: {}, sync: app}
  - {id: lamp-1, kind: lamp, zone: south, mqtt: {base: "rig/lamps/{id}"}, sync: none, latency: 10ms}
groups:
  audience: "kind:xr"
"""

SHOW = """\
show: Topic roots
venue: site.yaml
cues:
  - id: dim
    actions:
      - fade: {targets: lamp-1, param: level, from: 0, to: 1, over: 1s}
      - mqtt: {targets: audience, topic: "xr/{device}/scene", payload: {scene: a}}
"""


def _core(tmp_path: Path) -> ControllerCore:
    (tmp_path / "site.yaml").write_text(VENUE, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(SHOW, encoding="utf-8")
    timeline, venue = compile_show(tmp_path / "show.yaml")
    return ControllerCore(timeline, venue, sync=SyncService(venue))


def test_roots_and_filters_follow_the_venue(tmp_path: Path) -> None:
    core = _core(tmp_path)
    assert core.root == {
        "xr-1": "site/north/hmd/xr-1",
        "xr-2": "site/north/hmd/xr-2",
        "xr-9": "madang/dev/xr-9",
        "lamp-1": "rig/lamps/lamp-1",
    }
    assert core.venue.device("xr-9").topic_root == "madang/dev/xr-9"
    # One filter per distinct pattern, not one per device.
    assert device_filters(core.venue.devices, "pong") == [
        "site/north/hmd/+/pong",
        "madang/dev/+/pong",
        "rig/lamps/+/pong",
    ]
    assert "site/north/hmd/+/status" in core.device_filters()


def test_pings_go_to_and_status_comes_from_the_device_root(tmp_path: Path) -> None:
    core = _core(tmp_path)
    now = 1_000 * S
    core.command(Load(), now)
    core.command(Arm(), now)
    # Pings leave as one batch; the core expands it into a send per device, by capability.
    batches = [i for i in core.poll(now + 1) if isinstance(i, PingBatch)]
    sent = [s for b in batches for s in core.expand(b, now + 1) if isinstance(s, MqttPublish)]
    pinged = {i.topic for i in sent if i.topic.endswith("/ping")}
    assert "site/north/hmd/xr-1/ping" in pinged and "madang/dev/xr-9/ping" in pinged
    assert not any(t.startswith("madang/dev/xr-1/") for t in pinged)

    core.receive_mqtt("site/north/hmd/xr-2/status", b'{"state": "ready", "boot": 5}', now + 2)
    assert core.health["xr-2"].status == "ready"
    # The default root of a device whose venue entry names another one is not that device.
    core.receive_mqtt("madang/dev/xr-1/status", b'{"state": "offline"}', now + 3)
    assert core.health["xr-1"].status != "offline"


def test_safe_state_goes_to_the_device_root(tmp_path: Path) -> None:
    core = _core(tmp_path)
    safe = core.delivery.safe(["lamp-1"], 5 * S, ("Topic roots", "panic", 0))
    assert [(s.topic, s.payload) for s in safe if isinstance(s, MqttPublish)] == [
        ("rig/lamps/lamp-1/param/level", b'{"param":"level","value":0}')
    ]


def test_catch_up_state_of_a_plain_mqtt_device_carries_its_faded_parameters(tmp_path: Path) -> None:
    core = _core(tmp_path)
    sends = core.delivery.state("lamp-1", {"level": 0.5}, {}, {}, 7 * S, ("Topic roots", "state", 0))
    assert [(s.topic, s.payload) for s in sends if isinstance(s, MqttPublish)] == [
        ("rig/lamps/lamp-1/param/level", b'{"param":"level","value":0.5}')
    ]
