"""``madang check``: compile a show against its venue and cross-check what compiling cannot.

Theory of operation
-------------------
:func:`check_show` runs the compiler (:mod:`cues.compiler`), which already reports every
problem of a single cue or action (YAML, unknown keys, types, times, targets, addresses,
topics, placeholders, includes, templates, duplicate ids), and then adds the checks that need
the whole show at once:

- two fades of the same parameter on the same device overlapping in time within one sequence
  (both are pointed at; the outcome would depend on the receiver);
- an event trigger waiting for more messages than devices of the venue could send;
- a ``post_wait`` on a cue followed by a manual or triggered cue, where it has no effect.

The :class:`CheckReport` holds the findings (errors and warnings), the timeline when there was
no error, and renders a one-line :meth:`CheckReport.summary` or a JSON document.

``madang check FILE`` takes a venue file too: :func:`check_file` tells the two apart by content
(:func:`file_kind`: a top-level ``venue:`` with the keys of a venue, ``zones``, ``devices``,
``groups``..., rather than those of a show, ``show``, ``cues``...), and :func:`check_venue`
loads a venue alone into a :class:`VenueCheckReport`, with the same positioned findings, summary
and JSON shape.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from cues.compiler import Compiled, _compile_path, compile_loaded
from cues.loader import LoadedShow, Reader, gc_paused
from cues.timeline import NS_PER_S, Action, Fade, Timeline
from venues.errors import Finding, Mark, SourceErrors
from venues.model import Venue
from venues.profiles import Profile, load_profile
from venues.source import MAX_FILE_BYTES

__all__ = [
    "CheckReport",
    "ProfileCheckReport",
    "VenueCheckReport",
    "check_file",
    "check_loaded",
    "check_profile",
    "check_show",
    "check_venue",
    "cross_check",
    "file_kind",
    "format_duration",
]


class _Findings:
    """What both reports share: the findings, split into errors and warnings, and their counts."""

    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        """The findings that make the file unusable."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """The findings worth a look that do not stop a show."""
        return [f for f in self.findings if f.severity != "error"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def _status(self) -> str:
        """``3 errors, 1 warning``, or ``ok (1 warning)``, or ``ok``."""
        n_err, n_warn = len(self.errors), len(self.warnings)
        warn = f"{n_warn:,} warning{'s' if n_warn != 1 else ''}"
        if n_err:
            err = f"{n_err:,} error{'s' if n_err != 1 else ''}"
            return err + (f", {warn}" if n_warn else "")
        return f"ok ({warn})" if n_warn else "ok"

    def _json(self, file: str, kind: str, summary: str) -> dict[str, object]:
        return {
            "file": file,
            "kind": kind,
            "ok": self.ok,
            "summary": summary,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [f.to_json() for f in sorted(self.findings, key=_order)],
        }


@dataclass
class CheckReport(_Findings):
    """What ``madang check`` found: every finding, and the timeline when there is no error."""

    show_path: str
    findings: list[Finding] = field(default_factory=list)
    timeline: Timeline | None = None
    venue: Venue | None = None

    def raise_for_errors(self) -> None:
        """Raise :class:`~venues.errors.SourceErrors` with every finding if any is an error."""
        if not self.ok:
            raise SourceErrors.of(self.findings)

    def summary(self) -> str:
        """One line: ``show.yaml: ok: 84 cues, 312 actions on 1,221 devices, 12:34.500 long``."""
        name = Path(self.show_path).name
        status = self._status()
        t = self.timeline
        if not self.ok:
            return f"{name}: {status}"
        if t is None:
            return f"{name}: {status}"
        return (
            f"{name}: {status}: {len(t.cues):,} cues, {len(t.actions):,} actions on "
            f"{t.device_count:,} devices, {format_duration(t.duration_ns)} long"
        )

    def to_json(self) -> dict[str, object]:
        """The report as plain JSON-able data for ``madang check --json``."""
        t = self.timeline
        return {
            **self._json(self.show_path, "show", self.summary()),
            "show": None
            if t is None
            else {
                "id": t.show,
                "venue": t.venue,
                "cues": len(t.cues),
                "sequences": len(t.sequences),
                "actions": len(t.actions),
                "devices": t.device_count,
                "duration_ns": t.duration_ns,
                "duration": format_duration(t.duration_ns),
            },
        }


def check_show(
    show_path: str | os.PathLike[str],
    *,
    venue_path: str | os.PathLike[str] | None = None,
    read: Reader | None = None,
) -> CheckReport:
    """Load, compile and cross-check a show file; never raises for bad input.

    ``venue_path`` overrides the show's ``venue:``; ``read`` replaces file reading (tests).
    """
    with gc_paused():  # one pause for the whole check (see cues.loader.gc_paused)
        compiled = _compile_path(show_path, venue_path=venue_path, read=read)
        findings = [*compiled.findings, *cross_check(compiled)]
        findings.sort(key=_order)
        report = CheckReport(os.fspath(show_path), findings, None, compiled.venue)
        if report.ok:
            report.timeline = compiled.timeline
        # Free the documents, models and loaded cues now, while the collector is paused: the
        # first collection after the pause then walks only what the report keeps.
        del compiled
    return report


def cross_check(compiled: Compiled) -> list[Finding]:
    """The whole-show checks (see the module doc) on a compile result."""
    out: list[Finding] = []
    t = compiled.timeline
    venue = compiled.venue
    if t is not None:
        out.extend(_fade_overlaps(t))
        out.extend(_idle_post_waits(compiled, t))
    if venue is not None:
        out.extend(_trigger_counts(compiled, venue))
    return out


def format_duration(ns: int) -> str:
    """``754_500_000_000`` -> ``"12:34.500"``; an hour or more -> ``"1:02:34.500"``."""
    ms = (ns + 500_000) // 1_000_000
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    if h:
        return f"{h}:{m:02d}:{s:02d}.{ms:03d}"
    return f"{m:02d}:{s:02d}.{ms:03d}"


# ---------------------------------------------------------------------------------------------


def _fade_overlaps(t: Timeline) -> Iterable[Finding]:
    seq_of = {c.id: c.sequence for c in t.cues}
    groups: dict[tuple[int, str], list[Action]] = defaultdict(list)
    for a in t.actions:
        if isinstance(a.op, Fade) and a.op.duration_ns > 0:
            groups[(seq_of[a.cue], a.op.param)].append(a)
    for (_seq, param), fades in groups.items():
        if len(fades) < 2:
            continue
        devsets: dict[int, frozenset[str]] = {}
        active: list[Action] = []
        for a in fades:  # already in (at_ns, seq) order
            active = [b for b in active if b.end_ns > a.at_ns]
            for b in active:
                ds = devsets.setdefault(b.seq, frozenset(b.devices))
                shared = ds.intersection(a.devices)
                if shared:
                    yield from _overlap_pair(param, b, a, shared)
            active.append(a)


def _overlap_pair(param: str, first: Action, second: Action, shared: frozenset[str]) -> Iterable[Finding]:
    example = min(shared)
    overlap_s = (min(first.end_ns, second.end_ns) - second.at_ns) / NS_PER_S
    what = f"fades of {param!r} overlap for {overlap_s:g}s on {len(shared):,} device(s), e.g. {example!r}"
    hint = "shorten the first fade or start the second later; which value wins is up to each device"
    yield Finding(
        second.mark,
        f"{what} (cue {second.cue!r}); the other fade is at {_where(first.mark)} (cue {first.cue!r})",
        hint,
        "warning",
    )
    yield Finding(
        first.mark,
        f"{what} (cue {first.cue!r}); the other fade is at {_where(second.mark)} (cue {second.cue!r})",
        hint,
        "warning",
    )


def _trigger_counts(compiled: Compiled, venue: Venue) -> Iterable[Finding]:
    senders = {
        "mqtt": sum(1 for d in venue.devices if d.mqtt is not None or d.ws is not None),
        "osc": sum(1 for d in venue.devices if d.osc is not None),
    }
    for lc in compiled.cues.values():
        on = lc.cue.on
        if on is None:
            continue
        transport = "mqtt" if on.mqtt is not None else "osc"
        can = senders[transport]
        if on.audience is not None:
            pool = venue.audience
            can = 0 if pool is None else (
                len(pool.slots.get(on.zone, ())) if on.zone is not None else pool.capacity
            )
        if isinstance(on.count, int) and on.count > can:
            yield lc.where.finding(
                ("on", "count"),
                f"cue {lc.cue.id!r} waits for {on.count:,} {transport.upper()} messages but only {can:,} "
                f"devices of venue {venue.id!r} can send {transport.upper()}",
                "lower the count, or add a timeout with else: go"
                if on.timeout is None
                else "lower the count",
                "warning",
            )


def _idle_post_waits(compiled: Compiled, t: Timeline) -> Iterable[Finding]:
    for prev, nxt in zip(t.cues, t.cues[1:], strict=False):
        if prev.post_wait_ns and nxt.needs_trigger:
            lc = compiled.cues.get(prev.id)
            if lc is None:
                continue
            yield lc.where.finding(
                ("post_wait",),
                f"post_wait of cue {prev.id!r} has no effect: the next cue {nxt.id!r} waits for a "
                f"{'GO' if nxt.trigger is None else 'trigger'}",
                "post_wait delays an auto-continue or auto-follow cue after this one; remove it or change "
                "the next cue's go:",
                "warning",
            )


def _where(mark: Mark | None) -> str:
    return str(mark) if mark is not None else "?"


def _order(f: Finding) -> tuple[str, int, int, str]:
    if f.mark is None:
        return ("", 0, 0, f.message)
    return (f.mark.file, f.mark.line, f.mark.col, f.message)


def check_loaded(loaded: LoadedShow, venue: Venue) -> CheckReport:
    """:func:`check_show` for a show already loaded and a venue already built (tests, tools)."""
    compiled = compile_loaded(loaded, venue)
    findings = sorted([*compiled.findings, *cross_check(compiled)], key=_order)
    report = CheckReport(os.fspath(loaded.path), findings, None, venue)
    if report.ok:
        report.timeline = compiled.timeline
    return report


# ---------------------------------------------------------------------------------------------
# venue files: ``madang check VENUE``

_SHOW_KEYS: Final = frozenset({"show", "cues", "include", "templates", "tempo", "fps"})
_VENUE_KEYS: Final = frozenset({"zones", "devices", "groups", "broker", "safe"})
_TOP_KEY: Final = re.compile(r"""^(?:"([^"\n]*)"|'([^'\n]*)'|([A-Za-z_][\w.-]*))[ \t]*:(?:[ \t]|$)""", re.M)


