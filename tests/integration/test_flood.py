"""End to end: a flood of forged device messages on a running ``madang run`` leaves its memory
flat and its show answering (docs/security-controls.md, "Bounds and drop counters").

Hundreds of thousands of MQTT messages, each from a distinct device id that the venue does not
know (``madang/dev/flood-<n>/status|fired|pong``), go through a real Mosquitto to the controller.
A marker between the phases (a real device's ``ready``, answered with catch-up state on its own
topic) says the controller has read everything published before it; its resident memory is read
from /proc at each marker. Every forged message is counted as from no device, none as an event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.conftest import Controller
from tests.integration.test_control import Yard, _start, _stop, yard

pytestmark = [pytest.mark.integration, pytest.mark.slow]
__all__ = ["yard"]

WARM = 50_000  # messages before the first reading (allocator, caches and counters settle)
FLOOD = 150_000  # distinct unknown device ids between the two readings
MAX_GROWTH_MB = 8.0  # one dict entry per id would be 150,000 x ~100 bytes = ~15 MB
MARKER_EVERY_S = 3.0  # QoS 0: the broker or the controller's bounded inbox may shed a marker too
PAYLOADS = {
    "status": b'{"state": "ready", "boot": 1}',
    "fired": b'{"show": "Yard Control", "cue": "one", "seq": 1, "local": 1}',
    "pong": b'{"seq": 1, "t1": 1, "t2": 2, "t3": 3}',
}
KINDS = tuple(PAYLOADS)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc status")


def _catch_ups(yard: Yard) -> int:
    """Catch-up state messages sent to xr-1 (the answer to its ``ready`` while playing)."""
    n = 0
    for m in yard.obs.messages("madang/cue/dev/xr-1"):
        body = m.body
        if isinstance(body, dict) and "state" in body.get("op", {}):
            n += 1
    return n


def test_a_flood_of_forged_device_ids_leaves_memory_flat(
    yard: Yard, controllers: Callable[..., Controller]
) -> None:
    ctl = _start(yard, controllers)
    ctl.wait_ready()
    assert ctl.command("/go")["status"] == "ok"
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="flood")
    pub.connect("127.0.0.1", yard.broker.port)
    pub.loop_start()
    try:

        def flood(start: int, n: int) -> None:
            for i in range(start, start + n):
                kind = KINDS[i % 3]
                pub.publish(f"madang/dev/flood-{i}/{kind}", PAYLOADS[kind])

        boots = iter(range(1, 1_000))

        def marker() -> float:
            """Say xr-1 is ready until its catch-up comes back: every message before it was read.

            A shed marker is said again (a later boot, past the late-join limit), as a device would.
            """
            before = _catch_ups(yard)
            deadline = time.monotonic() + 120
            while True:
                pub.publish("madang/dev/xr-1/status", json.dumps({"state": "ready", "boot": next(boots)}))
                try:
                    ctl.until(lambda: _catch_ups(yard) > before, "xr-1's catch-up", timeout=MARKER_EVERY_S)
                    return _rss_mb(ctl.proc.pid)
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise AssertionError("the controller did not read the flood in 2 min") from None

        flood(0, WARM)
        first = marker()
        flood(WARM, FLOOD)
        second = marker()
    finally:
        pub.loop_stop()
        pub.disconnect()
    print(f"rss {first:.1f} MB -> {second:.1f} MB")
    assert second - first < MAX_GROWTH_MB, (first, second)
    assert ctl.command("/state")["data"]["state"] == "playing"
    report = _stop(ctl, yard)
    counters = report["counters"]
    assert isinstance(counters, dict)
    # QoS 0: the broker may shed some under load, but what arrived was all refused as from nobody.
    assert counters["unknown_device"] >= (WARM + FLOOD) // 2, counters
    print({k: counters[k] for k in ("unknown_device", "events", "events_ignored", "fired")})
    assert counters["events"] == 0 and counters["fired"] == 0, counters
