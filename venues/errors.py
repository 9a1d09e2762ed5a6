"""The Madang error tree.

Every error Madang raises on purpose derives from :class:`MadangError` and also from the
builtin it resembles, so callers can catch either. Errors hold facts as fields and build
their message in ``__str__``: what went wrong, where, and what to do about it.

This module lives in :mod:`venues`, the lowest layer, so that every package can use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Finding",
    "MadangError",
    "Mark",
    "SourceError",
    "SourceErrors",
    "VenueFileError",
]


class MadangError(Exception):
    """Root of every error Madang raises on purpose."""


@dataclass(frozen=True, slots=True, order=True)
class Mark:
    """A position in a source file; ``line`` and ``col`` are 1-based, as editors show them."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in a source file: what, where, and a hint on what to do."""

    mark: Mark | None
    message: str
    hint: str = ""
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        where = f"{self.mark}: " if self.mark is not None else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.message}{hint}"

    def to_json(self) -> dict[str, object]:
        """The finding as a plain dict for ``--json`` output (editors and CI read this)."""
        return {
            "file": self.mark.file if self.mark else None,
            "line": self.mark.line if self.mark else None,
            "col": self.mark.col if self.mark else None,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
        }


class SourceError(MadangError, ValueError):
    """A single problem in a show or venue file, with its position."""

    def __init__(self, mark: Mark | None, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.finding = Finding(mark, message, hint)

    @property
    def mark(self) -> Mark | None:
        return self.finding.mark

    def __str__(self) -> str:
        return str(self.finding)


@dataclass
class SourceErrors(MadangError, ValueError):
    """Every problem found in one pass over a set of files; raised when there is at least one."""

    findings: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.findings)

    def __str__(self) -> str:
        return "\n".join(str(f) for f in self.findings)

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    @classmethod
    def of(cls, findings: Iterable[Finding]) -> SourceErrors:
        return cls(sorted(findings, key=_finding_order))

    def errors(self) -> Sequence[Finding]:
        return [f for f in self.findings if f.severity == "error"]


def _finding_order(f: Finding) -> tuple[str, int, int, str]:
    if f.mark is None:
        return ("", 0, 0, f.message)
    return (f.mark.file, f.mark.line, f.mark.col, f.message)


class VenueFileError(SourceError):
    """A problem in a venue file."""