def file_kind(path: str | os.PathLike[str]) -> Literal["show", "venue"]:
    """Whether ``path`` holds a venue file or a show file, by its top-level keys.

    A venue file has ``venue:`` (its id) and the keys of a venue (``zones``, ``devices``,
    ``groups``, ``broker``, ``safe``); a show also has ``venue:`` (the venue it plays on), and
    ``show``, ``cues``, ``include``... A file that cannot be read, or whose keys say neither, is
    taken as a show: the show check then says what is wrong with it."""
    keys = _top_keys(path)
    if keys is None or "venue" not in keys:
        return "show"
    return "venue" if len(keys & _VENUE_KEYS) > len(keys & _SHOW_KEYS) else "show"


def _top_keys(path: str | os.PathLike[str]) -> set[str] | None:
    try:
        if os.stat(path).st_size > MAX_FILE_BYTES:
            return None  # refused from its size by the show check, unread
        with open(path, "rb") as fh:
            head = fh.read(MAX_FILE_BYTES).decode("utf-8-sig", errors="replace")
    except OSError:
        return None
    # Block style (every shipped and documented file): top-level keys start a line at column 0.
    keys = {next(g for g in m.groups() if g is not None) for m in _TOP_KEY.finditer(head)}
    if keys:
        return keys
    # Flow style ({venue: ..., zones: [...]}) or something odd: ask the real parser.
    from venues.source import load_yaml

    try:
        data = load_yaml(path).data
    except SourceErrors:
        return None
    return {str(k) for k in data} if isinstance(data, dict) else None


