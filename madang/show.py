"""``madang run``: play a show to a venue's real devices, under the operator's hand.

Compiles the show, checks ``--report FILE`` before anything plays, and runs the asyncio
:class:`~controller.runtime.Runtime` until the show ends or a signal. No simulator is imported here:
a show against a simulated venue is :mod:`madang.rehearsal`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.core import show_slug
from controller.journal import JOURNAL_FILE, LastRun, default_journal_dir, last_run
from controller.mqtt import broker_login, tls_context
from controller.outputs import prepare
from controller.runtime import Runtime, RuntimeOptions
from controller.tcio import TimecodeOptions, parse_chase, parse_out, parse_start
from controller.timecode import FrameRate
from cues.compiler import compile_show
from venues.broker import BrokerFiles, BrokerLogin, parse_broker_url
from venues.model import Venue

__all__ = ["broker_login_of", "run_show_cli"]


def run_show_cli(args: argparse.Namespace) -> int:
    """``madang run``: compile, then play with a live view until the end or a signal."""
    timeline, venue = compile_show(Path(args.show), venue_path=Path(args.venue) if args.venue else None)
    standby = args.standby_of is not None
    # A standby keeps its own journal (a copy of the primary's, then its own once live): on the
    # same machine the primary's folder is locked by the primary.
    journal = journal_folder(args, show_slug(timeline.show) + (".standby" if standby else ""))
    resume = args.resume
    if journal is not None and not resume and not standby and sys.stdin.isatty() and sys.stderr.isatty():
        resume = offer_resume(last_run(journal / JOURNAL_FILE), input)
    if journal is not None:
        print(f"madang: journal {journal}" + (" (resuming)" if resume else ""), file=sys.stderr)
    url, login = broker_login_of(args, venue)
    opts = RuntimeOptions(
        broker_url=url,
        broker_login=login,
        control_port=None if args.control_port < 0 else args.control_port,
        control_allow=args.control_allow,
        **access_options(args),
        go=args.go,
        auto_go=args.go_all,
        exit_at_end=args.exit_at_end,
        on_exit=args.on_exit,
        view=not args.no_view and sys.stderr.isatty(),
        rate=args.rate,
        report_path=prepare(args.report, "report") if args.report else None,  # fail before the show
        go_delay_ms=args.go_latency,
        sync_budget_us=args.sync_budget,
        ping_rate=args.ping_rate or None,
        ready_timeout_s=args.ready_timeout,
        degrade=args.degrade,
        journal_dir=journal,
        resume=resume,
        standby_of=args.standby_of,
        standby_port=args.standby_port,
        heartbeat_ms=args.heartbeat_ms,
        missed_heartbeats=args.missed_heartbeats,
        **web_options(args, timeline),
        timecode=timecode_options(args),
    )
    return asyncio.run(Runtime(timeline, venue, opts).run())


def timecode_options(args: argparse.Namespace) -> TimecodeOptions | None:
    """``--chase``, ``--timecode-out``, ``--timecode-fps``, ``--timecode-start``,
    ``--chase-freewheel`` and ``--chase-loss`` (docs/timecode.md); None when neither is given."""
    chase, out = getattr(args, "chase", None), getattr(args, "timecode_out", None)
    if chase is None and out is None:
        return None
    rate = FrameRate.parse(args.timecode_fps)
    return TimecodeOptions(
        chase=None if chase is None else parse_chase(chase),
        out=None if out is None else parse_out(out),
        rate=rate,
        offset_ns=parse_start(args.timecode_start, rate),
        freewheel_ns=round(args.chase_freewheel * 1e9),
        on_loss=args.chase_loss,
    )


def access_options(args: argparse.Namespace) -> dict[str, Any]:
    """The runtime's ``--control-passcode`` (the secrets themselves are the console's token files,
    :func:`web_options`, or the environment)."""
    return {"control_passcode": getattr(args, "control_passcode", "auto")}


DEFAULT_WEB_PORT = 8080
"""``--web-port`` when not given; a taken 8080 falls back to any free port (with a warning)."""


def web_options(args: argparse.Namespace, timeline: Any) -> dict[str, Any]:
    """The runtime's web options from ``--web-port``, ``--web-host``, ``--web-origin``, the
    console's ``--operator-token-file``, ``--viewer-token-file`` and ``--no-console``, and the
    show's crowd images (served to the light page)."""
    port = getattr(args, "web_port", None)
    return {
        "web_port": None if port is not None and port < 0 else (DEFAULT_WEB_PORT if port is None else port),
        "web_port_fallback": port is None,
        "web_host": getattr(args, "web_host", "127.0.0.1"),
        "web_origins": list(getattr(args, "web_origin", []) or []),
        "web_media": dict(getattr(timeline, "media", {}) or {}),
        "console": not getattr(args, "no_console", False),
        "operator_token_file": _path(getattr(args, "operator_token_file", None)),
        "viewer_token_file": _path(getattr(args, "viewer_token_file", None)),
        "web_url": getattr(args, "web_url", None),
        "web_peer": getattr(args, "web_peer", None),
        **oscquery_options(args),
        "web_device_keys": ws_device_keys(args),
    }


