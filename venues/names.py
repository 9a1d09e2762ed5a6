"""Names on the wire: MQTT topic names and filters, OSC addresses and address patterns.

Theory of operation
-------------------
This is the one home of the rules for the names a show sends to and listens on, and of the two
matchers that decide whether a subscription or an event pattern catches a name. It sits in
``venues`` (the lowest layer) so that the show compiler, the controller and the simulated broker
can all use it without breaking the import contracts in ``pyproject.toml``. It is pure: no I/O,
no clock, no logging.

*MQTT 3.1.1 §4.7.* A topic *name* (what a message is published to) and a topic *filter* (what a
client subscribes to) are UTF-8 strings of 1 to 65535 bytes (§1.5.3, §4.7.3) without U+0000,
split into *levels* by ``/``; a level may be empty (``a//b`` has three levels). Filters may use
two wildcards, each only as a whole level (§4.7.1): ``+`` matches exactly one level, even an
empty one; ``#`` matches any number of levels, including none (so ``sport/#`` also matches
``sport``), and must be the last level. Names never hold wildcards. Names starting with ``$`` are
the broker's (``$SYS/...``): a filter starting with a wildcard does not match them (§4.7.2).

*OSC 1.0.* An address starts with ``/`` and is printable ASCII without space or
``# * , ? [ ] { }`` (the last six are pattern characters, for receivers). An address *pattern*
may use ``?``, ``*``, ``[abc]``, ``[!a-z]`` and ``{foo,bar}``, none of which crosses a ``/``.

The checks report :class:`Fault` values rather than raising or formatting: each caller (the
show compiler's findings, :class:`controller.topics.TopicError`, the OSC encoder) words its own
message and keeps its own order of report, while what counts as broken is decided here once.
Each ``*_faults`` function returns *every* rule the text breaks, in the order listed in
:class:`Rule`, so a caller that reports only the first finds it at ``faults[0]``.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Container
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_TOPIC_BYTES",
    "Fault",
    "Rule",
    "filter_faults",
    "osc_address_faults",
    "osc_address_matches",
    "osc_pattern_faults",
    "topic_faults",
    "topic_matches",
]

MAX_TOPIC_BYTES: Final = 65535
"""MQTT 3.1.1 §1.5.3: a UTF-8 string is prefixed by a 16-bit length."""

_OSC_RESERVED: Final = frozenset(" #*,?[]{}")  # OSC 1.0: not in an address (pattern characters)
_OSC_PATTERN_FORBIDDEN: Final = frozenset(" #,")  # OSC 1.0: not in an address pattern either


class Rule(enum.Enum):
    """A rule that a topic or an address breaks, with the section of the spec that states it."""

    EMPTY = enum.auto()
    """MQTT 3.1.1 §4.7.3: a topic name or filter is at least one character long."""
    NUL = enum.auto()
    """MQTT 3.1.1 §1.5.3: a UTF-8 string does not contain U+0000."""
    NOT_UTF8 = enum.auto()
    """MQTT 3.1.1 §1.5.3: the text is well-formed UTF-8 (a lone surrogate is not encodable)."""
    TOO_LONG = enum.auto()
    """MQTT 3.1.1 §1.5.3: at most 65535 bytes of UTF-8; :attr:`Fault.size` says how many."""
    WILDCARD_IN_NAME = enum.auto()
    """MQTT 3.1.1 §4.7.1: a topic name holds no ``+`` or ``#``; :attr:`Fault.part` is the first kind."""
    HASH_NOT_LAST = enum.auto()
    """MQTT 3.1.1 §4.7.1.2: a ``#`` level is the filter's last level."""
    WILDCARD_IN_LEVEL = enum.auto()
    """MQTT 3.1.1 §4.7.1.2-3: ``+`` and ``#`` are whole levels; :attr:`Fault.part` is the level."""
    OSC_NO_SLASH = enum.auto()
    """OSC 1.0: an address or address pattern starts with ``/``."""
    OSC_BAD_CHARACTER = enum.auto()
    """OSC 1.0: printable ASCII only, without space; an address also without ``#*,?[]{}``, a
    pattern without ``#`` or ``,``. :attr:`Fault.part` is the first such character, at
    :attr:`Fault.at`."""
    OSC_EMPTY_PART = enum.auto()
    """An empty part (``//`` or a trailing ``/``). OSC 1.0 does not name it, but OSC 1.1 gives
    ``//`` a meaning of its own and receivers disagree on it: shows refuse it, the encoder lets
    it through."""
    OSC_BRACKET_MISPLACED = enum.auto()
    """OSC 1.0 patterns: ``[...]`` and ``{...}`` do not nest, and close only what was opened."""
    OSC_BRACKET_UNCLOSED = enum.auto()
    """OSC 1.0 patterns: every ``[`` and ``{`` is closed."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One broken :class:`Rule`, with the facts a message needs.

    ``at`` is the 0-based level (filter levels) or character position (OSC characters), -1 when
    the rule is about the whole text; ``part`` is the offending level or character; ``size`` is
    the length in UTF-8 bytes for :attr:`Rule.TOO_LONG`.
    """

    rule: Rule
    at: int = -1
    part: str = ""
    size: int = 0


