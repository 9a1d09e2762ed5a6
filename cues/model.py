"""The show file as pydantic models: what an artist may write, validated field by field.

Theory of operation
-------------------
A show file is parsed into a positioned YAML document (:mod:`venues.source`), then validated
against :class:`ShowModel` (the main file) or :class:`PartModel` (an included file). Times are
parsed *during* validation, so a bad time is reported at its own line and column: validation
takes a :class:`cues.timecode.TimeContext` (the show's ``fps`` and ``tempo``) through pydantic's
``context={"time": ...}``. After validation every time and duration is an ``int`` of
nanoseconds and every easing an :class:`cues.timeline.Ease`.

Templates are kept raw here (their ``${param}`` placeholders make them untyped until a cue
uses them); :mod:`cues.loader` substitutes the parameters and validates the result with
:class:`TemplateBody`, so a template is checked once per use, with that use's values.

Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from cues.easing import parse_ease
from cues.timecode import TimeContext, parse_time_ns
from cues.timeline import Ease, Go, JsonValue, OscArg, OscTyped

__all__ = [
    "AUDIENCE_EVENT_RE",
    "ActionItem",
    "CueModel",
    "DoModel",
    "FadeModel",
    "LightModel",
    "MqttModel",
    "OscModel",
    "PartModel",
    "Share",
    "ShowModel",
    "TemplateBody",
    "TemplateModel",
    "TimelineItem",
    "TriggerModel",
    "osc_arg",
    "time_context",
]

# The protocol's limits for what a device must accept (docs/protocol.md, "Limits").
MAX_PAYLOAD_BYTES = 64 * 1024 - 1024  # leave room for the cue envelope around the payload
MAX_JSON_DEPTH = 32
MAX_STRING_BYTES = 4 * 1024

_TIME_FORMS = "seconds (12.5), 250ms, 2s, 2min, mm:ss.fff (01:30.250), SMPTE hh:mm:ss:ff or bar.beat (9.1)"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_COLOR_RE = re.compile(r"^(#[0-9A-Fa-f]{3}|#[0-9A-Fa-f]{6}|[a-z][a-z-]*)$")


def time_context(info: ValidationInfo) -> TimeContext:
    """The show's time context passed to validation (``context={"time": TimeContext(...)}``)."""
    ctx = info.context
    if isinstance(ctx, dict):
        t = ctx.get("time")
        if isinstance(t, TimeContext):
            return t
    return TimeContext()


# Shows repeat the same few times ("0", "2s", "250ms") thousands of times; parsing is exact
# (fractions), so memoising it is what keeps a 5,000-cue check fast. The memo is per time
# context (found by identity: hashing the frozen dataclass on every call cost more than the
# parse it saved), keyed by ``(type, value)`` so that 1 and 1.0 (equal and hash-equal, but not
# the same text) stay apart. Entry: (context, times memo, durations memo, context for durations).
_Memo = tuple[TimeContext, dict[tuple[type, object], int], dict[tuple[type, object], int], TimeContext]
_MEMOS: dict[int, _Memo] = {}
_MEMO_LIMIT = 4096
_DEFAULT_TIME = TimeContext()


def _memo(info: ValidationInfo) -> _Memo:
    ctx = info.context
    t = ctx.get("time") if type(ctx) is dict else None
    if type(t) is not TimeContext:
        t = _DEFAULT_TIME
    memo = _MEMOS.get(id(t))
    if memo is None or memo[0] is not t:
        if len(_MEMOS) >= 64:
            _MEMOS.clear()
        # Bars are positions, not lengths: a duration reads without the tempo map, so "2.1" is
        # refused with a hint to write "2.1s" rather than silently meaning "from bar 1 to bar 2
        # beat 1".
        memo = _MEMOS[id(t)] = (t, {}, {}, TimeContext(fps=t.fps))
    return memo


