"""Output files (controller/outputs.py): folders are made, bad paths fail early and clearly,
and a file is replaced whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.outputs import OutputError, prepare, write_text
from venues.errors import MadangError


def test_write_text_creates_the_folder_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "nested" / "demo.json"
    assert write_text(target, "{}\n", "report") == target
    assert target.read_text(encoding="utf-8") == "{}\n"
    write_text(target, '{"a": 1}\n', "report")  # replaced whole
    assert target.read_text(encoding="utf-8") == '{"a": 1}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["demo.json"]


def test_a_folder_is_not_a_file_name(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a folder; give a file name"):
        prepare(tmp_path, "report")


def test_a_path_under_a_file_says_which_and_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x", encoding="utf-8")
    why = r"cannot create the folder .*plain is a file, not a folder; choose another path"
    with pytest.raises(MadangError, match=why):
        prepare(tmp_path / "plain" / "report.json", "report")