@dataclass
class VenueCheckReport(_Findings):
    """What ``madang check VENUE`` found: every finding, and the venue when there is no error."""

    venue_path: str
    findings: list[Finding] = field(default_factory=list)
    venue: Venue | None = None

    def summary(self) -> str:
        """One line: ``han-river.yaml: ok: venue han-river, 1,217 devices (10 facade, ...) in 3
        zones, 11 groups``."""
        name = Path(self.venue_path).name
        status = self._status()
        if not self.ok:
            return f"{name}: venue file: {status}"
        v = self.venue
        if v is None:
            return f"{name}: venue file: {status}"
        kinds = ", ".join(f"{n:,} {k}" for k, n in Counter(d.kind for d in v.devices).items())
        return (
            f"{name}: {status}: venue {v.id}, {_count(len(v.devices), 'device')} ({kinds}) in "
            f"{_count(len(v.zones), 'zone')}, {_count(len(v.groups), 'group')}"
        )

    def to_json(self) -> dict[str, object]:
        """The report as plain JSON-able data for ``madang check --json``."""
        v = self.venue
        return {
            **self._json(self.venue_path, "venue", self.summary()),
            "venue": None
            if v is None
            else {
                "id": v.id,
                "name": v.name,
                "zones": list(v.zones),
                "devices": len(v.devices),
                "kinds": dict(Counter(d.kind for d in v.devices)),
                "sync": dict(Counter(str(d.sync) for d in v.devices)),
                "groups": {g: len(members) for g, members in v.groups.items()},
            },
        }


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' if n != 1 else ''}"


