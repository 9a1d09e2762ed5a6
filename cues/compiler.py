"""The show compiler: a loaded show and a venue in, one sorted :class:`~cues.timeline.Timeline` out.

Theory of operation
-------------------
1. **Load** (:mod:`cues.loader`): the show file, its includes and templates, validated per cue.
2. **Lay out** the enabled cues on the nominal timeline (see :mod:`cues.timeline`). Walking the
   cue list in order, with ``prev`` the previous enabled cue:

   - a cue that needs a trigger (``go: manual``, or ``on:`` an event) starts a new *sequence*,
     nominally when everything before it has ended;
   - ``auto-continue`` starts at ``prev.start + prev.post_wait``;
   - ``auto-follow`` starts at ``prev.end + prev.post_wait``.

   The post-wait belongs to the cue *before* (as in QLab): it is how long that cue waits before
   handing on. A cue's body starts after its own ``pre_wait``; its actions' ``at`` count from
   there. Its end is ``max(last action or fade end, body + duration) + hold``.
3. **Target**: every selector is resolved against the venue to device ids (cached per
   selector), keeping only devices that can receive the action's transport.
4. **Check what only the venue can tell**: ``{placeholders}`` must name an attribute of every
   target; OSC addresses (OSC 1.0) and MQTT topics (MQTT 3.1.1 section 4.7) must be valid once
   substituted.
5. **Sort** actions by ``(at_ns, written order)`` and number them: ``seq`` is 1, 2, 3, ... in
   timeline order, so ``(at_ns, seq)`` order is the list order and ``seq`` is unique.

Everything found along the way is a positioned :class:`~venues.errors.Finding`; the compiler
goes on after an error so that one pass reports them all. :func:`compile_show` raises
:class:`~venues.errors.SourceErrors` with every finding if any is an error.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from cues.loader import (
    LoadedAction,
    LoadedCue,
    LoadedShow,
    Reader,
    Where,
    gc_paused,
    load_show,
    load_show_doc,
)
from cues.model import ActionItem, FadeModel, LightModel, MqttModel, OscModel, Share, TriggerModel
from cues.timeline import (
    Action,
    CueSpan,
    EventTrigger,
    Fade,
    Go,
    JsonValue,
    MqttSend,
    Op,
    OscSend,
    Sequence,
    Timeline,
)
from cues.verbs import expand as expand_verb
from cues.verbs import fade_address
from venues.errors import Finding, Mark, SourceError, SourceErrors
from venues.model import Venue
from venues.names import Rule, filter_faults, osc_address_faults, osc_pattern_faults, topic_faults
from venues.selector import resolve
from venues.source import Doc

__all__ = [
    "Compiled",
    "compile_doc",
    "compile_loaded",
    "compile_show",
    "load_show_venue",
    "mqtt_filter_problem",
    "mqtt_topic_problem",
    "osc_address_problem",
    "osc_pattern_problem",
]

_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_ALWAYS = frozenset({"device", "id", "kind", "zone"})
_FADE_EXTRA = frozenset({"param", "base"})
_NO_EXTRA: frozenset[str] = frozenset()
_TRANSPORTS: Mapping[str, tuple[str, ...]] = {
    "osc": ("osc",),
    "mqtt": ("mqtt", "ws"),
    "fade": ("osc", "mqtt", "ws", "dmx"),
    "light": ("ws", "mqtt"),
    "do": ("osc",),
}

_WIRE: Mapping[str, str] = {"do": "OSC (do: verbs go out as OSC)"}

LIGHT_TOPIC = "madang/light"
"""The topic of a ``light:`` action's message (docs/protocol.md, "The light page")."""
MAX_IMAGE_BYTES = 4 * 1024 * 1024
MAX_IMAGE_SIDE = 4096
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MEDIA_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.png\Z")


