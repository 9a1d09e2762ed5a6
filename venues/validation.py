"""Turn pydantic validation errors into positioned findings an artist can act on.

Theory of operation
-------------------
Venue and show files are validated by pydantic models (``extra="forbid"``, strict types). A
:class:`pydantic.ValidationError` knows *what* is wrong and the ``loc`` path to it, but not the
file position, and its messages are written for programmers. :func:`findings_from_pydantic`
walks each ``loc`` through the loaded :class:`~venues.source.Doc` to find the value (or key) it
names and its mark, and rewrites the message: an unknown key gets a "did you mean" from the
model's field names at that level, a missing key names the key to add, a wrong type says what was
found and what was expected.

``loc`` may hold elements that are not in the data: union member names (``int``, ``OscAction``)
and discriminator tags. They are skipped while walking. A mistake inside a union makes pydantic
report one error per member; the errors of one union point are grouped and only the member that
came closest (fewest errors, then the deepest) is reported, so one mistake gives one finding.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic import BaseModel

from venues.errors import Finding, Mark
from venues.source import Doc

__all__ = ["describe_value", "findings_from_pydantic"]

_MISSING = object()

_EXPECTED: dict[str, str] = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "none_required": "nothing",
    "finite_number": "a finite number",
}


def describe_value(value: object) -> str:
    """How an artist would name what they wrote: ``a list``, ``the number 3``, ``the text 'x'``."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text '{shown}'"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


@dataclass(frozen=True, slots=True)
class _Mapped:
    """One pydantic error, walked through the document."""

    path: tuple[str | int, ...]  # the data path the error is about (absolute in the doc)
    union_at: tuple[str | int, ...] | None  # the data path of the first union point crossed
    member: str  # the union member / tag skipped there
    finding: Finding
    type_expected: str | None  # for plain type errors at the union point: what was expected
    etype: str = ""
    key: str = ""  # for missing / extra_forbidden: the key


def findings_from_pydantic(
    err: pydantic.ValidationError,
    doc: Doc,
    *,
    base: Sequence[str | int] = (),
    what: str = "show",
    model: type[BaseModel] | None = None,
) -> list[Finding]:
    """Positioned, artist-readable findings for every error of ``err``.

    ``base`` is where the validated value sits in ``doc`` (``()`` for the whole file); ``what``
    names the file kind in messages (``show``, ``venue``). ``model`` is the validated model,
    used to suggest keys; by default it is found from the error's title.
    """
    root_model = model if model is not None else _model_by_name(err.title)
    base_t = tuple(base)
    mapped = [_map_error(e, doc, base_t, what, root_model) for e in err.errors(include_url=False)]
    return _dedupe(mapped)


def _map_error(
    e: Any, doc: Doc, base: tuple[str | int, ...], what: str, root_model: type[BaseModel] | None
) -> _Mapped:
    loc: tuple[str | int, ...] = tuple(e["loc"])
    etype: str = e["type"]
    node: Any = doc.get(base, _MISSING)
    path: list[str | int] = list(base)
    model_loc: list[str | int] = []  # loc elements that were data keys, for the model walk
    union_at: tuple[str | int, ...] | None = None
    member = ""
    last = len(loc) - 1
    leaf_key: str | int | None = None
    for i, el in enumerate(loc):
        in_map = isinstance(node, Mapping) and isinstance(el, str) and el in node
        if in_map or (isinstance(node, list) and isinstance(el, int) and 0 <= el < len(node)):
            node = node[el]
            path.append(el)
            model_loc.append(el)
        elif i == last and etype in ("missing", "extra_forbidden"):
            leaf_key = el
        else:
            if union_at is None:
                union_at = tuple(path)
                member = str(el)
            model_loc.append(el)
    where = _where(doc, tuple(path), what, base)
    type_expected: str | None = None
    if etype == "missing":
        key = leaf_key if leaf_key is not None else (loc[-1] if loc else "?")
        mark = doc.mark(path)
        finding = Finding(mark, f"{where} is missing '{key}'", f"add '{key}: ...'")
    elif etype == "extra_forbidden":
        key = leaf_key if leaf_key is not None else (path[-1] if len(path) > len(base) else "?")
        if leaf_key is None and path and path[-1] == key:
            parent = tuple(path[:-1])
            mark = doc.key_mark(path)
        else:
            parent = tuple(path)
            mark = doc.key_mark((*path, key))
        allowed = _allowed_keys(root_model, model_loc[: len(model_loc) - (1 if leaf_key is None else 0)])
        finding = Finding(
            mark,
            f"unknown key '{key}' in {_where(doc, parent, what, base)}",
            _key_hint(str(key), allowed),
        )
    else:
        mark = doc.mark(path)
        value = node if node is not _MISSING else e.get("input")
        message, type_expected = _value_message(e, value)
        finding = Finding(mark, f"{where}: {message}", _value_hint(e))
    key_name = str(leaf_key if leaf_key is not None else (path[-1] if path else ""))
    return _Mapped(tuple(path), union_at, member, finding, type_expected, etype, key_name)


