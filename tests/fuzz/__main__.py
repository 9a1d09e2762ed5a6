"""``python -m tests.fuzz {osc,json,show} [libFuzzer flags]``: a coverage-guided fuzz run (atheris).

Examples: ``python -m tests.fuzz osc -runs=1000000``, ``python -m tests.fuzz show -max_total_time=600
corpus/show``. A finding is a Python exception other than the decoder's own error: atheris prints
it with its input and exits non-zero (the input is written to ``crash-*``).
"""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("osc", "json", "show"):
        sys.exit("usage: python -m tests.fuzz {osc,json,show} [libFuzzer flags, e.g. -runs=100000 -seed=1]")
    try:
        import atheris
    except ImportError:
        sys.exit("atheris is not installed: pip install -e '.[test]' (or pytest tests/fuzz for Hypothesis)")
    name = sys.argv.pop(1)
    # Coverage is of Madang's own code: the libraries it uses are imported uninstrumented first.
    import msgspec  # noqa: F401
    import numpy  # noqa: F401
    import pydantic  # noqa: F401
    import ruamel.yaml  # noqa: F401

    with atheris.instrument_imports(include=["controller", "cues", "venues", "tests.fuzz"]):
        from tests.fuzz.targets import TARGETS
    target = TARGETS[name]

    def one(data: bytes) -> None:
        target(data)

    argv = sys.argv
    if not any(not a.startswith("-") for a in argv[1:]):  # no corpus given: start from the seeds
        argv = [*argv, _seeds(name)]
    atheris.Setup(argv, one)
    atheris.Fuzz()


def _seeds(name: str) -> str:
    """A fresh folder of valid inputs to start from (libFuzzer adds to it; the repo is untouched).
    One folder per target, emptied at each run: libFuzzer exits without cleaning up."""
    import shutil
    import tempfile
    from pathlib import Path

    from tests.fuzz.targets import seeds

    folder = Path(tempfile.gettempdir()) / f"madang-fuzz-{name}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for i, data in enumerate(seeds(name)):
        (folder / f"seed-{i}").write_bytes(data)
    return str(folder)


if __name__ == "__main__":
    main()
