"""venues.validation: pydantic errors become one positioned, artist-readable finding each."""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic
import pytest
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from venues.errors import Finding, Mark
from venues.source import parse_yaml
from venues.units import parse_duration_ns
from venues.validation import findings_from_pydantic

Dur = Annotated[int, BeforeValidator(parse_duration_ns)]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OscSpecT(_M):
    address: str
    args: list[int | float | str] = []


class FadeSpecT(_M):
    param: str
    to: float
    from_: float | None = Field(None, alias="from")


class OscActionT(_M):
    target: str
    osc: OscSpecT


class FadeActionT(_M):
    target: str
    fade: FadeSpecT


class CueT(_M):
    id: str
    pre_wait: Dur = 0
    go: Literal["manual", "auto-follow", "auto-continue"] = "manual"
    level: float | str = 0.0
    actions: list[OscActionT | FadeActionT] = []


class ShowT(_M):
    show: str
    cues: list[CueT]


def findings(text: str) -> list[Finding]:
    doc = parse_yaml(text, "s.yaml")
    with pytest.raises(pydantic.ValidationError) as ei:
        ShowT.model_validate(doc.data)
    return findings_from_pydantic(ei.value, doc)


def one(text: str) -> Finding:
    fs = findings(text)
    assert len(fs) == 1, [str(f) for f in fs]
    return fs[0]


def test_unknown_key_points_at_the_key_with_did_you_mean() -> None:
    f = one("show: x\ncues:\n  - id: bloom\n    prewait: 2s\n")
    assert f.mark == Mark("s.yaml", 4, 5)
    assert f.message == "unknown key 'prewait' in cue 'bloom'"
    assert f.hint == "did you mean 'pre_wait'?"


def test_unknown_key_without_a_close_match_lists_allowed_keys() -> None:
    f = one("show: x\ncues:\n  - id: bloom\n    colour: red\n")
    assert f.hint == "allowed keys here: actions, go, id, level, pre_wait"


def test_alias_is_suggested() -> None:
    f = one(
        "show: x\ncues:\n  - id: a\n    actions:\n"
        "      - target: t\n        fade: {param: p, to: 1, form: 0}\n"
    )
    assert f.message.startswith("unknown key 'form'")
    assert f.hint == "did you mean 'from'?"
    assert f.mark == Mark("s.yaml", 6, 33)


def test_missing_key_points_at_the_mapping() -> None:
    f = one("show: x\ncues:\n  - id: a\n  - pre_wait: 1\n")
    assert f.mark == Mark("s.yaml", 4, 5)
    assert f.message == "cue 2 is missing 'id'"
    assert f.hint == "add 'id: ...'"


def test_missing_at_the_top() -> None:
    f = one("cues: []\n")
    assert f.message == "the show is missing 'show'"
    assert f.mark == Mark("s.yaml", 1, 1)


def test_wrong_type_says_what_was_found() -> None:
    f = one("show: x\ncues:\n  - id: a\n    pre_wait: [1, 2]\n")
    assert f.mark == Mark("s.yaml", 4, 15)
    assert f.message == (
        "'pre_wait' of cue 'a': got a list, "
        "expected a number of seconds like 2s or 250ms (also 1.5 s, 300us, 2min)"
    )


def test_literal_with_did_you_mean() -> None:
    f = one("show: x\ncues:\n  - id: a\n    go: auto-folow\n")
    assert "expected manual, auto-follow or auto-continue" in f.message
    assert f.hint == "did you mean 'auto-follow'?"


def test_union_of_scalars_gives_one_finding() -> None:
    f = one("show: x\ncues:\n  - id: a\n    level: [1]\n")
    assert f.message == "'level' of cue 'a': got a list, expected a number or text"


def test_union_of_models_reports_the_closest_member_only() -> None:
    fs = findings(
        "show: x\ncues:\n  - id: bloom\n    actions:\n"
        "      - target: a\n        osc: {adress: /x}\n"
        "      - target: b\n        fade: {param: x, to: [1]}\n"
    )
    assert [str(f) for f in fs] == [
        "s.yaml:6:15: unknown key 'adress' in 'osc' of action 1 of cue 'bloom' (did you mean 'address'?)",
        "s.yaml:8:30: 'fade.to' of action 2 of cue 'bloom': got a list, expected a number",
    ]


def test_base_and_what() -> None:
    doc = parse_yaml("meta: 1\nshow:\n  cues: []\n", "s.yaml")
    with pytest.raises(pydantic.ValidationError) as ei:
        ShowT.model_validate(doc.data["show"])
    (f,) = findings_from_pydantic(ei.value, doc, base=("show",), what="show block")
    assert f.message == "the show block is missing 'show'"
    assert f.mark == Mark("s.yaml", 3, 3)


def test_every_error_is_reported() -> None:
    fs = findings("show: 3\ncues:\n  - id: a\n    prewait: 1\n  - {}\n")
    assert [(f.mark.line, f.mark.col) for f in fs if f.mark] == [(1, 7), (4, 5), (5, 5)]
