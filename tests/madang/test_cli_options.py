"""Option values are refused by the parser, with the valid choices or range, before anything
starts (no broker, no socket): as an operator types them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from controller.runtime import EXIT_MODES
from madang import cli
from simulators.network import profile_names

SIM_YARD = Path(__file__).resolve().parents[1] / "data" / "sim" / "sim-yard.yaml"


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli._parser().parse_args(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["run", "s.yaml", "--impair", "nonsense"],
            "choose from 'perfect', 'lan', 'wifi', 'wifi-crowded', 'lossy'",
        ),
        (["simulate", "v.yaml", "--impair", "wifi2"], "invalid choice: 'wifi2'"),
        (["demo", "--impair", "x"], "invalid choice: 'x'"),
        (["run", "s.yaml", "--rate", "0"], "give a number from 0.05 to 16"),
        (["run", "s.yaml", "--rate", "17"], "give a number from 0.05 to 16"),
        (["run", "s.yaml", "--rate", "nan"], "give a number from 0.05 to 16"),
        (["run", "s.yaml", "--rate", "fast"], "'fast' is not a number"),
        (["run", "s.yaml", "--seed", "-1"], "give a whole number from 0 to 4,294,967,295"),
        (["run", "s.yaml", "--seed", "1.5"], "'1.5' is not a whole number"),
        (["run", "s.yaml", "--go-latency", "-5"], "give a number from 0 to 10000"),
        (["run", "s.yaml", "--sync-budget", "0"], "give a number above 0"),
        (["run", "s.yaml", "--control-port", "70000"], "give a whole number from -1 to 65,535"),
        (["run", "s.yaml", "--control-allow", "10.0.0"], "is not an IP address or network"),
        (["run", "s.yaml", "--broker", "wss://host"], "MQTT over WebSocket (wss://) is not supported"),
        (["run", "s.yaml", "--broker", "mqtt://u:pw@host"], "--broker-password-file FILE"),
        (["run", "s.yaml", "--broker", "mqtt://host:99999"], "the port is not a number in 1-65535"),
        (["run", "s.yaml", "--on-exit", "blackout"], "choose from 'safe', 'hold'"),
        (["simulate", "v.yaml", "--duration", "0"], "give a number above 0"),
        (["simulate", "v.yaml", "--duration", "inf"], "give a number above 0"),
        (["demo", "--devices", "0"], "give a whole number 1 or more"),
        (["bench", "sync", "--profile", "lan2"], "invalid choice: 'lan2'"),
        (["bench", "devices", "virtual", "--cues", "-3"], "give a whole number 1 or more"),
    ],
)
def test_a_bad_option_value_is_refused_with_what_is_valid(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert says in _refused(argv, capsys)


def test_good_values_pass() -> None:
    args = cli._parser().parse_args(
        ["run", "s.yaml", "--simulate", "--impair", "wifi", "--rate", "0.5", "--seed", "7", "--go-all",
         "--on-exit", "hold", "--control-allow", "10.0.0.0/24", "--broker", "mqtt://10.0.0.2:1883"]
    )
    assert (args.impair, args.rate, args.seed, args.go_all, args.on_exit) == ("wifi", 0.5, 7, True, "hold")


def test_the_parsers_lists_are_the_simulators_and_the_runtimes() -> None:
    assert profile_names() == cli.IMPAIRMENTS
    assert cli.EXIT_MODES == EXIT_MODES


def test_impair_nonsense_starts_no_broker(tmp_path: Path) -> None:
    # A probe named mosquitto, first on PATH, notes any attempt to start a broker.
    probe = tmp_path / "mosquitto"
    marker = tmp_path / "started"
    probe.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n", encoding="utf-8")
    probe.chmod(probe.stat().st_mode | stat.S_IEXEC)
    proc = subprocess.run(
        [sys.executable, "-m", "madang", "run", str(SIM_YARD), "--simulate", "--impair", "nonsense"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ.get('PATH', '')}"},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "argument --impair: invalid choice: 'nonsense'" in proc.stderr
    assert not marker.exists(), "a broker was started for a run the parser should have refused"
