"""Loading a show: the main file, its includes and its templates, validated, with positions.

Theory of operation
-------------------
:func:`load_show` reads the main show file and every file it includes (depth first, each
``include`` relative to the file that names it), validates each part against
:mod:`cues.model`, and expands every ``use: <template>`` into the actions it stands for. The
result, a :class:`LoadedShow`, is a flat list of :class:`LoadedCue` in cue-list order, each
action carrying a :class:`Where` (document and path) so the compiler can point at the exact
line of anything it rejects, plus every :class:`~venues.errors.Finding` met on the way.

Validation is per cue and per template, not per file: one bad cue does not hide the problems
of the others, and ``madang check`` can report *every* finding in one pass.

Templates (``templates: {name: {params: [...], actions: [...]}}``) are raw until used: a
``${param}`` that is a whole scalar is replaced by the parameter's value (any type), one
inside a longer string by its text. ``{placeholders}`` without ``$`` are left alone: they are
device attributes substituted at send time. A template may ``use`` another; loops are errors.

The only I/O is reading files, through an injectable ``read`` function.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from cues.model import ActionItem, CueModel, PartModel, ShowModel, TemplateBody, TemplateModel
from cues.timecode import TimeContext, parse_tempo
from venues.errors import Finding, Mark, SourceErrors
from venues.source import Doc, DocPath, load_yaml
from venues.validation import findings_from_pydantic

__all__ = [
    "LoadedAction",
    "LoadedCue",
    "LoadedShow",
    "Reader",
    "Where",
    "gc_paused",
    "load_show",
    "load_show_doc",
    "show_slug",
]

Reader = Callable[[Path, str], Doc]
"""Reads one YAML file: ``(path, display name) -> Doc``; raises ``SourceErrors``."""

_PARAM_RE = re.compile(r"\$\{([^{}]*)\}")
_MAX_TEMPLATE_DEPTH = 16
MAX_INCLUDE_DEPTH = 16
"""Includes nested deeper than this are refused (a show is a handful of parts)."""
MAX_SHOW_FILES = 256
"""A show reads at most this many files, its includes counted each time they are included: an
include listed a thousand times in files that do the same cannot multiply the work."""


def _default_read(path: Path, display: str) -> Doc:
    return load_yaml(path, display=display)


@dataclass(frozen=True, slots=True)
class Where:
    """Where something was written: a document and a path in it.

    ``via`` says, for what a template produced, which cue used it (a note for messages);
    ``anchor`` is then the position of that cue's ``use:``, the line to show in a plan.
    """

    doc: Doc
    path: DocPath
    via: str = ""
    anchor: Mark | None = None

    def mark(self, *sub: str | int) -> Mark:
        """The position of the value at ``path + sub`` (or its nearest ancestor)."""
        return self.doc.mark(self.path + sub)

    def key_mark(self, *sub: str | int) -> Mark:
        """The position of the key of the entry at ``path + sub``."""
        return self.doc.key_mark(self.path + sub)

    def finding(
        self, sub: Sequence[str | int], message: str, hint: str = "", severity: str = "error"
    ) -> Finding:
        """A finding at ``path + sub``, noting the template use when there is one."""
        return Finding(self.mark(*sub), message, _join_hint(hint, self.via), severity)


@dataclass(frozen=True, slots=True)
class LoadedAction:
    """One action of a cue as validated, with where it was written."""

    item: ActionItem
    where: Where
    in_timeline: bool  # written under ``timeline:`` (times must be ordered) rather than ``actions:``

    @property
    def mark(self) -> Mark:
        """The line to show for this action: the ``use:`` of a template, or the action itself."""
        return self.where.anchor or self.where.mark()


@dataclass(frozen=True, slots=True)
class LoadedCue:
    """One cue of the cue list, its template expanded."""

    cue: CueModel
    where: Where
    actions: tuple[LoadedAction, ...]
    duration_ns: int | None  # the cue's own, else its template's
    hold_ns: int | None


@dataclass
class LoadedShow:
    """The show as loaded: header, cues in order, and every finding met while loading."""

    path: Path
    doc: Doc | None
    header: ShowModel | None
    cues: list[LoadedCue] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every file read, display names
    time: TimeContext = field(default_factory=TimeContext)

    @property
    def show_id(self) -> str:
        """The show's id: ``id:`` if given, else a slug of its name, else the file's stem."""
        if self.header is not None:
            return self.header.id or show_slug(self.header.show) or self.path.stem
        return self.path.stem

    @property
    def ok(self) -> bool:
        """True when no finding is an error."""
        return not any(f.severity == "error" for f in self.findings)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a show is loaded and compiled.

    Loading allocates hundreds of thousands of long-lived objects (marks, models, actions) and
    no cycles worth collecting; every generation-2 pass would walk all of them again, which
    made checking a 5,000-cue show about 40% slower. Reference counting still frees garbage.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def show_slug(name: str) -> str:
    """``"Han River Night Bloom"`` -> ``"han-river-night-bloom"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def load_show(path: str | os.PathLike[str], *, read: Reader | None = None) -> LoadedShow:
    """Load and validate a show file with its includes and templates; never raises for bad input.

    Problems are collected in ``LoadedShow.findings``; what could be validated is in ``cues``.
    """
    p = Path(path)
    display = os.fspath(path)
    rd = read or _default_read
    try:
        doc = rd(p, display)
    except SourceErrors as e:
        return LoadedShow(path=p, doc=None, header=None, findings=list(e.findings), files=[display])
    return load_show_doc(doc, p, read=rd)


