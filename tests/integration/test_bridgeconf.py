"""``madang broker-config --bridge``: a hub and two leaf brokers, as generated for a shipped venue,
in real Mosquittos. Each leaf carries its own devices' topics and the group topics, and nothing
of the other leaf's devices; a device's report reaches the controller at the hub; a retained
clock model is served by the leaf.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import wire
from controller.brokerconf import CONTROLLER_USER, read_secrets, write_broker_config
from simulators.broker import BrokerNotFound, MosquittoBroker
from tests.brokers import Client, free_port
from venues.loader import find_venue, load_venue
from venues.model import Device

pytestmark = pytest.mark.integration

VENUE = load_venue(find_venue("han-river", None))


def _device(zone: str) -> Device:
    return next(d for d in VENUE.devices if d.mqtt is not None and d.zone == zone)


@pytest.fixture(scope="module")
def star(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MosquittoBroker, dict[str, MosquittoBroker], Path]]:
    folder = tmp_path_factory.mktemp("star")
    zones = sorted({d.zone for d in VENUE.devices if d.mqtt is not None})
    leaves = {"a": (zones[0],), "b": tuple(zones[1:])}
    hub_port = free_port()
    write_broker_config(
        VENUE, folder, port=hub_port, bind="127.0.0.1", bridge_hub=f"127.0.0.1:{hub_port}", leaves=leaves
    )
    started: list[MosquittoBroker] = []
    try:
        hub = MosquittoBroker(config=folder / "mosquitto.conf", port=hub_port)
        started.append(hub)
        hub.start()
        out: dict[str, MosquittoBroker] = {}
        for name in leaves:
            port = free_port()
            conf = folder / f"leaf-{name}.conf"
            text = conf.read_text(encoding="utf-8")
            conf.write_text(re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", text, flags=re.M))
            leaf = MosquittoBroker(config=conf, port=port)
            started.append(leaf)
            leaf.start()
            out[name] = leaf
    except BrokerNotFound as exc:
        pytest.skip(str(exc))
    try:
        yield hub, out, folder
    finally:
        for b in started:
            b.close()


def test_each_leaf_carries_only_its_own_devices_and_the_groups(
    star: tuple[MosquittoBroker, dict[str, MosquittoBroker], Path],
) -> None:
    hub, leaves, folder = star
    secrets = read_secrets(folder / "secrets")
    zones = sorted({d.zone for d in VENUE.devices if d.mqtt is not None})
    mine, other = _device(zones[0]), _device(zones[1])
    made: list[Client] = []

    def login(port: int, user: str) -> Client:
        c = Client(port)
        made.append(c)
        assert c.connect(user, secrets[user]) == 0, f"{user} refused on port {port}"
        return c

    try:
        ctl = login(hub.port, CONTROLLER_USER)
        ctl.subscribe("madang/bridge/+/state")
        ctl.subscribe(f"{mine.topic_root}/pong")
        for name in leaves:  # the bridges say they are up (retained notification, "1")
            ctl.wait_for(f"madang/bridge/{name}/state", b"1")
        spy = login(leaves["a"].port, CONTROLLER_USER)  # sees everything that reaches leaf a
        spy.subscribe("#")
        dev = login(leaves["a"].port, mine.id)
        dev.subscribe(f"{mine.topic_root}/ping")

        sent = [
            (f"{mine.topic_root}/ping", b"mine"),
            (f"{other.topic_root}/ping", b"other"),
            (wire.device_cue_topic(other.id), b"other"),
            (wire.zone_cue_topic(other.zone), b"other zone"),
            (wire.zone_cue_topic(mine.zone), b"my zone"),
            (f"{mine.topic_root}/clock", b"my model"),
        ]
        for topic, payload in sent:
            ctl.publish(topic, payload, retain=topic.endswith("/clock"))
        ctl.publish(wire.CUE_TOPIC, b"end")
        seen = {(t, p) for t, p, _ in spy.wait_for(wire.CUE_TOPIC, b"end")}
        assert (f"{mine.topic_root}/ping", b"mine") in seen
        assert (wire.zone_cue_topic(mine.zone), b"my zone") in seen
        assert (f"{mine.topic_root}/clock", b"my model") in seen
        assert not {(t, p) for t, p in seen if p.startswith(b"other")}, "another leaf's traffic crossed"
        dev.wait_for(f"{mine.topic_root}/ping", b"mine")

        dev.publish(f"{mine.topic_root}/pong", b'{"seq":1}')  # leaf -> hub
        ctl.wait_for(f"{mine.topic_root}/pong", b'{"seq":1}')

        late = login(leaves["a"].port, mine.id)  # the leaf serves the retained model itself
        late.subscribe(f"{mine.topic_root}/clock")
        got = late.wait_for(f"{mine.topic_root}/clock", b"my model")
        assert got == []
    finally:
        for c in made:
            c.close()
