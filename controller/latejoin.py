"""What went out ahead of time and has not fired yet, for devices that (re)join mid-show.

A cue for ``app`` devices (and a ramp for devices that interpolate) is sent a lead ahead of its
instant to a *group* topic. A device that reconnects inside that lead missed it, and the catch-up
state it gets is the show *now*, which does not hold the cue either. The core keeps these outputs
here until their instant passes, and sends a rejoining device its own copies (it deduplicates by
key, docs/protocol.md). Pure: every call takes ``now``.
"""

from __future__ import annotations

from collections.abc import Container

from controller.delivery import Key
from controller.engine import Fire, Ramp

__all__ = ["SentAhead"]


class SentAhead:
    """Outputs sent ahead whose instant may still be to come (see the module docstring)."""

    def __init__(self, *, keep: int = 512) -> None:
        self._items: list[Fire | Ramp] = []
        self._keep = keep  # past this many, the ones already due are forgotten

    def note(self, o: Fire | Ramp, now: int) -> None:
        """``o`` was planned (and so may have gone out ahead) at ``now``."""
        self._items.append(o)
        if len(self._items) > self._keep:
            self.forget_due(now)

    def forget_due(self, now: int) -> None:
        """Forget what is due by ``now``: it has fired (or been missed) for everyone."""
        self._items = [o for o in self._items if o.at > now]

    def cancel(self, keys: Container[Key], after_ns: int) -> None:
        """Outputs with one of ``keys`` due after ``after_ns`` were withdrawn (pause, stop, seek)."""
        self._items = [o for o in self._items if not (o.key in keys and o.at > after_ns)]

    def for_device(self, device: str, now: int) -> list[Fire | Ramp]:
        """What ``device`` should get again, alone, on rejoining at ``now``."""
        self.forget_due(now)
        return [o for o in self._items if device in o.devices]
