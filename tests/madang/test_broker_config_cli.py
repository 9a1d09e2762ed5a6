"""``madang broker-config VENUE -o DIR``, as an operator types it."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.brokerconf import CONTROLLER_USER, read_secrets
from madang import cli

REPO = Path(__file__).resolve().parents[2]
SHOW = REPO / "config" / "shows" / "han-river-night-bloom.yaml"


def main(argv: list[str]) -> int:
    """``madang ARGV`` without installing the command's log handlers (pytest keeps its own)."""
    args = cli._parser().parse_args(argv)
    rc: int = args.fn(args)
    return rc


def test_it_writes_the_files_and_says_how_to_use_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "broker"
    assert main(["broker-config", "han-river", "-o", str(out), "--show", str(SHOW)]) == 0
    printed = capsys.readouterr()
    for name in ("mosquitto.conf", "passwd", "acl", "secrets", f"{CONTROLLER_USER}.password"):
        assert (out / name).is_file(), name
    assert f"--broker-password-file {out / (CONTROLLER_USER + '.password')}" in printed.out
    assert "1,200 devices" in printed.out
    assert "no TLS" in printed.err  # a plain listener is warned about
    acl = (out / "acl").read_text()
    assert "topic write xr/xr-0001/ready" in acl  # the show waits for xr/+/ready
    for password in read_secrets(out / "secrets").values():
        assert password not in printed.out + printed.err


def test_a_tls_listener_is_written_with_absolute_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "broker"
    args = ["broker-config", "han-river", "-o", str(out), "--tls-cert", "b.pem", "--tls-key", "b.key"]
    assert main([*args, "--tls-ca", "ca.pem", "--require-certificate", "--bind", "10.0.0.2"]) == 0
    conf = (out / "mosquitto.conf").read_text().splitlines()
    assert "listener 8883 10.0.0.2" in conf
    assert f"certfile {Path('b.pem').resolve()}" in conf
    assert f"cafile {Path('ca.pem').resolve()}" in conf
    assert "require_certificate true" in conf
    assert "mqtts://madang-controller@HOST:8883" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--tls-cert", "b.pem"], "needs both --tls-cert and --tls-key"),
        (["--tls-ca", "ca.pem"], "need --tls-cert/--tls-key"),
        (["--tls-cert", "b.pem", "--tls-key", "b.key", "--require-certificate"], "needs --tls-ca"),
    ],
)
def test_incomplete_tls_options_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], says: str
) -> None:
    assert main(["broker-config", "han-river", "-o", str(tmp_path / "b"), *extra]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_device_secrets_give_a_real_run_its_websocket_device_keys(tmp_path: Path) -> None:
    """``madang run --device-secrets FILE`` (no --simulate): the WebSocket devices' keys."""
    import argparse

    from controller.brokerconf import BrokerConfigError
    from madang.show import ws_device_keys

    (tmp_path / "secrets").write_text("# keys\nws-1 abc\n", encoding="utf-8")
    assert ws_device_keys(argparse.Namespace(device_secrets=str(tmp_path / "secrets"))) == {"ws-1": "abc"}
    assert ws_device_keys(argparse.Namespace(device_secrets=None)) is None
    with pytest.raises(BrokerConfigError, match="cannot read the secrets file"):
        ws_device_keys(argparse.Namespace(device_secrets=str(tmp_path / "nope")))