def png_size(data: bytes) -> tuple[int, int] | None:
    """The width and height of a PNG (from its IHDR chunk), or None when it is not a PNG."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@dataclass
class Compiled:
    """The result of compiling: a timeline when there was no error, and every finding."""

    loaded: LoadedShow
    venue: Venue | None
    timeline: Timeline | None
    findings: list[Finding] = field(default_factory=list)
    cues: Mapping[str, LoadedCue] = field(default_factory=dict)  # enabled cues by id, as loaded

    @property
    def ok(self) -> bool:
        """True when no finding is an error."""
        return not any(f.severity == "error" for f in self.findings)

    def raise_for_errors(self) -> None:
        """Raise :class:`SourceErrors` with every finding when any of them is an error."""
        if not self.ok:
            raise SourceErrors.of(self.findings)


def compile_show(
    show_path: str | os.PathLike[str],
    *,
    venue_path: str | os.PathLike[str] | None = None,
    read: Reader | None = None,
) -> tuple[Timeline, Venue]:
    """Compile a show file against its venue (``venue:`` in the file, or ``venue_path``).

    Raises :class:`~venues.errors.SourceErrors` with *every* finding when any is an error.
    """
    result = _compile_path(show_path, venue_path=venue_path, read=read)
    result.raise_for_errors()
    assert result.timeline is not None and result.venue is not None  # ok implies both
    return result.timeline, result.venue


def compile_doc(
    doc: Doc, venue: Venue, *, path: str | os.PathLike[str] | None = None, read: Reader | None = None
) -> Timeline:
    """Compile a parsed show document against a loaded venue; ``path`` locates includes.

    Raises :class:`~venues.errors.SourceErrors` with every finding when any is an error.
    """
    loaded = load_show_doc(doc, Path(path if path is not None else doc.file), read=read)
    result = compile_loaded(loaded, venue)
    result.raise_for_errors()
    assert result.timeline is not None
    return result.timeline


def _compile_path(
    show_path: str | os.PathLike[str], *, venue_path: str | os.PathLike[str] | None, read: Reader | None
) -> Compiled:
    with gc_paused():
        loaded = load_show(show_path, read=read)
        venue, venue_findings = load_show_venue(loaded, venue_path)
        if venue is None:
            return Compiled(loaded, None, None, [*loaded.findings, *venue_findings])
        result = compile_loaded(loaded, venue)
        result.findings[:0] = venue_findings
        return result


def load_show_venue(
    loaded: LoadedShow, venue_path: str | os.PathLike[str] | None = None
) -> tuple[Venue | None, list[Finding]]:
    """The venue a show names (or ``venue_path``), with findings pointing at ``venue:`` if it fails."""
    from venues.loader import find_venue, load_venue  # only here: compiling needs no venue files

    if venue_path is not None:
        try:
            return load_venue(venue_path), []
        except SourceErrors as e:
            return None, list(e.findings)
    if loaded.header is None or loaded.doc is None:
        return None, []
    mark = loaded.doc.mark(("venue",))
    name = loaded.header.venue
    try:
        path = find_venue(name, loaded.path.parent)
    except SourceError as e:
        return None, [Finding(mark, e.finding.message, e.finding.hint)]
    except (OSError, ValueError) as e:
        return None, [
            Finding(
                mark, f"venue {name!r}: {e}", "name a file in config/venues/ or a path relative to the show"
            )
        ]
    if not Path(path).is_file():
        return None, [
            Finding(
                mark,
                f"venue {name!r} not found (looked for {path})",
                "name a file in config/venues/ or a path relative to the show",
            )
        ]
    try:
        return load_venue(path), []
    except SourceErrors as e:
        return None, list(e.findings)


def compile_loaded(loaded: LoadedShow, venue: Venue) -> Compiled:
    """Compile a loaded show against a venue; never raises for bad input (see ``findings``)."""
    return _Compiler(loaded, venue).run()


# ---------------------------------------------------------------------------------------------


# (path below the action, message, hint, severity, mark if the problem knows its own)
_Problem = tuple[tuple[str | int, ...], str, str, str, Mark | None]


@dataclass(frozen=True, slots=True)
class _Targets:
    devices: tuple[str, ...]
    attrs: frozenset[str]  # attributes every one of these devices has


class _Compiler:
    def __init__(self, loaded: LoadedShow, venue: Venue) -> None:
        self.loaded = loaded
        self.venue = venue
        self.findings: list[Finding] = list(loaded.findings)
        self.media: dict[str, str] = {}  # crowd images of light actions: name -> path
        self._groups: dict[tuple[str, ...], _Targets] = {}  # the devices of one profile, for do:
        self._targets_cache: dict[tuple[tuple[str, ...], str], tuple[_Targets | None, list[_Problem]]] = {}
        self._value_cache: dict[tuple[int, str, str], str] = {}
        # (id of targets, text, extra, what) -> the problems of an address or topic there
        self._templated_cache: dict[tuple[int, str, frozenset[str], str], list[tuple[str, str]]] = {}

    def run(self) -> Compiled:
        loaded = self.loaded
        cues = [c for c in loaded.cues if c.cue.enabled]
        seen: dict[str, LoadedCue] = {}
        for c in loaded.cues:
            first = seen.get(c.cue.id)
            if first is not None:
                self.findings.append(
                    Finding(
                        c.where.mark("id"),
                        f"duplicate cue id {c.cue.id!r}",
                        f"first used at {first.where.mark('id')}; "
                        "cue ids name cues for GO, seek and logs: make them unique",
                    )
                )
            else:
                seen[c.cue.id] = c

        spans: list[CueSpan] = []
        sequences: list[Sequence] = []
        raw: list[tuple[int, int, str, tuple[str, ...], Op, Mark | None]] = []
        seq_cues: list[str] = []
        seq_start = seq_end = 0
        prev: CueSpan | None = None
        all_end = 0
        for index, lc in enumerate(cues):
            cue = lc.cue
            trigger = self._trigger(lc)
            needs_trigger = cue.go is Go.MANUAL or trigger is not None or prev is None
            if needs_trigger:
                if prev is not None:
                    sequences.append(Sequence(len(sequences), tuple(seq_cues), seq_start, seq_end))
                start = all_end
                seq_cues, seq_start, seq_end = [], start, start
            elif cue.go is Go.AUTO_CONTINUE:
                assert prev is not None
                start = prev.start_ns + prev.post_wait_ns
            else:
                assert prev is not None
                start = prev.end_ns + prev.post_wait_ns
            body = start + cue.pre_wait
            content_end = body
            self._check_timeline_order(lc)
            for la in lc.actions:
                if la.item.do is not None:  # a profile verb: one message per profile of the targets
                    built_all = self._do(la, body)
                else:
                    one = self._action(lc, la, body)
                    built_all = None if one is None else [one]
                if built_all is None:
                    content_end = max(content_end, body + la.item.at + _length(la.item))
                    continue
                for at_ns, devices, op in built_all:
                    raw.append((at_ns, len(raw), cue.id, devices, op, la.mark))
                    content_end = max(content_end, at_ns + (op.duration_ns if isinstance(op, Fade) else 0))
            end = max(content_end, body + (lc.duration_ns or 0)) + (lc.hold_ns or 0)
            span = CueSpan(
                id=cue.id,
                name=cue.name,
                index=index,
                go=cue.go,
                start_ns=start,
                body_ns=body,
                end_ns=end,
                post_wait_ns=cue.post_wait,
                trigger=trigger,
                sequence=len(sequences),
                mark=lc.where.mark(),
                notes=cue.notes or "",
            )
            spans.append(span)
            seq_cues.append(cue.id)
            seq_end = max(seq_end, end)
            all_end = max(all_end, end)
            prev = span
        if prev is not None:
            sequences.append(Sequence(len(sequences), tuple(seq_cues), seq_start, seq_end))

        raw.sort()  # by (at_ns, written order): the order is unique, so later fields never compare
        actions = tuple(
            Action(at_ns=at, cue=cue_id, seq=i + 1, devices=devs, op=op, mark=mark)
            for i, (at, _order, cue_id, devs, op, mark) in enumerate(raw)
        )
        # Few distinct device tuples (targets are cached per selector): union those, not every action's.
        distinct = {id(a.devices): a.devices for a in actions}
        targeted: set[str] = set()
        for devs in distinct.values():
            targeted.update(devs)
        timeline = Timeline(
            show=loaded.show_id,
            venue=self.venue.id,
            cues=tuple(spans),
            sequences=tuple(sequences),
            actions=actions,
            duration_ns=all_end,
            source=str(loaded.path),
            device_count=len(targeted),
            media=dict(self.media),
        )
        result = Compiled(loaded, self.venue, None, self.findings, {lc.cue.id: lc for lc in cues})
        if result.ok:
            result.timeline = timeline
        return result

    # -- cues ------------------------------------------------------------------------------

    def _trigger(self, lc: LoadedCue) -> EventTrigger | None:
        on = lc.cue.on
        if on is None:
            return None
        if on.audience is not None:
            return self._audience_trigger(lc, on)
        transport: Literal["mqtt", "osc"] = "mqtt" if on.mqtt is not None else "osc"
        pattern = on.mqtt if on.mqtt is not None else on.osc
        assert pattern is not None and isinstance(on.count, int)
        problem = mqtt_filter_problem(pattern) if transport == "mqtt" else osc_pattern_problem(pattern)
        if problem:
            self.findings.append(lc.where.finding(("on", transport), problem[0], problem[1]))
        return EventTrigger(transport, pattern, on.count, on.timeout, on.on_timeout)

    def _audience_trigger(self, lc: LoadedCue, on: TriggerModel) -> EventTrigger:
        """``on: {audience: tap|vote/<choice>, zone: z, count: N | P%}``: taps or votes of the
        venue's audience pool (docs/shows.md, "Event triggers"), as an MQTT trigger on
        ``madang/audience/{zone}/{id}/{event}``."""
        assert on.audience is not None
        pool = self.venue.audience
        if pool is None:
            self.findings.append(
                lc.where.finding(
                    ("on", "audience"),
                    f"cue {lc.cue.id!r} waits for the audience's {on.audience} but venue "
                    f"{self.venue.id!r} has no audience pool",
                    "add an audience: section to the venue (docs/venues.md, 'The audience')",
                )
            )
        elif on.zone is not None and on.zone not in pool.zones:
            self.findings.append(
                lc.where.finding(
                    ("on", "zone"),
                    f"cue {lc.cue.id!r} counts audience zone {on.zone!r}; the audience zones of "
                    f"venue {self.venue.id!r} are: {', '.join(pool.zones)}",
                    "use one of those, or leave zone out to count the whole audience",
                )
            )
        pattern = f"madang/audience/{on.zone or '+'}/+/{on.audience}"
        if isinstance(on.count, Share):
            return EventTrigger("mqtt", pattern, 1, on.timeout, on.on_timeout,
                                event=on.audience, zone=on.zone, share=on.count.percent)
        return EventTrigger("mqtt", pattern, on.count, on.timeout, on.on_timeout,
                            event=on.audience, zone=on.zone)

    def _check_timeline_order(self, lc: LoadedCue) -> None:
        last: LoadedAction | None = None
        for la in lc.actions:
            if not la.in_timeline:
                continue
            if last is not None and last.where.path[:-1] == la.where.path[:-1] and la.item.at < last.item.at:
                self.findings.append(
                    la.where.finding(
                        ("at",),
                        f"timeline goes back in time: {_secs(la.item.at)} after {_secs(last.item.at)}",
                        f"the earlier entry is at {last.where.mark('at')}; "
                        "list timeline entries in time order "
                        "(they play by time either way)",
                        severity="warning",
                    )
                )
            last = la

    # -- actions ---------------------------------------------------------------------------

    def _action(self, lc: LoadedCue, la: LoadedAction, body: int) -> tuple[int, tuple[str, ...], Op] | None:
        item = la.item
        kind = item.kind
        spec: OscModel | MqttModel | FadeModel | LightModel | None = (
            item.osc or item.mqtt or item.fade or item.light
        )
        assert spec is not None
        if kind == "light":
            light = cast(LightModel, spec)
            lt = self._targets(la, kind, light.targets)
            payload = self._light(la.where, light)
            if lt is None or payload is None:
                return None
            return body + item.at, lt.devices, MqttSend(LIGHT_TOPIC, payload, 1, False)
        spec = cast(OscModel | MqttModel | FadeModel, spec)
        targets = self._targets(la, kind, spec.targets)
        if targets is None:
            self._static_checks(la.where, kind, spec)
            return None
        at_ns = body + item.at
        w = la.where
        ok = True
        # Branch on the kind, not isinstance: pydantic's metaclass makes isinstance a Python call.
        if kind == "osc":
            osc = cast(OscModel, spec)
            ok &= self._osc_address(w, (kind, "address"), osc.address, targets, _NO_EXTRA)
            for i, arg in enumerate(osc.args):
                if isinstance(arg, str):
                    ok &= self._placeholders(w, (kind, "args", i), arg, targets, _NO_EXTRA)
            op: Op = OscSend(osc.address, osc.args)
        elif kind == "mqtt":
            mqtt = cast(MqttModel, spec)
            ok &= self._mqtt_topic(w, (kind, "topic"), mqtt.topic, targets, _NO_EXTRA)
            ok &= self._payload(w, (kind, "payload"), mqtt.payload, targets)
            op = MqttSend(mqtt.topic, mqtt.payload, mqtt.qos, mqtt.retain)
        else:
            spec = cast(FadeModel, spec)
            address = spec.address
            if address is None and self.venue.profiles:  # a verb of the targets' profile, if any
                address, problems = fade_address(
                    self.venue, targets.devices, spec.param, {"from": spec.start, "to": spec.end}
                )
                for p in problems:
                    self.findings.append(w.finding((kind, *p.sub), p.message, p.hint))
                if problems:
                    ok, address = False, None
            if address is not None:
                ok &= self._osc_address(w, (kind, "address"), address, targets, _FADE_EXTRA)
            if spec.topic is not None:
                ok &= self._mqtt_topic(w, (kind, "topic"), spec.topic, targets, _FADE_EXTRA)
            self._dmx_param(w, spec.param, targets.devices)
            op = Fade(
                param=spec.param,
                start=None if spec.start is None else float(spec.start),
                end=float(spec.end),
                duration_ns=spec.over,
                ease=spec.ease,
                address=address,
                topic=spec.topic,
                rate_hz=None if spec.rate is None else float(spec.rate),
            )
        if not ok:
            return None
        return at_ns, targets.devices, op

    def _do(self, la: LoadedAction, body: int) -> list[tuple[int, tuple[str, ...], Op]] | None:
        """``do:``: a verb of the targets' device profiles (:mod:`cues.verbs`), as OSC sends."""
        do = la.item.do
        assert do is not None
        targets = self._targets(la, "do", do.targets)
        if targets is None:
            return None
        name, value = do.verb
        w = la.where
        sends, problems = expand_verb(self.venue, targets.devices, name, value)
        for p in problems:
            mark = w.key_mark("do", *p.sub) if p.key else w.mark("do", *p.sub)
            self.findings.append(Finding(mark, p.message, _join(p.hint, w.via)))
        if problems:
            return None
        out: list[tuple[int, tuple[str, ...], Op]] = []
        for devices, send in sends:
            group = self._group_targets(devices)
            if not self._osc_address(w, ("do", name), send.address, group, _NO_EXTRA):
                return None
            out.append((body + la.item.at, devices, send))
        return out

    def _group_targets(self, devices: tuple[str, ...]) -> _Targets:
        """A :class:`_Targets` for some devices, kept for the whole compile (caches key on its id)."""
        got = self._groups.get(devices)
        if got is None:
            by_id = self.venue.by_id
            common = set(by_id[devices[0]].attrs)
            for d in devices[1:]:
                common.intersection_update(by_id[d].attrs)
            got = self._groups[devices] = _Targets(devices, frozenset(common | _ALWAYS))
        return got

    def _dmx_param(self, w: Where, param: str, devices: tuple[str, ...]) -> None:
        """Warn when a fade reaches DMX-only fixtures that patch no channel for its parameter."""
        by_id = self.venue.by_id
        missing = []
        for d in devices:
            dmx = by_id[d].dmx
            only_dmx = dmx is not None and by_id[d].transports == ("dmx",)
            if only_dmx and dmx is not None and all(c.param != param for c in dmx.channels):
                missing.append(d)
        if missing:
            patched = sorted({c.param for c in by_id[missing[0]].dmx.channels})  # type: ignore[union-attr]
            self.findings.append(
                w.finding(
                    ("fade", "param"),
                    f"{len(missing):,} DMX-only target(s) patch no channel for '{param}' "
                    f"(e.g. {missing[0]!r}, which patches {', '.join(patched)})",
                    "patch it in the venue's dmx channels, or fade a parameter the fixture has",
                    "warning",
                )
            )

    def _light(self, w: Where, light: LightModel) -> dict[str, JsonValue] | None:
        """The message of a ``light:`` action; an ``image`` must be a PNG of the show folder."""
        out: dict[str, JsonValue] = {}
        if light.color is not None:
            out["color"] = light.color
        if light.strobe is not None:
            out["strobe"] = float(light.strobe)
        if light.scene is not None:
            out["scene"] = light.scene
        if light.wave is not None:
            wv = light.wave
            out["wave"] = {
                "colors": list(wv.colors),
                "speed": float(wv.speed),
                "direction": float(wv.direction),
                "width": float(wv.width),
            }
        if light.image is not None:
            image = self._image(w, light.image)
            if image is None:
                return None
            out["image"] = image
        return out

    def _image(self, w: Where, name: str) -> dict[str, JsonValue] | None:
        """``{"name", "width", "height"}`` of a crowd image, noted in :attr:`media`; or a finding."""
        where = ("light", "image")
        if not _MEDIA_NAME_RE.match(name):
            self.findings.append(
                w.finding(
                    where,
                    f"image '{name}' is not a PNG file name of the show folder",
                    "name a .png file next to the show file, like lotus.png (letters, digits, - _ .)",
                )
            )
            return None
        path = Path(w.doc.file).resolve().parent / name
        try:
            data = path.read_bytes() if path.stat().st_size <= MAX_IMAGE_BYTES else b""
        except OSError:
            self.findings.append(
                w.finding(
                    where, f"image '{name}' not found", f"looked for {path}; put the PNG beside the show"
                )
            )
            return None
        size = png_size(data)
        if size is None:
            self.findings.append(
                w.finding(
                    where,
                    f"image '{name}' is not a PNG of at most {MAX_IMAGE_BYTES // 2**20} MiB",
                    "save it as PNG (one pixel per phone: its size is the seat map's rows and seats)",
                )
            )
            return None
        width, height = size
        if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
            self.findings.append(
                w.finding(
                    where,
                    f"image '{name}' is {width}x{height} pixels",
                    f"sides of 1 to {MAX_IMAGE_SIDE} pixels (one pixel per phone is plenty)",
                )
            )
            return None
        self.media[name] = str(path)
        return {"name": name, "width": width, "height": height}

    def _static_checks(self, w: Where, kind: str, spec: OscModel | MqttModel | FadeModel) -> None:
        """The address and topic rules that need no targets (when the targets are wrong too)."""
        checks: list[tuple[str, str | None, Callable[[str], tuple[str, str] | None]]] = []
        if isinstance(spec, OscModel | FadeModel):
            checks.append(("address", spec.address, osc_address_problem))
        if isinstance(spec, MqttModel | FadeModel):
            checks.append(("topic", spec.topic, mqtt_topic_problem))
        for key, text, rule in checks:
            problem = rule(text) if text is not None else None
            if problem:
                self.findings.append(w.finding((kind, key), problem[0], problem[1]))

    def _targets(self, la: LoadedAction, kind: str, selectors: tuple[str, ...]) -> _Targets | None:
        """The devices an action reaches; problems are replayed at every use of a bad selector."""
        key = (selectors, kind)
        got = self._targets_cache.get(key)
        if got is None:
            got = self._resolve_targets(kind, selectors, la.where)
            if got[0] is not None:  # failures are rare: resolve them again at each use, for its columns
                self._targets_cache[key] = got
        targets, problems = got
        for sub, message, hint, severity, mark in problems:
            if mark is not None:
                self.findings.append(Finding(mark, message, _join(hint, la.where.via), severity))
            else:
                self.findings.append(la.where.finding(sub, message, hint, severity))
        return targets

    def _resolve_targets(
        self, kind: str, selectors: tuple[str, ...], w: Where
    ) -> tuple[_Targets | None, list[_Problem]]:
        problems: list[_Problem] = []
        ids: list[str] = []
        for i, text in enumerate(selectors):
            sub = (kind, "targets") if len(selectors) == 1 else (kind, "targets", i)
            try:
                got = resolve(text, self.venue, w.mark(*sub))
            except SourceError as e:
                problems.append((sub, e.finding.message, e.finding.hint, "error", e.finding.mark))
                continue
            if not got:
                problems.append(
                    (
                        sub,
                        f"targets {text!r} match no device",
                        "check the selector against the venue",
                        "error",
                        None,
                    )
                )
            ids.extend(got)
        if problems:
            return None, problems
        sub = (kind, "targets")
        ordered = tuple(dict.fromkeys(ids))
        can = _TRANSPORTS[kind]
        by_id = self.venue.by_id
        able = tuple(d for d in ordered if any(t in can for t in by_id[d].transports))
        if not able:
            first = by_id[ordered[0]]
            problems.append(
                (
                    sub,
                    f"none of the {len(ordered):,} devices of {', '.join(selectors)!r} "
                    f"can receive {_WIRE.get(kind, kind.upper())} "
                    f"(e.g. {first.id!r} has {', '.join(first.transports) or 'no endpoint'})",
                    f"target devices with an {' or '.join(can)} endpoint",
                    "error",
                    None,
                )
            )
            return None, problems
        if len(able) < len(ordered):
            able_set = set(able)
            skipped = [d for d in ordered if d not in able_set]
            problems.append(
                (
                    sub,
                    f"{len(skipped):,} of {len(ordered):,} targets cannot receive "
                    f"{_WIRE.get(kind, kind.upper())} "
                    "and are skipped "
                    f"(e.g. {skipped[0]!r})",
                    "narrow the selector, e.g. with '& kind:...'",
                    "warning",
                    None,
                )
            )
        common = set(by_id[able[0]].attrs)
        for d in able[1:]:
            common.intersection_update(by_id[d].attrs)
        return _Targets(able, frozenset(common | _ALWAYS)), problems

    # -- placeholders, addresses, topics ---------------------------------------------------

    def _placeholders(
        self, w: Where, sub: tuple[str | int, ...], text: str, targets: _Targets, extra: frozenset[str]
    ) -> bool:
        """Every ``{placeholder}`` in ``text`` names an attribute of every target (or ``extra``)."""
        if "{" not in text and "}" not in text:
            return True
        key = (id(targets), text, extra, "")
        found = self._templated_cache.get(key)
        if found is None:
            found = self._placeholder_problems(text, targets, extra)
            self._templated_cache[key] = found
        for message, fix in found:
            self.findings.append(w.finding(sub, message, fix))
        return not found

    def _placeholder_problems(
        self, text: str, targets: _Targets, extra: frozenset[str]
    ) -> list[tuple[str, str]]:
        if "${" in text:
            return [
                (
                    f"{text!r} holds a template parameter outside a template",
                    "${name} works only in templates; write {name} for a device attribute",
                )
            ]
        names = _PLACEHOLDER_RE.findall(text)
        rest = _PLACEHOLDER_RE.sub("", text)
        if "{" in rest or "}" in rest:
            return [(f"unbalanced braces in {text!r}", "a placeholder is written {name}")]
        out: list[tuple[str, str]] = []
        for name in names:
            if not _IDENT_RE.fullmatch(name):
                out.append(
                    (f"{{{name}}} is not a placeholder name", "write {device}, {zone} or {<attribute>}")
                )
            elif name not in targets.attrs and name not in extra:
                missing = [d for d in targets.devices if name not in self.venue.by_id[d].attrs]
                available = ", ".join(sorted(targets.attrs | extra))
                out.append(
                    (
                        f"placeholder {{{name}}} is not an attribute of every target "
                        f"({len(missing):,} of {len(targets.devices):,} lack it, e.g. {missing[0]!r})"
                        if missing
                        else f"placeholder {{{name}}} is not a device attribute",
                        f"attributes every target has: {available}",
                    )
                )
        return out

    def _values_problem(self, targets: _Targets, name: str, bad: str) -> str:
        """The first device value of attribute ``name`` holding a char of ``bad`` (or empty), as text."""
        # By identity: hashing a tuple of a thousand ids on every lookup cost more than the scan.
        # Target tuples live in _targets_cache for the whole compile, so ids are not reused.
        key = (id(targets.devices), name, bad)
        got = self._value_cache.get(key)
        if got is None:
            got = ""
            for d in targets.devices:
                dev = self.venue.by_id[d]
                value = d if name in ("device", "id") else dev.attrs.get(name, "")
                if value == "" or any(c in bad for c in value):
                    got = f"device {d!r} has {name} {value!r}"
                    break
            self._value_cache[key] = got
        return got

    def _osc_address(
        self, w: Where, sub: tuple[str | int, ...], text: str, targets: _Targets, extra: frozenset[str]
    ) -> bool:
        return self._templated(
            w,
            sub,
            text,
            targets,
            extra,
            problem=osc_address_problem,
            bad_chars=" #*,?[]{}/",
            what="OSC address",
            hint="use an attribute without spaces or OSC pattern characters",
        )

    def _mqtt_topic(
        self, w: Where, sub: tuple[str | int, ...], text: str, targets: _Targets, extra: frozenset[str]
    ) -> bool:
        return self._templated(
            w,
            sub,
            text,
            targets,
            extra,
            problem=mqtt_topic_problem,
            bad_chars="+#\0",
            what="MQTT topic",
            hint="use an attribute without + or #",
        )

    def _templated(
        self,
        w: Where,
        sub: tuple[str | int, ...],
        text: str,
        targets: _Targets,
        extra: frozenset[str],
        *,
        problem: Callable[[str], tuple[str, str] | None],
        bad_chars: str,
        what: str,
        hint: str,
    ) -> bool:
        """An address or topic with ``{placeholders}``: valid as written, every placeholder an
        attribute of every target, and no target's value breaking it once substituted.

        The verdict depends only on the text, the targets and ``extra``; thousands of actions
        share a few of each, so it is computed once and replayed at each action's position.
        """
        key = (id(targets), text, extra, what)
        found = self._templated_cache.get(key)
        if found is None:
            found = self._templated_problems(text, targets, extra, problem, bad_chars, what, hint)
            self._templated_cache[key] = found
        for message, fix in found:
            self.findings.append(w.finding(sub, message, fix))
        return not found

    def _templated_problems(
        self,
        text: str,
        targets: _Targets,
        extra: frozenset[str],
        problem: Callable[[str], tuple[str, str] | None],
        bad_chars: str,
        what: str,
        hint: str,
    ) -> list[tuple[str, str]]:
        found = problem(text)
        if found:
            return [found]
        if "{" in text or "}" in text:
            placeholders = self._placeholder_problems(text, targets, extra)
            if placeholders:
                return placeholders
        for name in _PLACEHOLDER_RE.findall(text):
            if name in extra:
                continue
            bad = self._values_problem(targets, name, bad_chars)
            if bad:
                return [(f"{{{name}}} would make an invalid {what}: {bad}", hint)]
        return []

    def _payload(self, w: Where, sub: tuple[str | int, ...], value: JsonValue, targets: _Targets) -> bool:
        if isinstance(value, str):
            return self._placeholders(w, sub, value, targets, _NO_EXTRA)
        if isinstance(value, list):
            return all([self._payload(w, (*sub, i), v, targets) for i, v in enumerate(value)])
        if isinstance(value, dict):
            return all([self._payload(w, (*sub, k), v, targets) for k, v in value.items()])
        return True


