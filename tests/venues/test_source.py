"""venues.source: positioned YAML 1.2 loading and every way a file can be wrong."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Any

import pytest

from venues.errors import Mark, SourceErrors
from venues.source import HAVE_CPARSER, _parse, load_yaml, parse_yaml, resolve_plain


def _showgen() -> Any:
    # Loaded by path: the test directories are not packages.
    path = Path(__file__).with_name("venue_showgen.py")
    spec = importlib.util.spec_from_file_location("venue_showgen", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


show_yaml = _showgen().show_yaml

BACKENDS = [pytest.param(False, id="libyaml"), pytest.param(True, id="pure")]


def parse(text: str | bytes, *, pure: bool = False, max_nodes: int = 2_000_000):  # type: ignore[no-untyped-def]
    return _parse(text, "f.yaml", max_nodes=max_nodes, pure=pure)


def only(err: SourceErrors) -> tuple[Mark | None, str, str]:
    assert len(err.findings) == 1, err.findings
    f = err.findings[0]
    return f.mark, f.message, f.hint


def errors_of(text: str | bytes, *, pure: bool = False, max_nodes: int = 2_000_000) -> SourceErrors:
    with pytest.raises(SourceErrors) as ei:
        parse(text, pure=pure, max_nodes=max_nodes)
    return ei.value


def test_cparser_is_available_here() -> None:
    # The speed goal depends on it; the fallback is tested below with pure=True.
    assert HAVE_CPARSER


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("~", None),
        ("null", None),
        ("NULL", None),
        ("", None),
        ("true", True),
        ("True", True),
        ("FALSE", False),
        ("12", 12),
        ("-3", -3),
        ("+7", 7),
        ("012", 12),
        ("0x1F", 31),
        ("0o17", 15),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("-.inf", -math.inf),
        (".Inf", math.inf),
        ("no", "no"),
        ("yes", "yes"),
        ("on", "on"),
        ("1:30", "1:30"),
        ("00:00:08:15", "00:00:08:15"),
        ("1_000", "1_000"),
        ("0b101", "0b101"),
        ("-0x1", "-0x1"),
        ("2s", "2s"),
        (".", "."),
        ("1.2.3", "1.2.3"),
    ],
)
def test_core_schema_resolution(text: str, value: object) -> None:
    got = resolve_plain(text)
    assert got == value and type(got) is type(value)


def test_nan_resolves() -> None:
    assert math.isnan(resolve_plain(".nan"))  # type: ignore[arg-type]


@pytest.mark.parametrize("pure", BACKENDS)
def test_values_and_marks(pure: bool) -> None:
    doc = parse(
        "show: x\n"
        "cues:\n"
        "  - id: a\n"
        "    at: 1:30\n"
        "    q: '12'\n"
        "    n: no\n"
        "    text: |\n"
        "      block\n"
        "  - {id: b, tags: [x, 'y']}\n",
        pure=pure,
    )
    assert doc.data == {
        "show": "x",
        "cues": [
            {"id": "a", "at": "1:30", "q": "12", "n": "no", "text": "block\n"},
            {"id": "b", "tags": ["x", "y"]},
        ],
    }
    assert doc.mark(()) == Mark("f.yaml", 1, 1)
    assert doc.mark(["cues", 0, "at"]) == Mark("f.yaml", 4, 9)
    assert doc.key_mark(["cues", 0, "at"]) == Mark("f.yaml", 4, 5)
    assert doc.mark(["cues", 1]) == Mark("f.yaml", 9, 5)
    assert doc.mark(["cues", 1, "tags", 1]) == Mark("f.yaml", 9, 23)
    # A missing path answers with its nearest ancestor, never raises.
    assert doc.mark(["cues", 1, "nope", 3]) == Mark("f.yaml", 9, 5)
    assert doc.key_mark(["cues", 7]) == doc.mark(["cues"])
    # text_mark skips the opening quote of a quoted scalar.
    assert doc.text_mark(["cues", 0, "q"]) == Mark("f.yaml", 5, 9)
    assert doc.text_mark(["cues", 0, "at"], 2) == Mark("f.yaml", 4, 11)


def test_columns_count_characters_not_bytes() -> None:
    doc = parse("이름: 한강\nnext: 1\n")
    assert doc.mark(["이름"]) == Mark("f.yaml", 1, 5)


@pytest.mark.parametrize("pure", BACKENDS)
def test_anchors_share_objects_and_merge_keys(pure: bool) -> None:
    doc = parse(
        "defaults: &d {go: manual, pre_wait: 2s}\n"
        "more: &m {post_wait: 1s, go: follow}\n"
        "cues:\n"
        "  - <<: *d\n"
        "    id: a\n"
        "    go: auto\n"
        "  - <<: [*m, *d]\n"
        "    id: b\n"
        "  - *d\n",
        pure=pure,
    )
    a, b, c = doc.data["cues"]
    assert a == {"go": "auto", "pre_wait": "2s", "id": "a"}
    assert b == {"post_wait": "1s", "go": "follow", "pre_wait": "2s", "id": "b"}
    assert c is doc.data["defaults"]
    # Merged keys point at their definition; explicit keys at themselves.
    assert doc.mark(["cues", 0, "pre_wait"]) == Mark("f.yaml", 1, 37)
    assert doc.mark(["cues", 0, "go"]) == Mark("f.yaml", 6, 9)
    assert doc.mark(["cues", 2, "go"]) == Mark("f.yaml", 9, 5)  # through an alias: the alias


@pytest.mark.parametrize("pure", BACKENDS)
@pytest.mark.parametrize(
    ("text", "where", "message", "hint"),
    [
        ("a: 1\nb: 2\na: 3\n", (3, 1), "duplicate key 'a' (first on line 1)", "remove or rename"),
        ("1: x\n", (1, 1), "mapping keys must be strings", "quote it"),
        ("? [a]\n: 1\n", (1, 3), "a list cannot be a mapping key", ""),
        ("", (1, 1), "empty file", "a venue file starts with 'venue: <id>'"),
        ("# only a comment\n", (1, 1), "empty file", "show: <id>"),
        ("a: 1\n---\nb: 2\n", (2, 1), "a second YAML document starts here", "remove the '---'"),
        ("a: *x\n", (1, 4), "alias *x has no anchor &x before it", "anchors defined so far"),
        ("a: &x [1, *x]\n", (1, 11), "alias *x refers to the collection that contains it", ""),
        ("<<: 3\n", (1, 5), "merge key '<<' needs a mapping", "&defaults"),
        ("a: !custom x\n", (1, 4), "unsupported tag '!custom'", "remove the tag"),
        ("a: !!int x\n", (1, 4), "'x' is not a valid int", ""),
        ("a: [1\n", (2, 1), "YAML syntax error", "bracket" if False else ""),
        ("a: b: c\n", (1, 5), "YAML syntax error: mapping values are not allowed", "must be quoted"),
        ("a:\n\t- b\n", (2, 1), "YAML syntax error", "tabs"),
        ("a: '\x01'\n", (1, 5), "character U+0001 is not allowed", "invisible character"),
    ],
)
def test_bad_yaml_gives_one_positioned_finding(
    pure: bool, text: str, where: tuple[int, int], message: str, hint: str
) -> None:
    mark, msg, h = only(errors_of(text, pure=pure))
    assert mark is not None and (mark.line, mark.col) == where and mark.file == "f.yaml"
    assert message in msg
    assert hint in h


def test_several_key_problems_are_all_reported() -> None:
    err = errors_of("a: 1\na: 2\nb:\n  1: x\n  c: 1\n  c: 2\n")
    assert [(f.mark.line, f.mark.col) for f in err.findings if f.mark] == [(2, 1), (4, 3), (6, 3)]


def test_not_utf8_points_at_the_bad_byte() -> None:
    mark, msg, hint = only(errors_of("name: 한강\ncity: Se".encode() + b"\xe9oul\n"))
    assert mark == Mark("f.yaml", 2, 9)
    assert "byte 0xe9" in msg and "UTF-8" in hint


def test_utf16_is_named() -> None:
    _, msg, hint = only(errors_of("a: 1\n".encode("utf-16")))
    assert "UTF-16" in msg and "UTF-8" in hint


def test_bom_is_fine_and_does_not_shift_columns() -> None:
    doc = parse("\ufeffa: 1\n".encode())
    assert doc.data == {"a": 1}
    assert doc.mark(["a"]) == Mark("f.yaml", 1, 4)


@pytest.mark.parametrize("pure", BACKENDS)
def test_alias_bomb_is_refused_at_the_alias(pure: bool) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    mark, msg, hint = only(errors_of("\n".join(lines) + "\n", pure=pure, max_nodes=100_000))
    assert "alias expansion exceeds 100,000 nodes" in msg
    assert "alias bomb" in hint
    # anchors hold 11, 111, 1,111, 11,111, 111,111 nodes: the aliases on line 5 cross the limit
    assert mark is not None and mark.line == 5


def test_aliases_within_the_limit_are_fine() -> None:
    # root (1) + keys a, b (2) + [1, 2, 3] (4) + [*a, *a] (1 + 4 + 4) = 16 expanded nodes
    doc = parse("a: &a [1, 2, 3]\nb: [*a, *a]\n", max_nodes=16)
    assert doc.data["b"][0] is doc.data["a"]
    with pytest.raises(SourceErrors):
        parse("a: &a [1, 2, 3]\nb: [*a, *a]\n", max_nodes=15)


def test_flow_colon_in_libyaml_gets_a_quoting_hint() -> None:
    mark, msg, hint = only(errors_of("a: {t: 1:30}\n"))
    assert mark == Mark("f.yaml", 1, 9)
    assert "YAML syntax error" in msg and "quote values that contain ':'" in hint


def test_load_yaml_missing_file_suggests_close_names(tmp_path: Path) -> None:
    (tmp_path / "han-river.yaml").write_text("venue: x\n")
    with pytest.raises(SourceErrors) as ei:
        load_yaml(tmp_path / "han-rivr.yaml")
    mark, msg, hint = only(ei.value)
    assert msg == "file not found"
    assert str(tmp_path / "han-rivr.yaml") in hint and "han-river.yaml" in hint
    assert mark == Mark(str(tmp_path / "han-rivr.yaml"), 1, 1)


def test_load_yaml_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceErrors) as ei:
        load_yaml(tmp_path / "nope" / "x.yaml", display="x.yaml")
    mark, _, hint = only(ei.value)
    assert mark is not None and mark.file == "x.yaml"
    assert "does not exist" in hint


def test_load_yaml_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceErrors) as ei:
        load_yaml(tmp_path)
    assert "a directory" in only(ei.value)[1]


def test_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:  # a sparse 100 MB file: refusing must not read it
        f.truncate(100 * 2**20)
    with pytest.raises(SourceErrors) as ei:
        load_yaml(big)
    _, msg, _ = only(ei.value)
    assert "104,857,600 bytes" in msg and f"{8 * 2**20:,}" in msg


def test_file_growing_past_the_limit_reads_only_the_limit() -> None:
    # /dev/zero stats as a character device; a FIFO-like endless source must not hang.
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    with pytest.raises(SourceErrors) as ei:
        load_yaml("/dev/zero")
    assert "not a regular file" in only(ei.value)[1]


def test_load_yaml_reads_and_names(tmp_path: Path) -> None:
    p = tmp_path / "v.yaml"
    p.write_text("venue: x\nzones: [a]\n", encoding="utf-8")
    doc = load_yaml(p, display="shown.yaml")
    assert doc.data == {"venue": "x", "zones": ["a"]}
    assert doc.mark(["zones", 0]) == Mark("shown.yaml", 2, 9)


def test_big_show_loads_with_marks_for_every_value() -> None:
    text = show_yaml(120)
    doc = parse_yaml(text, "show.yaml")
    cues = doc.data["cues"]
    assert len(cues) == 120
    assert cues[0]["go"] == "auto-follow"  # merged from &defaults
    assert cues[1]["at"] == "00:01.333" or isinstance(cues[1]["at"], str)
    # every cue's id is marked on its own line
    lines = text.splitlines()
    for i in (0, 17, 119):
        m = doc.mark(["cues", i, "id"])
        assert lines[m.line - 1].strip() == f"- id: c{i:05d}"
    # both backends agree on data and marks
    pure = _parse(text, "show.yaml", max_nodes=2_000_000, pure=True)
    assert pure.data == doc.data
    assert dict(pure.marks) == dict(doc.marks)
    assert dict(pure.key_marks) == dict(doc.key_marks)


@pytest.mark.parametrize("pure", [False, True], ids=["libyaml", "pure"])
def test_repeated_plain_scalars_resolve_each_time(pure: bool) -> None:
    # Resolution is memoised per document: repeats must come out the same, quoting still wins.
    items = [
        "0",
        "0",
        "'0'",
        "0.0",
        "0.0",
        "1:30",
        "1:30",
        "0o17",
        "0o17",
        "null",
        "'null'",
        "null",
        "2.1",
        "2.1",
    ]
    text = "a:\n" + "".join(f"  - {v}\n" for v in items)
    doc = parse(text, pure=pure)
    assert doc.data["a"] == [0, 0, "0", 0.0, 0.0, "1:30", "1:30", 15, 15, None, "null", None, 2.1, 2.1]
    assert [type(v) for v in doc.data["a"][:5]] == [int, int, str, float, float]
    assert doc.mark(["a", 13]) == Mark("f.yaml", 15, 5)
