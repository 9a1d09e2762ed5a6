"""``madang bench fanout`` (madang/bench/fanout.py) at 20 headsets: the show plays over real
sockets to headsets in two child processes on a single Mosquitto and on bridged ones, every
headset fires, and the per-device message counts add up. Figures at scale: docs/benchmarks.md."""

from __future__ import annotations

from typing import Any

import pytest

from madang.bench.fanout import FanoutError, run
from simulators.broker import BrokerNotFound
from simulators.topology import TopologyUnavailable
from tests.conftest import missing_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

FIELDS = {
    "topology",
    "devices",
    "cues",
    "fanout_ms",
    "fired",
    "missed",
    "spread_p99_us",
    "msgs_per_device_per_cue",
    "msgs_per_device_per_min",
    "brokers",
    "broker_cpu_s",
    "loadavg_before",
    "loadavg_after",
}


def _run(topology: str) -> dict[str, Any]:
    try:
        return run(topology=topology, devices=20, duration_s=8.0, processes=2)
    except (TopologyUnavailable, BrokerNotFound) as exc:
        missing_tool(str(exc), "mosquitto")


def _check_common(out: dict[str, Any]) -> None:
    assert out.keys() >= FIELDS
    assert out["mqtt_headsets"] == 20 and out["processes"] == 2
    assert out["devices_fired"] == 20  # every headset, in both child processes, fired
    assert out["missed"] == 0
    assert out["cues"] >= 1 and out["fanout_ms"]["messages"] == out["cues"]
    assert 0 < out["fanout_ms"]["p50"] <= out["fanout_ms"]["max"]
    msgs = out["msgs"]
    # Every device received each group cue message as often as the controller sent it (each is
    # repeated once), and answered each ping it got.
    assert out["cue_sends"] >= out["cues"]
    assert msgs["in_cue"] == 20 * out["cue_sends"]
    assert out["msgs_per_device_per_cue"]["in_cue"] >= 1.0
    assert 0 < msgs["out_pong"] <= msgs["in_ping"]
    assert msgs["in_model"] >= 20 and msgs["in_state"] >= 20
    assert out["broker_cpu_s"] >= 0 and all(b["cpu_s"] >= 0 for b in out["brokers"])


def test_fanout_single_broker() -> None:
    out = _run("single")
    _check_common(out)
    assert [b["role"] for b in out["brokers"]] == ["single"]
    sys_ = out["brokers"][0]["sys_messages"]
    assert sys_["sent"] > 0 and sys_["received"] > 0


def test_fanout_bridged_every_leaf_carries_its_zone() -> None:
    out = _run("bridged")
    _check_common(out)
    roles = [b["role"] for b in out["brokers"]]
    assert roles == ["hub", "leaf", "leaf", "leaf"]
    # The hub and every leaf moved messages: each zone's headsets are on their own leaf.
    assert all(b["sys_messages"].get("sent", 0) > 0 for b in out["brokers"])


def test_fanout_refuses_an_unknown_topology() -> None:
    with pytest.raises(FanoutError, match="choose one of"):
        run(topology="mesh", devices=1)
