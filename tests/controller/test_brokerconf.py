"""``madang broker-config``: a venue's broker policy, as files and in a real Mosquitto.

The ACL tests run the shipped venue's generated configuration (config/venues/han-river.yaml) in
a real Mosquitto and talk to it over real sockets with paho clients logged in as the controller
and as devices. A publish the ACL denies is still acknowledged by the broker (MQTT 3.1.1 cannot
refuse one) and dropped; so each check ends with a publish that *is* allowed, on the same
connection, and looks at what arrived before it: messages from one client reach a subscriber in
order, so a denied one that got through would be there.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller import wire
from controller.brokerconf import (
    CONTROLLER_USER,
    STANDBY_USER,
    BrokerConfigError,
    broker_policy,
    device_identities,
    event_grants,
    hash_password,
    read_secrets,
    verify_password,
    write_broker_config,
)
from controller.topics import device_report_topics, device_topics
from simulators.broker import MosquittoBroker
from tests.brokers import Client, venue_broker
from venues.loader import find_venue, load_venue
from venues.model import Device, MqttEndpoint, Sync, Venue

pytestmark = pytest.mark.timeout(120)

HAN_RIVER = load_venue(find_venue("han-river"))


# -- the files -----------------------------------------------------------------------------------


def test_hash_is_mosquitto_passwd_format() -> None:
    hashed = hash_password("s3cret")
    assert hashed.startswith("$7$101$")
    assert verify_password("s3cret", hashed)
    assert not verify_password("s3cret!", hashed)
    assert not verify_password("s3cret", "$6$not-pbkdf2")


def test_hash_verifies_a_mosquitto_passwd_line(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed (apt-get install mosquitto)")
    pw = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(pw), "alice", "open sesame"], check=True)
    theirs = pw.read_text().strip().split(":", 1)[1]
    assert verify_password("open sesame", theirs)
    assert not verify_password("open sesame ", theirs)


def _acl_blocks(acl: str) -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    user = None
    for line in acl.splitlines():
        if line.startswith("user "):
            user = line[5:]
            blocks[user] = []
        elif line.startswith(("topic ", "pattern ")):
            assert user is not None, f"an ACL line for anonymous clients: {line}"
            blocks[user].append(line)
    return blocks


def test_acl_comes_from_the_protocol_topics(tmp_path: Path) -> None:
    policy = broker_policy(HAN_RIVER, tmp_path, events=["xr/+/ready"])
    blocks = _acl_blocks(policy.acl)
    devices = device_identities(HAN_RIVER)
    assert len(devices) == 1200  # the headsets: the OSC displays do not log in to the broker
    assert set(blocks) == {CONTROLLER_USER, STANDBY_USER, *(d.id for d in devices)}
    assert blocks[CONTROLLER_USER] == blocks[STANDBY_USER] == ["topic readwrite #"]
    for d in devices:
        writes = [line.split(" ", 2)[2] for line in blocks[d.id] if line.startswith("topic write ")]
        reads = [line.split(" ", 2)[2] for line in blocks[d.id] if line.startswith("topic read ")]
        assert writes == [*device_report_topics(d), f"xr/{d.id}/ready"]
        assert reads == [*device_topics(d), f"{d.topic_root}/param/#"]
        assert not any(line.startswith("topic readwrite") for line in blocks[d.id])
    d = HAN_RIVER.device("xr-0401")
    assert f"topic read {wire.zone_cue_topic('banpo')}" in blocks["xr-0401"]
    assert f"topic read {wire.zone_cue_topic('yeouido')}" not in blocks["xr-0401"]
    assert f"topic write {d.topic_root}/pong" in blocks["xr-0401"]


def test_event_grants_name_the_device_at_each_wildcard() -> None:
    d = Device("ph-1", "phone", "north", Sync.APP, mqtt=MqttEndpoint("madang/dev/ph-1"))
    assert event_grants(d, ["xr/+/ready"]) == ["xr/ph-1/ready"]
    assert event_grants(d, ["madang/audience/+/+/vote/red"]) == [
        "madang/audience/ph-1/+/vote/red",
        "madang/audience/+/ph-1/vote/red",
    ]
    assert event_grants(d, ["stage/go", "stage/#"]) == []  # names no device: controllers only


def test_conf_locks_the_broker_and_points_at_the_files(tmp_path: Path) -> None:
    policy = broker_policy(HAN_RIVER, tmp_path, port=8883, bind="127.0.0.1")
    lines = policy.conf.splitlines()
    assert "allow_anonymous false" in lines
    assert f"password_file {tmp_path.resolve() / 'passwd'}" in lines
    assert f"acl_file {tmp_path.resolve() / 'acl'}" in lines
    assert "use_username_as_clientid true" in lines
    assert "listener 8883 127.0.0.1" in lines


def test_written_files_keep_secrets_private_and_passwords_stable(tmp_path: Path) -> None:
    first = write_broker_config(HAN_RIVER, tmp_path)
    secrets_file = tmp_path / "secrets"
    for secret in (
        secrets_file,
        tmp_path / f"{CONTROLLER_USER}.password",
        tmp_path / f"{STANDBY_USER}.password",
    ):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert read_secrets(secrets_file) == dict(first.passwords)
    assert (tmp_path / f"{CONTROLLER_USER}.password").read_text().strip() == first.passwords[CONTROLLER_USER]
    passwd = (tmp_path / "passwd").read_text()
    for name, pw in first.passwords.items():
        assert pw not in passwd  # only hashes there
        line = next(x for x in passwd.splitlines() if x.startswith(f"{name}:"))
        assert verify_password(pw, line.split(":", 1)[1])
    assert len(set(first.passwords.values())) == len(first.passwords)  # one password each
    again = write_broker_config(HAN_RIVER, tmp_path)
    assert dict(again.passwords) == dict(first.passwords)  # a regeneration keeps the headsets' passwords
    assert repr(first).count(first.passwords[CONTROLLER_USER]) == 0


def test_a_device_named_like_a_controller_is_refused(tmp_path: Path) -> None:
    rogue = Device(
        "madang-controller", "xr", "z", Sync.APP, mqtt=MqttEndpoint("madang/dev/madang-controller")
    )
    venue = Venue("v", "v", ("z",), "mqtt://127.0.0.1:1883", (rogue,), {})
    with pytest.raises(BrokerConfigError, match="reserved for the controllers"):
        broker_policy(venue, tmp_path)


# -- the policy in a real Mosquitto -----------------------------------------------------------------

SHIPPED = sorted((Path(__file__).resolve().parents[2] / "config" / "venues").glob("*.yaml"))


@dataclass
class Site:
    """A shipped venue's generated config running in a real Mosquitto, and who is who there: a
    device ``dev``, a device ``other`` of another zone, and a kind ``dev`` is not."""

    venue: Venue
    broker: MosquittoBroker
    secrets: dict[str, str]
    dev: Device
    other: Device
    other_kind: str


@pytest.fixture(scope="module", params=SHIPPED, ids=[p.stem for p in SHIPPED])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Each shipped venue's generated config (plain TCP) in a real Mosquitto."""
    venue = load_venue(request.param)
    folder = tmp_path_factory.mktemp(f"{venue.id}-broker")
    devices = device_identities(venue)
    dev = devices[0]
    other = next(d for d in devices if d.zone != dev.zone)
    other_kind = next(d.kind for d in venue.devices if d.kind != dev.kind)
    events = (f"{dev.kind}/+/ready",)
    for broker in venue_broker(venue, folder, events=events):
        yield Site(venue, broker, read_secrets(folder / "secrets"), dev, other, other_kind)


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def _login(site: Site, clients: list[Client], user: str, client_id: str = "") -> Client:
    c = Client(site.broker.port, client_id=client_id)
    clients.append(c)
    assert c.connect(user, site.secrets[user]) == 0, f"{user} was refused"
    return c