def _value_message(e: Any, value: object) -> tuple[str, str | None]:
    etype: str = e["type"]
    ctx: Mapping[str, Any] = e.get("ctx") or {}
    got = describe_value(value)
    if etype in _EXPECTED:
        expected = _EXPECTED[etype]
        return f"got {got}, expected {expected}", expected
    if etype in ("value_error", "assertion_error"):
        error = ctx.get("error")
        text = str(error) if error is not None else str(e.get("msg", ""))
        return text.removeprefix("Value error, "), None
    if etype == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"got {got}, expected {expected}", expected
    if etype == "enum":
        expected = "one of " + str(ctx.get("expected", "")).replace("'", "")
        return f"got {got}, expected {expected}", expected
    if etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        sign = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
        bound = next(iter(ctx.values()), "?")
        return f"got {got}, expected a number {sign[etype]} {bound}", None
    if etype == "too_short":
        n = ctx.get("min_length", 1)
        return f"got {got}, expected at least {n} item{'s' if n != 1 else ''}", None
    if etype == "too_long":
        n = ctx.get("max_length", 0)
        return f"got {got}, expected at most {n} item{'s' if n != 1 else ''}", None
    if etype in ("string_too_short", "string_too_long", "string_pattern_mismatch"):
        return f"got {got}: {str(e.get('msg', '')).lower()}", None
    if etype in ("union_tag_invalid", "union_tag_not_found"):
        tags = str(ctx.get("expected_tags", "")).replace("'", "")
        return f"got {got}, expected one of the kinds {tags}" if tags else f"got {got}", None
    return f"got {got}: {e.get('msg', 'invalid value')}", None


def _value_hint(e: Any) -> str:
    etype: str = e["type"]
    if etype in ("literal_error", "enum") and isinstance(e.get("input"), str):
        expected = str((e.get("ctx") or {}).get("expected", ""))
        choices = [c.strip(" '") for c in expected.replace(" or ", ",").split(",")]
        close = difflib.get_close_matches(e["input"], [c for c in choices if c], n=1, cutoff=0.5)
        if close:
            return f"did you mean '{close[0]}'?"
        return ""
    if etype in ("dict_type", "model_type", "model_attributes_type"):
        return "write it as indented 'key: value' lines, or {key: value}"
    if etype in ("list_type", "tuple_type"):
        return "write it as '- item' lines, or [a, b]"
    if etype == "string_type":
        return "put it in quotes"
    return ""


def _key_hint(key: str, allowed: Sequence[str] | None) -> str:
    if not allowed:
        return "remove it"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if not close:
        lowered = {a.lower().replace("-", "_"): a for a in allowed}
        hit = lowered.get(key.lower().replace("-", "_"))
        close = [hit] if hit else []
    if close:
        return f"did you mean '{close[0]}'?"
    return "allowed keys here: " + ", ".join(sorted(allowed))


