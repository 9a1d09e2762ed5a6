"""When the controller publishes its retained state (docs/protocol.md, "Controller state").

On every transport change at once (a forced publish), and while playing at least every
``every_ns`` (a keep-alive, so that a device that joins between two extrapolates ``show_ns`` from
a recent ``at``). Pure: :meth:`StateKeepAlive.due` takes the state and ``now``.
"""

from __future__ import annotations

from controller.playback import State

__all__ = ["StateKeepAlive"]


class StateKeepAlive:
    """Decides when the retained controller state goes out; counts what it published (``seq``)."""

    def __init__(self, every_ns: int) -> None:
        self.every_ns = every_ns
        self.last_ns: int | None = None  # when it last went out
        self.seq = 0  # how many went out (the message's ``seq``)
        self._last: State | None = None

    def due(self, state: State, now: int, *, force: bool = False) -> bool:
        """Whether to publish ``state`` at ``now``: forced, never published, changed, or a
        keep-alive interval gone by while playing. When it answers True it counts the publish."""
        last = self.last_ns
        keep_alive = last is None or (state is State.PLAYING and now - last >= self.every_ns)
        if not (force or keep_alive or state != self._last):
            return False
        self._last = state
        self.last_ns = now
        self.seq += 1
        return True

    def next_ns(self, state: State) -> int | None:
        """The next keep-alive instant while playing (None otherwise)."""
        if state is State.PLAYING and self.last_ns is not None:
            return self.last_ns + self.every_ns
        return None
