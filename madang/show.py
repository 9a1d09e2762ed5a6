"""``madang run``: play a show to a venue's real devices, under the operator's hand.

Compiles the show, checks ``--report FILE`` before anything plays, and runs the asyncio
:class:`~controller.runtime.Runtime` until the show ends or a signal. No simulator is imported here:
a show against a simulated venue is :mod:`madang.rehearsal`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from controller.core import show_slug
from controller.journal import default_journal_dir
from controller.outputs import prepare
from controller.runtime import Runtime, RuntimeOptions
from cues.compiler import compile_show

__all__ = ["run_show_cli"]


def run_show_cli(args: argparse.Namespace) -> int:
    """``madang run``: compile, then play with a live view until the end or a signal."""
    timeline, venue = compile_show(Path(args.show), venue_path=Path(args.venue) if args.venue else None)
    journal = journal_folder(args, show_slug(timeline.show))
    if journal is not None:
        print(f"madang: journal {journal}" + (" (resuming)" if args.resume else ""), file=sys.stderr)
    opts = RuntimeOptions(
        broker_url=args.broker,
        control_port=None if args.control_port < 0 else args.control_port,
        control_allow=args.control_allow,
        go=args.go,
        auto_go=args.go_all,
        exit_at_end=args.exit_at_end,
        on_exit=args.on_exit,
        view=not args.no_view and sys.stderr.isatty(),
        rate=args.rate,
        report_path=prepare(args.report, "report") if args.report else None,  # fail before the show
        go_delay_ms=args.go_latency,
        sync_budget_us=args.sync_budget,
        ready_timeout_s=args.ready_timeout,
        degrade=args.degrade,
        journal_dir=journal,
        resume=args.resume,
    )
    return asyncio.run(Runtime(timeline, venue, opts).run())


def journal_folder(args: argparse.Namespace, show_id: str, *, default_on: bool = True) -> Path | None:
    """The run's journal folder: ``--journal DIR``, else (``default_on``) the show's default
    folder (:func:`~controller.journal.default_journal_dir`); None with ``--no-journal``."""
    if args.no_journal:
        return None
    if args.journal:
        return Path(args.journal)
    return default_journal_dir(show_id) if default_on else None
