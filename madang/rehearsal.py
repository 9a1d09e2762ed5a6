"""Rehearsals against a simulated venue: ``madang run SHOW --simulate``, ``madang demo`` and
``madang simulate VENUE``.

``run --simulate`` and ``demo`` play the real controller against the venue brought to life by
:func:`simulators.harness.play_real` in one process and end with the sync report
(:mod:`madang.report`). ``simulate`` only brings the venue to life, for a controller running
elsewhere: its devices listen on loopback ports and connect to a broker (a private Mosquitto when
none is given), and ``--map FILE`` writes the venue with those endpoints for the controller's
``--venue``. Each function takes its subcommand's parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from controller.brokerconf import BrokerConfigError, read_secrets
from controller.core import show_slug
from controller.outputs import prepare, write_text
from cues.compiler import compile_show
from cues.timeline import Timeline
from madang.report import prepare_report, print_report, write_report
from madang.show import access_options, broker_login_of, journal_folder, timecode_options, web_options
from simulators.broker import MosquittoBroker
from simulators.devices.venue import SimulatedVenue
from simulators.harness import limit_headsets, play_real, shipped_show
from simulators.harness.real import Interrupted
from simulators.record import RecordWriter
from venues.model import Venue

__all__ = ["RECORD_FLUSH_S", "demo_cli", "run_simulated_cli", "simulate_cli"]

RECORD_FLUSH_S = 0.25
"""How often ``madang simulate --record`` appends what was recorded to its file."""


def run_simulated_cli(args: argparse.Namespace) -> int:
    """``madang run SHOW --simulate``: the show against its simulated venue, in one command."""
    report_path = prepare_report(args)
    timeline, venue = compile_show(Path(args.show), venue_path=Path(args.venue) if args.venue else None)
    login: dict[str, Any] = {}
    if args.broker is not None:  # an outside broker, perhaps ACL'd (madang broker-config)
        _, login["broker_login"] = broker_login_of(args, venue)
        if args.device_secrets:
            login["device_passwords"] = read_secrets(args.device_secrets)
    elif args.device_secrets and any(d.ws is not None and d.mqtt is None for d in venue.devices):
        # The private broker is open; the WebSocket devices present their keys to the controller.
        secrets = read_secrets(args.device_secrets)
        login["device_passwords"] = {
            d.id: secrets[d.id]
            for d in venue.devices
            if d.ws is not None and d.mqtt is None and d.id in secrets
        }
    elif args.device_secrets:
        raise BrokerConfigError(
            "--device-secrets without --broker: the simulated venue's private broker is open",
            "give the ACL'd broker with --broker mqtt[s]://madang-controller@HOST:PORT",
        )
    return _rehearse(
        report_path,
        timeline,
        venue,
        args,
        **login,
        auto_go=args.go_all,
        go=args.go,
        control_port=None if args.control_port < 0 else args.control_port,
        exit_at_end=args.exit_at_end,
        go_delay_ms=args.go_latency,
        rate=args.rate,
        sync_budget_us=args.sync_budget,
        ping_rate=args.ping_rate or None,
        control_allow=args.control_allow,
        access=access_options(args),
        ready_timeout_s=args.ready_timeout,
        degrade=args.degrade,
        on_exit=args.on_exit,
        journal_dir=journal_folder(args, show_slug(timeline.show), default_on=False),
        web=_web(args, timeline),
    )


def _web(args: argparse.Namespace, timeline: Timeline) -> dict[str, Any]:
    """``run --simulate``'s web options: as ``madang run``'s, but off unless ``--web-port`` is
    given or the venue has WebSocket devices (then any free port)."""
    opts = web_options(args, timeline)
    if getattr(args, "web_port", None) is None:
        opts["web_port"] = None
    # The rehearsal chases and sends timecode as ``madang run`` does (``--chase``, ``--timecode-out``).
    opts["timecode"] = timecode_options(args)
    return opts


def demo_cli(args: argparse.Namespace) -> int:
    """``madang demo``: the shipped show on its simulated venue under ``wifi``, then the report."""
    report_path = prepare_report(args)
    timeline, venue = compile_show(shipped_show(args.venue))
    timeline, venue = limit_headsets(timeline, venue, args.devices)
    print(
        f"madang demo: {timeline.show} on a simulated {venue.name}: {len(venue.devices):,} devices, "
        f"profile {args.impair}, {args.duration:g} s of show",
        flush=True,
    )
    _rehearse(report_path, timeline, venue, args, duration_s=args.duration, exit_at_end=True)
    return 0


def _rehearse(
    report_path: Path | None, timeline: Timeline, venue: Venue, args: argparse.Namespace, **options: Any
) -> int:
    """Play on the simulated venue (``play_real`` with the command's common options), then print
    the report and write it; returns the runtime's exit code (0 after a signal before the show)."""
    try:
        report, _, rt = asyncio.run(
            play_real(
                timeline,
                venue,
                profile=args.impair,
                seed=args.seed,
                broker_url=args.broker,
                view=not args.no_view and sys.stderr.isatty(),
                handle_signals=True,
                **options,
            )
        )
    except Interrupted as stopped:
        print(f"madang: {stopped}", file=sys.stderr)
        return 0
    print_report(report)
    if report_path is not None:
        write_report(report, report_path)
    return rt.exit_code


def simulate_cli(args: argparse.Namespace) -> int:
    """``madang simulate VENUE``: bring a venue to life for a controller running elsewhere.

    Runs until ``--duration`` runs out, SIGINT or SIGTERM; then stops every device, ends its
    private broker and exits 0. ``--record FILE`` is written as it goes (JSON lines, flushed every
    :data:`RECORD_FLUSH_S`), so it is complete after any of those stops.
    """
    if args.map:
        prepare(args.map, "mapped venue")
    if args.record:
        prepare(args.record, "record")
    from venues.loader import find_venue, load_venue

    venue = load_venue(find_venue(args.venue, None))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stop_on, sig, stop)
        broker: MosquittoBroker | None = None
        sim: SimulatedVenue | None = None
        writer: RecordWriter | None = None
        try:
            url = args.broker
            if url is None:
                broker = MosquittoBroker()
                broker.start()
                url = broker.url
            sim = SimulatedVenue(
                venue,
                mode="real",
                profile=args.impair,
                seed=args.seed,
                broker_url=url,
                broker=broker,
                device_passwords=read_secrets(args.device_secrets) if args.device_secrets else None,
                broker_ca=args.broker_ca,
            )
            if args.record:
                writer = RecordWriter(sim.records(), args.record)
            await sim.start_async()
            print(
                f"simulating {venue.name}: {len(venue.devices):,} devices, "
                f"profile {args.impair}, broker {url}",
                flush=True,
            )
            for did, where in sim.listening().items():
                print(f"  {did}: {where}")
            if args.map:
                _write_mapped(sim.mapped_venue(), Path(args.map), url)
                print(f"wrote {args.map}: point the controller at it with --venue {args.map} --broker {url}")
            print("ready; Ctrl-C (SIGINT) or SIGTERM stops", flush=True)
            deadline = None if args.duration is None else loop.time() + args.duration
            while not stop.is_set() and (deadline is None or loop.time() < deadline):
                wait = RECORD_FLUSH_S if deadline is None else min(RECORD_FLUSH_S, deadline - loop.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(wait, 0.0))
                if writer is not None:
                    writer.flush()
        finally:
            try:
                if sim is not None:
                    await sim.stop_async()
            finally:
                if broker is not None:
                    broker.close()
                if writer is not None:
                    writer.close()
                    print(f"wrote {args.record}: {writer.lines:,} rows", flush=True)

    asyncio.run(main())
    return 0


def _stop_on(sig: signal.Signals, stop: asyncio.Event) -> None:
    print(f"{sig.name}: stopping the simulated venue", file=sys.stderr, flush=True)
    stop.set()


def _write_mapped(venue: Venue, path: Path, broker: str) -> None:
    """The simulated venue as a venue file for the controller's ``--venue``: the whole venue
    (attrs, groups, zones, latency, safe states, ...) with each OSC endpoint moved to the
    loopback port its simulated display listens on, and the simulator's broker."""
    from venues.writer import venue_yaml

    header = (
        f"Venue {venue.id} as simulated by `madang simulate {venue.source or venue.id}`:",
        "every OSC endpoint is the loopback port of its simulated display, the broker is the",
        "simulator's. Valid while that simulator runs. Everything else is the original venue's.",
    )
    write_text(path, venue_yaml(venue, broker=broker, header=header), "mapped venue")