def _time(value: object, info: ValidationInfo) -> int:
    """An instant from the start of the cue body (``at``), in ns."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a time: {_TIME_FORMS}; got {type(value).__name__}")
    memo = _memo(info)
    key = (type(value), value)
    ns = memo[1].get(key)
    if ns is None:
        ns = parse_time_ns(value, memo[0])
        if len(memo[1]) >= _MEMO_LIMIT:
            memo[1].clear()
        memo[1][key] = ns
    if ns < 0:
        raise ValueError(
            f"time {value!r} is negative; times count from the cue body's start, write 0 or more"
        )
    return ns


def _duration(value: object, info: ValidationInfo) -> int:
    """A length of time in ns: ``2s``, ``250ms``, ``1.5``, ``2min``, ``01:30.5`` or SMPTE."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a duration such as 2s, 250ms, 1.5 or 01:30.5; got {type(value).__name__}")
    memo = _memo(info)
    key = (type(value), value)
    ns = memo[2].get(key)
    if ns is None:
        ns = parse_time_ns(value, memo[3])
        if len(memo[2]) >= _MEMO_LIMIT:
            memo[2].clear()
        memo[2][key] = ns
    if ns < 0:
        raise ValueError(f"duration {value!r} is negative; write 0 or more")
    return ns


def _ease(value: object) -> Ease:
    if isinstance(value, Ease):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an easing name such as in-out-cubic; got {type(value).__name__}")
    return _parse_ease_cached(value)


@functools.lru_cache(maxsize=1024)
def _parse_ease_cached(text: str) -> Ease:
    return parse_ease(text)


def _targets(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(
                "empty selector: name a device, a group, or an expression like 'zone:north & kind:facade'"
            )
        return (value,)
    if isinstance(value, list | tuple) and value:
        out: list[str] = []
        for v in value:
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"every target must be a non-empty selector string; got {v!r}")
            out.append(v)
        return tuple(out)
    raise ValueError("targets must be a selector string or a non-empty list of them")


_TYPED_ARG_TAGS = {
    "i": "32-bit integer",
    "h": "64-bit integer",
    "f": "32-bit float",
    "d": "64-bit float",
    "s": "string",
    "b": "blob (hex string)",
}


