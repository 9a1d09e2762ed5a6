"""The bridge plan (controller/bridgeconf.py): each leaf's routes come from the protocol's topics,
carry no other leaf's devices, and a bad layout is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller import wire
from controller.bridgeconf import BridgeError, bridge_plan, parse_leaves
from madang.cli import main
from venues.loader import find_venue, load_venue

VENUE = load_venue(find_venue("han-river", None))
ZONES = sorted({d.zone for d in VENUE.devices if d.mqtt is not None})


def test_one_leaf_per_zone_by_default_each_with_only_its_devices() -> None:
    plan = bridge_plan(VENUE, "10.0.0.10:1883")
    assert sorted(plan.routes) == ZONES
    for name, r in plan.routes.items():
        inbound = dict(r.inbound)
        assert inbound[wire.CUE_TOPIC] == 1 and inbound[wire.STATE_TOPIC] == 1
        assert wire.zone_cue_topic(name) in inbound
        others = [z for z in ZONES if z != name]
        assert not any(wire.zone_cue_topic(z) in inbound for z in others)
        theirs = {d.topic_root for d in VENUE.devices if d.mqtt is not None and d.zone != name}
        assert not any(t.startswith(root + "/") for t in inbound for root in theirs)
        mine = [d for d in VENUE.devices if d.mqtt is not None and d.zone == name]
        assert len(r.devices) == len(mine)
        assert inbound[f"{mine[0].topic_root}/ping"] == 0  # QoS 0, as the protocol says
        assert dict(r.outbound)[f"{mine[0].topic_root}/status"] == 1
        assert "address 10.0.0.10:1883" in plan.confs[name]
        assert "cleansession false" in plan.confs[name]  # the hub queues for a cut leaf


@pytest.mark.parametrize(
    ("specs", "words"),
    [
        (["a"], "is not NAME=ZONE"),
        (["a=nowhere"], "has no zone 'nowhere'"),
        ([f"a={ZONES[0]}", f"b={ZONES[0]}"], "is on leaves"),
        ([f"a={ZONES[0]}"], "are on no leaf"),
        ([f"a/b={','.join(ZONES)}"], "may not hold"),
    ],
)
def test_a_bad_leaf_layout_says_what_and_what_to_do(specs: list[str], words: str) -> None:
    with pytest.raises(BridgeError) as err:
        parse_leaves(specs, VENUE)
    assert words in str(err.value) and ";" in str(err.value)


def test_a_bad_hub_address_is_refused() -> None:
    with pytest.raises(BridgeError, match="HOST:PORT"):
        bridge_plan(VENUE, "10.0.0.10")


def test_broker_config_bridge_writes_a_leaf_per_layout_and_their_bridge_identities(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "broker"
    spec = f"north={ZONES[0]},{ZONES[1]}"
    rc = main(
        [
            "broker-config",
            "han-river",
            "-o",
            str(out),
            "--bridge",
            "10.0.0.10:1883",
            "--leaf",
            spec,
            "--leaf",
            f"south={','.join(ZONES[2:])}",
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in out.glob("leaf-*.conf")) == ["leaf-north.conf", "leaf-south.conf"]
    assert (out / "leaf-north.conf").stat().st_mode & 0o077 == 0  # it holds the bridge's password
    secrets = (out / "secrets").read_text()
    assert "madang-bridge-north " in secrets and "madang-bridge-south " in secrets
    acl = (out / "acl").read_text()
    assert "user madang-bridge-north" in acl
    assert "leaf north:" in capsys.readouterr().out
    assert main(["broker-config", "han-river", "-o", str(out), "--leaf", spec]) == 2
