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


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MosquittoBroker, dict[str, str]]]:
    """The shipped Han River venue's generated config (plain TCP) in a real Mosquitto."""
    folder = tmp_path_factory.mktemp("han-river-broker")
    for broker in venue_broker(HAN_RIVER, folder, events=("xr/+/ready",)):
        yield broker, read_secrets(folder / "secrets")


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def _login(
    acl_broker: tuple[MosquittoBroker, dict[str, str]], clients: list[Client], user: str, client_id: str = ""
) -> Client:
    broker, secrets = acl_broker
    c = Client(broker.port, client_id=client_id)
    clients.append(c)
    assert c.connect(user, secrets[user]) == 0, f"{user} was refused"
    return c


@pytest.mark.integration
def test_a_device_cannot_publish_a_cue_a_clock_model_or_anothers_pong(
    acl_broker: tuple[MosquittoBroker, dict[str, str]], clients: list[Client]
) -> None:
    ctl = _login(acl_broker, clients, CONTROLLER_USER)
    ctl.subscribe("#")
    dev = _login(acl_broker, clients, "xr-0001")
    forged = [
        (wire.CUE_TOPIC, b'{"forged":"cue to everyone"}'),
        (wire.zone_cue_topic("banpo"), b'{"forged":"zone cue"}'),
        (wire.device_cue_topic("xr-0002"), b'{"forged":"device cue"}'),
        ("madang/dev/xr-0001/clock", b'{"forged":"own clock model"}'),
        ("madang/dev/xr-0002/clock", b'{"forged":"clock model"}'),
        ("madang/dev/xr-0002/pong", b'{"forged":"another device pong"}'),
        ("madang/dev/xr-0002/status", b'{"state":"offline"}'),
        ("xr/xr-0002/ready", b'{"forged":"another device event"}'),
    ]
    for topic, payload in forged:
        dev.publish(topic, payload)
    dev.publish(wire.STATE_TOPIC, b'{"state":"playing","term":99}', retain=True)
    dev.publish("xr/xr-0001/ready", b'{"own":"event"}')  # allowed: its own event
    dev.publish("madang/dev/xr-0001/pong", b'{"seq":1}')  # allowed: the last word
    before = ctl.wait_for("madang/dev/xr-0001/pong", b'{"seq":1}')
    assert [(t, p) for t, p, _ in before] == [("xr/xr-0001/ready", b'{"own":"event"}')]
    # The forged retained state did not replace anything: a new subscriber sees none.
    late = _login(acl_broker, clients, STANDBY_USER)
    late.subscribe(wire.STATE_TOPIC)
    ctl.publish("madang/probe", b"end")
    late.subscribe("madang/probe")
    ctl.publish("madang/probe", b"end2")
    assert not any(t == wire.STATE_TOPIC for t, _, _ in late.wait_for("madang/probe", b"end2"))


@pytest.mark.integration
def test_a_device_reads_only_its_own_and_its_groups_topics(
    acl_broker: tuple[MosquittoBroker, dict[str, str]], clients: list[Client]
) -> None:
    ctl = _login(acl_broker, clients, CONTROLLER_USER)
    dev = _login(acl_broker, clients, "xr-0001")  # zone yeouido, kind xr
    dev.subscribe("#")  # asks for everything; the ACL decides what it gets
    others = [
        (wire.zone_cue_topic("banpo"), b"other zone"),
        (wire.kind_cue_topic("ar"), b"other kind"),
        (wire.device_cue_topic("xr-0002"), b"other device cue"),
        ("madang/dev/xr-0002/ping", b"other ping"),
        ("madang/dev/xr-0002/clock", b"other clock"),
        ("madang/dev/xr-0002/pong", b"other pong"),
        ("xr/xr-0002/scene", b"other show topic"),
    ]
    own = [
        (wire.CUE_TOPIC, b"all"),
        (wire.zone_cue_topic("yeouido"), b"own zone"),
        (wire.kind_cue_topic("xr"), b"own kind"),
        (wire.device_cue_topic("xr-0001"), b"own cue"),
        ("madang/dev/xr-0001/ping", b"own ping"),
        ("madang/dev/xr-0001/clock", b"own clock"),
        ("madang/dev/xr-0001/param/brightness", b"own param"),
    ]
    for topic, payload in others + own:
        ctl.publish(topic, payload)
    ctl.publish(wire.STATE_TOPIC, b"state")
    before = dev.wait_for(wire.STATE_TOPIC, b"state")
    assert [(t, p) for t, p, _ in before] == own


@pytest.mark.integration
def test_anonymous_and_wrong_passwords_get_nothing(
    acl_broker: tuple[MosquittoBroker, dict[str, str]],
) -> None:
    broker, secrets = acl_broker
    anonymous = Client(broker.port)
    try:
        assert anonymous.connect() == 5  # not authorised: no session, nothing to read or write
    finally:
        anonymous.close()
    wrong = Client(broker.port)
    try:
        assert wrong.connect("xr-0001", secrets["xr-0002"]) in (4, 5)
    finally:
        wrong.close()
    nobody = Client(broker.port)
    try:
        assert nobody.connect("intruder", "guess") in (4, 5)
    finally:
        nobody.close()


@pytest.mark.integration
def test_a_device_cannot_take_over_anothers_client_id(
    acl_broker: tuple[MosquittoBroker, dict[str, str]], clients: list[Client]
) -> None:
    ctl = _login(acl_broker, clients, CONTROLLER_USER)
    victim = _login(acl_broker, clients, "xr-0002", client_id="xr-0002")
    victim.subscribe(wire.device_cue_topic("xr-0002"))
    _login(acl_broker, clients, "xr-0001", client_id="xr-0002")  # the client id is forced to xr-0001
    ctl.publish(wire.device_cue_topic("xr-0002"), b"still here")
    victim.wait_for(wire.device_cue_topic("xr-0002"), b"still here")
    assert not victim.disconnected.is_set()
