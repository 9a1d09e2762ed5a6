"""The operator's view of a compiled show: rows and a terminal table (the SVG chart: :mod:`cues.chart`).

Theory of operation
-------------------
Everything here reads a :class:`~cues.timeline.Timeline` and its :class:`~venues.model.Venue`
and returns values: :func:`plan_rows` (one :class:`PlanRow` per action, for tests, ``--json``
and any other front end) and :func:`render_table` (a ``rich`` table for the terminal). The
words for a cue and an operation (:func:`go_label`, :func:`describe_op`, :func:`wait_notes`,
:class:`TargetNamer`) are shared with :func:`cues.chart.render_svg`, which is also importable
from here (loaded on first use, as :mod:`cues.chart` imports this module).

Thousands of devices are never listed one by one. A target is summarised by the largest name
the venue already gives it (the whole venue, a group, a zone, a kind, a zone and a kind), and
otherwise by what it is made of (``"1,200 xr in banpo"``).

Times are the nominal layout of the timeline (see :mod:`cues.timeline`): a sequence that waits
for a GO is drawn where it would start if GO were pressed the moment the previous one ended.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from cues.easing import format_ease
from cues.timecode import format_time
from cues.timeline import Action, CueSpan, Fade, Go, MqttSend, OscArg, OscSend, OscTyped, Timeline
from venues.model import Venue

if TYPE_CHECKING:
    from cues.chart import render_svg

__all__ = [
    "PlanRow",
    "TargetNamer",
    "clip",
    "describe_op",
    "go_label",
    "op_kind",
    "plan_rows",
    "render_svg",
    "render_table",
    "wait_notes",
]


# ------------------------------------------------------------------------------------ rows


@dataclass(frozen=True, slots=True)
class PlanRow:
    """One action as the operator reads it.

    ``time`` is ``mm:ss.fff`` of nominal show time; ``go`` is the cue's go mode
    (:func:`go_label`); ``what`` describes the operation (:func:`describe_op`); ``targets``
    summarises the devices (:class:`TargetNamer`); ``kind`` is ``"osc"``, ``"mqtt"`` or
    ``"fade"``.
    """

    at_ns: int
    time: str
    cue: str
    go: str
    what: str
    targets: str
    kind: str
    devices: int
    end_ns: int
    seq: int


def plan_rows(timeline: Timeline, venue: Venue) -> list[PlanRow]:
    """One row per action of ``timeline``, in timeline order (by time, then sequence number)."""
    namer = TargetNamer(venue)
    rows = []
    for action in timeline.actions:
        cue = timeline.cue_by_id.get(action.cue)
        rows.append(
            PlanRow(
                at_ns=action.at_ns,
                time=format_time(action.at_ns),
                cue=action.cue,
                go=go_label(cue) if cue is not None else "",
                what=describe_op(action.op),
                targets=namer.describe(action.devices),
                kind=op_kind(action),
                devices=len(action.devices),
                end_ns=action.end_ns,
                seq=action.seq,
            )
        )
    return rows


def go_label(cue: CueSpan) -> str:
    """How a cue starts: ``manual``, ``auto-continue``, ``auto-follow``, with ``+ event`` when
    it (also) waits for devices."""
    return f"{cue.go.value} + event" if cue.trigger is not None else cue.go.value


def describe_op(op: OscSend | MqttSend | Fade) -> str:
    """One line for an operation: ``osc /scene "bloom" 0.5``, ``mqtt xr/{device}/video {...}``,
    ``fade brightness 0.3->1 over 8s in-out-cubic``."""
    if isinstance(op, OscSend):
        return " ".join(["osc", op.address, *(_osc_arg(a) for a in op.args)])
    if isinstance(op, MqttSend):
        text = f"mqtt {op.topic}"
        if op.payload is not None:
            text += " " + clip(json.dumps(op.payload, separators=(",", ":"), ensure_ascii=False), 60)
        if op.qos:
            text += f" qos{op.qos}"
        if op.retain:
            text += " retain"
        return text
    start = "current" if op.start is None else f"{op.start:g}"
    return (
        f"fade {op.param} {start}->{op.end:g} over {format_time(op.duration_ns, 'seconds')} "
        f"{format_ease(op.ease)}"
    )


def _osc_arg(arg: OscArg) -> str:
    if isinstance(arg, OscTyped):
        return f"{arg.tag}:{arg.value}"
    if isinstance(arg, bool):
        return "true" if arg else "false"
    if arg is None:
        return "nil"
    if isinstance(arg, bytes):
        return f"<{len(arg)} bytes>"
    if isinstance(arg, str):
        return json.dumps(arg, ensure_ascii=False)
    if isinstance(arg, float):
        return f"{arg:g}"
    return str(arg)


def op_kind(action: Action) -> str:
    """What an action does: ``"osc"``, ``"mqtt"`` or ``"fade"`` (the key of the colours and styles)."""
    if isinstance(action.op, Fade):
        return "fade"
    return "osc" if isinstance(action.op, OscSend) else "mqtt"


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when anything was cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


class TargetNamer:
    """Names a set of device ids the way the venue file does, with the count.

    Exact matches, best first: ``all (1,262)``, a group ``facades (12)``, ``zone:banpo (40)``,
    ``kind:xr (1,200)``, ``zone:yeouido & kind:facade (4)``. Otherwise up to three ids are
    listed, and larger sets are described by kind and zone: ``1,200 xr in banpo``.
    """

    def __init__(self, venue: Venue) -> None:
        self._venue = venue
        self._cache: dict[tuple[str, ...], str] = {}
        names: dict[frozenset[str], str] = {}
        by_zone: dict[str, set[str]] = {}
        by_kind: dict[str, set[str]] = {}
        by_pair: dict[tuple[str, str], set[str]] = {}
        for d in venue.devices:
            by_zone.setdefault(d.zone, set()).add(d.id)
            by_kind.setdefault(d.kind, set()).add(d.id)
            by_pair.setdefault((d.zone, d.kind), set()).add(d.id)
        # Later assignments win: insert from the least to the most preferred name.
        for (zone, kind), ids in by_pair.items():
            names[frozenset(ids)] = f"zone:{zone} & kind:{kind}"
        for kind, ids in by_kind.items():
            names[frozenset(ids)] = f"kind:{kind}"
        for zone, ids in by_zone.items():
            names[frozenset(ids)] = f"zone:{zone}"
        for group, members in sorted(venue.groups.items(), reverse=True):
            names[frozenset(members)] = group
        if venue.devices:
            names[frozenset(d.id for d in venue.devices)] = "all"
        self._names = names

    def describe(self, devices: Sequence[str]) -> str:
        """A short description of ``devices`` for an operator."""
        key = tuple(devices)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._describe(key)
        return found

    def _describe(self, devices: tuple[str, ...]) -> str:
        unique = frozenset(devices)
        n = len(unique)
        if n == 0:
            return "no devices"
        name = self._names.get(unique)
        if name is not None:
            return f"{name} ({n:,})"
        if n <= 3:
            return ", ".join(sorted(unique))
        known = [self._venue.by_id[i] for i in sorted(unique) if i in self._venue.by_id]
        kinds = Counter(d.kind for d in known)
        zone_order = {z: i for i, z in enumerate(self._venue.zones)}
        zones = sorted({d.zone for d in known}, key=lambda z: (zone_order.get(z, len(zone_order)), z))
        unknown = n - len(known)
        if len(kinds) == 1:
            what = f"{n:,} {next(iter(kinds))}"
        elif len(kinds) <= 3:
            what = f"{n:,} devices (" + ", ".join(f"{c:,} {k}" for k, c in kinds.most_common()) + ")"
        else:
            what = f"{n:,} devices of {len(kinds)} kinds"
        if unknown == n:
            return f"{n:,} devices not in the venue"
        where = " in " + ", ".join(zones) if len(zones) <= 3 else f" in {len(zones)} zones"
        extra = f" (+{unknown:,} unknown)" if unknown else ""
        return what + where + extra


# ----------------------------------------------------------------------------------- table

_GO_STYLE: Mapping[Go, str] = {
    Go.MANUAL: "bold black on dark_orange",
    Go.AUTO_CONTINUE: "bold cyan",
    Go.AUTO_FOLLOW: "bold dodger_blue1",
}
_KIND_STYLE: Mapping[str, str] = {"osc": "sky_blue1", "mqtt": "pale_green1", "fade": "hot_pink"}


def wait_notes(cue: CueSpan) -> list[str]:
    """What a cue waits for and when it ends, in words: ``pre-wait 2s``, ``post-wait 3s``,
    ``waits for mqtt xr/+/ready ×1,000, after 30s: go``, ``ends 00:16.000``."""
    notes = []
    pre = cue.body_ns - cue.start_ns
    if pre:
        notes.append(f"pre-wait {format_time(pre, 'seconds')}")
    if cue.post_wait_ns:
        notes.append(f"post-wait {format_time(cue.post_wait_ns, 'seconds')}")
    trig = cue.trigger
    if trig is not None:
        text = f"waits for {trig.transport} {trig.pattern}"
        if trig.count != 1:
            text += f" ×{trig.count:,}"
        if trig.timeout_ns is not None:
            text += f", after {format_time(trig.timeout_ns, 'seconds')}: {trig.on_timeout}"
        else:
            text += ", no timeout"
        notes.append(text)
    notes.append(f"ends {format_time(cue.end_ns)}")
    return notes


def render_table(timeline: Timeline, venue: Venue) -> Table:
    """The plan as a ``rich`` table: a header row per cue (go mode, waits, event trigger),
    then its actions; a rule between sequences (each begins with a GO or an event)."""
    namer = TargetNamer(venue)
    gos = sum(1 for c in timeline.cues if c.go is Go.MANUAL)
    table = Table(
        title=f"{timeline.show} on {timeline.venue}",
        caption=(
            f"{format_time(timeline.duration_ns)} · {len(timeline.cues)} cues · {gos} GO · "
            f"{len(timeline.actions):,} actions · {len(venue.devices):,} devices"
        ),
        header_style="bold",
        expand=False,
        show_lines=False,
    )
    # Minimum widths (they fit an 80-column terminal together), so that no column is ever
    # squeezed away: times and go modes stay whole, the rest wraps onto more lines instead.
    table.add_column("time", style="bright_white", no_wrap=True, min_width=9)
    table.add_column("cue", overflow="fold", min_width=11, max_width=40)
    table.add_column("go", no_wrap=True, min_width=14)
    table.add_column("what", overflow="fold", min_width=16)
    table.add_column("targets", overflow="fold", min_width=10)
    by_cue = timeline.actions_by_cue
    last_sequence: int | None = None
    go_number = 0
    for cue in sorted(timeline.cues, key=lambda c: (c.start_ns, c.index)):
        if last_sequence is not None and cue.sequence != last_sequence:
            table.add_section()
        last_sequence = cue.sequence
        if cue.go is Go.MANUAL:
            go_number += 1
        go_text = Text(f" GO {go_number} " if cue.go is Go.MANUAL else go_label(cue), style=_GO_STYLE[cue.go])
        if cue.go is Go.MANUAL and cue.trigger is not None:
            go_text.append(" + event", style="bold medium_purple1")
        title = Text(cue.id, style="bold")
        if cue.name and cue.name != cue.id:
            title.append(f" {cue.name}", style="dim")
        table.add_row(
            Text(format_time(cue.start_ns), style="bold"),
            title,
            go_text,
            Text(" · ".join(wait_notes(cue)), style="italic grey62"),
            "",
        )
        for action in by_cue.get(cue.id, ()):
            kind = op_kind(action)
            table.add_row(
                format_time(action.at_ns),
                "",
                "",
                Text(describe_op(action.op), style=_KIND_STYLE[kind]),
                namer.describe(action.devices),
            )
    return table


def __getattr__(name: str) -> object:
    # render_svg lives in cues.chart, which imports this module: load it on first use.
    if name == "render_svg":
        from cues.chart import render_svg

        return render_svg
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