def osc_arg(value: object) -> OscArg:
    """One OSC argument as written: a scalar, or ``{tag: value}`` for an explicit OSC type.

    ``{f: 1}`` is the float 1.0, ``{i: 1}`` an int32, ``{s: 5}`` the string "5"; tags that a plain
    Python value cannot express (``h`` int64, ``d`` float64) become :class:`cues.timeline.OscTyped`;
    ``{b: "c0ffee"}`` is a blob (``bytes``).
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not -(2**31) <= value < 2**31:
            raise ValueError(f"{value} does not fit an OSC int32; write {{h: {value}}} for a 64-bit integer")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("OSC arguments must be finite numbers")
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((tag, v),) = value.items()
        return _typed_arg(str(tag), v)
    tags = ", ".join(f"{{{t}: ...}} {d}" for t, d in _TYPED_ARG_TAGS.items())
    raise ValueError(f"an OSC argument is a number, string, true/false, null, or one typed value: {tags}")


def _typed_arg(tag: str, v: object) -> OscArg:
    if tag in ("i", "h"):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{{{tag}: ...}} needs an integer; got {v!r}")
        bits = 32 if tag == "i" else 64
        if not -(2 ** (bits - 1)) <= v < 2 ** (bits - 1):
            raise ValueError(f"{v} does not fit an OSC int{bits}")
        return v if tag == "i" else OscTyped("h", v)
    if tag in ("f", "d"):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"{{{tag}: ...}} needs a finite number; got {v!r}")
        return float(v) if tag == "f" else OscTyped("d", float(v))
    if tag == "s":
        if isinstance(v, dict | list) or v is None:
            raise ValueError(f"{{s: ...}} needs a scalar; got {v!r}")
        return v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
    if tag == "b":
        if not isinstance(v, str):
            raise ValueError("{b: ...} needs a hex string such as 'c0ffee'")
        try:
            return bytes.fromhex(v)
        except ValueError:
            raise ValueError(f"{{b: {v!r}}} is not a hex string (pairs of 0-9a-f)") from None
    known = ", ".join(_TYPED_ARG_TAGS)
    raise ValueError(f"unknown OSC type tag {tag!r}; use one of: {known}")


def _osc_args(value: object) -> tuple[OscArg, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError("args must be a list, e.g. [3, 0.5, loop, {f: 1}]")
    return tuple(osc_arg(v) for v in value)


def _json(value: object) -> JsonValue:
    bound = _json_walk(value, 0)
    if bound > MAX_PAYLOAD_BYTES:  # only then is the exact size worth encoding for
        size = len(_dumps(value).encode())
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(
                f"payload is {size:,} bytes of JSON; devices drop messages over 64 KiB, keep it under "
                f"{MAX_PAYLOAD_BYTES:,}"
            )
    return value  # type: ignore[return-value]  # checked by _json_walk


def _dumps(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_walk(value: object, depth: int) -> int:
    """Check a payload is JSON within the protocol's limits; an upper bound of its encoded size.

    Raises ``ValueError`` saying what is wrong. The bound counts 6 bytes per character of a
    string (the longest escape, ``\\u001f``; UTF-8 needs at most 4) and 24 per float.
    """
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"payload is nested deeper than {MAX_JSON_DEPTH} levels; devices drop such messages")
    if value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("payload numbers must be finite (JSON has no inf or nan)")
        return 24
    if isinstance(value, str):
        if len(value) > MAX_STRING_BYTES // 4 and len(value.encode()) > MAX_STRING_BYTES:
            raise ValueError("a payload string is longer than 4 KiB; devices drop such messages")
        return 6 * len(value) + 2
    if isinstance(value, list):
        return 2 + sum(_json_walk(v, depth + 1) + 1 for v in value)
    if isinstance(value, dict):
        total = 2
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"payload keys must be strings; got {k!r} (quote it)")
            total += 6 * len(k) + 4 + _json_walk(v, depth + 1)
        return total
    kinds = "null, true/false, numbers, strings, lists, maps"
    raise ValueError(f"payload values must be JSON ({kinds}); got {type(value).__name__}")


def _tempo(value: object) -> object:
    from cues.timecode import parse_tempo

    return parse_tempo(value)


_TIME_SCHEMA = {
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
    "description": f"A time: {_TIME_FORMS}.",
}
_DURATION_SCHEMA = {
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
    "description": "A duration: seconds (1.5), 250ms, 2s, 2min, mm:ss.fff or SMPTE hh:mm:ss:ff.",
}

Time = Annotated[int, PlainValidator(_time), WithJsonSchema(_TIME_SCHEMA)]
Duration = Annotated[int, PlainValidator(_duration), WithJsonSchema(_DURATION_SCHEMA)]
EaseField = Annotated[
    Ease,
    PlainValidator(_ease),
    WithJsonSchema(
        {
            "type": "string",
            "description": "linear, a Penner name (in-out-cubic, out-back, ...), "
            "cubic-bezier(x1, y1, x2, y2) or steps(n, jump-start|jump-end).",
        }
    ),
]
Targets = Annotated[
    tuple[str, ...],
    PlainValidator(_targets),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            ],
            "description": "A device id, a group, or a selector: zone:north & kind:facade | !group, ( ).",
        }
    ),
]
OscArgs = Annotated[
    tuple[Any, ...],
    PlainValidator(_osc_args),
    WithJsonSchema(
        {
            "type": "array",
            "items": {
                "anyOf": [
                    {"type": ["number", "string", "boolean", "null"]},
                    {
                        "type": "object",
                        "minProperties": 1,
                        "maxProperties": 1,
                        "properties": {t: {"description": d} for t, d in _TYPED_ARG_TAGS.items()},
                        "additionalProperties": False,
                    },
                ]
            },
        }
    ),
]
Payload = Annotated[Any, PlainValidator(_json), WithJsonSchema({"description": "Any JSON value."})]
Tempo = Annotated[
    Any,
    PlainValidator(_tempo),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"bpm": {"type": "number"}, "meter": {"type": "string"}},
                },
                {"type": "array", "items": {"type": "object"}},
            ],
            "description": "{bpm: 120, meter: 4/4} or a list of tempo changes.",
        }
    ),
]
Level = Annotated[StrictFloat | StrictInt, Field(allow_inf_nan=False)]


def _one_or_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class OscModel(_Strict):
    """``osc:``: one OSC message to every target; ``{placeholders}`` in the address and string args."""

    targets: Targets
    address: StrictStr
    args: OscArgs = ()


class MqttModel(_Strict):
    """``mqtt:``: publish a payload; a ``{device}`` topic publishes once per target device."""

    targets: Targets
    topic: StrictStr
    payload: Payload = None
    qos: Literal[0, 1, 2] = 0
    retain: StrictBool = False


class FadeModel(_Strict):
    """``fade:``: move ``param`` from ``from`` (or the current value) to ``to`` over ``over``."""

    targets: Targets
    param: Annotated[StrictStr, Field(pattern=_NAME_RE.pattern)]
    start: Level | None = Field(None, alias="from")
    end: Level = Field(alias="to")
    over: Duration
    ease: EaseField = Field(default_factory=Ease)
    rate: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1000)] | None = None
    address: StrictStr | None = None
    topic: StrictStr | None = None


Colour = Annotated[StrictStr, Field(pattern=_COLOR_RE.pattern, examples=["#ff2d95", "white"])]
Num = StrictFloat | StrictInt


class WaveModel(_Strict):
    """A colour wave sweeping the seats: bands of ``colors``, each ``width`` metres, moving at
    ``speed`` metres a second towards ``direction`` (degrees: 0 along the rows, 90 away from
    the stage)."""

    colors: Annotated[list[Colour], Field(min_length=1, max_length=16)]
    speed: Annotated[Num, Field(gt=0, le=1000)] = 10.0
    direction: Annotated[Num, Field(ge=-360, le=360)] = 0.0
    width: Annotated[Num, Field(gt=0, le=10_000)] = 5.0


class LightModel(_Strict):
    """``light:``: what the audience's phones (the light page) show from the cue's instant: a
    ``color`` (with ``strobe`` flashes a second), a ``scene`` name, a ``wave`` across the seats,
    or an ``image`` (a PNG of the show folder) spread over the seat map, one pixel per phone."""

    targets: Targets
    color: Colour | None = None
    strobe: Annotated[Num, Field(gt=0, le=25)] | None = None
    scene: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None
    wave: WaveModel | None = None
    image: Annotated[StrictStr, Field(min_length=1, max_length=255)] | None = None

    @model_validator(mode="after")
    def _one_look(self) -> LightModel:
        looks = [k for k in ("color", "scene", "wave", "image") if getattr(self, k) is not None]
        if not looks:
            raise ValueError("a light needs a color, a scene, a wave or an image")
        if self.wave is not None and self.image is not None:
            raise ValueError("a light is a wave or an image, not both")
        if self.strobe is not None and self.color is None:
            raise ValueError("a strobe flashes a color: give color too")
        return self



def _verb_value(value: object) -> object:
    """A verb's value in a ``do:`` action: nothing, one scalar, or a mapping of parameters."""
    if value is None or isinstance(value, bool | int | float | str):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("verb values must be finite numbers")
        return value
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"parameter names are text; got {k!r}")
            if not isinstance(v, bool | int | float | str):
                raise ValueError(
                    f"parameter {k!r} takes a number, text or true/false; got {type(v).__name__}"
                )
        return value
    raise ValueError(
        "a verb takes a value (opacity: 0.4), a mapping of its parameters (clip: {layer: 2, column: 5}), "
        "or nothing (go: {})"
    )