# --- MQTT 3.1.1 §4.7 ----------------------------------------------------------------------------


def _string_faults(text: str) -> list[Fault]:
    """The faults of any MQTT UTF-8 string used as a topic (§1.5.3, §4.7.3)."""
    if not text:
        return [Fault(Rule.EMPTY)]
    out: list[Fault] = []
    if "\x00" in text:
        out.append(Fault(Rule.NUL))
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        out.append(Fault(Rule.NOT_UTF8))
    else:
        if size > MAX_TOPIC_BYTES:
            out.append(Fault(Rule.TOO_LONG, size=size))
    return out


def topic_faults(topic: str) -> tuple[Fault, ...]:
    """Every rule the topic *name* ``topic`` (to publish to) breaks; empty when MQTT allows it.

    In the order :attr:`Rule.EMPTY`, :attr:`Rule.NUL`, :attr:`Rule.NOT_UTF8`,
    :attr:`Rule.TOO_LONG`, :attr:`Rule.WILDCARD_IN_NAME` (``part`` is ``+`` if the name holds
    one, else ``#``). Publishing to a ``$`` name is allowed here; whether a show may is the
    show compiler's call.
    """
    out = _string_faults(topic)
    if "+" in topic or "#" in topic:
        out.append(Fault(Rule.WILDCARD_IN_NAME, part="+" if "+" in topic else "#"))
    return tuple(out)


def filter_faults(topic_filter: str) -> tuple[Fault, ...]:
    """Every rule the topic *filter* ``topic_filter`` (to subscribe to) breaks; empty when valid.

    The string rules first (as for :func:`topic_faults`), then one fault per bad level in order
    of levels: :attr:`Rule.HASH_NOT_LAST` for a ``#`` level before the last,
    :attr:`Rule.WILDCARD_IN_LEVEL` for a level mixing a wildcard with other characters
    (``at`` is the 0-based level, ``part`` its text).
    """
    out = _string_faults(topic_filter)
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if level == "#":
            if i != last:
                out.append(Fault(Rule.HASH_NOT_LAST, at=i, part=level))
        elif level != "+" and ("#" in level or "+" in level):
            out.append(Fault(Rule.WILDCARD_IN_LEVEL, at=i, part=level))
    return tuple(out)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether the filter ``topic_filter`` matches the topic name ``topic`` (MQTT 3.1.1 §4.7).

    ``+`` matches one level, even an empty one; ``#`` matches the rest, including none, so
    ``sport/#`` matches ``sport``; a filter starting with a wildcard does not match a name
    starting with ``$`` (§4.7.2), as a real broker does not deliver ``$SYS`` to ``#``.
    Both are assumed valid (see :func:`filter_faults` and :func:`topic_faults`); a filter with
    ``#`` before its last level matches nothing.
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    n = len(t_levels)
    for i, level in enumerate(f_levels):
        if level == "#":
            return i == len(f_levels) - 1
        if i >= n:
            return False
        if level != "+" and level != t_levels[i]:
            return False
    return len(f_levels) == n


