"""The pydantic model: typed OSC arguments, payload limits, times in validation, the schema."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cues.model import CueModel, MqttModel, OscModel, osc_arg
from cues.schema import part_schema, show_schema
from cues.timecode import TimeContext, parse_tempo
from cues.timeline import Ease, Go, OscTyped

CTX = {"time": TimeContext(fps=30, tempo=parse_tempo({"bpm": 120, "meter": "4/4"}))}


def test_osc_args() -> None:
    assert osc_arg(1) == 1 and isinstance(osc_arg(1), int)
    assert osc_arg({"f": 1}) == 1.0 and isinstance(osc_arg({"f": 1}), float)
    assert osc_arg({"i": 1}) == 1
    assert osc_arg({"s": 5}) == "5"
    assert osc_arg({"s": True}) == "true"
    assert osc_arg({"h": 5}) == OscTyped("h", 5)
    assert osc_arg({"d": 0.5}) == OscTyped("d", 0.5)
    assert osc_arg({"b": "c0ffee"}) == b"\xc0\xff\xee"
    assert osc_arg(None) is None and osc_arg(True) is True


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (2**31, "{h: 2147483648}"),
        ({"i": 2**31}, "int32"),
        ({"h": 2**63}, "int64"),
        ({"f": "x"}, "finite number"),
        ({"b": "xyz"}, "hex"),
        ({"q": 1}, "unknown OSC type tag 'q'"),
        ({"f": 1, "i": 2}, "one typed value"),
        ([1], "one typed value"),
        (float("nan"), "finite"),
    ],
)
def test_bad_osc_args(value: Any, needle: str) -> None:
    with pytest.raises(ValueError, match=None) as e:
        osc_arg(value)
    assert needle in str(e.value)


@given(st.integers(-(2**31), 2**31 - 1))
def test_int32_args_stay_plain(n: int) -> None:
    assert osc_arg(n) == n and osc_arg({"i": n}) == n


def test_payload_limits() -> None:
    MqttModel.model_validate({"targets": "a", "topic": "t", "payload": {"a": [1, 2.5, None, True, "x"]}})
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    for payload, needle in [
        (deep, "nested deeper"),
        ("x" * 5000, "4 KiB"),
        ({"k": ["y" * 4000] * 20}, "64 KiB"),
        ({1: "x"}, "keys must be strings"),
        (float("inf"), "finite"),
    ]:
        with pytest.raises(pydantic.ValidationError) as e:
            MqttModel.model_validate({"targets": "a", "topic": "t", "payload": payload})
        assert needle in str(e.value)


def test_times_parse_during_validation() -> None:
    cue = CueModel.model_validate(
        {
            "id": "x",
            "go": "auto-follow",
            "pre_wait": "250ms",
            "post_wait": 1.5,
            "timeline": [
                {"at": "00:00:01:15", "osc": {"targets": "a", "address": "/a"}},
                {"at": "2.1", "osc": {"targets": "a", "address": "/a"}},
                {"at": "01:02.500", "osc": {"targets": "a", "address": "/a"}},
                {
                    "at": 3,
                    "fade": {"targets": "a", "param": "p", "to": 1, "over": "2min", "ease": "steps(4)"},
                },
            ],
        },
        context=CTX,
    )
    assert cue.go is Go.AUTO_FOLLOW
    assert (cue.pre_wait, cue.post_wait) == (250_000_000, 1_500_000_000)
    assert [i.at for i in cue.timeline] == [1_500_000_000, 2_000_000_000, 62_500_000_000, 3_000_000_000]
    fade = cue.timeline[3].fade
    assert fade is not None and fade.over == 120 * 10**9 and fade.ease == Ease("steps", (4, 0))
    assert fade.start is None  # from the current value


def test_bars_need_a_tempo_and_durations_are_not_bars() -> None:
    with pytest.raises(pydantic.ValidationError):
        CueModel.model_validate(
            {"id": "x", "actions": [{"at": "9.1", "osc": {"targets": "a", "address": "/a"}}]}
        )
    with pytest.raises(pydantic.ValidationError) as e:
        CueModel.model_validate({"id": "x", "pre_wait": "2.1"}, context=CTX)
    assert "2.1" in str(e.value)


def test_osc_model_keeps_args_typed() -> None:
    m = OscModel.model_validate({"targets": ["a", "b"], "address": "/x", "args": [1, {"h": 2}, "s"]})
    assert m.targets == ("a", "b") and m.args == (1, OscTyped("h", 2), "s")


def test_schema_is_json_and_names_every_key() -> None:
    s = show_schema()
    text = json.dumps(s)
    for key in (
        "pre_wait",
        "post_wait",
        "timeline",
        "templates",
        "include",
        "retain",
        "else",
        "with",
        "from",
    ):
        assert f'"{key}"' in text
    assert s["$schema"].startswith("https://json-schema.org/")
    assert "venue" not in part_schema()["properties"]