class DoModel(BaseModel):
    """``do:``: one verb of the targets' device profile (docs/profiles.md), like
    ``do: {targets: media, clip: {layer: 2, column: 5}}``; the compiler turns it into the OSC
    message the profile names, after checking the verb and its values against the profile."""

    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        json_schema_extra={
            "additionalProperties": {
                "description": "One verb of the targets' profile: a value, a mapping of parameters, or {}.",
            },
            "minProperties": 2,
            "maxProperties": 2,
        },
    )

    targets: Targets

    @model_validator(mode="after")
    def _one_verb(self) -> DoModel:
        extra = self.model_extra or {}
        if len(extra) != 1:
            got = ", ".join(extra) if extra else "none"
            raise ValueError(
                "do: takes targets and exactly one verb of their profile, like "
                f"clip: {{layer: 2, column: 5}}; got {got}"
            )
        ((_name, value),) = extra.items()
        _verb_value(value)
        return self

    @property
    def verb(self) -> tuple[str, Any]:
        """``(verb name, value as written)``."""
        ((name, value),) = (self.model_extra or {}).items()
        return name, value


class ActionItem(_Strict):
    """One entry of a cue's ``actions``: exactly one of ``osc``, ``mqtt``, ``fade``, ``light``,
    ``do``, at ``at``."""

    at: Time = 0
    osc: OscModel | None = None
    mqtt: MqttModel | None = None
    fade: FadeModel | None = None
    light: LightModel | None = None
    do: DoModel | None = None
    note: StrictStr | None = None

    @model_validator(mode="after")
    def _one_op(self) -> ActionItem:
        ops = [k for k in ("osc", "mqtt", "fade", "light", "do") if getattr(self, k) is not None]
        if len(ops) != 1:
            got = " and ".join(ops) if ops else "none"
            raise ValueError(f"an action needs exactly one of osc, mqtt, fade, light or do; got {got}")
        return self

    @property
    def kind(self) -> str:
        """``"osc"``, ``"mqtt"``, ``"fade"``, ``"light"`` or ``"do"``."""
        if self.osc is not None:
            return "osc"
        if self.mqtt is not None:
            return "mqtt"
        if self.fade is not None:
            return "fade"
        return "light" if self.light is not None else "do"


