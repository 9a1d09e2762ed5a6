"""Targets: which devices a cue acts on.

A target is a device id, a group name, or an expression over device attributes::

    kind:facade & zone:yeouido
    audience | id:xr-00*
    !(zone:banpo) & kind:xr

Terms are ``key:value`` (the value may use ``*`` and ``?`` globs, matched against the device
attribute ``key``; ``group:name`` means membership of a group) or bare names (a group, else a
device id; a bare name with a glob matches device ids). Operators: ``!`` (not), ``&`` (and),
``|`` (or), with that precedence, and parentheses. Whitespace is free.

Theory of operation
-------------------
Parsing is a small recursive-descent parser over one string; errors point at the column inside
the string (added to the column of the string in its file when a mark is given). Evaluation works
on bitsets: each device is one bit (its position in the venue), each term becomes a Python ``int``
mask, and ``& | !`` are integer operations done in C, so a term over 10,000 devices costs one pass
and an expression costs next to nothing. A per-venue index caches attribute masks, group masks
and the result of every expression text, so thousands of calls over one venue stay cheap.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Final, TypeAlias

from venues.errors import Mark, SourceError
from venues.model import Venue

__all__ = ["And", "Name", "Not", "Or", "Selector", "SelectorIndex", "Term", "parse_selector", "resolve"]

_SPECIAL: Final = frozenset("&|!()")
_GLOB: Final = frozenset("*?[")
_KV_HINT: Final = "write key:value, like zone:banpo"


@dataclass(frozen=True, slots=True)
class Term:
    """``key:value``: devices whose attribute ``key`` matches ``value`` (a glob)."""

    key: str
    value: str
    pos: int = 0  # column within the expression text (0-based), for messages

    def __str__(self) -> str:
        return f"{self.key}:{self.value}"


@dataclass(frozen=True, slots=True)
class Name:
    """A bare name: a group, else a device id (a glob matches device ids)."""

    name: str
    pos: int = 0

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Not:
    """Every device the operand does not select."""

    operand: Node

    def __str__(self) -> str:
        inner = str(self.operand)
        return f"!{inner}" if isinstance(self.operand, Term | Name | Not) else f"!({inner})"


@dataclass(frozen=True, slots=True)
class And:
    """Devices every operand selects."""

    operands: tuple[Node, ...]

    def __str__(self) -> str:
        return " & ".join(f"({o})" if isinstance(o, Or) else str(o) for o in self.operands)


@dataclass(frozen=True, slots=True)
class Or:
    """Devices any operand selects."""

    operands: tuple[Node, ...]

    def __str__(self) -> str:
        return " | ".join(str(o) for o in self.operands)


Node: TypeAlias = Term | Name | Not | And | Or


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed target expression. ``str()`` gives its canonical text; equal selectors have
    equal canonical text. ``source`` is the text as written, ``mark`` where it was written."""

    node: Node
    source: str = ""
    mark: Mark | None = None

    def __str__(self) -> str:
        return str(self.node)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Selector) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def names(self) -> Iterator[Name | Term]:
        """Every leaf of the expression, left to right."""
        stack: list[Node] = [self.node]
        out: list[Name | Term] = []
        while stack:
            n = stack.pop()
            if isinstance(n, Name | Term):
                out.append(n)
            elif isinstance(n, Not):
                stack.append(n.operand)
            else:
                stack.extend(reversed(n.operands))
        return iter(out)


# --- parsing ----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, mark: Mark | None) -> None:
        self.text = text
        self.mark = mark
        self.pos = 0
        self.depth = 0

    def error(self, pos: int, message: str, hint: str = "") -> SourceError:
        return SourceError(_at(self.mark, pos), message, hint)

    def skip_ws(self) -> None:
        text = self.text
        while self.pos < len(text) and text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Node:
        if not self.text.strip():
            raise self.error(0, "empty target", "name a device, a group, or an expression like kind:facade")
        node = self.parse_or()
        if self.peek():
            c = self.text[self.pos]
            if c == ")":
                raise self.error(self.pos, "unmatched ')' in target", "remove it or add the '(' it closes")
            raise self.error(self.pos, f"unexpected '{c}' in target", "join terms with &, | or !")
        return node

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.peek() == "|":
            self.pos += 1
            items.append(self.parse_and())
        if len(items) == 1:
            return items[0]
        flat: list[Node] = []
        for i in items:
            flat.extend(i.operands if isinstance(i, Or) else (i,))
        return Or(tuple(flat))

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.peek() == "&":
            self.pos += 1
            items.append(self.parse_not())
        if len(items) == 1:
            return items[0]
        flat: list[Node] = []
        for i in items:
            flat.extend(i.operands if isinstance(i, And) else (i,))
        return And(tuple(flat))

    def parse_not(self) -> Node:
        if self.peek() == "!":
            self.pos += 1
            self.depth += 1
            if self.depth > 200:
                raise self.error(self.pos, "target nested too deeply")
            node = Not(self.parse_not())
            self.depth -= 1
            return node
        return self.parse_atom()

    def parse_atom(self) -> Node:
        c = self.peek()
        start = self.pos
        if c == "(":
            self.pos += 1
            self.depth += 1
            if self.depth > 200:
                raise self.error(start, "target nested too deeply")
            node = self.parse_or()
            if self.peek() != ")":
                raise self.error(start, "'(' is never closed in target", "add the matching ')'")
            self.pos += 1
            self.depth -= 1
            return node
        if c == "":
            raise self.error(self.pos, "target ends where a name was expected", "finish the expression")
        if c in _SPECIAL:
            raise self.error(self.pos, f"'{c}' where a name was expected", "a device, a group or key:value")
        text = self.text
        end = self.pos
        while end < len(text) and not text[end].isspace() and text[end] not in _SPECIAL:
            end += 1
        word = text[start:end]
        self.pos = end
        if ":" in word:
            key, _, value = word.partition(":")
            if not key:
                raise self.error(start, f"'{word}' has no attribute before ':'", _KV_HINT)
            if not value:
                raise self.error(start + len(key) + 1, f"'{word}' has no value after ':'", _KV_HINT)
            return Term(key, value, start)
        return Name(word, start)


