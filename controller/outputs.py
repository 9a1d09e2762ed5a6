"""Files Madang writes where the user asked: reports, plans, schemas, mapped venues.

Two rules (README: "nothing written is lost"). A path is checked before the work that fills it
(:func:`prepare`: its folder is created and must be writable), so a typo in ``--report`` fails
before the show, not after it. And a file is written whole or not at all (:func:`write_text`
writes a temporary file beside it and renames it over the target), so a crash mid-write never
leaves half a report.
"""

from __future__ import annotations

import os
from pathlib import Path

from venues.errors import MadangError

__all__ = ["OutputError", "prepare", "write_text"]


class OutputError(MadangError, OSError):
    """An output file that cannot be written: says which, why, and what to do."""


def prepare(path: str | os.PathLike[str], what: str) -> Path:
    """Make sure ``path`` can be written (creating its folder); raise :class:`OutputError` if not."""
    p = Path(path)
    folder = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((a for a in (folder, *folder.parents) if a.exists() and not a.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker is not None else exc.strerror
        raise OutputError(
            f"cannot create the folder {folder} for the {what} {p}: {why}; choose another path"
        ) from exc
    if p.is_dir():
        raise OutputError(f"the {what} {p} is a folder; give a file name, e.g. {p / 'report.json'}")
    if not os.access(folder, os.W_OK):
        raise OutputError(
            f"cannot write the {what} {p}: the folder {folder} is not writable; choose another path"
        )
    return p


def write_text(path: str | os.PathLike[str], text: str, what: str) -> Path:
    """Write ``text`` to ``path`` whole (a temporary file in the same folder, then a rename)."""
    p = prepare(path, what)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")  # same folder: the rename is atomic
    try:
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, p)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputError(f"cannot write the {what} {p}: {exc.strerror or exc}; choose another path") from exc
    return p