# ---------------------------------------------------------------------------------------------
# Address and topic rules


@functools.lru_cache(maxsize=8192)
def osc_address_problem(address: str) -> tuple[str, str] | None:
    """Why ``address`` (with ``{placeholder}`` parts) is not an OSC 1.0 address, or ``None``.

    OSC 1.0: an address starts with ``/``; its printable ASCII characters exclude space and
    ``# * , ? [ ] { }`` (the last six are pattern characters, for receivers only). A show also
    refuses empty parts. The rules are :func:`venues.names.osc_address_faults`, applied with each
    placeholder standing for one ordinary character.
    """
    faults = osc_address_faults(_PLACEHOLDER_RE.sub("x", address))
    if not faults:
        return None
    fault = faults[0]
    if fault.rule is Rule.OSC_NO_SLASH:
        return f"OSC address {address!r} must start with '/'", "e.g. /layer/1/clip"
    if fault.rule is Rule.OSC_BAD_CHARACTER:
        what = "a space" if fault.part == " " else repr(fault.part)
        return (
            f"OSC address {address!r} contains {what}",
            "OSC 1.0 addresses are printable ASCII without space or # * , ? [ ] { } "
            "(except {placeholders})",
        )
    return f"OSC address {address!r} has an empty part", "remove the doubled or trailing '/'"