def load_show_doc(doc: Doc, path: Path, *, read: Reader | None = None) -> LoadedShow:
    """Like :func:`load_show` for a main document already parsed (``path`` locates includes)."""
    return _Loader(read or _default_read).run(doc, path)


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Template:
    model: TemplateModel
    where: Where
    name: str


class _Loader:
    def __init__(self, read: Reader) -> None:
        self.read = read
        self._too_many_files = False
        self.findings: list[Finding] = []
        self.templates: dict[str, _Template] = {}
        self._bodies: dict[tuple[int, str], TemplateBody] = {}  # (template, repr of params) -> body
        self.raw_cues: list[tuple[CueModel, Where, dict[str, list[int]]]] = []
        self.files: list[str] = []
        self.time = TimeContext()

    def run(self, doc: Doc, path: Path) -> LoadedShow:
        self.files.append(doc.file)
        header = self._header(doc)
        show = LoadedShow(path=path, doc=doc, header=header, files=self.files, time=self.time)
        if isinstance(doc.data, dict):
            self._part(doc, path, doc.data, stack=(path.resolve(),))
        show.cues = [self._expand(cue, where, maps) for cue, where, maps in self.raw_cues]
        show.findings = self.findings
        return show

    # -- validation ------------------------------------------------------------------------

    def _validate(
        self,
        model: type[pydantic.BaseModel],
        data: Any,
        doc: Doc,
        base: DocPath,
        via: str = "",
        what: str = "show",
    ) -> Any:
        try:
            return model.model_validate(data, context={"time": self.time})
        except pydantic.ValidationError as err:
            self.findings.extend(_pydantic_findings(err, doc, base, model, via, what))
            return None

    def _cue(self, raw: Any, doc: Doc, i: int) -> None:
        """Validate cue ``i``; if it fails, keep what is valid of it so later checks still run."""
        has_id = isinstance(raw, dict) and isinstance(raw.get("id"), str)
        what = f"cue {raw['id']!r}" if has_id else f"cue {i + 1}"
        where = Where(doc, ("cues", i))
        try:
            cue = CueModel.model_validate(raw, context={"time": self.time})
        except pydantic.ValidationError as err:
            self.findings.extend(_pydantic_findings(err, doc, where.path, CueModel, "", what))
            salvaged = self._salvage(raw, err)
            if salvaged is not None:
                self.raw_cues.append((salvaged[0], where, salvaged[1]))
            return
        self.raw_cues.append((cue, where, {}))

    def _salvage(
        self, raw: Any, err: pydantic.ValidationError
    ) -> tuple[CueModel, dict[str, list[int]]] | None:
        """The cue without its invalid keys and actions (already reported), or ``None``.

        So that one typo in a cue does not hide, say, an unknown target in its next action: the
        salvaged cue is compiled and cross-checked like the others (the show has errors anyway,
        so it never reaches a timeline). ``maps`` gives each kept action's original index.
        """
        if not isinstance(raw, dict):
            return None
        drop_keys: set[Any] = set()
        drop_items: dict[str, set[int]] = {"actions": set(), "timeline": set()}
        for e in err.errors():
            loc = e["loc"]
            if not loc:
                return None
            key = loc[0]
            if key in drop_items and len(loc) >= 2 and isinstance(loc[1], int):
                drop_items[str(key)].add(loc[1])
            else:
                drop_keys.add(key)
        if "id" in drop_keys:
            return None
        data = {k: v for k, v in raw.items() if k not in drop_keys}
        maps: dict[str, list[int]] = {}
        for key, bad in drop_items.items():
            items = data.get(key)
            if isinstance(items, list):
                keep = [j for j in range(len(items)) if j not in bad]
                data[key] = [items[j] for j in keep]
                maps[key] = keep
        try:
            return CueModel.model_validate(data, context={"time": self.time}), maps
        except pydantic.ValidationError:
            return None

    def _header(self, doc: Doc) -> ShowModel | None:
        data = doc.data
        if not isinstance(data, dict):
            self.findings.append(
                Finding(
                    doc.mark(()),
                    "a show file is a mapping",
                    "start it with 'show: <name>' and 'venue: <venue>'",
                )
            )
            return None
        # Times in cues need the show's fps and tempo: read them first, leniently (a bad tempo is
        # reported once, by the header validation below).
        fps = data.get("fps")
        tempo = None
        if data.get("tempo") is not None:
            try:
                tempo = parse_tempo(data["tempo"])
            except ValueError:
                tempo = None
        ok_fps = isinstance(fps, int | float) and not isinstance(fps, bool) and fps > 0
        self.time = TimeContext(fps=float(fps) if ok_fps and fps is not None else None, tempo=tempo)
        head = {k: v for k, v in data.items() if k not in ("cues", "templates")}
        model: ShowModel | None = self._validate(ShowModel, head, doc, ())
        return model

    def _part(self, doc: Doc, path: Path, data: dict[str, Any], stack: tuple[Path, ...]) -> None:
        if len(stack) > 1:
            # An included file: only parts of a show; the header belongs to the main file.
            head = {k: v for k, v in data.items() if k not in ("cues", "templates")}
            self._validate(PartModel, head, doc, ())
        templates = data.get("templates")
        if isinstance(templates, dict):
            for name, raw in templates.items():
                where = Where(doc, ("templates", name))
                model = self._validate(TemplateModel, raw, doc, ("templates", name))
                if model is None:
                    continue
                if name in self.templates:
                    first = self.templates[name].where.key_mark()
                    self.findings.append(
                        Finding(
                            where.key_mark(),
                            f"template {name!r} is defined twice",
                            f"first defined at {first}; rename one",
                        )
                    )
                    continue
                self.templates[name] = _Template(model, where, str(name))
        elif templates is not None:
            self.findings.append(
                Finding(doc.mark(("templates",)), "'templates' must be a mapping of name -> template", "")
            )
        cues = data.get("cues")
        if isinstance(cues, list):
            for i, raw in enumerate(cues):
                self._cue(raw, doc, i)
        elif cues is not None:
            self.findings.append(
                Finding(
                    doc.mark(("cues",)),
                    "'cues' must be a list of cues",
                    "each entry starts with '- id: <cue id>'",
                )
            )
        includes = data.get("include")
        if isinstance(includes, str):
            self._include(doc, path, includes, doc.mark(("include",)), stack)
        elif isinstance(includes, list):
            for i, inc in enumerate(includes):
                if isinstance(inc, str):
                    self._include(doc, path, inc, doc.mark(("include", i)), stack)

    def _include(self, doc: Doc, path: Path, text: str, mark: Mark, stack: tuple[Path, ...]) -> None:
        target = path.parent / text
        display = os.path.normpath(os.path.join(os.path.dirname(doc.file), text))
        resolved = target.resolve()
        if resolved in stack:
            chain = " -> ".join(p.name for p in (*stack[stack.index(resolved) :], resolved))
            self.findings.append(
                Finding(
                    mark, f"include loop: {chain}", "a file cannot include itself, directly or through others"
                )
            )
            return
        if len(stack) > MAX_INCLUDE_DEPTH:
            self.findings.append(
                Finding(mark, f"includes nested deeper than {MAX_INCLUDE_DEPTH}", "include from fewer levels")
            )
            return
        if len(self.files) >= MAX_SHOW_FILES:
            if not self._too_many_files:
                self._too_many_files = True
                self.findings.append(
                    Finding(
                        mark,
                        f"the show reads more than {MAX_SHOW_FILES} files with its includes",
                        "include each part once",
                    )
                )
            return
        if not target.is_file():
            self.findings.append(
                Finding(mark, f"included file {text!r} not found", _missing_hint(target, path))
            )
            return
        try:
            part = self.read(target, display)
        except SourceErrors as e:
            self.findings.extend(e.findings)
            return
        self.files.append(part.file)
        if not isinstance(part.data, dict):
            self.findings.append(
                Finding(part.mark(()), "an included file is a mapping", "give it 'cues:' and/or 'templates:'")
            )
            return
        self._part(part, target, part.data, (*stack, resolved))

    # -- templates -------------------------------------------------------------------------

    def _expand(self, cue: CueModel, where: Where, maps: Mapping[str, list[int]]) -> LoadedCue:
        am, tm = maps.get("actions"), maps.get("timeline")
        actions = [
            LoadedAction(a, Where(where.doc, (*where.path, "actions", am[i] if am else i)), False)
            for i, a in enumerate(cue.actions)
        ]
        actions += [
            LoadedAction(a, Where(where.doc, (*where.path, "timeline", tm[i] if tm else i)), True)
            for i, a in enumerate(cue.timeline)
        ]
        duration, hold = cue.duration, cue.hold
        if cue.use is not None:
            anchor = where.mark("use")
            via = f"in template {cue.use!r} used by cue {cue.id!r} at {anchor}"
            got = self._use(cue.use, dict(cue.with_), where, ("use",), ("with",), via, anchor, ())
            if got is not None:
                t_actions, t_duration, t_hold = got
                actions = t_actions + actions
                duration = duration if duration is not None else t_duration
                hold = hold if hold is not None else t_hold
        return LoadedCue(cue, where, tuple(actions), duration, hold)

    def _use(
        self,
        name: str,
        values: dict[str, Any],
        user: Where,
        use_path: DocPath,
        with_path: DocPath,
        via: str,
        anchor: Mark,
        chain: tuple[str, ...],
    ) -> tuple[list[LoadedAction], int | None, int | None] | None:
        """Expand template ``name`` with ``values``; ``None`` (with findings) when it cannot be."""
        tpl = self.templates.get(name)
        if tpl is None:
            known = sorted(self.templates)
            self.findings.append(
                user.finding(use_path, f"unknown template {name!r}", _did_you_mean(name, known, "templates"))
            )
            return None
        if name in chain or len(chain) >= _MAX_TEMPLATE_DEPTH:
            loop = " -> ".join((*chain, name))
            self.findings.append(
                user.finding(
                    use_path,
                    f"template loop: {loop}",
                    "a template cannot use itself, directly or through others",
                )
            )
            return None
        model = tpl.model
        params = {p: model.defaults[p] for p in model.params if p in model.defaults}
        for k, v in values.items():
            if k not in model.params:
                self.findings.append(
                    Finding(
                        user.key_mark(*with_path, k),
                        f"template {name!r} has no parameter {k!r}",
                        _join_hint(_did_you_mean(k, model.params, "parameters"), user.via),
                    )
                )
            else:
                params[k] = v
        missing = [p for p in model.params if p not in params]
        if missing:
            self.findings.append(
                user.finding(
                    use_path,
                    f"template {name!r} needs {', '.join(map(repr, missing))}",
                    f"add them under 'with:', e.g. with: {{{missing[0]}: ...}}",
                )
            )
            return None
        for k in model.defaults:
            if k not in model.params:
                self.findings.append(
                    tpl.where.finding(
                        ("defaults", k), f"default for {k!r}, which is not in params", "add it to params"
                    )
                )
        tw = Where(tpl.where.doc, tpl.where.path, via, anchor)
        # Shows use a template again and again with the same values (a flash on each zone): the
        # substituted, validated body is the same, so it is built once. Only clean bodies are
        # kept, so that each use still reports its own problems with its own "used by" note.
        # repr keeps 1, 1.0, True and "1" apart, as the substitution would.
        memo_key = (id(tpl), repr(params))
        body = self._bodies.get(memo_key)
        if body is None:
            before = len(self.findings)
            raw = {
                "actions": model.actions,
                "timeline": model.timeline,
                "duration": model.duration,
                "hold": model.hold,
            }
            body_data = self._subst(raw, params, tw, name)
            body = self._validate(TemplateBody, body_data, tw.doc, tw.path, via)
            if body is None:
                return None
            if len(self.findings) == before:
                self._bodies[memo_key] = body
        actions = [
            LoadedAction(a, Where(tw.doc, (*tw.path, "actions", i), via, anchor), False)
            for i, a in enumerate(body.actions)
        ]
        actions += [
            LoadedAction(a, Where(tw.doc, (*tw.path, "timeline", i), via, anchor), True)
            for i, a in enumerate(body.timeline)
        ]
        duration, hold = body.duration, body.hold
        if model.use is not None:
            inner_values = self._subst(dict(model.with_), params, tw, name)
            got = self._use(model.use, inner_values, tw, ("use",), ("with",), via, anchor, (*chain, name))
            if got is None:
                return None
            actions = got[0] + actions
            duration = duration if duration is not None else got[1]
            hold = hold if hold is not None else got[2]
        return actions, duration, hold

    def _subst(self, value: Any, params: Mapping[str, Any], where: Where, name: str) -> Any:
        """``value`` with every ``${param}`` replaced; unknown names are reported at their place."""
        # A method calling itself, not a nested closure: a closure that names itself is a
        # reference cycle, which kept every loaded document alive until the next collection.
        return self._subst_at(value, params, where, name, ())

    def _subst_at(self, v: Any, params: Mapping[str, Any], where: Where, name: str, path: DocPath) -> Any:
        if isinstance(v, str):
            return self._subst_text(v, params, where, name, path) if "${" in v else v
        if isinstance(v, list):
            return [self._subst_at(x, params, where, name, (*path, i)) for i, x in enumerate(v)]
        if isinstance(v, dict):
            return {k: self._subst_at(x, params, where, name, (*path, k)) for k, x in v.items()}
        return v

    def _subst_text(self, v: str, params: Mapping[str, Any], where: Where, name: str, path: DocPath) -> Any:
        whole = _PARAM_RE.fullmatch(v)
        if whole is not None and whole.group(1) in params:
            return params[whole.group(1)]

        def one(m: re.Match[str]) -> str:
            key = m.group(1)
            if key not in params:
                self.findings.append(
                    where.finding(
                        path,
                        f"template {name!r} uses ${{{key}}}, which is not one of its params",
                        _did_you_mean(key, list(params), "params") or "add it to 'params:'",
                    )
                )
                return m.group(0)
            got = params[key]
            return got if isinstance(got, str) else _scalar_text(got)

        return _PARAM_RE.sub(one, v)


