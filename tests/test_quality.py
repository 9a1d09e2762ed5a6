"""The project's own quality gates, run as part of the test command.

`mypy --strict`, `ruff` and the import contract (import-linter) over the whole code base. Each gate
runs the real tool in a subprocess, so a failure shows the tool's own report.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["controller", "cues", "venues", "simulators", "madang"]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_mypy_strict_is_clean() -> None:
    proc = _run([sys.executable, "-m", "mypy", *PACKAGES])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_is_clean() -> None:
    proc = _run([sys.executable, "-m", "ruff", "check", *PACKAGES, "tests"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_contract_holds() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("lint-imports (import-linter) is not installed: pip install -e '.[test]'")
    proc = _run([exe, "--no-cache"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
