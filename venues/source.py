"""Fast YAML 1.2 loading with a source position for every value.

Theory of operation
-------------------
Venue and show files are checked before the night, often in an editor loop, so loading must be
fast and every problem must point at a line and column. ruamel.yaml's round-trip loader keeps
positions but is slow (seconds for a 5,000-cue show); its C loader is fast but forgets them. So
this module drives the libyaml-based parser of ``ruamel.yaml.clib`` at the *event* level
(each event carries its start mark) and builds plain Python data itself in one pass, with an
explicit stack (no recursion), recording for every value the position of the value and, for a
mapping entry, of its key. When the C extension is missing it falls back to ruamel's pure-Python
event parser: same result, slower.

Plain scalars are resolved by the YAML 1.2 *core* schema (YAML 1.2.2, section 10.3), not
YAML 1.1: ``no`` and ``on`` stay strings, ``1:30`` and ``00:00:08:15`` stay strings, ``0o17`` is
an octal int. Quoted and block scalars are always strings. Merge keys ``<<`` (a YAML 1.1 type)
are supported because artists use them with anchors.

Aliases share the anchored object (no copies). To refuse "billion laughs" documents, each alias
adds the node count of its anchor to a running *expanded* count, bounded by ``max_nodes``.

Positions are stored packed as ints (line << 32 | column, 0-based) per collection: for each
mapping or list, one dict (by key) or list (by index) of its values' marks, found by the
collection's path. A scalar thus costs one int in its parent's table, not a path tuple and dict
entries of its own; lookups stay O(1) and build the :class:`~venues.errors.Mark` on demand.
"""

from __future__ import annotations

import difflib
import gc
import logging
import math
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

from ruamel.yaml import events as _ev
from ruamel.yaml.error import MarkedYAMLError as _MarkedYAMLError
from ruamel.yaml.reader import ReaderError as _ReaderError

from venues.errors import Finding, Mark, SourceErrors

__all__ = ["MAX_FILE_BYTES", "MAX_VALUES", "Doc", "DocPath", "load_yaml", "parse_yaml"]

log = logging.getLogger(__name__)

DocPath = tuple[str | int, ...]
"""A path into a document: mapping keys and sequence indices from the root."""

_EMPTY_HINT = "a venue file starts with 'venue: <id>', a show file with 'show: <id>'"

try:  # the libyaml-based parser (ruamel.yaml.clib); events carry marks like the pure parser's
    from _ruamel_yaml import CParser as _CParser

    HAVE_CPARSER: bool = True
except ImportError:  # pragma: no cover - depends on the platform
    _CParser = None
    HAVE_CPARSER = False

_Scalar: Final = _ev.ScalarEvent
_Alias: Final = _ev.AliasEvent
_MapStart: Final = _ev.MappingStartEvent
_MapEnd: Final = _ev.MappingEndEvent
_SeqStart: Final = _ev.SequenceStartEvent
_SeqEnd: Final = _ev.SequenceEndEvent
_DocStart: Final = _ev.DocumentStartEvent
_DocEnd: Final = _ev.DocumentEndEvent
_StreamEnd: Final = _ev.StreamEndEvent

MAX_FILE_BYTES: Final = 8 * 2**20
"""A show or venue file (each include too) larger than this is refused from its size on disk,
before a byte is parsed (a 20,000-cue show is 7.4 MB; docs/security-controls.md)."""
MAX_VALUES: Final = 2_000_000
"""A file with more values than this (scalars and collections, after alias expansion) is refused
as it is parsed: memory stays bounded whatever the text (docs/security-controls.md)."""
_MAX_DEPTH: Final = 512
_QUOTES: Final = ("'", '"')
_QUOTED_BIT: Final = 1 << 31  # in a packed mark: the scalar is quoted (see Doc)
_COL_MASK: Final = _QUOTED_BIT - 1

# ---------------------------------------------------------------------------------------------
# YAML 1.2 core schema resolution of plain scalars


_MISSING: Final = object()
_CONSTANTS: Final[dict[str, object]] = {
    "": None,
    "~": None,
    "null": None,
    "Null": None,
    "NULL": None,
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
}
for _sign, _val in (("", math.inf), ("+", math.inf), ("-", -math.inf)):
    for _spelling in (".inf", ".Inf", ".INF"):
        _CONSTANTS[_sign + _spelling] = _val
