"""docs/operator.md's generated tables are exactly what the code's own tables render."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.playback import TABLE
from madang import gendocs


def test_operator_doc_tables_are_current() -> None:
    text = gendocs.OPERATOR_DOC.read_text(encoding="utf-8")
    assert gendocs.regenerate(text) == text, "docs/operator.md is stale: run python -m madang.gendocs"
    for row in gendocs.transport_table().splitlines()[2:]:
        assert row in text
    assert "| `/arm` |" in text and "| `/load` | `<seconds>` |" in text and "| `/updates` |" in text


def test_check_fails_on_a_stale_doc_and_the_command_fixes_it(tmp_path: Path) -> None:
    doc = tmp_path / "operator.md"
    stale = gendocs.OPERATOR_DOC.read_text(encoding="utf-8").replace("| `/reset` |", "| `/rest` |")
    doc.write_text(stale, encoding="utf-8")
    assert gendocs.main(["--check", "--doc", str(doc)]) == 1
    assert gendocs.main(["--doc", str(doc)]) == 0
    assert gendocs.main(["--check", "--doc", str(doc)]) == 0


def test_every_command_of_the_table_has_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    state, _ = next(iter(TABLE))
    monkeypatch.setitem(TABLE, (state, "brand-new"), TABLE[next(iter(TABLE))])
    with pytest.raises(ValueError, match="brand-new"):
        gendocs.transport_table()
