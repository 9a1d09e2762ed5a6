"""Show and venue files cannot exhaust memory or run code: each limit, with its message
(docs/security-controls.md, "Show and venue files")."""

from __future__ import annotations

from pathlib import Path

import pytest

from cues.check import file_kind
from cues.loader import MAX_INCLUDE_DEPTH, MAX_SHOW_FILES, load_show
from venues.errors import SourceErrors
from venues.loader import load_venue
from venues.source import MAX_FILE_BYTES, MAX_VALUES, load_yaml, parse_yaml

HEAD = "show: Limits\nvenue: v\ncues:\n  - id: a\n    actions: []\n"


def _messages(show: Path) -> list[str]:
    return [f.message for f in load_show(show).findings]


def test_a_15_mb_show_is_refused_from_its_size_before_parsing(tmp_path: Path) -> None:
    show = tmp_path / "big.yaml"
    row = "  - {id: c%07d, actions: []}\n"
    with show.open("w", encoding="utf-8") as f:
        f.write(HEAD)
        for i in range(15 * 2**20 // len(row % 0) + 1):
            f.write(row % i)
    assert show.stat().st_size > 15 * 2**20
    (msg,) = _messages(show)
    assert f"the limit is {MAX_FILE_BYTES:,} bytes" in msg and "file too large" in msg
    assert file_kind(show) == "show"  # sniffing the kind does not read it either


def test_more_values_than_the_limit_are_refused_while_parsing() -> None:
    text = "v: [" + ",".join(["1"] * 1001) + "]\n"
    with pytest.raises(SourceErrors) as ei:
        parse_yaml(text, "many.yaml", max_nodes=1000)
    assert "more than the limit of 1,000" in str(ei.value)
    assert MAX_VALUES == 2_000_000


def test_an_alias_bomb_is_refused() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for k in range(1, 9):
        lines.append(f"{chr(97 + k)}: &{chr(97 + k)} [{', '.join(['*' + chr(96 + k)] * 10)}]")
    with pytest.raises(SourceErrors) as ei:
        parse_yaml("\n".join(lines) + "\n", "bomb.yaml")
    assert "alias" in str(ei.value)


def test_yaml_tags_are_data_never_code(tmp_path: Path) -> None:
    venue = tmp_path / "v.yaml"
    venue.write_text("venue: !!python/object/apply:os.system ['touch pwned']\n", encoding="utf-8")
    with pytest.raises(SourceErrors):
        load_venue(venue)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    with pytest.raises(SourceErrors):
        load_yaml(venue)


def test_an_include_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("include: b.yaml\ncues: []\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("include: a.yaml\ncues: []\n", encoding="utf-8")
    show = tmp_path / "show.yaml"
    show.write_text(HEAD + "include: a.yaml\n", encoding="utf-8")
    assert any("include loop" in m for m in _messages(show))


def test_includes_nested_too_deep_are_refused(tmp_path: Path) -> None:
    for k in range(MAX_INCLUDE_DEPTH + 2):
        (tmp_path / f"p{k}.yaml").write_text(f"include: p{k + 1}.yaml\ncues: []\n", encoding="utf-8")
    (tmp_path / f"p{MAX_INCLUDE_DEPTH + 2}.yaml").write_text("cues: []\n", encoding="utf-8")
    show = tmp_path / "show.yaml"
    show.write_text(HEAD + "include: p0.yaml\n", encoding="utf-8")
    assert any(f"nested deeper than {MAX_INCLUDE_DEPTH}" in m for m in _messages(show))


def test_an_include_fan_out_cannot_multiply_the_work(tmp_path: Path) -> None:
    (tmp_path / "leaf.yaml").write_text("cues: []\n", encoding="utf-8")
    mid = "include: [" + ", ".join(["leaf.yaml"] * 50) + "]\ncues: []\n"
    (tmp_path / "mid.yaml").write_text(mid, encoding="utf-8")
    show = tmp_path / "show.yaml"
    show.write_text(HEAD + "include: [" + ", ".join(["mid.yaml"] * 50) + "]\n", encoding="utf-8")
    loaded = load_show(show)
    assert len(loaded.files) == MAX_SHOW_FILES
    assert sum(f"more than {MAX_SHOW_FILES} files" in f.message for f in loaded.findings) == 1