for _spelling in (".nan", ".NaN", ".NAN"):
    _CONSTANTS[_spelling] = math.nan

_NUMBER_START: Final = frozenset("0123456789+-.")
_INT_RE: Final = re.compile(r"[-+]?[0-9]+\Z")
_OCT_RE: Final = re.compile(r"0o[0-7]+\Z")
_HEX_RE: Final = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT_RE: Final = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")


def resolve_plain(text: str) -> object:
    """Resolve a plain (unquoted) scalar by the YAML 1.2 core schema.

    ``None`` for null/~/empty, ``bool`` for true/false in three spellings, ``int`` for decimal,
    ``0o`` octal and ``0x`` hex, ``float`` including ``.inf``/``.nan``; anything else is a string.
    """
    const = _CONSTANTS.get(text, _MISSING)
    if const is not _MISSING:
        return const
    if text[0] not in _NUMBER_START:
        return text
    if _INT_RE.match(text):
        return int(text)
    if _FLOAT_RE.match(text):
        return float(text)
    if _OCT_RE.match(text):
        return int(text[2:], 8)
    if _HEX_RE.match(text):
        return int(text[2:], 16)
    return text


# ---------------------------------------------------------------------------------------------
# The document

_Slots = dict[str, int] | list[int]  # one container's packed marks: by key, or by index


def _slot(table: Mapping[DocPath, _Slots], path: DocPath) -> int | None:
    """The packed mark recorded for exactly ``path`` (not the root), or None."""
    c = table.get(path[:-1])
    if c is None:
        return None
    k = path[-1]
    if type(c) is dict:
        return c.get(k)  # type: ignore[arg-type]
    if type(k) is int and 0 <= k < len(c):
        return c[k]  # type: ignore[index]
    return None


def _unpack(file: str, packed: int) -> Mark:
    return Mark(file, (packed >> 32) + 1, (packed & _COL_MASK) + 1)


class _MarkMap(Mapping[DocPath, Mark]):
    """Path -> Mark over the per-container tables; builds the Mark on lookup."""

    __slots__ = ("_file", "_root", "_table")

    def __init__(self, file: str, table: Mapping[DocPath, _Slots], root: int | None) -> None:
        self._file = file
        self._table = table
        self._root = root

    def _packed(self, path: object) -> int | None:
        if type(path) is not tuple:
            return None
        if not path:
            return self._root
        return _slot(self._table, path)

    def __getitem__(self, path: DocPath) -> Mark:
        p = self._packed(path)
        if p is None:
            raise KeyError(path)
        return _unpack(self._file, p)

    def __contains__(self, path: object) -> bool:
        return self._packed(path) is not None

    def __iter__(self) -> Iterator[DocPath]:
        if self._root is not None:
            yield ()
        for base, c in self._table.items():
            if type(c) is dict:
                for k in c:
                    yield (*base, k)
            else:
                for i in range(len(c)):
                    yield (*base, i)

    def __len__(self) -> int:
        return (self._root is not None) + sum(len(c) for c in self._table.values())