def _at(mark: Mark | None, pos: int) -> Mark | None:
    if mark is None:
        return None
    return Mark(mark.file, mark.line, mark.col + pos)


def parse_selector(text: str, mark: Mark | None = None) -> Selector:
    """Parse a target expression.

    Raises :class:`~venues.errors.SourceError` for an empty or malformed expression, pointing at
    the column within the string (``mark.col`` + offset when ``mark`` is the string's position).
    """
    return Selector(_Parser(text, mark).parse(), text, mark)


# --- evaluation -------------------------------------------------------------------------------


class SelectorIndex:
    """Resolves targets against one venue; caches attribute and group masks and every result.

    Build one per venue (or let :func:`resolve` keep one per venue for you).
    """

    def __init__(self, venue: Venue, *, group_names: Iterable[str] | None = None) -> None:
        self.venue = venue
        # The names offered in hints (the loader resolves groups one by one, so venue.groups
        # is still partial while it does).
        self._group_names = list(group_names) if group_names is not None else None
        self.ids: tuple[str, ...] = tuple(d.id for d in venue.devices)
        self.bit: dict[str, int] = {i: n for n, i in enumerate(self.ids)}
        self.all = (1 << len(self.ids)) - 1
        keys = {k for d in venue.devices for k in d.attrs}
        self.keys: frozenset[str] = frozenset(keys | {"id", "kind", "zone"})
        self._values: dict[str, dict[str, int]] = {}  # key -> value -> mask
        self._groups: dict[str, int] = {}
        self._results: dict[str, tuple[str, ...]] = {}

    def resolve(self, target: str | Selector, mark: Mark | None = None) -> tuple[str, ...]:
        """Device ids selected by ``target``, in venue order; see :func:`resolve`."""
        text = target if isinstance(target, str) else target.source or str(target)
        hit = self._results.get(text)
        if hit is not None:
            return hit
        sel = target if isinstance(target, Selector) else parse_selector(target, mark)
        where = mark if mark is not None else sel.mark
        mask = self.mask(sel.node, where)
        if not mask:
            raise SourceError(where, f"target '{text}' selects no device", self._empty_hint(sel, where))
        out = self.ids_of(mask)
        self._results[text] = out
        return out

    def _empty_hint(self, sel: Selector, where: Mark | None) -> str:
        for leaf in sel.names():
            if isinstance(leaf, Term) and leaf.key != "group" and not self._term(leaf, where):
                values = sorted(self._values_of(leaf.key))
                shown = ", ".join(values[:10]) + (", ..." if len(values) > 10 else "")
                return f"'{leaf}' matches no device; {leaf.key} values in the venue: {shown}"
        return "the terms exclude each other; check the names and values"

    def ids_of(self, mask: int) -> tuple[str, ...]:
        """The device ids of a mask, in venue order."""
        ids = self.ids
        bits = bin(mask)[:1:-1]  # bit i is character i
        return tuple(ids[i] for i, c in enumerate(bits) if c == "1")

    def mask(self, node: Node, mark: Mark | None) -> int:
        """The bitset of devices ``node`` selects."""
        if isinstance(node, Term):
            return self._term(node, mark)
        if isinstance(node, Name):
            return self._name(node, mark)
        if isinstance(node, Not):
            return self.all & ~self.mask(node.operand, mark)
        if isinstance(node, And):
            acc = self.all
            for o in node.operands:
                acc &= self.mask(o, mark)
            return acc
        acc = 0
        for o in node.operands:
            acc |= self.mask(o, mark)
        return acc

    def group_mask(self, name: str) -> int | None:
        """The bitset of a group, or None when the venue has no such group."""
        m = self._groups.get(name)
        if m is None:
            ids = self.venue.groups.get(name)
            if ids is None:
                return None
            m = 0
            for i in ids:
                b = self.bit.get(i)
                if b is not None:
                    m |= 1 << b
            self._groups[name] = m
        return m

    def _values_of(self, key: str) -> dict[str, int]:
        table = self._values.get(key)
        if table is None:
            acc: dict[str, int] = {}
            for n, d in enumerate(self.venue.devices):
                v = _attr(d, key)
                if v is not None:
                    acc[v] = acc.get(v, 0) | (1 << n)
            table = self._values[key] = acc
        return table

    def _term(self, t: Term, mark: Mark | None) -> int:
        if t.key == "group":
            m = self.group_mask(t.value) if not _GLOB & set(t.value) else None
            if m is None and _GLOB & set(t.value):
                m = 0
                for g in self.venue.groups:
                    if fnmatchcase(g, t.value):
                        m |= self.group_mask(g) or 0
            if m is None:
                raise self._unknown_group(t.value, _at(mark, t.pos))
            return m
        if t.key not in self.keys:
            close = difflib.get_close_matches(t.key, sorted(self.keys), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise SourceError(
                _at(mark, t.pos),
                f"no device has the attribute '{t.key}'",
                f"{hint}the keys devices have: {', '.join(sorted(self.keys | {'group'}))}",
            )
        table = self._values_of(t.key)
        if not _GLOB & set(t.value):
            return table.get(t.value, 0)
        m = 0
        for v, vm in table.items():
            if fnmatchcase(v, t.value):
                m |= vm
        return m

    def _name(self, n: Name, mark: Mark | None) -> int:
        g = self.group_mask(n.name)
        if g is not None:
            return g
        b = self.bit.get(n.name)
        if b is not None:
            return 1 << b
        if _GLOB & set(n.name):
            m = 0
            for i, d in enumerate(self.ids):
                if fnmatchcase(d, n.name):
                    m |= 1 << i
            return m
        where = _at(mark, n.pos)
        names = self.group_names()
        close = difflib.get_close_matches(n.name, names, n=1)
        if not close:
            close = difflib.get_close_matches(n.name, self._nearby_ids(n.name), n=1)
        groups = ", ".join(sorted(names)) or "none"
        hint = f"did you mean '{close[0]}'?" if close else f"the groups the venue defines: {groups}"
        raise SourceError(where, f"'{n.name}' is neither a device nor a group of the venue", hint)

    def group_names(self) -> list[str]:
        """The group names offered in hints."""
        return self._group_names if self._group_names is not None else list(self.venue.groups)

    def _nearby_ids(self, name: str) -> list[str]:
        # difflib over 10,000 ids is slow: look only at ids sharing the first characters.
        prefix = name[:2]
        return [i for i in self.ids if i.startswith(prefix)][:2000]

    def _unknown_group(self, name: str, where: Mark | None) -> SourceError:
        names = self.group_names()
        close = difflib.get_close_matches(name, names, n=1)
        groups = ", ".join(sorted(names)) or "none"
        hint = f"did you mean '{close[0]}'?" if close else f"the groups the venue defines: {groups}"
        return SourceError(where, f"the venue has no group '{name}'", hint)


def _attr(d: object, key: str) -> str | None:
    attrs = getattr(d, "attrs", {})
    v = attrs.get(key)
    if v is not None:
        return str(v)
    if key in ("id", "kind", "zone"):
        return str(getattr(d, key))
    return None


_INDEX_ATTR: Final = "_selector_index"


def index_for(venue: Venue) -> SelectorIndex:
    """The cached :class:`SelectorIndex` of a venue: kept on the venue itself (as a
    ``cached_property`` would), so it lives and dies with it."""
    try:
        store = vars(venue)
    except TypeError:  # a venue type without a __dict__: do not cache
        return SelectorIndex(venue)
    index = store.get(_INDEX_ATTR)
    if not isinstance(index, SelectorIndex):
        index = store[_INDEX_ATTR] = SelectorIndex(venue)
    return index


def resolve(text_or_selector: str | Selector, venue: Venue, mark: Mark | None = None) -> tuple[str, ...]:
    """Device ids selected by a target, in venue order.

    Raises :class:`~venues.errors.SourceError` (positioned at the offending name when ``mark``
    is the position of the target string) for an unknown name (with a did-you-mean or the
    venue's groups), an unknown attribute key (with the keys devices have), an empty result,
    and an empty or malformed expression. Results are cached per venue and target text.
    """
    return index_for(venue).resolve(text_or_selector, mark)