# --- OSC 1.0 ------------------------------------------------------------------------------------


def _osc_printable(c: str) -> bool:
    return 0x21 <= ord(c) <= 0x7E


def _osc_start_faults(text: str, forbidden: Container[str]) -> list[Fault]:
    """The rules an address and a pattern share: a leading ``/``, then printable ASCII without
    ``forbidden`` (the first bad character only)."""
    out: list[Fault] = []
    if not text.startswith("/"):
        out.append(Fault(Rule.OSC_NO_SLASH))
    for pos, c in enumerate(text):
        if c in forbidden or not _osc_printable(c):
            out.append(Fault(Rule.OSC_BAD_CHARACTER, at=pos, part=c))
            break
    return out


def osc_address_faults(address: str) -> tuple[Fault, ...]:
    """Every rule the OSC *address* ``address`` (a message's destination) breaks.

    In the order :attr:`Rule.OSC_NO_SLASH`, :attr:`Rule.OSC_BAD_CHARACTER` (the first bad
    character only), :attr:`Rule.OSC_EMPTY_PART`. An encoder that accepts empty parts skips the
    last.
    """
    out = _osc_start_faults(address, _OSC_RESERVED)
    if "//" in address or (len(address) > 1 and address.endswith("/")):
        out.append(Fault(Rule.OSC_EMPTY_PART))
    return tuple(out)


def osc_pattern_faults(pattern: str) -> tuple[Fault, ...]:
    """Every rule the OSC *address pattern* ``pattern`` (what a receiver listens for) breaks.

    In the order :attr:`Rule.OSC_NO_SLASH`, :attr:`Rule.OSC_BAD_CHARACTER` (space, ``#``, ``,``
    or not printable ASCII; the first only), then :attr:`Rule.OSC_BRACKET_MISPLACED` (a bracket
    opened inside another of its kind, or closed without being opened; at its position) or, if
    none, :attr:`Rule.OSC_BRACKET_UNCLOSED`.
    """
    out = _osc_start_faults(pattern, _OSC_PATTERN_FORBIDDEN)
    depth_sq = depth_br = 0
    for pos, c in enumerate(pattern):
        depth_sq += (c == "[") - (c == "]")
        depth_br += (c == "{") - (c == "}")
        if depth_sq not in (0, 1) or depth_br not in (0, 1):
            out.append(Fault(Rule.OSC_BRACKET_MISPLACED, at=pos, part=c))
            break
    else:
        if depth_sq or depth_br:
            out.append(Fault(Rule.OSC_BRACKET_UNCLOSED))
    return tuple(out)


def osc_address_matches(pattern: str, address: str) -> bool:
    """Whether the OSC 1.0 address pattern ``pattern`` matches the address ``address``.

    ``?`` is one character, ``*`` any run, ``[abc]`` / ``[a-z]`` / ``[!a-z]`` one of (or none
    of) a set, ``{foo,bar}`` one of the words; none of them matches ``/``. An unclosed ``[`` or
    ``{`` stands for itself.
    """
    return _osc_compiled(pattern).fullmatch(address) is not None


@functools.lru_cache(maxsize=1024)
def _osc_compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(_osc_regex(pattern))


def _osc_regex(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "?":
            out.append("[^/]")
        elif c == "*":
            out.append("[^/]*")
        elif c == "[":
            j = pattern.find("]", i)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                neg = body.startswith("!")
                body = body[1:] if neg else body
                body = "".join("\\" + ch if ch in "\\^]" else ch for ch in body)
                out.append(f"[{'^' if neg else ''}{body}]")
                i = j
        elif c == "{":
            j = pattern.find("}", i)
            if j < 0:
                out.append(re.escape(c))
            else:
                out.append("(?:" + "|".join(re.escape(p) for p in pattern[i + 1 : j].split(",")) + ")")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)