@dataclass(frozen=True)
class Doc:
    """A loaded YAML document: plain data plus the source position of every value.

    ``data`` holds only dict / list / str / int / float / bool / None; aliases share objects.
    :attr:`marks` maps a path (keys and indices from the root; ``()`` is the root) to the start
    of the value there; :attr:`key_marks` maps the path of a mapping entry to the start of its
    key. Values reached through an alias have no marks of their own: :meth:`mark` then answers
    with the alias's position, the nearest ancestor that has one.

    The positions are kept per collection, not per value (the loader would otherwise build a
    path tuple and two dict entries for each of hundreds of thousands of scalars): ``_values``
    maps the path of each collection to its values' packed marks (``line << 32 | column``,
    0-based, bit 31 set for a quoted scalar), a dict by key for a mapping or a list by index
    for a sequence; ``_keys`` does the same for the keys of each mapping; ``_root`` is the
    root's packed mark.
    """

    data: Any
    file: str
    _values: Mapping[DocPath, _Slots] = field(default_factory=dict, repr=False)
    _keys: Mapping[DocPath, dict[str, int]] = field(default_factory=dict, repr=False)
    _root: int | None = field(default=None, repr=False)

    @property
    def marks(self) -> Mapping[DocPath, Mark]:
        """Path -> start of the value there, for every value read from the file."""
        return _MarkMap(self.file, self._values, self._root)

    @property
    def key_marks(self) -> Mapping[DocPath, Mark]:
        """Path of a mapping entry -> start of its key."""
        return _MarkMap(self.file, self._keys, None)

    @property
    def quoted(self) -> frozenset[DocPath]:
        """The paths of quoted scalars."""
        return frozenset(
            p for p in _MarkMap(self.file, self._values, self._root) if (self._exact(p) or 0) & _QUOTED_BIT
        )

    def _exact(self, path: DocPath) -> int | None:
        return self._root if not path else _slot(self._values, path)

    def text_mark(self, path: Sequence[str | int], offset: int = 0) -> Mark:
        """The position of character ``offset`` of the (one-line) string at ``path``.

        Unlike :meth:`mark` it skips the opening quote of a quoted scalar, so an error found at
        column ``offset`` of a string (a selector, a time code) points at the right character.
        """
        m = self.mark(path)
        exact = self._exact(tuple(path))
        skip = 1 if exact is not None and exact & _QUOTED_BIT else 0
        return Mark(m.file, m.line, m.col + skip + offset)

    def mark(self, path: Sequence[str | int]) -> Mark:
        """The start of the value at ``path``, or of its nearest marked ancestor; never raises."""
        p = path if type(path) is tuple else tuple(path)
        values = self._values
        while p:
            # _slot, inlined: the compiler asks for a mark per cue and per action
            c: Any = values.get(p[:-1])
            if c is not None:
                k = p[-1]
                packed = c.get(k) if type(c) is dict else c[k] if type(k) is int and 0 <= k < len(c) else None
                if packed is not None:
                    return Mark(self.file, (packed >> 32) + 1, (packed & _COL_MASK) + 1)
            p = p[:-1]
        if self._root is not None:
            return _unpack(self.file, self._root)
        return Mark(self.file, 1, 1)

    def key_mark(self, path: Sequence[str | int]) -> Mark:
        """The start of the key of the mapping entry at ``path``; falls back to :meth:`mark`."""
        p = tuple(path)
        if p:
            keys = self._keys.get(p[:-1])
            if keys is not None:
                packed = keys.get(p[-1])  # type: ignore[arg-type]
                if packed is not None:
                    return _unpack(self.file, packed)
        return self.mark(p)

    def get(self, path: Sequence[str | int], default: Any = None) -> Any:
        """The value at ``path`` in ``data``, or ``default`` when the path does not lead anywhere."""
        node: Any = self.data
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return default
        return node


# ---------------------------------------------------------------------------------------------
# Loading


def load_yaml(
    path: str | os.PathLike[str],
    *,
    display: str | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    max_nodes: int = MAX_VALUES,
) -> Doc:
    """Read and parse one YAML file; ``display`` is the file name used in marks (default: ``path``).

    Raises :class:`~venues.errors.SourceErrors` for every problem, each a positioned finding
    with a hint: missing or unreadable file, not a regular file, larger than ``max_bytes`` (only
    ``max_bytes + 1`` bytes are ever read), not UTF-8, YAML syntax, duplicate or non-string keys,
    alias expansion past ``max_nodes``, several documents, an empty file.
    """
    name = display if display is not None else os.fspath(path)
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise SourceErrors([Finding(Mark(name, 1, 1), "file not found", _missing_hint(p))]) from None
    except OSError as e:
        raise SourceErrors([Finding(Mark(name, 1, 1), f"cannot read the file: {e.strerror}", "")]) from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise SourceErrors(
            [Finding(Mark(name, 1, 1), f"{kind}; expected a YAML file", f"the path tried: {p.resolve()}")]
        )
    if st.st_size > max_bytes:
        raise SourceErrors([_too_big(name, st.st_size, max_bytes)])
    try:
        with p.open("rb") as f:
            raw = f.read(max_bytes + 1)  # never more: the file may have grown, or lie about its size
    except OSError as e:
        raise SourceErrors([Finding(Mark(name, 1, 1), f"cannot read the file: {e.strerror}", "")]) from None
    if len(raw) > max_bytes:
        raise SourceErrors([_too_big(name, None, max_bytes)])
    return parse_yaml(raw, name, max_nodes=max_nodes)


