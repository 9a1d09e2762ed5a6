"""The controller's broker connection over TLS with credentials, against a real Mosquitto running a
venue's generated config (``madang broker-config`` with a TLS listener) and certificates this test
makes (``cryptography``): the link logs in with a password and a client certificate; a broker it
cannot verify, a missing client certificate and a wrong password are refused; and a whole
``madang run --simulate`` plays through the ACL'd TLS broker, the simulated headsets logging in
with their own identities, without the password ever reaching the log."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.brokerconf import CONTROLLER_USER, read_secrets
from controller.mqtt import MqttLink, broker_login
from simulators.broker import MosquittoBroker
from tests.brokers import Pki, make_pki, venue_broker
from venues.broker import PASSWORD_ENV, BrokerFiles
from venues.loader import load_venue

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SIM = Path(__file__).resolve().parents[1] / "data" / "sim"
SIM_YARD = SIM / "sim-yard.yaml"
SIM_VENUE = load_venue(SIM / "sim-yard-venue.yaml")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[tuple[MosquittoBroker, Path]]:
    """The sim-yard venue's broker: TLS, client certificates required, passwords, the ACL."""
    folder = tmp_path_factory.mktemp("mtls-broker")
    for broker in venue_broker(SIM_VENUE, folder, pki=pki, require_certificate=True):
        yield broker, folder


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[tuple[MosquittoBroker, Path]]:
    """The sim-yard venue's broker: TLS (no client certificate asked), passwords, the ACL."""
    folder = tmp_path_factory.mktemp("tls-broker")
    for broker in venue_broker(SIM_VENUE, folder, pki=pki):
        yield broker, folder


async def _round_trip(link: MqttLink, topic: str, timeout: float = 15.0) -> bool:
    """Run the link; subscribe to ``topic`` and publish on it; True once our message came back."""
    got: list[bytes] = []
    link.subscribe(topic, 1)
    link.on_message(lambda t, p, ns: got.append(p) if t == topic else None)
    task = asyncio.create_task(link.run())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not link.connected and loop.time() < deadline:
            await asyncio.sleep(0.01)
        link.publish(topic, b"over tls", qos=1)
        while not got and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return got == [b"over tls"]
    finally:
        await link.close(timeout=1.0)
        await asyncio.wait_for(task, 10)


async def _failures(link: MqttLink, at_least: int = 2, timeout: float = 15.0) -> int:
    """Run the link until it has failed to connect ``at_least`` times; returns the count."""
    task = asyncio.create_task(link.run())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while link.stats.connect_failures < at_least and loop.time() < deadline:
            assert not link.connected, "the broker accepted a login it should refuse"
            await asyncio.sleep(0.01)
        assert not link.connected
        return link.stats.connect_failures
    finally:
        await link.close(timeout=0.5)
        await asyncio.wait_for(task, 10)


def _url(broker: MosquittoBroker, user: str = CONTROLLER_USER) -> str:
    return f"mqtts://{user}@127.0.0.1:{broker.port}"


def test_the_link_logs_in_with_a_password_and_a_client_certificate(
    mtls_broker: tuple[MosquittoBroker, Path], pki: Pki
) -> None:
    broker, folder = mtls_broker
    url = _url(broker)
    files = BrokerFiles(
        str(pki.ca), str(pki.client_cert), str(pki.client_key), str(folder / f"{CONTROLLER_USER}.password")
    )
    link = MqttLink(url, client_id="ctl", login=broker_login(url, files, environ={}), backoff=(0.05, 0.2))
    assert asyncio.run(_round_trip(link, "xr/xr-1/scene"))


def test_a_broker_signed_by_another_ca_is_not_trusted(
    mtls_broker: tuple[MosquittoBroker, Path], pki: Pki
) -> None:
    broker, folder = mtls_broker
    url = _url(broker)
    files = BrokerFiles(
        str(pki.other_ca),
        str(pki.client_cert),
        str(pki.client_key),
        str(folder / f"{CONTROLLER_USER}.password"),
    )
    link = MqttLink(url, client_id="ctl", login=broker_login(url, files, environ={}), backoff=(0.05, 0.2))
    assert asyncio.run(_failures(link)) >= 2


def test_without_a_client_certificate_the_broker_refuses(
    mtls_broker: tuple[MosquittoBroker, Path], pki: Pki
) -> None:
    broker, folder = mtls_broker
    url = _url(broker)
    files = BrokerFiles(str(pki.ca), password_file=str(folder / f"{CONTROLLER_USER}.password"))
    link = MqttLink(url, client_id="ctl", login=broker_login(url, files, environ={}), backoff=(0.05, 0.2))
    assert asyncio.run(_failures(link)) >= 2


