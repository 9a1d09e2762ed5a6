"""The operator's live terminal view.

:class:`ViewModel` is a plain snapshot the runtime fills in a few times a second; :func:`render`
turns it into a rich renderable. Nothing here reads a clock or touches the show: the view can lag
or die without the show noticing.

The operator must see at a glance: where the show is (transport, the cue list with the standby
cue, the running cues' pre-wait / action / post-wait countdowns, an event trigger's progress),
whether every device is alive and in sync (online / late / offline counts, worst sync error),
what they did and what the controller refused (the operator log), and which keys do what.
:func:`cue_rows` builds the cue list from the timeline and the engine's read-only queries
(:meth:`~controller.engine.Engine.cue_clocks`, :meth:`~controller.engine.Engine.trigger_progress`),
so the view repeats no show logic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from controller.engine import CueClock, TriggerProgress
from controller.keys import KEYS
from controller.telemetry import CueSpread
from cues.timeline import Timeline

__all__ = ["CueRow", "LogLine", "ViewModel", "cue_rows", "render", "spread_text", "trigger_text"]

_STATE_STYLE = {
    "playing": "bold black on green",
    "paused": "bold black on yellow",
    "armed": "bold black on cyan",
    "loaded": "bold white on blue",
    "stopped": "bold white on red",
    "panicked": "bold white on red",
    "idle": "bold white on grey23",
}
_GO_LABEL = {"manual": "GO", "auto-continue": "auto-cont", "auto-follow": "auto-follow"}
_MAX_CUE_ROWS = 14  # a longer cue list shows a window around the playhead
_LOG_LINES = 8
_SIDE_BY_SIDE = 120  # columns from which the venue and the operator log sit side by side


@dataclass(frozen=True, slots=True)
class CueRow:
    """One line of the cue list. ``role``: ``standby`` (the next GO), ``running``, or ``""``;
    ``clock``: the countdowns of a running cue; ``trigger``: the progress of the event trigger
    listening on this cue."""

    number: int
    cue: str
    name: str
    go: str
    notes: str = ""
    role: str = ""
    clock: CueClock | None = None
    trigger: TriggerProgress | None = None
    event: str = ""  # how the cue waits for an event, when it does (``mqtt xr/+/ready x1,000``)
    spread: CueSpread | None = None  # how it landed: the devices' fire reports (live)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One entry of the operator log: at ``clock`` (local time of day), ``source`` (a key, an OSC
    sender, ``--go``) asked for ``what``; ``ok`` or refused, ``detail`` says the outcome or why;
    a ``hint`` asked for nothing (``detail`` says what to press instead)."""

    clock: str
    source: str
    what: str
    ok: bool
    detail: str = ""
    hint: bool = False  # nothing was asked for (an unbound key): ``detail`` says what to press


@dataclass
class ViewModel:
    """Everything the live view shows; filled by the runtime."""

    show: str = ""
    venue: str = ""
    state: str = "idle"
    show_ns: int = 0
    duration_ns: int = 0
    rate: float = 1.0
    current_cue: str = ""
    standby_cue: str = ""
    running: Sequence[str] = ()
    cues: Sequence[CueRow] = ()
    debounced: int = 0  # GOs refused as double-taps
    devices: int = 0
    online: int = 0
    late: int = 0
    offline: int = 0
    synced: int = 0
    pinged: int = 0  # devices that answer pings (the most that can be synced)
    over_budget: int = 0  # pinged devices not settled or predicted over the fire-error budget
    budget_us: float = 5000.0
    worst: Sequence[tuple[str, float, float]] = ()  # (device, predicted error us, offset us), worst first
    ready: bool | None = None  # the sync gate: READY (True), NOT READY (False), unknown (None)
    ready_text: str = ""  # "READY", or "NOT READY: 3 of 40 devices not ready (...)"
    acks: int = 0  # fire reports received
    broker: str = ""
    broker_connected: bool = False
    outbox: int = 0  # MQTT messages waiting in the outbox now (not yet written to the broker)
    unacked: int = 0  # QoS >= 1 messages written, awaiting the broker's acknowledgement
    sends: int = 0
    send_errors: int = 0
    lateness_p99_us: float | None = None
    fire_error_p99_us: float | None = None
    control_port: int | None = None
    control_denied: int = 0
    control_malformed: int = 0
    errors: list[str] = field(default_factory=list)
    log: Sequence[LogLine] = ()  # the operator log, oldest first
    keys: str = ""  # "" when keys are read; else why not (shown instead of the key hints)
    help: bool = False  # the key help is shown
    role: str = ""  # which controller this is: "LIVE · term 1", "STANDBY of ... · in step", ...
    role_live: bool = True  # this controller drives the devices
    timecode: str = ""  # "chase artnet: locked 12.34s", or "" when no timecode (controller.tcio)