def parse_yaml(text: str | bytes, file: str, *, max_nodes: int = MAX_VALUES) -> Doc:
    """Parse YAML text (``bytes`` must be UTF-8, a BOM is fine) into a :class:`Doc`.

    ``file`` is the display name used in marks. Raises :class:`~venues.errors.SourceErrors`.
    """
    return _parse(text, file, max_nodes=max_nodes, pure=not HAVE_CPARSER)


def _parse(text: str | bytes, file: str, *, max_nodes: int, pure: bool) -> Doc:
    if isinstance(text, bytes):
        text = _decode(text, file)
    if text.startswith("\ufeff"):
        text = text[1:]
    get_event = _event_source(text, pure)
    builder = _Builder(file, max_nodes)
    # The build allocates hundreds of thousands of containers and tuples and frees none: the
    # cyclic collector would scan them again and again for nothing (about 15% of the time).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        builder.run(get_event)
    except _MarkedYAMLError as e:
        raise SourceErrors.of([*builder.findings, _syntax_finding(e, file)]) from None
    except _ReaderError as e:
        raise SourceErrors.of([*builder.findings, _reader_finding(e, text, file)]) from None
    except _Abort:
        pass
    finally:
        if gc_was_enabled:
            gc.enable()
    if builder.findings:
        raise SourceErrors.of(builder.findings)
    return Doc(builder.root, file, builder.values, builder.keys, builder.root_packed)


def _event_source(text: str, pure: bool) -> Callable[[], Any]:
    """A function returning the next parser event (the last one is a StreamEndEvent)."""
    if not pure and _CParser is not None:
        return cast(Callable[[], Any], _CParser(text).get_event)
    from ruamel.yaml.main import YAML

    events: Iterator[Any] = iter(YAML(typ="safe", pure=True).parse(text))
    return events.__next__


class _Abort(Exception):
    """Stop building: a finding that makes the rest meaningless was recorded."""


class _Frame:
    """One open collection on the builder's stack."""

    __slots__ = (
        "anchor",
        "container",
        "first_seen",
        "is_map",
        "key",
        "key_packed",
        "merges",
        "path",
        "start",
        "vm",
    )

    def __init__(
        self, container: Any, path: DocPath | None, anchor: str | None, start: int, is_map: bool
    ) -> None:
        self.container = container
        self.path = path  # None: do not record marks (inside a rejected key)
        self.anchor = anchor
        self.start = start  # the node count when it opened
        self.is_map = is_map
        self.key: object = _MISSING  # mapping: the pending key, or _MISSING when a key is expected
        self.key_packed = 0
        # mapping: key -> packed mark of the key (duplicate detection, and the Doc's key marks)
        self.first_seen: dict[str, int] = {}
        # the packed marks of the values: by key for a mapping, by index for a sequence
        self.vm: Any = {} if is_map else []
        self.merges: list[tuple[Any, DocPath | None, int]] | None = None


_MERGE: Final = object()  # pending key sentinel for "<<"
_BAD_KEY: Final = object()  # pending key sentinel for a rejected key: its value is dropped