def check_venue(venue_path: str | os.PathLike[str]) -> VenueCheckReport:
    """Load and check a venue file alone; never raises for bad input."""
    from venues.loader import load_venue  # only here: checking a show loads its venue its own way

    path = os.fspath(venue_path)
    try:
        venue = load_venue(Path(path))
    except SourceErrors as e:
        return VenueCheckReport(path, sorted(e.findings, key=_order), None)
    return VenueCheckReport(path, [], venue)


@dataclass
class ProfileCheckReport(_Findings):
    """What ``madang check PROFILE`` found (a device profile file, docs/profiles.md)."""

    profile_path: str
    findings: list[Finding] = field(default_factory=list)
    profile: Profile | None = None

    def summary(self) -> str:
        """One line: ``resolume.yaml: ok: profile resolume (osc), 10 verbs``."""
        name = Path(self.profile_path).name
        p = self.profile
        if not self.ok or p is None:
            return f"{name}: profile file: {self._status()}"
        what = _count(len(p.verbs), "verb") if p.protocol == "osc" else _count(len(p.channels), "channel")
        return f"{name}: {self._status()}: profile {p.id} ({p.protocol}), {what}"

    def to_json(self) -> dict[str, object]:
        """The report as plain JSON-able data for ``madang check --json``."""
        p = self.profile
        return {
            **self._json(self.profile_path, "profile", self.summary()),
            "profile": None
            if p is None
            else {"id": p.id, "protocol": p.protocol, "verbs": list(p.verbs), "channels": list(p.channels)},
        }


def _is_profile(path: str | os.PathLike[str]) -> bool:
    """A device profile file: top-level ``profile:`` and ``protocol:`` (never a show's or venue's)."""
    keys = _top_keys(path)
    return keys is not None and {"profile", "protocol"} <= keys


def check_profile(profile_path: str | os.PathLike[str]) -> ProfileCheckReport:
    """Load and check a device profile file alone; never raises for bad input."""
    path = os.fspath(profile_path)
    try:
        profile = load_profile(Path(path))
    except SourceErrors as e:
        return ProfileCheckReport(path, sorted(e.findings, key=_order), None)
    return ProfileCheckReport(path, [], profile)


def check_file(
    path: str | os.PathLike[str], *, venue_path: str | os.PathLike[str] | None = None
) -> CheckReport | VenueCheckReport | ProfileCheckReport:
    """``madang check FILE``: a venue file is checked alone (:func:`check_venue`), a show
    against its venue (:func:`check_show`; ``venue_path`` overrides the show's ``venue:``), a
    device profile alone (:func:`check_profile`).

    Raises ``ValueError`` for ``venue_path`` with a venue file: a venue names no other venue."""
    if venue_path is None and _is_profile(path):
        return check_profile(path)
    if file_kind(path) == "venue":
        if venue_path is not None:
            p = os.fspath(path)
            raise ValueError(
                f"{p} is a venue file; --venue is for checking a show against a venue: "
                f"run 'madang check {p}' alone, or 'madang check SHOW --venue {p}'"
            )
        return check_venue(path)
    return check_show(path, venue_path=venue_path)