def _scalar_text(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    return str(v)


def _join_hint(hint: str, via: str) -> str:
    if hint and via:
        return f"{hint}; {via}"
    return hint or via


def _did_you_mean(word: str, choices: Sequence[str], what: str) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if not choices:
        return f"there are no {what}"
    listed = ", ".join(sorted(choices)[:12])
    more = ", ..." if len(choices) > 12 else ""
    return f"{what}: {listed}{more}"


def _missing_hint(target: Path, including: Path) -> str:
    folder = target.parent
    if folder.is_dir():
        names = sorted(
            p.name
            for p in folder.iterdir()
            if p.suffix in (".yaml", ".yml") and p.resolve() != including.resolve()
        )
        close = difflib.get_close_matches(target.name, names, n=1)
        if close:
            rel = os.path.join(os.path.dirname(os.path.relpath(target, including.parent)), close[0])
            return f"did you mean {rel!r}?"
    return f"paths are relative to the including file; looked for {target}"


# ---------------------------------------------------------------------------------------------
# pydantic errors -> findings


def _pydantic_findings(
    err: pydantic.ValidationError,
    doc: Doc,
    base: DocPath,
    model: type[pydantic.BaseModel],
    via: str,
    what: str = "show",
) -> list[Finding]:
    found = findings_from_pydantic(err, doc, base=base, what=what, model=model)
    out = []
    for f in found:
        message = f.message
        if what != "show":
            # "in the cue 'bloom'" -> "in cue 'bloom'"; "'at' of action 1" -> "... of cue 'bloom'"
            message = message.replace(f"the {what}", what)
            if what not in message and message.startswith("'"):
                head, sep, tail = message.partition(": ")
                message = f"{head} of {what}{sep}{tail}"
        out.append(Finding(f.mark, message, _join_hint(f.hint, via), f.severity))
    return out
