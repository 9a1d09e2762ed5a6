"""The decoders of hostile input, fuzzed: Hypothesis properties on the targets of tests/fuzz/targets.py,
and a short seeded coverage-guided run of each with atheris (docs/security-controls.md, "Fuzzing")."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators.hostile import MQTT_KINDS, OSC_KINDS, Hostile
from tests.fuzz.targets import TARGETS, device_json, osc_packet, seeds, show_yaml

REPO = Path(__file__).resolve().parents[2]
_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _mutations(name: str) -> st.SearchStrategy[bytes]:
    """Random bytes, and the seeds cut, spliced and flipped: closer to what a decoder accepts."""
    base = seeds(name)

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(base)))
        for _ in range(draw(st.integers(1, 8))):
            op = draw(st.integers(0, 2))
            i = draw(st.integers(0, max(0, len(data) - 1)))
            if op == 0 and data:
                data[i] = draw(st.integers(0, 255))
            elif op == 1:
                data[i:i] = draw(st.binary(max_size=16))
            else:
                del data[i : i + draw(st.integers(1, 32))]
        return bytes(data)

    return st.one_of(st.binary(max_size=512), mutated())


@_SETTINGS
@given(_mutations("osc"))
def test_osc_packets_never_raise_past_the_decoder(data: bytes) -> None:
    osc_packet(data)


@_SETTINGS
@given(_mutations("json"))
def test_device_reports_never_raise(data: bytes) -> None:
    device_json(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations("show"))
def test_show_files_only_ever_give_findings(data: bytes) -> None:
    show_yaml(data)


@pytest.mark.parametrize("kind", OSC_KINDS)
def test_every_hostile_osc_kind_is_survived(kind: str) -> None:
    h = Hostile(7, ["a", "b"], "Show")
    for _ in range(50):
        osc_packet(h.osc(kind)[1])


@pytest.mark.parametrize("kind", MQTT_KINDS)
def test_every_hostile_mqtt_kind_is_survived(kind: str) -> None:
    h = Hostile(7, ["a", "b"], "Show")
    for _ in range(20):
        device_json(h.mqtt(kind)[2])


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed")
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_short_seeded_coverage_guided_run_finds_nothing(name: str, tmp_path: Path) -> None:
    runs = {"osc": 50_000, "json": 20_000, "show": 2_000}[name]  # a smoke run: `python -m tests.fuzz` goes on
    flags = [f"-runs={runs}", "-seed=1", f"-artifact_prefix={tmp_path}/"]
    done = subprocess.run(
        [sys.executable, "-m", "tests.fuzz", name, *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"Done {runs} runs" in done.stderr
