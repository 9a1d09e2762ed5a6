"""simulators.topology: the bridge configuration, and a real bridged star's routing and faults.

The show-level tests (a whole show through a leaf restart, a bridge drop, a hub restart, a NATS
node restart) are tests/integration/test_topologies.py; here, what a device and the controller
see at the MQTT level, with paho clients on the hub and on the leaves.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators import topology
from simulators.topology import BRIDGE_TOPICS, Topology, TopologyUnavailable, bridge_config, start_topology
from venues.model import Device, Sync


def test_bridge_config_carries_the_topic_tree_by_direction() -> None:
    conf = bridge_config(index=2, listen_port=1884, hub_port=1883).splitlines()
    assert "address 127.0.0.1:1883" in conf and "listener 1884 127.0.0.1" in conf
    # controller -> devices in from the hub, devices -> controller out to it, QoS 1 but pings
    assert "topic madang/cue/# in 1" in conf
    assert "topic madang/dev/+/ping in 0" in conf
    assert "topic madang/controller/state in 1" in conf
    assert "topic madang/dev/+/pong out 0" in conf and "topic madang/dev/+/fired out 1" in conf
    # the settings docs/mqtt.md explains: a session that survives a drop, a fast redial
    for line in ("cleansession false", "try_private true", "restart_timeout 1 2", "set_tcp_nodelay true"):
        assert line in conf, line
    assert "remote_clientid madang-leaf-2" in conf
    assert {t.direction for t in BRIDGE_TOPICS} == {"in", "out"}


def test_unknown_kind_and_missing_nats_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="single, bridged, nats"):
        start_topology("mesh")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(topology, "_NATS_DIRS", ("/nonexistent",))
    with pytest.raises(TopologyUnavailable, match="apt-get install nats-server"):
        start_topology("nats")


class _Client:
    """A paho client that records what it receives (topic, payload, retain)."""

    def __init__(self, url: str, name: str, subs: tuple[str, ...] = ()) -> None:
        self.got: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=name)
        self.c.on_message = self._on_message
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *_: subscribed.set()
        self.c.connect("127.0.0.1", int(url.rsplit(":", 1)[1]))
        self.c.loop_start()
        if subs:
            self.c.subscribe([(s, 1) for s in subs])
            assert subscribed.wait(5), f"{name}: no SUBACK"

    def _on_message(self, _c: object, _u: object, m: paho.MQTTMessage) -> None:
        with self._lock:
            self.got.append((m.topic, bytes(m.payload), bool(m.retain)))

    def payloads(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.got if t == topic]

    def wait_for(self, topic: str, payload: bytes, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if payload in self.payloads(topic):
                return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def star() -> Iterator[Topology]:
    try:
        topo = start_topology("bridged", leaves=2)
    except TopologyUnavailable as exc:
        pytest.skip(str(exc))
    with topo:
        yield topo


@pytest.mark.integration
def test_bridged_star_routes_retains_and_replays_once(star: Topology) -> None:
    assert len(star.leaf_urls) == 2 and star.hub_url not in star.leaf_urls
    assert len(star.pids()) == 3 and len(star.relay_pids()) == 2
    devices = [
        Device(id=f"d{i}", kind="xr", zone=z, sync=Sync.APP) for i, z in enumerate(["a", "b", "a", "c"])
    ]
    assert star.device_brokers(devices) == {
        "d0": star.leaf_urls[0],
        "d1": star.leaf_urls[1],
        "d2": star.leaf_urls[0],
        "d3": star.leaf_urls[0],
    }
    clients: list[_Client] = []
    try:
        ctl = _Client(star.hub_url, "ctl", ("madang/dev/+/pong",))
        clients.append(ctl)
        watch = _Client(star.leaf_urls[1], "watch", ("madang/controller/state",))
        clients.append(watch)
        ctl.c.publish("madang/controller/state", b"S1", qos=1, retain=True).wait_for_publish(5)
        assert watch.wait_for("madang/controller/state", b"S1")  # it has crossed the bridge
        dev = _Client(star.leaf_urls[1], "d1", ("madang/cue/#", "madang/controller/state"))
        clients.append(dev)
        # The leaf serves the controller state, retained, to a device that joins it.
        assert dev.wait_for("madang/controller/state", b"S1")
        assert ("madang/controller/state", b"S1", True) in dev.got
        # Cues in, pongs out.
        ctl.c.publish("madang/cue", b"c1", qos=1)
        assert dev.wait_for("madang/cue", b"c1")
        dev.c.publish("madang/dev/d1/pong", b"p1", qos=0)
        assert ctl.wait_for("madang/dev/d1/pong", b"p1")

        # A cue published while the bridge is cut waits in its session on the hub, and is
        # delivered once when the bridge has redialled.
        star.drop_bridge(1)
        ctl.c.publish("madang/cue", b"during", qos=1).wait_for_publish(5)
        time.sleep(0.2)
        assert dev.payloads("madang/cue") == [b"c1"]
        star.heal_bridge(1)
        assert dev.wait_for("madang/cue", b"during")
        time.sleep(0.5)
        assert dev.payloads("madang/cue") == [b"c1", b"during"]

        # A restarted leaf has lost its retained messages; its bridge brings them back from
        # the hub, so a device joining it after the restart is still told the state.
        before = star.pids()
        star.restart_leaf(1, down_s=0.1)
        assert star.pids() != before
        late = _Client(star.leaf_urls[1], "late", ("madang/controller/state",))
        clients.append(late)
        assert late.wait_for("madang/controller/state", b"S1")
    finally:
        for c in clients:
            c.close()
    with start_topology("single") as single, pytest.raises(NotImplementedError, match="no bridge"):
        single.drop_bridge(0)


@pytest.mark.integration
def test_stop_ends_every_process(star: Topology) -> None:
    procs = star.pids() + star.relay_pids()
    star.stop()
    star.stop()  # idempotent
    time.sleep(0.1)
    for pid in procs:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
