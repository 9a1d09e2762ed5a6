"""Regenerate the parts of the docs that the code's own tables define: ``python -m madang.gendocs``.

docs/operator.md holds two generated tables, each between ``<!-- generated: NAME -->`` and
``<!-- end: NAME -->``:

* ``transport``: every operator command in every state, from :data:`controller.playback.TABLE`;
* ``control-addresses``: every OSC control address, from :data:`controller.control.ADDRESSES`.

``python -m madang.gendocs --check`` changes nothing and exits 1 when a table is out of date
(tests/madang/test_gendocs.py runs the same check).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from controller.control import address_table
from controller.playback import TABLE, State

__all__ = ["GENERATED", "OPERATOR_DOC", "main", "regenerate", "transport_table"]

OPERATOR_DOC = Path(__file__).resolve().parent.parent / "docs" / "operator.md"

# The operator's commands in the order the doc lists them, with how the operator gives them.
_COMMANDS: tuple[tuple[str, str], ...] = (
    ("load", "load (the show file, at start)"),
    ("arm", "arm (`/arm`)"),
    ("reset", "reset (`/reset`)"),
    ("load-at", "load to a time or cue (`/load`)"),
    ("go", "GO / GO cue (`/go`, `/go/{cue}`)"),
    ("pause", "pause (`/pause`)"),
    ("resume", "resume (`/resume`)"),
    ("toggle-pause", "pause or resume (`/togglePause`)"),
    ("stop", "stop (`/stop`)"),
    ("seek", "seek (`/seek`)"),
    ("set-rate", "rate (`/rate`)"),
    ("playhead", "playhead next/previous"),
    ("panic", "panic (`/panic`)"),
)
# Issued by the engine itself through the same table (described in prose in the doc).
_INTERNAL = frozenset({
    "sequence-ended", "show-ended", "event-arrived",
    "timeout-go", "timeout-skip", "timeout-hold", "timeout-stop",
})


def transport_table() -> str:
    """:data:`controller.playback.TABLE` for the operator: ``✓ → state`` or ``—`` per cell."""
    keys = {k for _, k in TABLE}
    missing = keys - {k for k, _ in _COMMANDS} - _INTERNAL
    if missing:
        raise ValueError(
            f"commands with no row in docs/operator.md: {sorted(missing)}; add them to _COMMANDS"
        )
    states = list(State)
    lines = [
        "| command | " + " | ".join(s.value for s in states) + " |",
        "| --- | " + " | ".join("---" for _ in states) + " |",
    ]
    for key, label in _COMMANDS:
        cells = []
        for s in states:
            tr = TABLE.get((s, key))
            cells.append("—" if tr is None else f"✓ → {tr.state.value}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


GENERATED: dict[str, Callable[[], str]] = {
    "transport": transport_table,
    "control-addresses": address_table,
}
"""Each generated block of docs/operator.md and what renders it."""


def regenerate(text: str) -> str:
    """``text`` with every generated block rendered afresh (a missing marker is an error)."""
    for name, render in GENERATED.items():
        pattern = re.compile(
            rf"(<!-- generated: {re.escape(name)} [^\n]*-->\n)(.*?)(<!-- end: {re.escape(name)} -->)", re.S
        )
        if not pattern.search(text):
            raise ValueError(
                f"docs/operator.md has no block '<!-- generated: {name} ... -->' ... '<!-- end: {name} -->'"
            )
        text = pattern.sub(_filler(render()), text)
    return text


def _filler(body: str) -> Callable[[re.Match[str]], str]:
    return lambda m: m.group(1) + body + m.group(3)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated tables of docs/operator.md (``--check``: only say if they are stale)."""
    ap = argparse.ArgumentParser(prog="python -m madang.gendocs", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated table is out of date")
    ap.add_argument("--doc", type=Path, default=OPERATOR_DOC, help="the file to regenerate")
    args = ap.parse_args(argv)
    text = args.doc.read_text(encoding="utf-8")
    fresh = regenerate(text)
    if fresh == text:
        return 0
    if args.check:
        print(f"{args.doc}: generated tables are out of date; run python -m madang.gendocs", file=sys.stderr)
        return 1
    args.doc.write_text(fresh, encoding="utf-8")
    print(f"{args.doc}: regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