def cue_rows(
    timeline: Timeline,
    standby: str | None,
    clocks: Iterable[CueClock] = (),
    trigger: TriggerProgress | None = None,
    spread: Mapping[str, CueSpread] | None = None,
) -> list[CueRow]:
    """The cue list: every cue of ``timeline`` in order, the ``standby`` one marked, running ones
    with their countdowns (``clocks``, from the engine), the listening ``trigger`` on its cue,
    each cue's live ``spread`` (:meth:`~controller.telemetry.Telemetry.cue_spread`)."""
    spread = spread or {}
    by_cue = {c.cue: c for c in clocks}
    rows = []
    for c in timeline.cues:
        clock = by_cue.get(c.id)
        role = "running" if clock is not None else "standby" if c.id == standby else ""
        event = ""
        if c.trigger is not None:
            t = c.trigger
            if t.event is not None:  # an audience trigger
                many = f"{t.share:g} %" if t.share is not None else f"{t.count:,}"
                event = f"{t.event} of {many} of {t.zone or 'the audience'}"
            else:
                event = f"{t.transport} {t.pattern}" + (f" x{t.count:,}" if t.count != 1 else "")
        rows.append(
            CueRow(
                number=c.index + 1,
                cue=c.id,
                name=c.name,
                go="event" if c.trigger is not None else _GO_LABEL.get(str(c.go), str(c.go)),
                notes=c.notes,
                role=role,
                clock=clock,
                trigger=trigger if trigger is not None and trigger.cue == c.id else None,
                event=event,
                spread=spread.get(c.id),
            )
        )
    return rows