def test_a_wrong_password_is_an_error_for_the_operator_that_never_shows_the_password(
    tls_broker: tuple[MosquittoBroker, Path], pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    broker, _ = tls_broker
    url = _url(broker)
    wrong = "not-the-password-4711"
    login = broker_login(url, BrokerFiles(str(pki.ca)), environ={PASSWORD_ENV: wrong})
    link = MqttLink(url, client_id="ctl", login=login, backoff=(0.05, 0.2))
    with caplog.at_level(logging.DEBUG):
        assert asyncio.run(_failures(link, at_least=3)) >= 3
    refusals = [r for r in caplog.records if "refused the login" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.ERROR  # once per outage
    assert wrong not in caplog.text


def test_a_simulated_show_plays_through_the_venues_acl_broker_over_tls(
    tls_broker: tuple[MosquittoBroker, Path], pki: Pki, tmp_path: Path
) -> None:
    broker, folder = tls_broker
    secrets = read_secrets(folder / "secrets")
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "madang",
            "-vv",
            "--log-json",
            "run",
            str(SIM_YARD),
            "--simulate",
            "--broker",
            _url(broker),
            "--broker-password-file",
            str(folder / f"{CONTROLLER_USER}.password"),
            "--broker-ca",
            str(pki.ca),
            "--device-secrets",
            str(folder / "secrets"),
            "--go",
            "--exit-at-end",
            "--no-view",
            "--control-port",
            "-1",
            "--report",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={k: v for k, v in os.environ.items() if k != PASSWORD_ENV},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["missed"] == 0 and report["cues_fired"] >= 5
    # No (cue, device) pair missed: every headset got every cue through the ACL'd broker, logged
    # in as itself, and executed it on time (its pongs and clock model passed the ACL too).
    assert report["devices"] == len(SIM_VENUE.devices)
    assert report["on_receipt"] == 0
    headsets = {row["device"]: row for row in report["telemetry"] if row["sync"] == "app"}
    assert sorted(headsets) == [f"xr-{i}" for i in range(1, 7)]
    for row in headsets.values():
        assert row["synced"] and row["acks"] >= report["cues_fired"], row  # pongs and fire reports passed
    output = proc.stdout + proc.stderr
    assert "MQTT connected" in output  # the debug log ran, and said whom it connected as
    for name, password in secrets.items():
        assert password not in output, f"the password of {name} reached the log"


def test_headsets_in_their_own_process_log_in_too(tls_broker: tuple[MosquittoBroker, Path], pki: Pki) -> None:
    """play_real's headset process (used from 200 headsets on) gets each headset's identity."""
    from cues.compiler import compile_show
    from simulators.harness import play_real

    broker, folder = tls_broker
    url = _url(broker)
    login = broker_login(
        url, BrokerFiles(str(pki.ca), password_file=str(folder / f"{CONTROLLER_USER}.password")), environ={}
    )
    timeline, venue = compile_show(SIM_YARD)
    report, _, rt = asyncio.run(
        play_real(
            timeline,
            venue,
            broker_url=url,
            broker_login=login,
            device_passwords=read_secrets(folder / "secrets"),
            headset_process=True,
            control_port=None,
        )
    )
    assert rt.exit_code == 0
    assert report["headset_process"] is True
    assert report["missed"] == 0 and report["cues_fired"] >= 5


def test_madang_simulate_brings_the_venue_up_on_the_acl_broker(
    tls_broker: tuple[MosquittoBroker, Path], pki: Pki
) -> None:
    """``madang simulate VENUE --device-secrets FILE --broker-ca CA``: every headset logs in as
    itself and announces ``ready`` (which only its own identity may publish)."""
    import signal
    import ssl
    import time

    from tests.brokers import Client

    broker, folder = tls_broker
    secrets = read_secrets(folder / "secrets")
    watcher = Client(broker.port, tls=ssl.create_default_context(cafile=str(pki.ca)))
    assert watcher.connect(CONTROLLER_USER, secrets[CONTROLLER_USER]) == 0
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "madang",
            "simulate",
            str(SIM / "sim-yard-venue.yaml"),
            "--broker",
            f"mqtts://127.0.0.1:{broker.port}",
            "--device-secrets",
            str(folder / "secrets"),
            "--broker-ca",
            str(pki.ca),
            "--duration",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        watcher.subscribe("madang/dev/+/status")
        want = {f"madang/dev/xr-{i}/status" for i in range(1, 7)}
        deadline = time.monotonic() + 30
        ready: set[str] = set()
        while time.monotonic() < deadline and ready != want:
            # Live publishes only (a retained status may be an earlier test's headset's).
            ready = {t for t, p, retained in list(watcher.got) if not retained and b'"ready"' in p}
            time.sleep(0.05)
        assert ready == want
    finally:
        watcher.close()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    for password in secrets.values():
        assert password not in out + err