@pytest.mark.integration
def test_a_device_cannot_publish_a_cue_a_clock_model_or_anothers_pong(
    site: Site, clients: list[Client]
) -> None:
    dev, other = site.dev, site.other
    ctl = _login(site, clients, CONTROLLER_USER)
    ctl.subscribe("#")
    me = _login(site, clients, dev.id)
    forged = [
        (wire.CUE_TOPIC, b'{"forged":"cue to everyone"}'),
        (wire.zone_cue_topic(dev.zone), b'{"forged":"cue to its own zone"}'),
        (wire.zone_cue_topic(other.zone), b'{"forged":"zone cue"}'),
        (wire.device_cue_topic(dev.id), b'{"forged":"its own cue"}'),
        (wire.device_cue_topic(other.id), b'{"forged":"device cue"}'),
        (f"{dev.topic_root}/clock", b'{"forged":"own clock model"}'),
        (f"{other.topic_root}/clock", b'{"forged":"clock model"}'),
        (f"{other.topic_root}/ping", b'{"forged":"ping"}'),
        (f"{other.topic_root}/pong", b'{"forged":"another device pong"}'),
        (f"{other.topic_root}/status", b'{"state":"offline"}'),
        (f"{dev.kind}/{other.id}/ready", b'{"forged":"another device event"}'),
    ]
    for topic, payload in forged:
        me.publish(topic, payload)
    me.publish(wire.STATE_TOPIC, b'{"state":"playing","term":99}', retain=True)
    me.publish(f"{dev.kind}/{dev.id}/ready", b'{"own":"event"}')  # allowed: its own event
    me.publish(f"{dev.topic_root}/pong", b'{"seq":1}')  # allowed: the last word
    before = ctl.wait_for(f"{dev.topic_root}/pong", b'{"seq":1}')
    assert [(t, p) for t, p, _ in before] == [(f"{dev.kind}/{dev.id}/ready", b'{"own":"event"}')]
    # The forged retained state did not replace anything: a new subscriber sees none.
    late = _login(site, clients, STANDBY_USER)
    late.subscribe(wire.STATE_TOPIC)
    late.subscribe("madang/probe")
    ctl.publish("madang/probe", b"end")
    assert not any(t == wire.STATE_TOPIC for t, _, _ in late.wait_for("madang/probe", b"end"))