def _clock(ns: int) -> str:
    neg = ns < 0
    ms_total = abs(ns) // 1_000_000
    h, rem = divmod(ms_total, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    core = f"{h}:{m:02d}:{s:02d}.{ms:03d}" if h else f"{m:02d}:{s:02d}.{ms:03d}"
    return ("-" if neg else "") + core


def _left(ns: int) -> str:
    """A countdown: ``4.2 s`` under a minute, ``2:05`` above."""
    if ns < 60_000_000_000:
        return f"{ns / 1e9:.1f} s"
    total = ns // 1_000_000_000
    m, s = divmod(total, 60)
    return f"{m}:{s:02d}"


def _event_name(pattern: str) -> str:
    """``xr/+/ready`` -> ``ready``; ``/gate/ready`` -> ``ready``: the last literal level."""
    levels = [p for p in pattern.split("/") if p and p not in ("+", "#", "*")]
    return levels[-1] if levels else pattern


def trigger_text(trig: TriggerProgress) -> str:
    """A listening trigger's progress: ``ready 3 of 4``; for an audience share,
    ``tap 812 of 1,000 (81 %), 800 needed`` (phones that tapped of those present)."""
    name = trig.event.replace("/", " ") if trig.event is not None else _event_name(trig.pattern)
    if trig.share is None or trig.present is None:
        return f"{name} {trig.counted:,} of {trig.count:,}"
    pct = 100 * trig.counted // trig.present if trig.present else 0
    return (f"{name} {trig.counted:,} of {trig.present:,} ({pct} %) in {trig.zone or 'the audience'}, "
            f"{trig.share:g} % is {trig.count:,}")


def _status(row: CueRow, state: str) -> Text:
    clk = row.clock
    if clk is not None:
        parts = []
        if clk.starts_in_ns is not None:
            parts.append(f"starts in {_left(clk.starts_in_ns)}")
        if clk.pre_wait_ns is not None:
            parts.append(f"pre-wait {_left(clk.pre_wait_ns)}")
        if clk.action_ns is not None:
            parts.append(f"action {_left(clk.action_ns)}")
        if clk.post_wait_ns is not None:
            parts.append(f"post-wait {_left(clk.post_wait_ns)}")
        style = "yellow" if state == "paused" else "green"
        return Text(" · ".join(parts) + (" (paused)" if state == "paused" else ""), style=style)
    trig = row.trigger
    if trig is not None:
        text = trigger_text(trig)
        if trig.timeout_ns is not None:
            text += f", timeout {_left(trig.timeout_ns)}, then {trig.on_timeout}"
        else:
            text += ", no timeout"
        return Text(text, style="bold cyan")
    if row.role == "standby":
        if row.event:
            return Text(
                f"waits for {row.event}" if state in ("armed", "playing") else "waits for an event",
                style="cyan",
            )
        return Text("waits for GO" if state in ("armed", "playing") else "standby", style="bold cyan")
    if row.spread is not None:
        return Text(spread_text(row.spread), style="dim")
    return Text("")


def spread_text(sp: CueSpread) -> str:
    """A cue's live spread as both views say it: ``spread 1.2 ms · p99 0.8 ms · 1,200 reports``."""

    def ms(us: float) -> str:
        return f"{us / 1000:.1f} ms" if us >= 1000 else f"{us:,.0f} us"

    return f"spread {ms(sp.spread_us)} · p99 {ms(sp.p99_us)} · {sp.reports:,} reports"


class _CueList:
    """The cue list, laid out for the width it gets: the notes column only on a wide terminal."""

    def __init__(self, vm: ViewModel) -> None:
        self.vm = vm

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield _cue_table(self.vm, wide=options.max_width >= _SIDE_BY_SIDE)


def _cue_table(vm: ViewModel, *, wide: bool = True) -> RenderableType:
    rows = list(vm.cues)
    if not rows:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column()
        grid.add_row("current", vm.current_cue or "-")
        grid.add_row("standby (GO)", Text(vm.standby_cue or "- end of show -", style="bold cyan"))
        if vm.running:
            grid.add_row("running", ", ".join(vm.running))
        return grid
    table = Table(expand=True, box=None, padding=(0, 1), show_edge=False, header_style="dim")
    table.add_column("", width=2, no_wrap=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("cue", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("name", no_wrap=True, overflow="ellipsis", ratio=2)
    table.add_column("go", no_wrap=True)
    table.add_column("status", no_wrap=True, overflow="ellipsis", ratio=4)
    if wide:
        table.add_column("notes", no_wrap=True, overflow="ellipsis", ratio=2, style="italic grey62")
    blank = [""] * (4 if wide else 3)
    lo, hi = _window(rows)
    if lo:
        table.add_row("", "", Text(f"... {lo} above", style="dim"), *blank)
    for row in rows[lo:hi]:
        mark, style = {"standby": ("▶", "bold cyan"), "running": ("●", "green")}.get(row.role, ("", ""))
        if row.clock is not None and row.clock.starts_in_ns is not None:
            mark, style = "○", "dim green"  # its turn in the running chain has not come yet
        cells: list[RenderableType] = [
            Text(mark, style=style),
            str(row.number),
            Text(row.cue, style=style or "default"),
            row.name,
            Text(row.go, style="bold" if row.go in ("GO", "event") else "dim"),
            _status(row, vm.state),
        ]
        table.add_row(*cells, *([row.notes] if wide else []))
    if hi < len(rows):
        table.add_row("", "", Text(f"... {len(rows) - hi} below", style="dim"), *blank)
    if vm.standby_cue == "" and vm.state in ("armed", "playing"):
        table.add_row("", "", Text("- end of show -", style="bold cyan"), *blank)
    return table


def _window(rows: Sequence[CueRow]) -> tuple[int, int]:
    """Which rows to show: all if they fit, else a window from just before the first running or
    standby cue."""
    if len(rows) <= _MAX_CUE_ROWS:
        return 0, len(rows)
    focus = next((i for i, r in enumerate(rows) if r.role), 0)
    lo = max(0, min(focus - 2, len(rows) - _MAX_CUE_ROWS))
    return lo, lo + _MAX_CUE_ROWS


def _venue_panel(vm: ViewModel) -> RenderableType:
    dev = Table.grid(padding=(0, 2))
    dev.add_column(style="dim", no_wrap=True)
    dev.add_column()
    alive_style = "green" if vm.offline == 0 and vm.late == 0 else ("yellow" if vm.offline == 0 else "red")
    dev.add_row(
        "devices",
        Text(
            f"{vm.online:,} online  {vm.late:,} late  {vm.offline:,} offline  of {vm.devices:,}",
            style=alive_style,
        ),
    )
    sync = f"{vm.synced:,} of {vm.pinged:,} clock-synced" if vm.pinged else f"{vm.synced:,} clock-synced"
    if vm.over_budget:
        sync += f", {vm.over_budget:,} over the {vm.budget_us:,.0f} us budget"
    dev.add_row("sync", Text(sync, style="yellow" if vm.over_budget else ""))
    if vm.ready is not None:
        dev.add_row("sync gate", Text(vm.ready_text, style="bold green" if vm.ready else "bold yellow"))
    if vm.worst:
        worst = "  ".join(f"{d} {u:,.0f} us" for d, u, _ in vm.worst)
        dev.add_row("worst sync", Text(worst, style="yellow" if vm.over_budget else "dim"))
    dev.add_row("acks", f"{vm.acks:,} fire reports")
    fire = "-" if vm.fire_error_p99_us is None else f"{vm.fire_error_p99_us:,.0f} us p99"
    late = "-" if vm.lateness_p99_us is None else f"{vm.lateness_p99_us:,.0f} us p99"
    dev.add_row("fire error", fire)
    dev.add_row("edge lateness", late)
    broker = Text(
        f"{vm.broker} {'connected' if vm.broker_connected else 'DISCONNECTED'}",
        style="green" if vm.broker_connected else "bold red",
    )
    dev.add_row("broker", broker)
    if vm.outbox or vm.unacked:
        text = f"{vm.outbox:,} waiting"
        if vm.unacked:
            text += f", {vm.unacked:,} awaiting the broker's ack"
        dev.add_row("outbox", Text(text, style="yellow" if vm.outbox else "dim"))
    dev.add_row("sends", f"{vm.sends:,} ({vm.send_errors:,} errors)")
    if vm.control_port is not None:
        extra = ""
        if vm.control_denied or vm.control_malformed:
            extra = f"  ({vm.control_denied} refused, {vm.control_malformed} malformed)"
        dev.add_row("control", f"osc udp :{vm.control_port}{extra}")
    return Panel(dev, title="venue")


def _log_panel(vm: ViewModel) -> RenderableType:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(no_wrap=True, overflow="ellipsis", max_width=18)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    lines = list(vm.log)[-_LOG_LINES:]
    for line in lines:
        style = "yellow" if line.hint else "green" if line.ok else "red"
        table.add_row(line.clock, line.source, Text(line.what, style="bold"), Text(line.detail, style=style))
    if not lines:
        table.add_row("", "", Text("nothing yet", style="dim"), "")
    last_refused = bool(lines) and not lines[-1].ok and not lines[-1].hint
    return Panel(table, title="operator log", border_style="red" if last_refused else "default")


def _help_panel() -> RenderableType:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, what in KEYS:
        table.add_row(key, what)
    table.add_row("", Text("the same commands as the OSC control port: same refusals, same log", style="dim"))
    return Panel(table, title="keys (? to hide)", border_style="cyan")


def _hints(vm: ViewModel) -> Text:
    if vm.keys:
        return Text(vm.keys, style="dim")
    return Text(
        "Space GO · Esc panic · P pause/resume · S stop · A arm · ↑↓ playhead · G G forced GO · "
        "? keys · Ctrl-C exit",
        style="dim",
    )


class _Adaptive:
    """Two renderables side by side on a wide terminal, one above the other on a narrow one."""

    def __init__(self, left: RenderableType, right: RenderableType) -> None:
        self.left, self.right = left, right

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if options.max_width >= _SIDE_BY_SIDE:
            grid = Table.grid(expand=True)
            grid.add_column(ratio=1)
            grid.add_column(ratio=1)
            grid.add_row(self.left, self.right)
            yield grid
        else:
            yield self.left
            yield self.right


def render(vm: ViewModel) -> RenderableType:
    """The whole view as one renderable."""
    head = Table.grid(expand=True, padding=(0, 2))
    head.add_column(ratio=1)
    head.add_column(ratio=2)
    head.add_column(ratio=2, justify="right")
    state = Text(f" {vm.state.upper()} ", style=_STATE_STYLE.get(vm.state, "bold"))
    rate = f"  x{vm.rate:g}" if vm.rate != 1.0 else ""
    head.add_row(
        state,
        Text(f"{vm.show}  @ {vm.venue}", style="bold"),
        Text(f"{_clock(vm.show_ns)} / {_clock(vm.duration_ns)}{rate}", style="bold"),
    )
    if vm.timecode:
        style = "bold green" if ": locked" in vm.timecode else "bold yellow"
        head.add_row(Text(""), Text(""), Text(vm.timecode, style=style))
    title = "cues"
    if vm.standby_cue:
        title += f" · standby (GO): {vm.standby_cue}"
    if vm.debounced:
        title += f" · {vm.debounced} GO double-tap{'s' if vm.debounced != 1 else ''} ignored"
    parts: list[RenderableType] = [
        head,
        Panel(_CueList(vm), title=title, title_align="left"),
        _Adaptive(_venue_panel(vm), _log_panel(vm)),
    ]
    if vm.errors:
        err = Text("\n".join(vm.errors[-5:]), style="red")
        parts.append(Panel(err, title="last errors", border_style="red"))
    if vm.help:
        parts.append(_help_panel())
    parts.append(_hints(vm))
    title = "madang" if not vm.role else f"madang · {vm.role}"
    return Panel(Group(*parts), title=title, title_align="left", border_style=_border(vm))


def _border(vm: ViewModel) -> str:
    if not vm.role_live:
        return "blue"  # a standby: it drives nothing, whatever its transport shows
    if vm.state in ("panicked", "stopped") or vm.offline:
        return "red"
    if vm.late or vm.over_budget or vm.ready is False or not vm.broker_connected:
        return "yellow"
    return "green"
