"""Forged and stale device input in the core (literal instants, no loop): what the controller can
tell is not true is counted apart and changes nothing (docs/security-controls.md, "Bounds")."""

from __future__ import annotations

import json
from pathlib import Path

from controller import wire
from controller.core import LATE_JOIN_EVERY_NS, ControllerCore
from controller.delivery import Kind, MqttPublish
from controller.playback import Arm, Go, Load
from cues.compiler import compile_show

MS = 1_000_000
S = 1_000_000_000
T0 = 1_763_683_200 * S

VENUE = """\
venue: yard
zones: [north]
devices:
  - {id: xr-1, kind: xr, zone: north, mqtt: {}, sync: app}
  - {id: xr-2, kind: xr, zone: north, mqtt: {}, sync: app}
  - {id: cam-1, kind: cam, zone: north, mqtt: {}, sync: app}
"""

SHOW = """\
show: Forgery
venue: venue.yaml
cues:
  - id: one
    actions:
      - mqtt: {targets: "kind:xr", topic: "xr/{device}/scene", payload: {scene: one}}
  - id: two
    go: auto-follow
    pre_wait: 1s
    actions:
      - mqtt: {targets: "kind:xr", topic: "xr/{device}/scene", payload: {scene: two}}
  - id: gate
    on: {mqtt: "gate/+/open", count: 2}
    actions:
      - mqtt: {targets: "kind:xr", topic: "xr/{device}/scene", payload: {scene: gate}}
"""