def _where(doc: Doc, path: tuple[str | int, ...], what: str, base: tuple[str | int, ...]) -> str:
    """Name a place for an artist: ``cue 'bloom'``, ``'pre_wait' of cue 'bloom'``, ``the show``."""
    if len(path) <= len(base):
        return f"the {what}"
    # The nearest entry of a list that has an id or a name names the context.
    for i in range(len(path), len(base), -1):
        prefix = path[:i]
        if isinstance(prefix[-1], int):
            entry = doc.get(prefix)
            label = ""
            if isinstance(entry, Mapping):
                for k in ("id", "name"):
                    if isinstance(entry.get(k), str):
                        label = f" '{entry[k]}'"
                        break
            container = prefix[-2] if len(prefix) >= 2 and isinstance(prefix[-2], str) else "item"
            noun = _singular(container)
            thing = f"{noun}{label}" if label else f"{noun} {prefix[-1] + 1}"
            if not label:
                outer = _where(doc, prefix[:-1], what, base).split(" of ")[-1]
                if outer != f"the {what}" and not outer.startswith("'"):
                    thing = f"{thing} of {outer}"
            rest = path[i:]
            if not rest:
                return thing
            return f"'{_dotted(rest)}' of {thing}"
    return f"'{_dotted(path[len(base) :])}'"


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _dedupe(mapped: list[_Mapped]) -> list[Finding]:
    """One finding per mistake: collapse the per-member errors of each union point."""
    plain: list[Finding] = []
    groups: dict[tuple[str | int, ...], dict[str, list[_Mapped]]] = {}
    for m in mapped:
        if m.union_at is None:
            plain.append(m.finding)
        else:
            groups.setdefault(m.union_at, {}).setdefault(m.member, []).append(m)
    out = list(plain)
    for at, members in groups.items():
        if len(members) == 1:
            out.extend(m.finding for ms in members.values() for m in ms)
            continue
        everyone = [m for ms in members.values() for m in ms]
        # Every member failed on the value itself with a type error: say so once.
        if all(m.path == at and m.type_expected for m in everyone):
            expected = _join_or(dict.fromkeys(m.type_expected or "" for m in everyone))
            first = everyone[0].finding
            head, _, tail = first.message.partition(": got ")
            got = tail.split(", expected", 1)[0]
            out.append(Finding(first.mark, f"{head}: got {got}, expected {expected}", first.hint))
            continue
        best = min(members.values(), key=lambda ms: (len(ms), -max(len(m.path) for m in ms)))
        out.extend(m.finding for m in best)
    out = _drop_missing_explained_by_typos(out, mapped)
    seen: set[tuple[Mark | None, str]] = set()
    unique: list[Finding] = []
    for f in out:
        if (f.mark, f.message) not in seen:
            seen.add((f.mark, f.message))
            unique.append(f)
    return unique


def _drop_missing_explained_by_typos(out: list[Finding], mapped: list[_Mapped]) -> list[Finding]:
    """``adress: x`` gives "unknown key 'adress'" and "missing 'address'": keep only the first."""
    typos: set[tuple[tuple[str | int, ...], str]] = set()  # (mapping path, key suggested)
    for m in mapped:
        hint = m.finding.hint
        if m.etype == "extra_forbidden" and hint.startswith("did you mean '"):
            typos.add((m.path[:-1], hint.split("'")[1]))
    drop = {id(m.finding) for m in mapped if m.etype == "missing" and (m.path, m.key) in typos}
    return [f for f in out if id(f) not in drop]


def _join_or(items: Iterable[str]) -> str:
    xs = [x for x in items if x]
    if len(xs) <= 1:
        return xs[0] if xs else "something else"
    return ", ".join(xs[:-1]) + " or " + xs[-1]


# --- the model walk, for "did you mean" -------------------------------------------------------


def _model_by_name(name: str) -> type[BaseModel] | None:
    found: list[type[BaseModel]] = []
    todo: list[type[BaseModel]] = [BaseModel]
    seen: set[type[BaseModel]] = set()
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
                if sub.__name__ == name:
                    found.append(sub)
    if not found:
        return None
    # Prefer the project's own models when two share a name.
    found.sort(key=lambda c: not c.__module__.startswith(("venues", "cues")))
    return found[0]


def _members(tp: Any) -> list[Any]:
    """Flatten Annotated / Optional / Union into their member types."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for a in typing.get_args(tp) for m in _members(a)]
    return [tp]


def _step(tp: Any, el: str | int) -> list[Any]:
    out: list[Any] = []
    for t in _members(tp):
        origin = typing.get_origin(t)
        if isinstance(t, type) and issubclass(t, BaseModel):
            for name, f in t.model_fields.items():
                if el in (name, f.alias, f.validation_alias):
                    out.append(f.annotation)
        elif origin in (list, tuple, set, frozenset, Sequence) and isinstance(el, int):
            args = typing.get_args(t)
            if args:
                out.append(args[0])
        elif origin in (dict, Mapping) and isinstance(el, str):
            args = typing.get_args(t)
            if len(args) == 2:
                out.append(args[1])
    return out


def _allowed_keys(root: type[BaseModel] | None, loc: Sequence[str | int]) -> list[str] | None:
    """The keys the model(s) at ``loc`` accept (field names and aliases), when they can be found."""
    if root is None:
        return None
    cands: list[Any] = [root]
    for el in loc:
        nxt = [n for c in cands for n in _step(c, el)]
        if not nxt:
            # A union member name or a tag: narrow to that member when it is named, else keep all.
            named = [m for c in cands for m in _members(c) if getattr(m, "__name__", None) == el]
            nxt = named or cands
        cands = nxt
    keys: dict[str, None] = {}
    for c in cands:
        for t in _members(c):
            if isinstance(t, type) and issubclass(t, BaseModel):
                for name, f in t.model_fields.items():
                    keys[f.alias if isinstance(f.alias, str) else name] = None
    return list(keys) or None
