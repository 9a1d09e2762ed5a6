"""MQTT topic names and filters: validation, wildcard matching, and per-device templates.

Theory of operation
-------------------
MQTT 3.1.1 §4.7 defines topic *names* (what a message is published to) and topic *filters*
(what a client subscribes to). Both are UTF-8 strings of 1 to 65535 bytes, split into *levels*
by ``/``; a level may be empty (``a//b`` has three levels). Neither may contain U+0000
(§1.5.3). Filters may use two wildcards, each only as a whole level: ``+`` (exactly one level)
and ``#`` (any number of levels, including none, and only as the last level). Names never hold
wildcards. Topics that start with ``$`` are reserved for the broker (``$SYS/...``): a filter that
starts with a wildcard does not match them (§4.7.2).

This module is pure: no I/O, no clock. The rules and the matcher live in :mod:`venues.names`
(shared with the show compiler and the simulated broker); here :func:`validate_topic` and
:func:`validate_filter` raise :class:`TopicError` for the first rule broken, and :func:`matches`
is :func:`venues.names.topic_matches`.
:class:`TopicTemplate` turns a show's ``xr/{device}/scene`` into each device's concrete topic,
parsing once, and validating once per device (the result is cached), so the hot send path is a
dictionary lookup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from controller import wire
from venues.errors import MadangError
from venues.model import Device
from venues.names import MAX_TOPIC_BYTES, Fault, Rule, filter_faults, topic_faults
from venues.names import topic_matches as matches

__all__ = [
    "TopicError",
    "TopicTemplate",
    "device_filters",
    "device_report_topics",
    "device_topics",
    "matches",
    "validate_filter",
    "validate_topic",
]


@dataclass
class TopicError(MadangError, ValueError):
    """A topic name, filter or template that MQTT 3.1.1 does not allow, or that cannot be filled.

    ``kind`` is ``"topic"``, ``"filter"`` or ``"template"``; ``reason`` says what is wrong.
    """

    topic: str
    kind: str
    reason: str
    hint: str = ""

    def __post_init__(self) -> None:
        Exception.__init__(self, self.topic, self.reason)

    def __str__(self) -> str:
        hint = f"; {self.hint}" if self.hint else ""
        return f"MQTT {self.kind} {self.topic!r} is not valid: {self.reason}{hint}"


def _error(text: str, kind: str, fault: Fault) -> TopicError:
    """The :class:`TopicError` that reports ``fault`` of ``text`` (a ``kind``)."""
    rule = fault.rule
    if rule is Rule.EMPTY:
        return TopicError(text, kind, "it is empty", "MQTT 3.1.1 §4.7.3 requires at least one character")
    if rule is Rule.NUL:
        return TopicError(text, kind, "it contains U+0000", "remove the NUL character (§1.5.3)")
    if rule is Rule.NOT_UTF8:
        return TopicError(text, kind, "it is not encodable as UTF-8 (lone surrogate)")
    if rule is Rule.TOO_LONG:
        return TopicError(text, kind, f"it is {fault.size} bytes long; the limit is {MAX_TOPIC_BYTES}")
    if rule is Rule.WILDCARD_IN_NAME:
        return TopicError(
            text,
            kind,
            f"it contains the wildcard {fault.part!r}",
            "wildcards are for subscriptions; publish to a concrete topic",
        )
    if rule is Rule.HASH_NOT_LAST:
        return TopicError(text, kind, f"'#' is level {fault.at + 1} but must be the last level")
    return TopicError(
        text,
        kind,
        f"level {fault.at + 1} ({fault.part!r}) mixes a wildcard with other characters",
        "a wildcard must be a whole level, as in 'xr/+/scene' or 'xr/#'",
    )


def validate_topic(topic: str) -> None:
    """Check a topic *name* (to publish to); raise :class:`TopicError` if MQTT forbids it.

    The rules are :func:`venues.names.topic_faults`; the first broken one is reported.
    """
    faults = topic_faults(topic)
    if faults:
        raise _error(topic, "topic", faults[0])


def validate_filter(topic_filter: str) -> None:
    """Check a topic *filter* (to subscribe to); raise :class:`TopicError` if MQTT forbids it.

    The rules are :func:`venues.names.filter_faults`; the first broken one is reported.
    """
    faults = filter_faults(topic_filter)
    if faults:
        raise _error(topic_filter, "filter", faults[0])


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


class TopicTemplate:
    """A topic with ``{placeholders}`` naming device attributes, e.g. ``xr/{device}/scene``.

    ``{device}`` is the device id (as is ``{id}``); ``{zone}``, ``{kind}`` and any attribute the
    venue gives a device may be used. The template is parsed once; :meth:`for_device` fills and
    validates it once per device id and caches the result, so sending to ten thousand devices
    costs one dictionary lookup each. Raises :class:`TopicError` (kind ``"template"``) when the
    literal parts hold a wildcard or a placeholder is malformed.
    """

    __slots__ = ("_cache", "_fields", "_parts", "template")

    def __init__(self, template: str) -> None:
        self.template = template
        parts: list[str] = []
        fields: list[str] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(template):
            parts.append(template[pos : m.start()])
            fields.append(m.group(1))
            pos = m.end()
        parts.append(template[pos:])
        for literal in parts:
            if "{" in literal or "}" in literal:
                raise TopicError(
                    template,
                    "template",
                    "it has an unbalanced or malformed '{placeholder}'",
                    "placeholders are attribute names in braces, like {device} or {zone}",
                )
            if "+" in literal or "#" in literal:
                raise TopicError(
                    template, "template", "it contains a wildcard", "publish topics cannot hold '+' or '#'"
                )
        self._parts = tuple(parts)
        self._fields = tuple(fields)
        self._cache: dict[str, str] = {}
        if not fields:
            validate_topic(template)

    @property
    def fields(self) -> tuple[str, ...]:
        """The placeholder names, in order of appearance."""
        return self._fields

    @property
    def is_static(self) -> bool:
        """True when the template has no placeholder (one topic for every device)."""
        return not self._fields

    def render(self, attrs: Mapping[str, str]) -> str:
        """Fill the placeholders from ``attrs`` and validate the result (no caching).

        ``device`` falls back to ``id``. Raises :class:`TopicError` when an attribute is
        missing or the filled topic is not a valid MQTT topic name.
        """
        if not self._fields:
            return self.template
        out = [self._parts[0]]
        for name, literal in zip(self._fields, self._parts[1:], strict=True):
            value = attrs.get(name)
            if value is None and name == "device":
                value = attrs.get("id")
            if value is None:
                have = ", ".join(sorted(attrs)) or "none"
                raise TopicError(
                    self.template,
                    "template",
                    f"placeholder {{{name}}} has no value for this device",
                    f"the device's attributes are: {have}",
                )
            out.append(str(value))
            out.append(literal)
        topic = "".join(out)
        try:
            validate_topic(topic)
        except TopicError as exc:
            raise TopicError(
                self.template, "template", f"filled in as {topic!r}, {exc.reason}", exc.hint
            ) from exc
        return topic

    def for_device(self, device: Device) -> str:
        """The concrete topic for ``device``, computed and validated once, then cached by id."""
        cached = self._cache.get(device.id)
        if cached is not None:
            return cached
        attrs = {**device.attrs, "id": device.id, "kind": device.kind, "zone": device.zone}
        attrs["device"] = device.id
        topic = self.render(attrs)
        self._cache[device.id] = topic
        return topic

    def __repr__(self) -> str:
        return f"TopicTemplate({self.template!r})"


def device_filters(devices: list[Device] | tuple[Device, ...], kind: str) -> list[str]:
    """The fewest subscription filters that receive ``<root>/<kind>`` from every one of ``devices``.

    A root's levels equal to the device's id become ``+``, so the default ``madang/dev/{id}``
    gives the one filter ``madang/dev/+/<kind>``, and a venue with its own ``base`` adds one
    filter per distinct pattern (not one per device).
    """
    out: dict[str, None] = {}
    for d in devices:
        levels = ["+" if level == d.id else level for level in d.topic_root.split("/")]
        out["/".join([*levels, kind])] = None
    return list(out)


def device_topics(device: Device) -> tuple[str, ...]:
    """The topics an ``app`` device subscribes to (docs/protocol.md: "Cues", "Clock
    synchronisation", "Controller state"), over MQTT and over WebSocket alike: the cue topics of
    every device, of its zone, of its kind and its own, its pings and clock model, and the
    controller state. The broker ACL (:mod:`controller.brokerconf`) lets it read these and no
    other."""
    root = device.topic_root
    return (
        wire.CUE_TOPIC,
        wire.zone_cue_topic(device.zone),
        wire.kind_cue_topic(device.kind),
        wire.device_cue_topic(device.id),
        f"{root}/{wire.PING_LEVEL}",
        f"{root}/{wire.CLOCK_LEVEL}",
        wire.STATE_TOPIC,
    )


def device_report_topics(device: Device) -> tuple[str, ...]:
    """The topics a device publishes its reports on (docs/protocol.md): its pongs, its status
    (``ready``, the ``alive`` heartbeat and its ``offline`` will) and its fire reports, under its
    topic root. The broker ACL lets a device write these and no other protocol topic."""
    root = device.topic_root
    return tuple(f"{root}/{kind}" for kind in wire.DEVICE_REPORTS)