def _core(tmp_path: Path) -> ControllerCore:
    (tmp_path / "venue.yaml").write_text(VENUE, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(SHOW, encoding="utf-8")
    timeline, venue = compile_show(tmp_path / "show.yaml")
    return ControllerCore(timeline, venue)


def _playing(c: ControllerCore) -> tuple[list[MqttPublish], int]:
    """GO at T0 (past the sync gate) and poll through the first cues: the cue messages sent, and
    the instant reached."""
    c.command(Load(), T0)
    c.command(Arm(), T0)
    c.command(Go(force=True), T0)
    sent: list[MqttPublish] = []
    now = T0
    while now < T0 + 2 * S:
        sent += [i for i in c.poll(now) if isinstance(i, MqttPublish) and i.kind is Kind.CUE]
        now += 10 * MS
    return sent, now


def _fired(c: ControllerCore, device: str, body: dict[str, object], now: int) -> None:
    c.receive_mqtt(f"madang/dev/{device}/fired", json.dumps(body).encode(), now)


def test_fire_reports_count_once_and_only_for_what_was_sent(tmp_path: Path) -> None:
    c = _core(tmp_path)
    sent, now = _playing(c)
    cue = json.loads(sent[0].payload)
    real = {"show": cue["show"], "cue": cue["cue"], "seq": cue["seq"], "local": 1, "synced": True}
    _fired(c, "xr-1", real, now)
    _fired(c, "xr-2", real, now)  # another device's report of the same cue counts
    for _ in range(100):
        _fired(c, "xr-1", real, now)  # repeats: counted once
    _fired(c, "xr-1", {**real, "seq": 999_999}, now)  # a seq never sent
    _fired(c, "xr-1", {**real, "show": "Forgery #7"}, now)  # another take
    _fired(c, "xr-1", {"local": 1}, now)  # names nothing
    _fired(c, "nobody", real, now)  # no such device
    assert c.counters["fired"] == 2
    assert c.counters["fired_duplicate"] == 100
    assert c.counters["fired_implausible"] == 3
    assert c.counters["unknown_device"] == 1
    assert [d for d, _ in c.take_fired()] == ["xr-1", "xr-2"]


def test_a_fire_report_from_a_device_the_cue_did_not_target_is_counted_apart(tmp_path: Path) -> None:
    c = _core(tmp_path)
    sent, now = _playing(c)
    cue = json.loads(sent[0].payload)  # sent to kind:xr only
    real = {"show": cue["show"], "cue": cue["cue"], "seq": cue["seq"], "local": 1, "synced": True}
    for _ in range(10):
        _fired(c, "cam-1", real, now)  # a real device, a real seq, but not its cue
    _fired(c, "xr-1", real, now)
    assert c.counters["fired_untargeted"] == 10
    assert c.counters["fired_implausible"] == 0
    assert c.counters["fired"] == 1
    assert [d for d, _ in c.take_fired()] == ["xr-1"]


def test_a_flood_of_ready_statuses_sends_catch_up_once_per_interval(tmp_path: Path) -> None:
    c = _core(tmp_path)
    _, now = _playing(c)
    for i in range(90):  # within the device's message rate, within one interval
        at = now + i * 10 * MS
        c.receive_mqtt("madang/dev/xr-1/status", json.dumps({"state": "ready", "boot": i}).encode(), at)
    assert c.counters["late_joins"] == 1
    assert c.counters["late_joins_limited"] == 89
    later = now + LATE_JOIN_EVERY_NS
    c.receive_mqtt("madang/dev/xr-1/status", b'{"state": "ready", "boot": 5000}', later)
    assert c.counters["late_joins"] == 2  # a device that really reconnects later is caught up


def test_events_count_only_where_a_trigger_listens_and_never_from_device_topics_of_nobody(
    tmp_path: Path,
) -> None:
    c = _core(tmp_path)
    _, now = _playing(c)
    for i in range(1000):
        c.receive_mqtt(f"madang/dev/forged-{i}/status", b'{"state": "ready"}', now)
        c.receive_mqtt(f"random/{i}", b"{}", now)
    assert c.counters["events"] == 0
    assert c.counters["unknown_device"] == 1000
    assert c.counters["events_ignored"] == 1000
    c.receive_mqtt("gate/a/open", b"1", now)
    c.receive_mqtt("gate/b/open", b"1", now)
    assert c.counters["events"] == 2


def test_deep_json_is_malformed_without_a_traceback(tmp_path: Path) -> None:
    c = _core(tmp_path)
    _, now = _playing(c)
    deep = b"[" * 5000 + b"]" * 5000
    c.receive_mqtt("madang/dev/xr-1/status", deep, now)
    c.receive_mqtt("madang/dev/xr-1/fired", b'{"seq": ' + deep + b"}", now)
    assert c.counters["bad_messages"] == 2
    assert wire.decode_report("fired", deep) == wire.Malformed(f"nested deeper than {wire.MAX_JSON_DEPTH}")


def test_json_depth_ignores_brackets_inside_strings() -> None:
    ok = json.dumps({"text": "[" * 100, "a": [[[1]]]}).encode()
    assert wire.json_depth_ok(ok, 4)  # the object and three arrays
    assert not wire.json_depth_ok(ok, 3)
    assert not wire.json_depth_ok(json.dumps([[[[1]]]]).encode(), 3)
    escaped = json.dumps({"text": '\\"' + "[" * 50}).encode()  # an escaped quote does not end it
    assert wire.json_depth_ok(escaped, 2)
    assert isinstance(wire.decode_report("fired", ok), wire.Fired)


def test_one_device_flooding_its_topics_is_dropped_past_its_rate(tmp_path: Path) -> None:
    c = _core(tmp_path)
    _, now = _playing(c)
    burst = c.device_rates.burst
    for _ in range(burst + 500):
        c.receive_mqtt("madang/dev/xr-1/fired", b"{}", now)
    assert c.counters["device_rate_limited"] == 500
    assert c.counters["fired_implausible"] == burst
    c.receive_mqtt("madang/dev/xr-2/fired", b"{}", now)  # another device has its own budget
    assert c.counters["fired_implausible"] == burst + 1


def test_forged_pongs_do_not_use_up_a_devices_budget(tmp_path: Path) -> None:
    c = _core(tmp_path)
    _, now = _playing(c)
    for _ in range(c.device_rates.burst + 100):
        c.receive_mqtt("madang/dev/xr-1/pong", b'{"seq": 1, "t1": 1, "t2": 2, "t3": 3}', now)
    assert c.counters["device_rate_limited"] == 0
    c.receive_mqtt("madang/dev/xr-1/fired", b"{}", now)
    assert c.counters["fired_implausible"] == 1  # its fire reports still get through to be judged


def test_forged_reboots_restart_a_devices_clock_sync_at_most_every_30_s(tmp_path: Path) -> None:
    from controller.core import SYNC_RESTART_EVERY_NS
    from controller.sync.service import SyncService

    (tmp_path / "venue.yaml").write_text(VENUE, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(SHOW, encoding="utf-8")
    timeline, venue = compile_show(tmp_path / "show.yaml")
    c = ControllerCore(timeline, venue, sync=SyncService(venue))
    _, now = _playing(c)
    for i in range(20):  # a new boot every 1.5 s, forged or flapping
        at = now + i * 1_500 * MS
        c.receive_mqtt("madang/dev/xr-1/status", json.dumps({"state": "ready", "boot": i}).encode(), at)
    assert c.counters["late_joins"] == 20  # catch-up state each time (once a second at most)
    assert c.counters["sync_restarts_limited"] == 19  # its clock sync restarted once
    later = now + SYNC_RESTART_EVERY_NS + 1
    c.receive_mqtt("madang/dev/xr-1/status", b'{"state": "ready", "boot": 99}', later)
    assert c.counters["sync_restarts_limited"] == 19


OSC_VENUE = """\
venue: yard
zones: [north]
devices:
  - {id: led-1, kind: display, zone: north, osc: {host: 127.0.0.1, port: 9701}, sync: timetag}
"""

OSC_SHOW = """\
show: Datagrams
venue: venue.yaml
cues:
  - id: one
    actions:
      - osc: {targets: led-1, address: /scene, args: [1]}
"""


def test_datagrams_from_no_device_are_dropped_undecoded_unless_an_osc_trigger_listens(
    tmp_path: Path,
) -> None:
    (tmp_path / "venue.yaml").write_text(OSC_VENUE, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(OSC_SHOW, encoding="utf-8")
    c = ControllerCore(*compile_show(tmp_path / "show.yaml"))
    junk, pong = b"\x00garbage", b"/madang/pong\x00\x00\x00\x00,i\x00\x00\x00\x00\x00\x01"
    for _ in range(100):
        assert c.receive_datagram(junk, ("127.0.0.9", 4000), T0) is False
        assert c.receive_datagram(pong, ("127.0.0.9", 4000), T0) is False
    assert c.counters["osc_unsolicited"] == 200
    assert c.counters["bad_messages"] == 0  # not even parsed
    # From the device's own endpoint a datagram is decoded: junk is malformed.
    assert c.receive_datagram(junk, ("127.0.0.1", 9701), T0) is False
    assert c.counters["osc_malformed"] == 1
    # With an OSC trigger in the show, anyone's datagrams are parsed (they may be its events).
    (tmp_path / "show.yaml").write_text(
        OSC_SHOW + "  - id: two\n    on: {osc: /gate/open}\n    actions:\n"
        "      - osc: {targets: led-1, address: /scene, args: [2]}\n",
        encoding="utf-8",
    )
    c = ControllerCore(*compile_show(tmp_path / "show.yaml"))
    assert c.receive_datagram(junk, ("127.0.0.9", 4000), T0) is False
    assert c.counters["osc_malformed"] == 1 and c.counters["osc_unsolicited"] == 0


def test_one_source_flooding_the_device_port_is_dropped_undecoded_past_its_rate(tmp_path: Path) -> None:
    """With an OSC trigger listening, datagrams from no device are parsed, up to a budget per source."""
    (tmp_path / "venue.yaml").write_text(OSC_VENUE, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(
        OSC_SHOW + "  - id: two\n    on: {osc: /gate/open}\n    actions:\n"
        "      - osc: {targets: led-1, address: /scene, args: [2]}\n",
        encoding="utf-8",
    )
    c = ControllerCore(*compile_show(tmp_path / "show.yaml"))
    burst = c.source_rates.burst
    junk = b"\x00not osc"  # decoded, it counts as malformed
    for _ in range(burst + 300):
        c.receive_datagram(junk, ("10.9.9.9", 4000), T0)
    assert c.counters["source_rate_limited"] == 300
    assert c.counters["osc_malformed"] == burst  # only what fitted the budget was decoded
    c.receive_datagram(junk, ("10.9.9.10", 4000), T0)  # another source has its own budget
    assert c.counters["osc_malformed"] == burst + 1
    c.receive_datagram(junk, ("10.9.9.9", 4000), T0 + S)  # the budget refills at SOURCE_RATE_PER_S
    assert c.counters["osc_malformed"] == burst + 2
    for _ in range(burst + 10):  # a device's own endpoint is limited per device, after decoding
        c.receive_datagram(junk, ("127.0.0.1", 9701), T0)
    assert c.counters["source_rate_limited"] == 300