class _Builder:
    """Consumes parser events, builds plain data and records marks (per collection, see Doc)."""

    def __init__(self, file: str, max_nodes: int) -> None:
        self.file = file
        self.max_nodes = max_nodes
        self.findings: list[Finding] = []
        self.values: dict[DocPath, _Slots] = {}
        self.keys: dict[DocPath, dict[str, int]] = {}
        self.anchors: dict[str, tuple[Any, DocPath | None, int]] = {}  # name -> (value, path, size)
        self.alias_src: dict[DocPath, DocPath | None] = {}
        self.root: Any = None
        self.root_packed: int | None = None
        self.nodes = 0

    def mark_at(self, packed: int) -> Mark:
        return _unpack(self.file, packed)

    def fail(self, packed: int, message: str, hint: str = "") -> None:
        self.findings.append(Finding(self.mark_at(packed), message, hint))

    def run(self, get_event: Callable[[], Any]) -> None:
        """Build from the events ``get_event()`` returns, up to the end of the stream."""
        stack: list[_Frame] = []
        top: _Frame | None = None
        values = self.values
        keys = self.keys
        documents = 0
        nodes = 0
        # Plain scalars already resolved in this document: the constants, then every text that
        # looked like a number (shows repeat "0", "1.5", "250ms" thousands of times; resolving
        # one takes up to four regular expressions). Bounded by the document's size.
        resolved = dict(_CONSTANTS)
        consts = resolved.get
        number_start = _NUMBER_START
        resolve = resolve_plain
        missing = _MISSING
        quotes = _QUOTES
        quoted_bit = _QUOTED_BIT
        scalar_t = _Scalar
        # The open collection's fields, cached in locals (refreshed when it changes): the hot
        # path below runs for every scalar.
        hot = False  # the open collection records marks
        in_map = False
        cont: Any = None
        vm: Any = None
        seen: dict[str, int] = {}
        tpath: DocPath = ()
        while True:
            ev = get_event()
            t = type(ev)
            if t is scalar_t:
                # The hot path, inlined: a plain or quoted scalar without tag or anchor that is a
                # string key, or a value under a string key, or a list item, in a marked collection.
                m = ev.start_mark
                packed = (m.line << 32) | m.column
                nodes += 1
                value: Any = ev.value
                style = ev.style
                if ev.ctag is not None:
                    value = self.tagged_scalar(ev, _tag_text(ev.ctag), packed)
                    plain = False
                elif not style:
                    plain = True
                    c = consts(value, missing)
                    if c is not missing:
                        value = c
                    elif value[0] in number_start:
                        c = resolved[value] = resolve(value)
                        value = c
                else:
                    plain = False
                vpacked = packed | quoted_bit if not plain and style in quotes else packed
                if hot and ev.anchor is None:
                    if in_map:
                        assert top is not None
                        key = top.key
                        if key is missing:
                            if type(value) is str and value not in seen and not (plain and value == "<<"):
                                seen[value] = packed
                                top.key = value
                                top.key_packed = packed
                                continue
                            self.take_key(top, value, packed, plain=plain)
                            continue
                        if type(key) is str:
                            cont[key] = value
                            vm[key] = vpacked
                            top.key = missing
                            continue
                    else:
                        cont.append(value)
                        vm.append(vpacked)
                        continue
                self.scalar(top, value, packed, vpacked, plain, ev.anchor)
            elif t is _MapStart or t is _SeqStart:
                m = ev.start_mark
                packed = (m.line << 32) | m.column
                nodes += 1
                is_map = t is _MapStart
                if ev.ctag is not None:
                    self.check_collection_tag(_tag_text(ev.ctag), is_map, packed)
                container: Any = {} if is_map else []
                path: DocPath | None
                if hot and not in_map:  # deliver, inlined: an item of a marked list
                    path = (*tpath, len(cont))
                    cont.append(container)
                    vm.append(packed)
                elif hot and top is not None and type(top.key) is str:  # or under a string key
                    key = top.key
                    path = (*tpath, key)
                    cont[key] = container
                    vm[key] = packed
                    top.key = missing
                elif top is not None:
                    if top.is_map and top.key is _MISSING:
                        self.fail(
                            packed,
                            f"a {'mapping' if is_map else 'list'} cannot be a mapping key",
                            "keys are names: write 'name: value'",
                        )
                        top.key = _BAD_KEY
                        path = None
                    else:
                        path = self.deliver(top, container, packed, None)
                else:
                    self.root = container
                    self.root_packed = packed
                    path = ()
                if len(stack) >= _MAX_DEPTH:
                    self.fail(packed, f"nesting deeper than {_MAX_DEPTH} levels", "flatten the structure")
                    raise _Abort
                top = _Frame(container, path, ev.anchor, nodes - 1, is_map)
                if path is not None:
                    values[path] = top.vm
                    if is_map:
                        keys[path] = top.first_seen
                stack.append(top)
                hot, in_map, cont, vm, seen = path is not None, is_map, container, top.vm, top.first_seen
                tpath = path if path is not None else ()
            elif t is _MapEnd or t is _SeqEnd:
                frame = stack.pop()
                if stack:
                    top = stack[-1]
                    tpath = top.path if top.path is not None else ()
                    hot, in_map, cont, vm, seen = (
                        top.path is not None,
                        top.is_map,
                        top.container,
                        top.vm,
                        top.first_seen,
                    )
                else:
                    top = None
                    hot = False
                if frame.merges:
                    self.apply_merges(frame)
                if frame.anchor is not None:
                    self.anchors[frame.anchor] = (frame.container, frame.path, nodes - frame.start)
            elif t is _Alias:
                m = ev.start_mark
                packed = (m.line << 32) | m.column
                entry = self.anchors.get(ev.anchor)
                if entry is None:
                    open_anchors = {f.anchor for f in stack}
                    if ev.anchor in open_anchors:
                        self.fail(
                            packed,
                            f"alias *{ev.anchor} refers to the collection that contains it",
                            "a value cannot contain itself; copy what you need instead",
                        )
                    else:
                        known = ", ".join(f"&{a}" for a in sorted(self.anchors)) or "none"
                        self.fail(
                            packed,
                            f"alias *{ev.anchor} has no anchor &{ev.anchor} before it",
                            f"anchors defined so far: {known}",
                        )
                    raise _Abort
                value, src_path, size = entry
                nodes += size
                if nodes > self.max_nodes:
                    self.fail(
                        packed,
                        f"alias expansion exceeds {self.max_nodes:,} nodes",
                        "aliases nested inside aliases multiply; this looks like an alias bomb",
                    )
                    raise _Abort
                if top is not None:
                    if top.is_map and top.key is _MISSING:
                        self.take_key(top, value, packed, plain=False)
                    else:
                        self.deliver(top, value, packed, src_path)
                else:
                    self.root = value
                    self.root_packed = packed
            elif t is _DocStart:
                documents += 1
                if documents > 1:
                    m = ev.start_mark
                    self.fail(
                        (m.line << 32) | m.column,
                        "a second YAML document starts here; a file holds one venue or one show",
                        "remove the '---' line, or split the file in two",
                    )
                    raise _Abort
            elif t is _DocEnd and self.root is None:
                m = ev.start_mark
                self.fail((m.line << 32) | m.column, "empty file", _EMPTY_HINT)
                raise _Abort
            elif t is _StreamEnd:
                break
        self.nodes = nodes
        if documents == 0:
            self.findings.append(Finding(Mark(self.file, 1, 1), "empty file", _EMPTY_HINT))
        elif nodes > self.max_nodes:
            self.findings.append(
                Finding(
                    Mark(self.file, 1, 1),
                    f"the document has {nodes:,} values, more than the limit of {self.max_nodes:,}",
                    "split the file",
                )
            )

    def scalar(
        self, top: _Frame | None, value: object, packed: int, vpacked: int, plain: bool, anchor: str | None
    ) -> None:
        """The cases of a scalar the hot path leaves: the root, an anchor, unmarked or odd keys."""
        spath: DocPath | None = None
        if top is None:
            self.root = value
            self.root_packed = vpacked
            spath = ()
        elif top.is_map and top.key is _MISSING:
            self.take_key(top, value, packed, plain=plain)
        else:
            spath = self.deliver(top, value, vpacked, None)
        if anchor is not None:
            self.anchors[anchor] = (value, spath, 1)

    def take_key(self, top: _Frame, key: object, packed: int, *, plain: bool) -> None:
        if type(key) is not str:
            if isinstance(key, dict | list):
                what = "a mapping" if isinstance(key, dict) else "a list"
            else:
                what = f"{_kind(key)} {key!r}"
            self.fail(packed, f"mapping keys must be strings; this one is {what}", _key_hint(key))
            top.key = _BAD_KEY
            return
        if plain and key == "<<":
            top.key = _MERGE
            top.key_packed = packed
            return
        seen = top.first_seen
        first = seen.get(key)
        if first is not None:
            self.fail(
                packed,
                f"duplicate key '{key}' (first on line {(first >> 32) + 1})",
                "a mapping holds each key once; remove or rename one of them",
            )
        else:
            seen[key] = packed
        top.key = key
        top.key_packed = packed

    def deliver(self, top: _Frame, value: Any, packed: int, src_path: DocPath | None) -> DocPath | None:
        """Put a value into the open collection; returns its path (None when unmarked)."""
        parent = top.path
        path: DocPath | None
        if top.is_map:
            key = top.key
            top.key = _MISSING
            if key is _BAD_KEY:
                return None
            if key is _MERGE:
                path = None if parent is None else (*parent, "<<")
                if top.merges is None:
                    top.merges = []
                top.merges.append((value, path, top.key_packed))
                top.vm["<<"] = packed
            else:
                skey = cast(str, key)
                top.container[skey] = value
                top.vm[skey] = packed
                path = None if parent is None else (*parent, skey)
        else:
            lst = top.container
            path = None if parent is None else (*parent, len(lst))
            lst.append(value)
            top.vm.append(packed)
        if path is not None and src_path is not None:
            self.alias_src[path] = src_path
        return path

    def apply_merges(self, frame: _Frame) -> None:
        """YAML 1.1 merge: explicit keys win; among merged mappings, the earlier wins."""
        merged: dict[str, Any] = {}
        merged_from: dict[str, DocPath | None] = {}
        assert frame.merges is not None
        for value, path, key_packed in frame.merges:
            sources: list[tuple[Any, DocPath | None]]
            if isinstance(value, list):
                sources = [(item, None if path is None else (*path, i)) for i, item in enumerate(value)]
            else:
                sources = [(value, path)]
            for item, item_path in sources:
                if not isinstance(item, dict):
                    at = _slot(self.values, item_path) if item_path else None
                    self.fail(
                        key_packed if at is None else at,
                        f"merge key '<<' needs a mapping, got {_kind(item)}",
                        "write '<<: *defaults' where '&defaults' anchors a mapping (or a list of such)",
                    )
                    continue
                src = item_path
                while src is not None and src in self.alias_src:
                    src = self.alias_src[src]
                for k, v in item.items():
                    if k not in merged:
                        merged[k] = v
                        merged_from[k] = src
        own = frame.container
        if frame.path is not None:
            vm = frame.vm
            km = frame.first_seen
            for k, src in merged_from.items():
                if k in own:
                    continue
                src_values = self.values.get(src) if src is not None else None
                at = src_values.get(k) if type(src_values) is dict else None
                if at is not None:
                    src_keys = self.keys.get(src) if src is not None else None
                    vm[k] = at
                    km[k] = src_keys.get(k, at) if src_keys is not None else at
                else:
                    vm[k] = km[k] = frame.merges[0][2]
        merged.update(own)
        own.clear()
        own.update(merged)

    def tagged_scalar(self, ev: Any, tag: str, packed: int) -> object:
        text: str = ev.value
        if tag in ("!", "tag:yaml.org,2002:str"):
            return text
        if tag == "tag:yaml.org,2002:null" and text in ("", "~", "null", "Null", "NULL"):
            return None
        if tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"):
            value = resolve_plain(text) if text else text
            want = {"int": int, "float": float, "bool": bool}[tag.rsplit(":", 1)[-1]]
            if want is float and type(value) is int:
                return float(value)
            if type(value) is want:
                return value
            self.fail(
                packed, f"'{text}' is not a valid {tag.rsplit(':', 1)[-1]}", "remove the tag or fix the value"
            )
            return text
        self.fail(packed, f"unsupported tag '{tag}'", "Madang files use plain YAML: remove the tag")
        return text

    def check_collection_tag(self, tag: str, is_map: bool, packed: int) -> None:
        if tag == "!" or tag == ("tag:yaml.org,2002:map" if is_map else "tag:yaml.org,2002:seq"):
            return
        self.fail(packed, f"unsupported tag '{tag}'", "Madang files use plain YAML: remove the tag")