@pytest.mark.integration
def test_a_device_reads_only_its_own_and_its_groups_topics(site: Site, clients: list[Client]) -> None:
    dev, other = site.dev, site.other
    ctl = _login(site, clients, CONTROLLER_USER)
    me = _login(site, clients, dev.id)
    me.subscribe("#")  # asks for everything; the ACL decides what it gets
    others = [
        (wire.zone_cue_topic(other.zone), b"other zone"),
        (wire.kind_cue_topic(site.other_kind), b"other kind"),
        (wire.device_cue_topic(other.id), b"other device cue"),
        (f"{other.topic_root}/ping", b"other ping"),
        (f"{other.topic_root}/clock", b"other clock"),
        (f"{other.topic_root}/pong", b"other pong"),
        (f"{dev.kind}/{other.id}/scene", b"other show topic"),
    ]
    own = [
        (wire.CUE_TOPIC, b"all"),
        (wire.zone_cue_topic(dev.zone), b"own zone"),
        (wire.kind_cue_topic(dev.kind), b"own kind"),
        (wire.device_cue_topic(dev.id), b"own cue"),
        (f"{dev.topic_root}/ping", b"own ping"),
        (f"{dev.topic_root}/clock", b"own clock"),
        (f"{dev.topic_root}/param/brightness", b"own param"),
    ]
    for topic, payload in others + own:
        ctl.publish(topic, payload)
    ctl.publish(wire.STATE_TOPIC, b"state")
    before = me.wait_for(wire.STATE_TOPIC, b"state")
    assert [(t, p) for t, p, _ in before] == own


@pytest.mark.integration
def test_anonymous_and_wrong_passwords_get_nothing(site: Site) -> None:
    for user, password in [(None, None), (site.dev.id, site.secrets[site.other.id]), ("intruder", "guess")]:
        c = Client(site.broker.port)
        try:
            rc = c.connect(user, password)
        finally:
            c.close()
        assert rc == 5 if user is None else rc in (4, 5), (user, rc)  # refused: no session at all


@pytest.mark.integration
def test_a_device_cannot_take_over_anothers_client_id(site: Site, clients: list[Client]) -> None:
    ctl = _login(site, clients, CONTROLLER_USER)
    victim = _login(site, clients, site.other.id, client_id=site.other.id)
    victim.subscribe(wire.device_cue_topic(site.other.id))
    _login(site, clients, site.dev.id, client_id=site.other.id)  # the client id is forced to its own
    ctl.publish(wire.device_cue_topic(site.other.id), b"still here")
    victim.wait_for(wire.device_cue_topic(site.other.id), b"still here")
    assert not victim.disconnected.is_set()