@functools.lru_cache(maxsize=8192)
def osc_pattern_problem(pattern: str) -> tuple[str, str] | None:
    """Why ``pattern`` is not an OSC 1.0 address pattern (wildcards allowed), or ``None``.

    The rules are :func:`venues.names.osc_pattern_faults`.
    """
    faults = osc_pattern_faults(pattern)
    if not faults:
        return None
    rule = faults[0].rule
    if rule is Rule.OSC_NO_SLASH:
        return f"OSC address pattern {pattern!r} must start with '/'", "e.g. /ready or /ready/*"
    if rule is Rule.OSC_BAD_CHARACTER:
        return (
            f"OSC address pattern {pattern!r} contains a character OSC does not allow",
            "printable ASCII, no space, # or ,",
        )
    if rule is Rule.OSC_BRACKET_MISPLACED:
        return (
            f"OSC address pattern {pattern!r} has unbalanced brackets",
            "[abc] and {foo,bar} do not nest",
        )
    return f"OSC address pattern {pattern!r} has unbalanced brackets", "close every [ and {"


@functools.lru_cache(maxsize=8192)
def mqtt_topic_problem(topic: str) -> tuple[str, str] | None:
    """Why ``topic`` (with ``{placeholder}`` parts) is not a topic one may publish to, or ``None``.

    MQTT 3.1.1 section 4.7 (:func:`venues.names.topic_faults`): a topic name is 1 to 65535 bytes
    of UTF-8, without ``+``, ``#`` or NUL; its length counts the placeholders as written, the
    characters with each placeholder standing for one ordinary character. A show also refuses
    empty levels at either end (``/a``, ``a/``: legal but almost always a typo) and topics
    starting with ``$`` (the broker's, §4.7.2).
    """
    written = {f.rule for f in topic_faults(topic)}
    if Rule.EMPTY in written:
        return "MQTT topic is empty", "e.g. xr/{device}/scene"
    if Rule.NOT_UTF8 in written:
        return f"MQTT topic {topic!r} is not valid UTF-8", "remove the lone surrogate (MQTT 3.1.1 §1.5.3)"
    if Rule.TOO_LONG in written:
        return "MQTT topic is longer than 65,535 bytes", "MQTT limits topics to 65,535 bytes of UTF-8"
    bare = _PLACEHOLDER_RE.sub("x", topic)
    filled = {f.rule for f in topic_faults(bare)}
    if Rule.WILDCARD_IN_NAME in filled:
        return (
            f"MQTT topic {topic!r} contains a wildcard",
            "+ and # are for subscriptions; publish to a concrete topic",
        )
    if Rule.NUL in filled:
        return f"MQTT topic {topic!r} contains NUL", "remove it"
    if bare.startswith("/") or bare.endswith("/"):
        return f"MQTT topic {topic!r} has an empty level at its end", "remove the leading or trailing '/'"
    if bare.startswith("$"):
        return (
            f"MQTT topic {topic!r} starts with '$'",
            "topics starting with $ are the broker's ($SYS); choose another",
        )
    return None


