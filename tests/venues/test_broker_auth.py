"""A venue file may name the broker's user (in the URL) and its login files (``broker_auth``), never
the password itself (docs/security.md, "Broker: TLS and credentials")."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from venues.errors import SourceErrors
from venues.loader import load_venue, venue_from_doc
from venues.source import parse_yaml

_VENUE = """\
venue: v
zones: [z]
broker: {broker}
{auth}
devices:
  - {{id: xr-1, kind: xr, zone: z, mqtt: {{}}, sync: app}}
"""


def _venue_file(tmp_path: Path, broker: str, auth: str = "") -> Path:
    path = tmp_path / "site" / "v.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_VENUE.format(broker=broker, auth=auth), encoding="utf-8")
    return path


def test_broker_auth_paths_are_relative_to_the_venue_file(tmp_path: Path) -> None:
    auth = "broker_auth: {ca: certs/ca.pem, cert: certs/ctl.pem, key: certs/ctl.key, password_file: ctl.pass}"
    venue = load_venue(_venue_file(tmp_path, "mqtts://madang-controller@broker.lan:8883", auth))
    site = (tmp_path / "site").resolve()
    assert venue.broker == "mqtts://madang-controller@broker.lan:8883"
    files = venue.broker_files
    assert files is not None
    assert files.ca == str(site / "certs" / "ca.pem")
    assert files.cert == str(site / "certs" / "ctl.pem")
    assert files.key == str(site / "certs" / "ctl.key")
    assert files.password_file == str(site / "ctl.pass")


def test_no_broker_auth_names_no_files(tmp_path: Path) -> None:
    assert load_venue(_venue_file(tmp_path, "mqtt://127.0.0.1:1883")).broker_files is None


def test_a_password_in_the_venues_broker_url_is_refused_with_where_it_goes() -> None:
    text = textwrap.dedent(_VENUE.format(broker="mqtts://madang-controller:hunter2@h:8883", auth=""))
    with pytest.raises(SourceErrors) as err:
        venue_from_doc(parse_yaml(text, "v.yaml"))
    (finding,) = err.value.findings
    assert str(finding).startswith("v.yaml:3:")
    assert "password_file" in str(finding)


def test_broker_auth_has_no_password_key() -> None:
    text = _VENUE.format(broker="mqtt://u@h", auth="broker_auth: {password: hunter2}")
    with pytest.raises(SourceErrors, match="password"):
        venue_from_doc(parse_yaml(text, "v.yaml"))


def test_a_written_venue_keeps_its_broker_auth(tmp_path: Path) -> None:
    from venues.writer import venue_yaml

    auth = "broker_auth: {ca: ca.pem, password_file: ctl.pass}"
    venue = load_venue(_venue_file(tmp_path, "mqtts://madang-controller@broker.lan:8883", auth))
    copy = tmp_path / "elsewhere" / "copy.yaml"
    copy.parent.mkdir()
    copy.write_text(venue_yaml(venue), encoding="utf-8")
    assert load_venue(copy).broker_files == venue.broker_files
    # Written for another broker (madang simulate --map), the venue's login is left out.
    assert "broker_auth" not in venue_yaml(venue, broker="mqtt://127.0.0.1:1883")
