"""The broker URL and login (venues.broker, controller.mqtt.broker_login): where the password may
come from, what is refused and how the refusal reads. No broker needed: tests/integration/
test_broker_tls.py runs the same logins against a real Mosquitto."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controller.mqtt import BrokerLoginError, MqttLink, broker_login
from madang.cli import main
from venues.broker import (
    PASSWORD_ENV,
    BrokerAddress,
    BrokerFiles,
    BrokerLogin,
    BrokerUrlError,
    parse_broker_url,
)


def test_urls_with_a_user_and_tls() -> None:
    assert parse_broker_url("mqtts://madang-controller@broker.lan") == BrokerAddress(
        "broker.lan", 8883, True, "madang-controller"
    )
    assert parse_broker_url("mqtt://h") == BrokerAddress("h", 1883, False, None)
    assert parse_broker_url("ssl://u@h:9999").url == "mqtts://u@h:9999"
    assert parse_broker_url("h:2000").url == "mqtt://h:2000"


def test_a_password_in_the_url_is_refused_and_not_repeated() -> None:
    with pytest.raises(BrokerUrlError) as err:
        parse_broker_url("mqtts://madang-controller:hunter2@h:8883")
    text = str(err.value)
    assert "hunter2" not in text
    assert "--broker-password-file" in text and PASSWORD_ENV in text


def test_the_command_line_refuses_a_password_in_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["run", "show.yaml", "--broker", "mqtt://u:hunter2@127.0.0.1:1883"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert "--broker-password-file" in err


def test_password_from_a_file_first_then_the_environment(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    url = "mqtts://madang-controller@h"
    env = {PASSWORD_ENV: "from-env"}
    assert broker_login(url, BrokerFiles(password_file=str(pw)), environ=env).password == "from-file"
    assert broker_login(url, environ=env).password == "from-env"
    login = broker_login(url, BrokerFiles(ca="ca.pem"), environ=env)
    assert (login.username, login.ca) == ("madang-controller", "ca.pem")
    assert "from-env" not in repr(login)  # a log line or a traceback printing it shows no password


@pytest.mark.parametrize(
    ("url", "files", "env", "says"),
    [
        ("mqtt://h", BrokerFiles(), {PASSWORD_ENV: "pw"}, "names no user"),
        ("mqtt://u@h", BrokerFiles(), {}, "no password is given"),
        ("mqtt://u@h", BrokerFiles(password_file="/nonexistent/pw"), {}, "cannot be read"),
        ("mqtt://u@h", BrokerFiles(ca="ca.pem"), {PASSWORD_ENV: "pw"}, "plain TCP"),
        ("mqtts://u@h", BrokerFiles(cert="c.pem"), {PASSWORD_ENV: "pw"}, "needs its private key"),
    ],
)
def test_logins_that_cannot_work_are_refused_before_the_show(
    url: str, files: BrokerFiles, env: dict[str, str], says: str
) -> None:
    with pytest.raises(BrokerLoginError, match=says) as err:
        broker_login(url, files, environ=env)
    assert "pw" not in str(err.value).replace("password", "").replace("/nonexistent/pw", "")


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("\n")
    with pytest.raises(BrokerLoginError, match="is empty"):
        broker_login("mqtt://u@h", BrokerFiles(password_file=str(pw)), environ={})


def test_a_missing_ca_file_fails_when_the_link_is_made(tmp_path: Path) -> None:
    login = BrokerLogin("u", "pw", ca=str(tmp_path / "missing-ca.pem"))
    with pytest.raises(BrokerLoginError, match=r"missing-ca\.pem"):
        MqttLink("mqtts://u@127.0.0.1:8883", client_id="t", login=login)


def test_the_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "env-secret")
    assert broker_login("mqtt://u@h").password == "env-secret"
    monkeypatch.delenv(PASSWORD_ENV)
    assert PASSWORD_ENV not in os.environ
    with pytest.raises(BrokerLoginError):
        broker_login("mqtt://u@h")


def test_the_command_line_overrides_the_venue_files(tmp_path: Path) -> None:
    import argparse
    import dataclasses

    from madang.show import broker_login_of
    from venues.loader import find_venue, load_venue

    venue_pw, cli_pw = tmp_path / "venue.pass", tmp_path / "cli.pass"
    venue_pw.write_text("from-venue\n")
    cli_pw.write_text("from-cli\n")
    venue = dataclasses.replace(
        load_venue(find_venue("han-river")),
        broker="mqtt://madang-controller@127.0.0.1:1883",
        broker_files=BrokerFiles(password_file=str(venue_pw)),
    )
    args = argparse.Namespace(broker=None, broker_password_file=None, broker_ca=None)
    url, login = broker_login_of(args, venue)
    assert (url, login.username, login.password) == (venue.broker, "madang-controller", "from-venue")
    args.broker_password_file = str(cli_pw)
    assert broker_login_of(args, venue)[1].password == "from-cli"