def _tag_text(tag: object) -> str:
    if isinstance(tag, str):
        return tag
    value = getattr(tag, "value", None)
    return value if isinstance(value, str) else str(tag)


def _kind(value: object) -> str:
    """How an artist would name a value's type."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _key_hint(key: object) -> str:
    if key is None:
        return "a key is missing before ':'"
    if isinstance(key, bool | int | float):
        return f"quote it if it is a name: '{key}':" if not isinstance(key, bool) else "quote it: 'true':"
    return "keys are names: write 'name: value'"


def _too_big(name: str, size: int | None, limit: int) -> Finding:
    said = f"{size:,} bytes" if size is not None else f"more than {limit:,} bytes"
    return Finding(
        Mark(name, 1, 1),
        f"file too large: {said}; the limit is {limit:,} bytes",
        "is this the right file? split very large shows, or raise the limit",
    )


def _missing_hint(p: Path) -> str:
    tried = f"the path tried: {p.absolute()}"
    parent = p.parent if str(p.parent) else Path(".")
    try:
        names = os.listdir(parent)
    except OSError:
        return f"{tried}; the directory {parent} does not exist either"
    close = difflib.get_close_matches(p.name, names, n=3, cutoff=0.6)
    if close:
        return f"{tried}; did you mean {' or '.join(repr(str(parent / c)) for c in close)}?"
    yamls = sorted(n for n in names if n.endswith((".yaml", ".yml")))[:8]
    if yamls:
        return f"{tried}; YAML files there: {', '.join(yamls)}"
    return tried


def _decode(raw: bytes, file: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceErrors(
            [Finding(Mark(file, 1, 1), "the file is UTF-16, not UTF-8", "save it as UTF-8 in your editor")]
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        start = e.start
        line_start = raw.rfind(b"\n", 0, start) + 1
        line = raw.count(b"\n", 0, start) + 1
        col = len(raw[line_start:start].decode("utf-8", errors="replace")) + 1
        raise SourceErrors(
            [
                Finding(
                    Mark(file, line, col),
                    f"not UTF-8: byte 0x{raw[start]:02x} cannot start or continue a character here",
                    "save the file as UTF-8 in your editor; it may be Latin-1 or CP949",
                )
            ]
        ) from None


_SYNTAX_HINTS: Final = (
    ("mapping values are not allowed", "a value containing ': ' must be quoted; else check the indentation"),
    ("cannot start any token", "YAML indents with spaces, not tabs; quote values starting with @ or `"),
    ("did not find expected key", "check the indentation: keys of one mapping start in the same column"),
    ("did not find expected '-' indicator", "check the indentation: list items start in the same column"),
    ("found unexpected end of stream", "a quote or bracket is not closed"),
    ("found unexpected ':'", "inside { } or [ ], quote values that contain ':', like '1:30'"),
    ("could not find expected ':'", "a key needs ':' after it; a long value may need quotes"),
    ("found undefined alias", "define the anchor (&name) before using the alias (*name)"),
)


def _syntax_finding(e: _MarkedYAMLError, file: str) -> Finding:
    m = e.problem_mark or e.context_mark
    mark = Mark(file, m.line + 1, m.column + 1) if m is not None else Mark(file, 1, 1)
    problem = str(e.problem or e.context or "invalid YAML")
    message = f"YAML syntax error: {problem}"
    ctx = e.context_mark
    if e.context and ctx is not None and m is not None and (ctx.line, ctx.column) != (m.line, m.column):
        message += f" ({e.context} that started at line {ctx.line + 1}, column {ctx.column + 1})"
    hint = next((h for k, h in _SYNTAX_HINTS if k in problem), "check the indentation and quoting near here")
    return Finding(mark, message, hint)


def _reader_finding(e: _ReaderError, text: str, file: str) -> Finding:
    pos = int(getattr(e, "position", 0) or 0)
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    char = getattr(e, "character", None)
    code = char if isinstance(char, int) else (ord(char) if isinstance(char, str) and char else 0)
    return Finding(
        Mark(file, line, col),
        f"character U+{code:04X} is not allowed in YAML ({getattr(e, 'reason', 'invalid character')})",
        "delete it; it is often an invisible character pasted from another program",
    )
