"""``madang run``'s secrets: a bad one stops the run before the show, saying what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from madang.cli import main

REPO = Path(__file__).resolve().parents[2]
SHOW = REPO / "config" / "shows" / "han-river-night-bloom.yaml"


def test_a_short_secret_is_refused_before_the_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = tmp_path / "op.secret"
    short.write_text("abc\n", encoding="utf-8")
    rc = main(["run", str(SHOW), "--no-view", "--operator-token-file", str(short)])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"the operator secret from {short} is 3 characters long" in err
    assert "at least 8 characters" in err


def test_a_missing_secret_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["run", str(SHOW), "--no-view", "--viewer-token-file", str(tmp_path / "none")])
    assert rc == 1
    assert "cannot be read" in capsys.readouterr().err