@functools.lru_cache(maxsize=8192)
def mqtt_filter_problem(pattern: str) -> tuple[str, str] | None:
    """Why ``pattern`` is not an MQTT topic filter (MQTT 3.1.1 section 4.7.1), or ``None``.

    The rules are :func:`venues.names.filter_faults`.
    """
    faults = filter_faults(pattern)
    if not faults:
        return None
    fault = faults[0]
    if fault.rule is Rule.NOT_UTF8:
        return f"MQTT topic filter {pattern!r} is not valid UTF-8", "remove the lone surrogate (§1.5.3)"
    if fault.rule in (Rule.EMPTY, Rule.TOO_LONG, Rule.NUL):
        return f"MQTT topic filter {pattern!r} is empty, too long or holds NUL", "e.g. xr/+/ready"
    if fault.rule is Rule.HASH_NOT_LAST or "#" in fault.part:
        return f"MQTT topic filter {pattern!r}: '#' must be a whole level and the last", "e.g. xr/#"
    return f"MQTT topic filter {pattern!r}: '+' must be a whole level", "e.g. xr/+/ready"


def _length(item: ActionItem) -> int:
    return item.fade.over if item.fade is not None else 0


def _secs(ns: int) -> str:
    return f"{ns / 1e9:g}s"


def _join(hint: str, via: str) -> str:
    if hint and via:
        return f"{hint}; {via}"
    return hint or via