class TimelineItem(ActionItem):
    """One entry of a cue's ``timeline``: like an action, but ``at`` is required."""

    at: Time


@dataclass(frozen=True, slots=True)
class Share:
    """A count written as a percentage (``count: 80%``): that share of the audience present."""

    percent: float

    def __str__(self) -> str:
        return f"{self.percent:g}%"


def _count(value: object) -> int | Share:
    """``count:``: a whole number of devices (1 or more) or a share of the audience (``80%``)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a count such as 800 or a share such as 80%; got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"count {value} is less than 1; write 1 or more, or a share such as 80%")
        return value
    if isinstance(value, str):
        m = _SHARE_RE.fullmatch(value.strip())
        if m is None:
            raise ValueError(
                f"count {value!r} is neither a whole number nor a percentage; write 800 or 80%"
            )
        pct = float(m.group(1))
        if not 0 < pct <= 100:
            raise ValueError(
                f"count {value!r}: a share of the audience is more than 0% and at most 100%"
            )
        return Share(pct)
    raise ValueError(
        f"expected a count such as 800 or a share such as 80%; got {type(value).__name__}"
    )


_SHARE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*%")
Count = Annotated[
    int | Share,
    PlainValidator(_count),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$"},
            ],
            "description": "How many devices (800), or a share of the audience present (80%).",
        }
    ),
]

AUDIENCE_EVENT_RE = re.compile(r"tap|vote/[a-z0-9-]{1,32}")
"""``on: {audience: ...}``: a tap, or a vote for one choice (docs/protocol.md, "The audience")."""


class TriggerModel(_Strict):
    """``on:``: start the cue when ``count`` devices have sent a matching message, or (with
    ``audience:``) when ``count`` phones of the audience, or that share of those present, have
    tapped or voted."""

    mqtt: StrictStr | None = None
    osc: StrictStr | None = None
    audience: Annotated[StrictStr, Field(pattern=f"^(?:{AUDIENCE_EVENT_RE.pattern})$")] | None = None
    zone: StrictStr | None = None
    count: Count = 1
    timeout: Duration | None = None
    on_timeout: Literal["go", "skip", "hold", "stop"] = Field("hold", alias="else")

    @model_validator(mode="after")
    def _one_transport(self) -> TriggerModel:
        given = [k for k in ("mqtt", "osc", "audience") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "an event trigger needs exactly one of mqtt: <topic filter>, osc: <address> or "
                f"audience: tap | vote/<choice>; got {' and '.join(given) if given else 'none'}"
            )
        if self.zone is not None and self.audience is None:
            raise ValueError("zone: counts an audience zone; it goes with audience: tap or vote/<choice>")
        if isinstance(self.count, Share) and self.audience is None:
            raise ValueError(
                f"count {self.count} is a share of the audience present; it goes with "
                "audience: tap or vote/<choice> (mqtt: and osc: take a whole number)"
            )
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be longer than 0; leave it out to wait forever")
        return self


class TemplateBody(_Strict):
    """A template after its ``${params}`` were substituted: what it adds to the cue using it."""

    actions: list[ActionItem] = Field(default_factory=list)
    timeline: list[TimelineItem] = Field(default_factory=list)
    duration: Duration | None = None
    hold: Duration | None = None


class TemplateModel(_Strict):
    """``templates: {name: ...}``: reusable actions with ``${param}`` placeholders.

    The body (``actions``, ``timeline``, ``duration``, ``hold``) is validated per use, after
    substitution. A template may itself ``use`` another template.
    """

    params: list[Annotated[StrictStr, Field(pattern=_NAME_RE.pattern)]] = Field(default_factory=list)
    defaults: dict[str, Any] = Field(default_factory=dict)
    notes: StrictStr | None = None
    use: StrictStr | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    actions: list[Any] = Field(default_factory=list)
    timeline: list[Any] = Field(default_factory=list)
    duration: Any = None
    hold: Any = None


class CueModel(_Strict):
    """One cue of the cue list."""

    id: Annotated[StrictStr, Field(pattern=_ID_RE.pattern, max_length=128)]
    name: StrictStr = ""
    notes: StrictStr | None = None
    color: Annotated[StrictStr, Field(pattern=_COLOR_RE.pattern)] | None = None
    go: Go = Go.MANUAL
    enabled: StrictBool = True
    pre_wait: Duration = 0
    post_wait: Duration = 0
    duration: Duration | None = None
    hold: Duration | None = None
    on: TriggerModel | None = None
    actions: list[ActionItem] = Field(default_factory=list)
    timeline: list[TimelineItem] = Field(default_factory=list)
    use: StrictStr | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")

    @model_validator(mode="after")
    def _with_needs_use(self) -> CueModel:
        if self.with_ and self.use is None:
            raise ValueError("'with' gives a template its parameters; add 'use: <template>'")
        return self


class PartModel(_Strict):
    """An included file: more cues and templates, appended to the show in include order."""

    notes: StrictStr | None = None
    include: Annotated[list[StrictStr], BeforeValidator(_one_or_list)] = Field(default_factory=list)
    templates: dict[str, TemplateModel] = Field(default_factory=dict)
    cues: list[CueModel] = Field(default_factory=list)


class ShowModel(PartModel):
    """A show file: header, templates, includes and the cue list."""

    show: Annotated[StrictStr, Field(min_length=1)]
    id: Annotated[StrictStr, Field(pattern=_ID_RE.pattern)] | None = None
    venue: Annotated[StrictStr, Field(min_length=1)]
    tempo: Tempo | None = None
    fps: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1000)] | None = None
    description: StrictStr | None = None
