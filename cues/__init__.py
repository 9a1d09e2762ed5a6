"""Show files: the model, the parser with source positions, validation and the compiler.

The public API, imported lazily so that ``import cues.timeline`` stays cheap (no pydantic)::

    from cues import check_show, compile_show
    report = check_show("config/shows/han-river-night-bloom.yaml")
    print(report.summary())
    timeline, venue = compile_show("config/shows/han-river-night-bloom.yaml")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cues.check import CheckReport, check_show
    from cues.compiler import Compiled, compile_doc, compile_loaded, compile_show
    from cues.loader import LoadedShow, load_show
    from cues.model import CueModel, ShowModel
    from cues.schema import show_schema
    from cues.timeline import (
        Action,
        CueSpan,
        Ease,
        EventTrigger,
        Fade,
        Go,
        MqttSend,
        OscSend,
        OscTyped,
        Timeline,
    )

__all__ = [
    "Action",
    "CheckReport",
    "Compiled",
    "CueModel",
    "CueSpan",
    "Ease",
    "EventTrigger",
    "Fade",
    "Go",
    "LoadedShow",
    "MqttSend",
    "OscSend",
    "OscTyped",
    "ShowModel",
    "Timeline",
    "check_show",
    "compile_doc",
    "compile_loaded",
    "compile_show",
    "load_show",
    "show_schema",
]

_WHERE = {
    "CheckReport": "cues.check",
    "check_show": "cues.check",
    "Compiled": "cues.compiler",
    "compile_doc": "cues.compiler",
    "compile_loaded": "cues.compiler",
    "compile_show": "cues.compiler",
    "LoadedShow": "cues.loader",
    "load_show": "cues.loader",
    "CueModel": "cues.model",
    "ShowModel": "cues.model",
    "show_schema": "cues.schema",
    **{
        n: "cues.timeline"
        for n in (
            "Action",
            "CueSpan",
            "Ease",
            "EventTrigger",
            "Fade",
            "Go",
            "MqttSend",
            "OscSend",
            "OscTyped",
            "Timeline",
        )
    },
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cues' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
