"""The compiled show: one sorted timeline of actions in integer nanoseconds of show time.

Theory of operation
-------------------
A show file is a cue list. The compiler (:mod:`cues.compiler`) lays it out on one *nominal*
timeline: each cue has a start (when it is triggered), a body start (after its pre-wait) and an
end (when its last action and fade have completed). Cues are grouped into *sequences*: a
sequence begins with a cue that needs a trigger (``go: manual``, or a cue waiting for an event)
and continues with every following ``auto-continue`` / ``auto-follow`` cue. In the nominal
layout a sequence starts when the previous one has ended, so the plan reads top to bottom.

At run time the engine anchors each sequence at the instant it is triggered (GO, an event, or a
timeout), as QLab does: a GO pressed while the previous sequence is still running starts the next
one at once and both run. ``state_at(t)`` and seek use the nominal layout.

Every action is targeted at concrete device ids (selectors and groups are resolved by the
compiler). Strings in addresses, topics, arguments and payloads may hold ``{placeholders}``
naming device attributes (``{device}``, ``{id}``, ``{zone}``, ``{kind}``, any venue attribute);
they are substituted per device at send time.

Units: every instant and duration is an ``int`` of nanoseconds. Conversion to seconds, OSC
timetags or SMPTE happens only at the edges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Literal, TypeAlias

from venues.errors import Mark

__all__ = [
    "Action",
    "CueSpan",
    "Ease",
    "EventTrigger",
    "Fade",
    "Go",
    "JsonValue",
    "MqttSend",
    "OscArg",
    "OscSend",
    "OscTyped",
    "Sequence",
    "Timeline",
]

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class OscTyped:
    """An OSC argument with an explicit OSC 1.0 type tag, for what a plain Python value cannot
    say: ``h`` (int64) and ``d`` (float64). Written ``{h: 5}`` / ``{d: 0.5}`` in show files.
    (Added by the show-file compiler; encoders that predate it may treat ``value`` as untyped.)"""

    tag: Literal["h", "d"]
    value: int | float


OscArg: TypeAlias = int | float | str | bool | bytes | OscTyped | None
JsonValue: TypeAlias = (
    bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None
)


class Go(StrEnum):
    """How a cue is triggered."""

    MANUAL = "manual"  # waits for the operator's GO
    AUTO_CONTINUE = "auto-continue"  # starts post_wait after the previous cue *started*
    AUTO_FOLLOW = "auto-follow"  # starts post_wait after the previous cue *completed*


@dataclass(frozen=True, slots=True)
class Ease:
    """An easing curve: ``kind`` is a Penner name (``in-out-cubic``), ``linear``,
    ``cubic-bezier`` (params x1, y1, x2, y2) or ``steps`` (params n, 0 for jump-end / 1 for
    jump-start). Evaluated by :func:`cues.easing.evaluate`."""

    kind: str = "linear"
    params: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class OscSend:
    """Send one OSC message: ``address`` and string ``args`` may hold placeholders.

    ``replay`` False marks an event (a profile verb such as QLab's ``/go``, docs/profiles.md): it
    is not part of the state a device is brought back to after a seek, a late join or a restart.
    """

    address: str
    args: tuple[OscArg, ...] = ()
    replay: bool = True


@dataclass(frozen=True, slots=True)
class MqttSend:
    """Publish one MQTT message per device (or once, when the topic has no placeholder).

    ``payload`` is JSON-able; its strings may hold placeholders.
    """

    topic: str
    payload: JsonValue = None
    qos: Literal[0, 1, 2] = 0
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Fade:
    """Move a numeric parameter from ``start`` to ``end`` over ``duration_ns`` along ``ease``.

    ``start`` is ``None`` for "from wherever it is now" (resolved by the engine from state).
    A device that interpolates gets one ramp description; others get a stream of values at the
    control rate, each computed for the instant it is due. ``address`` (OSC) and ``topic``
    (MQTT) say where values go; defaults are ``/{param}`` and ``{base}/param/{param}``.
    """

    param: str
    start: float | None
    end: float
    duration_ns: int
    ease: Ease = field(default_factory=Ease)
    address: str | None = None
    topic: str | None = None
    rate_hz: float | None = None  # control rate for streamed fades; None = the controller default


Op: TypeAlias = OscSend | MqttSend | Fade


@dataclass(frozen=True, slots=True)
class Action:
    """One thing that happens at one instant of nominal show time, on some devices."""

    at_ns: int  # nominal show time at which it takes effect (for a fade: its start)
    cue: str
    seq: int  # unique and increasing across the show: part of the idempotency key
    devices: tuple[str, ...]
    op: Op
    mark: Mark | None = None  # where the artist wrote it

    @property
    def end_ns(self) -> int:
        """When the action is complete (a fade's end; otherwise ``at_ns``)."""
        if isinstance(self.op, Fade):
            return self.at_ns + self.op.duration_ns
        return self.at_ns


@dataclass(frozen=True, slots=True)
class EventTrigger:
    """A cue that waits for events from the devices instead of (or besides) a GO.

    ``transport`` is ``"mqtt"`` (``pattern`` is an MQTT topic filter with ``+``/``#``) or
    ``"osc"`` (``pattern`` is an OSC address pattern received on the control port).
    When ``count`` matching messages (from distinct senders where the topic identifies one)
    have arrived the cue starts. If ``timeout_ns`` passes first, ``on_timeout`` decides:
    ``"go"`` start anyway, ``"skip"`` skip this cue's sequence, ``"hold"`` wait for the operator,
    ``"stop"`` stop the show.
    """

    transport: Literal["mqtt", "osc"]
    pattern: str
    count: int = 1
    timeout_ns: int | None = None
    on_timeout: Literal["go", "skip", "hold", "stop"] = "hold"
    # An audience trigger (``on: {audience: tap, zone: yeouido, count: 80%}``): ``event`` is
    # ``tap`` or ``vote/<choice>``, ``zone`` None for the whole audience; ``pattern`` is then
    # ``madang/audience/{zone|+}/+/{event}``. With ``share`` (percent, 0 < share <= 100) the cue
    # starts when that share of the zone's phones present (connected) have sent one, each phone
    # counted once and only while present; ``count`` is then the least number of phones (1).
    event: str | None = None
    zone: str | None = None
    share: float | None = None

    def needed(self, present: int) -> int:
        """How many phones must have tapped (voted) when ``present`` are connected: ``count``,
        or for a share the smallest number that makes it (at least 1: an empty zone waits)."""
        if self.share is None:
            return self.count
        return max(self.count, -(-round(self.share * 1000) * present // 100_000))


@dataclass(frozen=True, slots=True)
class CueSpan:
    """A cue laid out on the nominal timeline."""

    id: str
    name: str
    index: int  # position in the cue list, 0-based
    go: Go
    start_ns: int  # when it is triggered (nominal)
    body_ns: int  # start + pre_wait: actions' ``at`` count from here
    end_ns: int  # when its last action or fade completes
    post_wait_ns: int = 0
    trigger: EventTrigger | None = None
    sequence: int = 0  # index into Timeline.sequences
    mark: Mark | None = None
    notes: str = ""  # the artist's notes for the operator (shown in the live view's cue list)

    @property
    def needs_trigger(self) -> bool:
        """True when the cue waits for a GO or an event rather than following the previous one."""
        return self.go is Go.MANUAL or self.trigger is not None


@dataclass(frozen=True, slots=True)
class Sequence:
    """A triggered cue and the auto-continue / auto-follow cues chained after it."""

    index: int
    cues: tuple[str, ...]
    start_ns: int  # nominal
    end_ns: int  # nominal: the last action or fade of any of its cues completes


@dataclass(frozen=True)
class Timeline:
    """A compiled show. ``actions`` are sorted by ``(at_ns, seq)``."""

    show: str
    venue: str
    cues: tuple[CueSpan, ...]
    sequences: tuple[Sequence, ...]
    actions: tuple[Action, ...]
    duration_ns: int
    source: str = ""  # the show file it came from
    device_count: int = 0
    # The crowd images its light actions name: file name -> path (served to the light page).
    media: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def cue_by_id(self) -> Mapping[str, CueSpan]:
        """Cues by id."""
        return {c.id: c for c in self.cues}

    @cached_property
    def actions_by_cue(self) -> Mapping[str, tuple[Action, ...]]:
        """Each cue's actions, in timeline order."""
        out: dict[str, list[Action]] = {c.id: [] for c in self.cues}
        for a in self.actions:
            out[a.cue].append(a)
        return {k: tuple(v) for k, v in out.items()}