def oscquery_options(args: argparse.Namespace) -> dict[str, Any]:
    """The runtime's ``--oscquery PORT`` and ``--no-mdns`` (docs/oscquery.md)."""
    port = getattr(args, "oscquery", None)
    if port is None:
        return {}
    return {"oscquery_port": port, "mdns": not getattr(args, "no_mdns", False)}


def ws_device_keys(args: argparse.Namespace) -> dict[str, str] | None:
    """``--device-secrets FILE``: the WebSocket devices' keys (the secrets file of ``madang
    broker-config``), which each must present to connect; None without it (open)."""
    path = getattr(args, "device_secrets", None)
    if not path:
        return None
    from controller.brokerconf import read_secrets

    return read_secrets(path)


def _path(value: str | None) -> Path | None:
    return None if not value else Path(value)


def journal_folder(args: argparse.Namespace, show_id: str, *, default_on: bool = True) -> Path | None:
    """The run's journal folder: ``--journal DIR``, else (``default_on``) the show's default
    folder (:func:`~controller.journal.default_journal_dir`); None with ``--no-journal``."""
    if args.no_journal:
        return None
    if args.journal:
        return Path(args.journal)
    return default_journal_dir(show_id) if default_on else None


def offer_resume(run: LastRun, ask: Callable[[str], str]) -> bool:
    """The automatic offer: when the journal says the last run was cut short while the show was
    live, ask the operator (at a terminal) whether to carry it on; Enter or ``y`` resumes."""
    if not run.live:
        return False
    ago = "" if run.last_ns is None else f", {max(0.0, time.time() - run.last_ns / 1e9):,.0f} s ago"
    question = (
        f"madang: the last run of this show was cut short while {run.state}"
        f"{f' (cue {run.cue})' if run.cue else ''}{ago}.\n"
        "Carry it on where it is (--resume: same cue keys, what fell due meanwhile reported missed)? [Y/n] "
    )
    try:
        answer = ask(question)
    except EOFError:
        return False
    return answer.strip().lower() in ("", "y", "yes")


def broker_login_of(args: argparse.Namespace, venue: Venue) -> tuple[str, BrokerLogin]:
    """The broker URL (``--broker``, else the venue's) and its login: the password from
    ``--broker-password-file`` (else the venue's ``broker_auth.password_file``, else
    ``MADANG_BROKER_PASSWORD``) and the TLS files (the command line's over the venue's). The TLS
    files are loaded now, so a missing or bad one fails before anything starts
    (:class:`controller.mqtt.BrokerLoginError`)."""
    url = getattr(args, "broker", None) or venue.broker
    cli = BrokerFiles(
        getattr(args, "broker_ca", None),
        getattr(args, "broker_cert", None),
        getattr(args, "broker_key", None),
        getattr(args, "broker_password_file", None),
    )
    files = venue.broker_files.merged(cli) if venue.broker_files is not None else cli
    login = broker_login(url, files)
    if parse_broker_url(url).tls:
        tls_context(login)
    return url, login
