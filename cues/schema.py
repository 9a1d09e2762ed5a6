"""The JSON Schema of show files, for editors with YAML completion (``madang schema``).

Editors that speak the YAML language server pick it up from a modeline at the top of a show:
``# yaml-language-server: $schema=../../docs/show.schema.json``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from cues.model import PartModel, ShowModel

__all__ = ["part_schema", "show_schema", "write_schema"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def show_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a main show file."""
    schema = ShowModel.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": _DIALECT, "title": "Madang show file", **schema}


def part_schema() -> dict[str, Any]:
    """The JSON Schema of an included file (cues and templates only)."""
    schema = PartModel.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": _DIALECT, "title": "Madang show part (included file)", **schema}


def write_schema(path: str | os.PathLike[str], *, part: bool = False) -> None:
    """Write the show (or part) schema as indented JSON to ``path``."""
    data = part_schema() if part else show_schema()
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")
