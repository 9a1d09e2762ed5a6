"""venues.selector: parsing, canonical text, evaluation against a reference, errors."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from venues.errors import Mark, SourceError
from venues.model import Device, MqttEndpoint, Sync, Venue
from venues.selector import SelectorIndex, parse_selector, resolve


def make_venue(attrs: list[dict[str, str]], groups: dict[str, list[int]] | None = None) -> Venue:
    devices = tuple(
        Device(
            id=f"d{i}",
            kind=a.get("kind", "xr"),
            zone=a.get("zone", "z"),
            sync=Sync.APP,
            mqtt=MqttEndpoint(f"madang/dev/d{i}"),
            attrs={"id": f"d{i}", "kind": a.get("kind", "xr"), "zone": a.get("zone", "z"), **a},
        )
        for i, a in enumerate(attrs)
    )
    g = {name: tuple(f"d{i}" for i in sorted(set(members))) for name, members in (groups or {}).items()}
    return Venue("v", "V", ("z",), "mqtt://127.0.0.1:1883", devices, g)


VENUE = make_venue(
    [
        {"kind": "facade", "zone": "yeouido", "bank": "north"},
        {"kind": "facade", "zone": "banpo", "bank": "south"},
        {"kind": "xr", "zone": "banpo", "seat": "A1"},
        {"kind": "xr", "zone": "yeouido", "seat": "B2"},
        {"kind": "xr", "zone": "banpo", "seat": "A3"},
    ],
    {"facades": [0, 1], "audience": [2, 3, 4]},
)


@pytest.mark.parametrize(
    ("text", "canonical", "ids"),
    [
        ("d2", "d2", ("d2",)),
        ("facades", "facades", ("d0", "d1")),
        ("kind:facade", "kind:facade", ("d0", "d1")),
        ("audience & zone:banpo", "audience & zone:banpo", ("d2", "d4")),
        ("  audience&zone:banpo ", "audience & zone:banpo", ("d2", "d4")),
        ("seat:A*", "seat:A*", ("d2", "d4")),
        ("seat:?2", "seat:?2", ("d3",)),
        ("!audience", "!audience", ("d0", "d1")),
        ("!(audience | d0)", "!(audience | d0)", ("d1",)),
        ("facades | zone:yeouido & kind:xr", "facades | zone:yeouido & kind:xr", ("d0", "d1", "d3")),
        ("(facades | zone:yeouido) & kind:xr", "(facades | zone:yeouido) & kind:xr", ("d3",)),
        ("((d4))", "d4", ("d4",)),
        ("audience & (zone:banpo & seat:A1)", "audience & zone:banpo & seat:A1", ("d2",)),
        ("!!facades", "!!facades", ("d0", "d1")),
        ("group:aud*", "group:aud*", ("d2", "d3", "d4")),
        ("d*", "d*", ("d0", "d1", "d2", "d3", "d4")),
        ("id:d[34]", "id:d[34]", ("d3", "d4")),
    ],
)
def test_parse_and_resolve(text: str, canonical: str, ids: tuple[str, ...]) -> None:
    sel = parse_selector(text)
    assert str(sel) == canonical
    assert parse_selector(canonical) == sel
    assert resolve(text, VENUE) == ids
    assert resolve(sel, VENUE) == ids


@pytest.mark.parametrize(
    ("text", "col", "message", "hint"),
    [
        ("", 10, "empty target", "name a device"),
        ("   ", 10, "empty target", ""),
        ("audience &", 20, "target ends where a name was expected", ""),
        ("(audience", 10, "'(' is never closed", "add the matching ')'"),
        ("audience)", 18, "unmatched ')'", ""),
        ("audience facades", 19, "unexpected 'f'", "join terms with &, | or !"),
        ("kind:", 15, "'kind:' has no value after ':'", "key:value"),
        (":x", 10, "has no attribute before ':'", ""),
        ("& x", 10, "'&' where a name was expected", ""),
        ("audiance", 10, "'audiance' is neither a device nor a group", "did you mean 'audience'?"),
        (
            "zone:banpo & nothing",
            23,
            "'nothing' is neither a device nor a group",
            "the groups the venue defines: audience, facades",
        ),
        ("colour:red", 10, "no device has the attribute 'colour'", "the keys devices have: bank,"),
        ("zon:banpo", 10, "no device has the attribute 'zon'", "did you mean 'zone'?"),
        (
            "kind:fountain",
            10,
            "target 'kind:fountain' selects no device",
            "kind values in the venue: facade, xr",
        ),
        ("facades & audience", 10, "selects no device", "exclude each other"),
        ("group:barges", 10, "the venue has no group 'barges'", "the groups the venue defines"),
    ],
)
def test_errors_point_into_the_string(text: str, col: int, message: str, hint: str) -> None:
    with pytest.raises(SourceError) as ei:
        resolve(text, VENUE, Mark("show.yaml", 7, 10))
    f = ei.value.finding
    assert f.mark == Mark("show.yaml", 7, col)
    assert message in f.message
    assert hint in f.hint


def test_errors_without_a_mark_still_explain() -> None:
    with pytest.raises(SourceError) as ei:
        parse_selector("a |")
    assert ei.value.mark is None and "ends where a name was expected" in str(ei.value)


def test_results_are_cached_per_venue_and_venues_do_not_mix() -> None:
    other = make_venue([{"kind": "facade"}, {"kind": "xr"}])
    assert resolve("kind:facade", VENUE) == ("d0", "d1")
    assert resolve("kind:facade", other) == ("d0",)
    assert resolve("kind:facade", VENUE) is resolve("kind:facade", VENUE)


def test_ten_thousand_devices() -> None:
    venue = make_venue([{"kind": "xr", "zone": f"z{i % 4}", "row": str(i % 100)} for i in range(10_000)])
    ids = resolve("zone:z1 & !row:1?", venue)
    # zone z1 is i % 4 == 1; rows 1? are 10..19, of which 13 and 17 are in z1: 2 per 100
    assert len(ids) == 2500 - 200
    assert ids[0] == "d1" and ids == tuple(sorted(ids, key=lambda s: int(s[1:])))


# --- properties -------------------------------------------------------------------------------

KEYS = ("color", "row")
VALUES = ("red", "rose", "blue", "r1", "r2")


def leaf(n_devices: int, groups: list[str]) -> st.SearchStrategy[Any]:
    value = st.sampled_from(VALUES) | st.sampled_from(("r*", "*e", "r?", "?l*", "*"))
    term = st.tuples(st.just("term"), st.sampled_from(KEYS), value)
    names = [f"d{i}" for i in range(n_devices)] + groups
    return term | st.tuples(st.just("name"), st.sampled_from(names))


def exprs(n_devices: int, groups: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf(n_devices, groups),
        lambda inner: (
            st.tuples(st.just("not"), inner)
            | st.tuples(st.sampled_from(("and", "or")), st.lists(inner, min_size=2, max_size=3))
        ),
        max_leaves=8,
    )


def render(e: Any, draw_space: Any) -> str:
    sp = draw_space
    kind = e[0]
    if kind == "term":
        return f"{e[1]}:{e[2]}"
    if kind == "name":
        return str(e[1])
    if kind == "not":
        return f"!{sp()}({render(e[1], sp)})"
    op = "&" if kind == "and" else "|"
    return f"{sp()}{op}{sp()}".join(f"({render(x, sp)})" for x in e[1])


def reference(e: Any, devices: list[dict[str, str]], groups: dict[str, set[int]]) -> set[int]:
    everyone = set(range(len(devices)))
    kind = e[0]
    if kind == "term":
        return {i for i, d in enumerate(devices) if fnmatchcase(d[e[1]], e[2])}
    if kind == "name":
        return groups[e[1]] if e[1] in groups else {int(e[1][1:])}
    if kind == "not":
        return everyone - reference(e[1], devices, groups)
    parts = [reference(x, devices, groups) for x in e[1]]
    out = parts[0]
    for p in parts[1:]:
        out = out & p if kind == "and" else out | p
    return out


Case = tuple[list[dict[str, str]], dict[str, set[int]], Any, str]


@st.composite
def scenario(draw: st.DrawFn) -> Case:
    n = draw(st.integers(min_value=1, max_value=12))
    devices = [{k: draw(st.sampled_from(VALUES)) for k in KEYS} for _ in range(n)]
    groups = {
        f"g{j}": draw(st.sets(st.integers(min_value=0, max_value=n - 1), min_size=1))
        for j in range(draw(st.integers(min_value=0, max_value=2)))
    }
    e = draw(exprs(n, list(groups)))
    spaces = st.sampled_from(("", " ", "  ", "\t"))
    text = render(e, lambda: draw(spaces))
    return devices, groups, e, text


@settings(max_examples=150, deadline=None)
@given(scenario())
def test_evaluation_agrees_with_a_reference(
    case: tuple[list[dict[str, str]], dict[str, set[int]], Any, str],
) -> None:
    devices, groups, e, text = case
    venue = make_venue(devices, {g: sorted(m) for g, m in groups.items()})
    want = tuple(f"d{i}" for i in sorted(reference(e, devices, groups)))
    if not want:
        with pytest.raises(SourceError, match="selects no device"):
            SelectorIndex(venue).resolve(text)
    else:
        assert SelectorIndex(venue).resolve(text) == want


@settings(max_examples=150, deadline=None)
@given(scenario())
def test_canonical_text_round_trips(case: Case) -> None:
    _, _, _, text = case
    sel = parse_selector(text)
    canonical = str(sel)
    again = parse_selector(canonical)
    assert again == sel
    assert str(again) == canonical
    # the canonical text evaluates like the original
    venue = make_venue(
        [{k: v for k, v in zip(KEYS, vs, strict=True)} for vs in [("red", "r1"), ("blue", "r2")]]
    )
    assert _safe(venue, text) == _safe(venue, canonical)


def _safe(venue: Venue, text: str) -> object:
    try:
        return SelectorIndex(venue).resolve(text)
    except SourceError as e:
        return "selects no device" in e.finding.message
