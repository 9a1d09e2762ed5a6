"""MQTT 3.1.1 §4.7 topic rules: validation, wildcard matching, per-device templates."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.topics import TopicError, TopicTemplate, matches, validate_filter, validate_topic
from venues.errors import MadangError
from venues.model import Device, Sync


@pytest.mark.parametrize("topic", ["a", "a/b", "/", "a//b", "$SYS/x", "xr/dev-01/scene", "é/ü"])
def test_valid_topic_names(topic: str) -> None:
    validate_topic(topic)


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("", "empty"),
        ("a/+/b", "wildcard"),
        ("a/#", "wildcard"),
        ("a\x00b", "U+0000"),
        ("x" * 65536, "65535"),
        ("a\ud800", "UTF-8"),
    ],
)
def test_invalid_topic_names(topic: str, reason: str) -> None:
    with pytest.raises(TopicError) as info:
        validate_topic(topic)
    assert isinstance(info.value, MadangError) and isinstance(info.value, ValueError)
    assert reason in str(info.value)


@pytest.mark.parametrize("f", ["#", "+", "a/#", "a/+/b", "+/+", "/+", "a//#", "$SYS/#", "+/#"])
def test_valid_filters(f: str) -> None:
    validate_filter(f)


@pytest.mark.parametrize("f", ["", "a#", "a/#/b", "#/a", "a+/b", "a/b+", "++", "a/##"])
def test_invalid_filters(f: str) -> None:
    with pytest.raises(TopicError):
        validate_filter(f)


@pytest.mark.parametrize(
    ("f", "t", "expected"),
    [
        # The examples of MQTT 3.1.1 §4.7.1.2, §4.7.1.3 and §4.7.2.
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("#", "$SYS/uptime", False),
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("$SYS/#", "$SYS/uptime", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
    ],
)
def test_matches_spec_examples(f: str, t: str, expected: bool) -> None:
    assert matches(f, t) is expected


def _reference_matches(f: str, t: str) -> bool:
    """A deliberately different implementation: the filter as a regular expression."""
    if t.startswith("$") and f[:1] in "+#":
        return False
    if f == "#":
        return True
    if f.endswith("/#"):
        body = f[:-2]
        tail = r"(/.*)?"
    else:
        body, tail = f, ""
    pattern = "/".join("[^/]*" if lvl == "+" else re.escape(lvl) for lvl in body.split("/"))
    return re.fullmatch(pattern + tail, t, flags=re.DOTALL) is not None


_level = st.sampled_from(["a", "b", "", "$x", "ab"])
_topic = st.lists(_level, min_size=1, max_size=5).map("/".join).filter(bool)
_filter_level = st.sampled_from(["a", "b", "", "+", "$x"])
_filter = st.builds(
    lambda levels, hash_: "/".join(levels + (["#"] if hash_ else [])),
    st.lists(_filter_level, min_size=0, max_size=5),
    st.booleans(),
).filter(bool)


@given(_filter, _topic)
def test_matches_agrees_with_a_regex_reference(f: str, t: str) -> None:
    validate_filter(f)
    validate_topic(t)
    assert matches(f, t) == _reference_matches(f, t)


@given(_topic)
def test_a_topic_matches_itself_and_hash(t: str) -> None:
    assert matches(t, t)
    assert matches("#", t) == (not t.startswith("$"))


def _device(id_: str, **attrs: str) -> Device:
    return Device(id=id_, kind="headset", zone="north", sync=Sync.APP, attrs={"id": id_, **attrs})


def test_template_fills_device_attributes_and_caches() -> None:
    tpl = TopicTemplate("xr/{device}/{zone}/{seat}/scene")
    d = _device("hs-001", seat="A12")
    assert tpl.for_device(d) == "xr/hs-001/north/A12/scene"
    assert tpl.for_device(d) is tpl.for_device(d)
    assert tpl.fields == ("device", "zone", "seat")
    assert not tpl.is_static


def test_static_template_is_validated_at_once() -> None:
    assert TopicTemplate("madang/cue").for_device(_device("x")) == "madang/cue"
    with pytest.raises(TopicError):
        TopicTemplate("")


def test_template_missing_attribute_names_what_exists() -> None:
    with pytest.raises(TopicError) as info:
        TopicTemplate("xr/{seat}/scene").for_device(_device("hs-002"))
    assert "{seat}" in str(info.value)
    assert "zone" in str(info.value)


@pytest.mark.parametrize("bad", ["xr/+/{device}", "xr/{device", "xr/{}/x", "a/#"])
def test_template_rejects_wildcards_and_malformed_placeholders(bad: str) -> None:
    with pytest.raises(TopicError):
        TopicTemplate(bad)


def test_template_rejects_a_value_that_makes_a_wildcard() -> None:
    with pytest.raises(TopicError) as info:
        TopicTemplate("xr/{device}/scene").for_device(_device("bad+id"))
    assert "xr/bad+id/scene" in str(info.value)
