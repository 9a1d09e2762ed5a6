"""The operator's live terminal view.

:class:`ViewModel` is a plain snapshot the runtime fills in a few times a second; :func:`render`
turns it into a rich renderable. Nothing here reads a clock or touches the show: the view can lag
or die without the show noticing.

The operator must see at a glance: where the show is (transport, current and standby cue, show
time), whether every device is alive and in sync (online / late / offline counts, worst sync
error), and what went wrong last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

__all__ = ["ViewModel", "render"]

_STATE_STYLE = {
    "playing": "bold black on green",
    "paused": "bold black on yellow",
    "armed": "bold black on cyan",
    "loaded": "bold white on blue",
    "stopped": "bold white on red",
    "panicked": "bold white on red",
    "idle": "bold white on grey23",
}


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
    outbox: int = 0
    sends: int = 0
    send_errors: int = 0
    lateness_p99_us: float | None = None
    fire_error_p99_us: float | None = None
    control_port: int | None = None
    control_denied: int = 0
    control_malformed: int = 0
    errors: list[str] = field(default_factory=list)


def _clock(ns: int) -> str:
    neg = ns < 0
    ms_total = abs(ns) // 1_000_000
    h, rem = divmod(ms_total, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    core = f"{h}:{m:02d}:{s:02d}.{ms:03d}" if h else f"{m:02d}:{s:02d}.{ms:03d}"
    return ("-" if neg else "") + core


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

    cues = Table.grid(padding=(0, 2))
    cues.add_column(style="dim")
    cues.add_column()
    cues.add_row("current", vm.current_cue or "-")
    cues.add_row("standby (GO)", Text(vm.standby_cue or "- end of show -", style="bold cyan"))
    if vm.running:
        cues.add_row("running", ", ".join(vm.running))

    dev = Table.grid(padding=(0, 2))
    dev.add_column(style="dim")
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
    if vm.outbox:
        dev.add_row("outbox", Text(f"{vm.outbox:,} waiting", style="yellow"))
    dev.add_row("sends", f"{vm.sends:,} ({vm.send_errors:,} errors)")
    if vm.control_port is not None:
        extra = ""
        if vm.control_denied or vm.control_malformed:
            extra = f"  ({vm.control_denied} refused, {vm.control_malformed} malformed)"
        dev.add_row("control", f"osc udp :{vm.control_port}{extra}")

    parts: list[RenderableType] = [head, Panel(cues, title="cues"), Panel(dev, title="venue")]
    if vm.errors:
        err = Text("\n".join(vm.errors[-5:]), style="red")
        parts.append(Panel(err, title="last errors", border_style="red"))
    return Panel(Group(*parts), title="madang", border_style=_border(vm))


def _border(vm: ViewModel) -> str:
    if vm.state in ("panicked", "stopped") or vm.offline:
        return "red"
    if vm.late or vm.over_budget or vm.ready is False or not vm.broker_connected:
        return "yellow"
    return "green"
