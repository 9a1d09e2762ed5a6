"""The ``madang`` command.

The command line is the only place that installs logging handlers. It lives on the top floor
(:mod:`madang`), above the controller and the simulators, so it may wire a simulated venue to the
real controller without either importing the other (see the import contracts in pyproject.toml).
Subcommands import what they need lazily so that ``madang check`` starts fast and never pays for
Numba or the network stack.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from controller.access import AccessError
from controller.outputs import write_text
from venues.errors import MadangError, SourceErrors

__all__ = ["main"]

log = logging.getLogger(__name__)


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every ``extra`` field."""

    _STD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in self._STD and not k.startswith("_")})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not the one at start-up:
    while the live view runs, rich replaces it with a proxy that prints above the view, so a log
    line (a refused key, a broker warning) never tears the view apart."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


def setup_logging(*, verbose: int = 0, json_logs: bool = False, stream: Any = None) -> None:
    """Install the one handler Madang uses: text on a terminal, JSON lines when asked."""
    level = logging.WARNING - 10 * verbose
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    if json_logs:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.DEBUG))
    # aiomqtt configures the "mqtt" logger at import and warns once per publish under load;
    # the MQTT link counts those conditions itself.
    logging.getLogger("mqtt").setLevel(logging.ERROR)


def _access_options(sp: argparse.ArgumentParser) -> None:
    """``--control-passcode`` (controller.control; docs/operator.md, "Passcodes"); the passcodes are
    the console's tokens (``--operator-token-file``, ``--viewer-token-file``)."""
    from controller.control import PASSCODE_MODES

    sp.add_argument(
        "--control-passcode",
        choices=PASSCODE_MODES,
        default="auto",
        help="ask for /connect <passcode> on the control port (the console's operator or viewer token): "
        "auto (default) when a token is given or --control-allow admits a source beyond loopback; on; "
        "off (the allowlist alone)",
    )


def _oscquery_options(sp: argparse.ArgumentParser) -> None:
    """``--oscquery PORT`` and ``--no-mdns`` (controller.web.oscquery; docs/oscquery.md)."""
    sp.add_argument(
        "--oscquery",
        type=_int_in(0, 65535, "a TCP port; 0: any free port"),
        metavar="PORT",
        help="serve the control port's addresses over OSCQuery (HTTP + WebSocket) on this TCP port "
        "(0: any free one), announced over mDNS as _oscjson._tcp (docs/oscquery.md)",
    )
    sp.add_argument(
        "--no-mdns", action="store_true", help="with --oscquery: do not announce it over mDNS/DNS-SD"
    )


def _web_options(sp: argparse.ArgumentParser) -> None:
    """``--web-port``, ``--web-host``, ``--web-origin`` and the console's token files
    (controller.web; docs/operator.md, "Web" and "The browser console")."""
    sp.add_argument(
        "--web-port",
        type=_int_in(-1, 65535, "a TCP port; 0: any free port, -1: off"),
        default=None,
        metavar="PORT",
        help="the web server: WebSocket devices, the audience page (default 8080, or any free port "
        "when 8080 is taken; 0: any free port; -1: off)",
    )
    sp.add_argument(
        "--web-host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address the web server listens on (default 127.0.0.1, loopback only; 0.0.0.0: every interface)",
    )
    sp.add_argument(
        "--web-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin (https://host[:port]) allowed on the web sockets besides the server's own "
        "(repeatable)",
    )
    sp.add_argument(
        "--operator-token-file",
        metavar="FILE",
        help="the operator token of the browser console and the control port's passcode (may drive), "
        "the first line of FILE (default "
        "$MADANG_OPERATOR_TOKEN, else generated and printed in the console's URL)",
    )
    sp.add_argument(
        "--viewer-token-file",
        metavar="FILE",
        help="the viewer token of the browser console and the control port's view-only passcode (may "
        "only watch), the first line of FILE (default "
        "$MADANG_VIEWER_TOKEN, else generated and printed)",
    )
    sp.add_argument("--no-console", action="store_true", help="serve no browser console on the web port")
    sp.add_argument(
        "--web-url",
        default=None,
        metavar="URL",
        help="a hot-standby pair: this controller's web address as phones reach it (http://10.0.0.2:8080; "
        "default: the server's own), told to the other controller for its phones",
    )
    sp.add_argument(
        "--web-peer",
        default=None,
        metavar="URL",
        help="a hot-standby pair: the other controller's web address, when it cannot be learned over the "
        "pair's link; phones reconnect there when this one goes",
    )


def _print_findings(err: SourceErrors) -> None:
    for f in err.findings:
        print(str(f), file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# option values: refused by the parser, with the valid range or choices, before anything starts

IMPAIRMENTS = ("perfect", "lan", "wifi", "wifi-crowded", "lossy")
"""The simulators' network profiles (``simulators.network.profile_names()``, kept equal by a test;
listed here so that the parser needs no simulator import)."""

EXIT_MODES = ("safe", "hold")
"""``--on-exit``: ``controller.runtime.EXIT_MODES`` (kept equal by a test)."""


def _int_in(lo: int, hi: int | None, what: str) -> Callable[[str], int]:
    """An argparse ``type``: an integer from ``lo`` to ``hi`` (no upper bound: None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ({what})") from None
        if value < lo or (hi is not None and value > hi):
            span = f"from {lo:,} to {hi:,}" if hi is not None else f"{lo:,} or more"
            raise argparse.ArgumentTypeError(f"{value} is out of range: give a whole number {span} ({what})")
        return value

    return parse


def _float_in(lo: float, hi: float | None, what: str, *, above: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite number from ``lo`` (or above it, ``above``) to ``hi``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number ({what})") from None
        low_ok = value > lo if above else value >= lo
        if not math.isfinite(value) or not low_ok or (hi is not None and value > hi):
            low = f"above {lo:g}" if above else f"from {lo:g}"
            span = f"{low} to {hi:g}" if hi is not None else (f"{low} up" if not above else low)
            raise argparse.ArgumentTypeError(f"{text} is out of range: give a number {span} ({what})")
        return value

    return parse


def _broker_url(text: str) -> str:
    """An argparse ``type``: ``mqtt://[USER@]HOST[:PORT]`` or ``mqtts://...`` (as
    :func:`venues.broker.parse_broker_url`: a password in the URL is refused, with where it goes)."""
    from venues.broker import BrokerUrlError, parse_broker_url

    try:
        parse_broker_url(text)
    except BrokerUrlError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _broker_login_options(sp: argparse.ArgumentParser) -> None:
    """``--broker-password-file``, ``--broker-ca``, ``--broker-cert``, ``--broker-key``
    (docs/security.md, "Broker: TLS and credentials"); the venue file's ``broker_auth`` gives
    defaults."""
    sp.add_argument(
        "--broker-password-file",
        metavar="FILE",
        help="the broker password of the user in --broker, on the first line of FILE (keep it mode 0600; "
        "else the environment variable MADANG_BROKER_PASSWORD; never in the URL)",
    )
    sp.add_argument(
        "--broker-ca", metavar="FILE", help="CA certificate (PEM) that signed the broker's (mqtts://)"
    )
    sp.add_argument(
        "--broker-cert",
        metavar="FILE",
        help="this client's certificate (PEM), for a broker that requires one",
    )
    sp.add_argument("--broker-key", metavar="FILE", help="the private key (PEM) of --broker-cert")


def _source_address(text: str) -> str:
    """An argparse ``type``: an IP address or network (``10.0.0.5``, ``10.0.0.0/24``, ``::1``)."""
    import ipaddress

    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP address or network; give e.g. 10.0.0.5 or 10.0.0.0/24"
        ) from None
    return text


_SEED = _int_in(0, 2**32 - 1, "a seed for the simulators' random streams")
_SECONDS = _float_in(0, None, "seconds", above=True)
_COUNT = _int_in(1, None, "a count")


# ---------------------------------------------------------------------------------------------
# check / plan / schema


def _cmd_check(args: argparse.Namespace) -> int:
    from cues.check import check_file

    try:
        report = check_file(Path(args.show), venue_path=Path(args.venue) if args.venue else None)
    except ValueError as err:
        print(f"madang check: {err}", file=sys.stderr)
        return 2
    if getattr(args, "probe", False):
        _probe(report)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for f in report.findings:
            print(str(f), file=sys.stderr if f.severity == "error" else sys.stdout)
        print(report.summary())
    return 1 if any(f.severity == "error" for f in report.findings) else 0


def _probe(report: Any) -> None:
    """``check --probe`` (madang/probe.py): the show's OSC against the devices' OSCQuery trees,
    added to the report's findings."""
    from madang.probe import probe

    if getattr(report, "timeline", None) is None or getattr(report, "venue", None) is None:
        why = "the show has errors" if hasattr(report, "timeline") else "a venue file has no show to probe"
        print(f"madang check: --probe skipped: {why}", file=sys.stderr)
        return
    findings, servers = probe(report.timeline, report.venue)
    report.findings.extend(findings)
    if servers:
        plural = "s" if servers != 1 else ""
        print(f"madang check: probed {servers:,} OSCQuery server{plural}", file=sys.stderr)


def _compile(args: argparse.Namespace) -> Any:
    from cues.compiler import compile_show

    return compile_show(Path(args.show), venue_path=Path(args.venue) if args.venue else None)


PLAN_PIPE_WIDTH = 160  # columns of `madang plan` when stdout is not a terminal


def _cmd_plan(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cues.plan import render_svg, render_table

    if args.width is not None and args.width < 40:
        print(f"madang plan: --width {args.width} is too narrow; give 40 or more", file=sys.stderr)
        return 2
    timeline, venue = _compile(args)
    if args.svg:
        write_text(args.svg, render_svg(timeline, venue), "plan")
        print(f"wrote {args.svg}")
    if not args.svg or args.table:
        # Piped or redirected, there is no terminal to measure (rich would fall back to 80
        # columns, or an inherited $COLUMNS, and squeeze columns away): render for a fixed width
        # that holds an action's time, description and targets on one line; --width overrides.
        width = args.width or (None if sys.stdout.isatty() else PLAN_PIPE_WIDTH)
        Console(width=width).print(render_table(timeline, venue))
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    if args.which == "show":
        from cues.schema import show_schema

        schema = show_schema()
    elif args.which == "profile":
        from venues.profiles import profile_json_schema

        schema = profile_json_schema()
    else:
        from venues.schema import venue_json_schema

        schema = venue_json_schema()
    text = json.dumps(schema, indent=2)
    if args.output:
        write_text(args.output, text + "\n", "schema")
    else:
        print(text)
    return 0


# ---------------------------------------------------------------------------------------------
# run / simulate / demo


def _peer_endpoint(text: str) -> str:
    """``tcp://HOST:PORT``: where a hot standby finds its primary."""
    if not text.startswith("tcp://") or ":" not in text[6:]:
        raise argparse.ArgumentTypeError(f"{text!r} is not tcp://HOST:PORT (the primary's --standby-port)")
    host, _, port = text[6:].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not tcp://HOST:PORT with a port from 1 to 65535")
    return text


def _cmd_run(args: argparse.Namespace) -> int:
    if args.no_journal and (args.journal or args.resume):
        print(
            "madang run: --no-journal cannot go with --journal or --resume (a resume reads the journal)",
            file=sys.stderr,
        )
        return 2
    if getattr(args, "standby_of", None) and args.resume:
        print(
            "madang run: --standby-of follows a live primary; --resume carries on a dead one's journal: "
            "choose one",
            file=sys.stderr,
        )
        return 2
    if getattr(args, "standby_of", None) and args.simulate:
        print(
            "madang run: --standby-of needs the primary's real venue (leave out --simulate)", file=sys.stderr
        )
        return 2
    if args.resume and args.simulate:
        print(
            "madang run: --resume carries on a show on its real venue; a simulated venue ends with its "
            "run (leave out --simulate or --resume)",
            file=sys.stderr,
        )
        return 2
    if getattr(args, "oscquery", None) is not None and args.control_port < 0:
        print(
            "madang run: --oscquery serves the control port's addresses; it needs the control port "
            "(leave out --control-port -1)",
            file=sys.stderr,
        )
        return 2
    if args.simulate:
        from madang.rehearsal import run_simulated_cli

        return run_simulated_cli(args)
    from madang.show import run_show_cli

    return run_show_cli(args)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from madang.rehearsal import simulate_cli

    return simulate_cli(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from madang.rehearsal import demo_cli

    return demo_cli(args)


# ---------------------------------------------------------------------------------------------
# broker-config


def _cmd_broker_config(args: argparse.Namespace) -> int:
    from controller.brokerconf import (
        CONTROLLER_USER,
        CONTROLLER_USERS,
        BrokerTlsFiles,
        device_identities,
        write_broker_config,
    )
    from venues.loader import find_venue, load_venue

    if bool(args.tls_cert) != bool(args.tls_key):
        print("madang broker-config: a TLS listener needs both --tls-cert and --tls-key", file=sys.stderr)
        return 2
    if (args.tls_ca or args.require_certificate) and not args.tls_cert:
        print(
            "madang broker-config: --tls-ca and --require-certificate need --tls-cert/--tls-key",
            file=sys.stderr,
        )
        return 2
    if args.require_certificate and not args.tls_ca:
        print(
            "madang broker-config: --require-certificate needs --tls-ca to check certificates",
            file=sys.stderr,
        )
        return 2
    venue_path = find_venue(args.venue, None)
    venue = load_venue(venue_path)
    events = _show_triggers(args.show, venue_path)
    tls = None
    if args.tls_cert:
        tls = BrokerTlsFiles(
            str(Path(args.tls_cert).resolve()),
            str(Path(args.tls_key).resolve()),
            str(Path(args.tls_ca).resolve()) if args.tls_ca else None,
            args.require_certificate,
        )
    out = Path(args.output)
    leaves = None
    if args.leaf and not args.bridge:
        print(
            "madang broker-config: --leaf needs --bridge HUB_HOST:PORT (the hub the leaves bridge to)",
            file=sys.stderr,
        )
        return 2
    if args.bridge:
        from controller.bridgeconf import parse_leaves

        leaves = parse_leaves(args.leaf, venue)
    policy = write_broker_config(
        venue,
        out,
        events=events,
        port=args.port,
        bind=args.bind,
        tls=tls,
        bridge_hub=args.bridge,
        leaves=leaves,
        leaf_port=args.leaf_port,
    )
    devices = device_identities(venue)
    port = args.port or (8883 if tls else 1883)
    scheme = "mqtts" if tls else "mqtt"
    print(
        f"wrote {out}/: mosquitto.conf, passwd, acl, secrets (0600), "
        f"{', '.join(u + '.password' for u in CONTROLLER_USERS)} (0600)"
    )
    print(
        f"  {len(policy.passwords):,} identities: {len(CONTROLLER_USERS)} controllers, "
        f"{len(devices):,} devices" + (f", {len(leaves)} leaf bridges" if leaves else "")
    )
    if events:
        print(f"  devices may publish their own events on: {', '.join(events)}")
    print(f"broker:     mosquitto -c {out / 'mosquitto.conf'}")
    print(
        f"controller: madang run SHOW --broker {scheme}://{CONTROLLER_USER}@HOST:{port} "
        f"--broker-password-file {out / (CONTROLLER_USER + '.password')}"
        + (" --broker-ca CA.pem" if tls else "")
    )
    for leaf, zones in (leaves or {}).items():
        n = sum(1 for d in devices if d.zone in zones)
        conf = out / f"leaf-{leaf}.conf"
        print(f"leaf {leaf}: mosquitto -c {conf}  ({n:,} devices of {', '.join(zones)} join it)")
    if not tls:
        print("warning: no TLS (--tls-cert/--tls-key): passwords cross the network in clear", file=sys.stderr)
    return 0


def _show_triggers(paths: Sequence[str], venue_path: Path) -> list[str]:
    """The MQTT trigger filters of the show files at ``paths`` (``on: {mqtt: ...}``), compiled
    against the venue at ``venue_path``."""
    from cues.compiler import compile_show

    out: dict[str, None] = {}
    for path in paths:
        timeline, _ = compile_show(Path(path), venue_path=venue_path)
        for cue in timeline.cues:
            if cue.trigger is not None and cue.trigger.transport == "mqtt":
                out[cue.trigger.pattern] = None
    return list(out)


# ---------------------------------------------------------------------------------------------
# bench


def _bench_lateness(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.lateness import run

    return run(n=args.n)


def _bench_osc(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.osc import run

    return run(endpoints=args.endpoints, seconds=args.seconds)


def _bench_estimator(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.estimator import run

    return run(devices=args.devices, samples=args.samples)


def _bench_sync_tick(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.sync_tick import run

    return run(devices=args.devices, seconds=args.seconds, seed=args.seed)


def _bench_sync(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.sync import run

    return run(
        devices=args.devices,
        profile=args.profile,
        virtual=args.virtual,
        seed=args.seed,
        duration_s=args.duration,
        go_latency_ms=args.go_latency,
        phones=args.phones,
    )


def _bench_fanout(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.fanout import run

    return run(
        topology=args.topology,
        devices=args.devices,
        duration_s=args.duration,
        profile=args.profile,
        seed=args.seed,
        processes=args.processes,
        ping_rate=args.ping_rate,
        sync_budget_us=args.sync_budget,
        direct=args.direct,
        wide=args.wide_bridges,
    )


def _bench_mqtt(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.mqtt import run

    result: dict[str, Any] = run(broker=args.broker, messages=args.messages)
    return result


def _bench_check(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.check import bench_check

    return bench_check(args.cues)


def _bench_devices(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.devices import run

    return run(args.what, events=args.events, devices=args.devices, cues=args.cues, profile=args.profile)


def _bench_console(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.console import run

    return run(devices=args.devices, cues=args.cues, churn=args.churn, browser=not args.no_browser)


def _bench_dmx(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.dmx import run

    return run(seconds=args.seconds)


def _bench_ws(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.ws import run

    return run(
        devices=args.devices,
        mqtt=args.mqtt,
        cues=args.cues,
        profile=args.profile,
        seed=args.seed,
        settle_s=args.settle,
        ping_rate=args.ping_rate or None,
    )


def _bench_failover(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.failover import run

    return run(
        kills=args.kills,
        mode=args.mode,
        seed=args.seed,
        profile=args.profile,
        every_s=args.every,
        keep=Path(args.keep) if args.keep else None,
    )


def _bench_fuzz(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.fuzz import run

    kinds = [k for k in args.kinds.split(",") if k] if args.kinds else None
    return run(surface=args.surface, messages=args.messages, rate=args.rate, seed=args.seed, kinds=kinds)


def _bench_timecode(args: argparse.Namespace) -> dict[str, Any]:
    from madang.bench.timecode import run

    return run(fps=args.fps, seconds=args.seconds, dropout_s=args.dropout)


def _cmd_bench(args: argparse.Namespace) -> int:
    result = args.bench_fn(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        width = max(len(k) for k in result) if result else 0
        for k, v in result.items():
            print(f"{k:<{width}}  {v}")
    return 0


# ---------------------------------------------------------------------------------------------


_BenchFn = Callable[[argparse.Namespace], dict[str, Any]]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="madang",
        description="Real-time show controller for urban XR and media-art events.",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    p.add_argument("--log-json", action="store_true", help="structured logs, one JSON object per line")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def cmd(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        return sp

    sp = cmd(
        "check",
        _cmd_check,
        "validate a show against its venue, or a venue file alone; exit 1 with every error",
    )
    sp.add_argument("show", metavar="FILE", help="show file or venue file (YAML; told apart by its keys)")
    sp.add_argument("--venue", help="for a show: the venue file to check it against (default: its `venue:`)")
    sp.add_argument("--json", action="store_true", help="findings as JSON, for editors and CI")
    sp.add_argument(
        "--probe",
        action="store_true",
        help="also read the OSCQuery tree of every device that serves one (its osc.oscquery) and check the "
        "show's OSC addresses and argument types against it (docs/oscquery.md)",
    )

    sp = cmd("plan", _cmd_plan, "print the compiled timeline: what fires when, on which devices")
    sp.add_argument("show")
    sp.add_argument("--venue")
    sp.add_argument("--svg", metavar="FILE", help="also draw the timeline as an SVG picture")
    sp.add_argument("--table", action="store_true", help="print the table even with --svg")
    sp.add_argument(
        "--width",
        type=int,
        metavar="COLUMNS",
        help=f"table width (default: the terminal's; {PLAN_PIPE_WIDTH} when piped or redirected)",
    )

    sp = cmd("schema", _cmd_schema, "print the JSON Schema of show or venue files (editor completion)")
    sp.add_argument("which", choices=["show", "venue", "profile"])
    sp.add_argument("-o", "--output", metavar="FILE")

    sp = cmd("run", _cmd_run, "play a show to a venue's devices, under the operator's hand")
    sp.add_argument("show")
    sp.add_argument("--venue")
    sp.add_argument(
        "--broker",
        type=_broker_url,
        help="MQTT broker URL, mqtt://[USER@]HOST[:PORT] or mqtts://... for TLS (default: the venue's)",
    )
    _broker_login_options(sp)
    sp.add_argument(
        "--device-secrets",
        metavar="FILE",
        help="the secrets file of madang broker-config: each WebSocket device must present its key "
        "(docs/protocol.md); with --simulate, the simulated devices log in with its passwords",
    )
    sp.add_argument(
        "--go", action="store_true", help="press GO once the sync gate is READY (see --ready-timeout)"
    )
    sp.add_argument(
        "--go-all",
        action="store_true",
        help="press every manual GO when its cue stands by (the first one too): "
        "play the whole show unattended",
    )
    sp.add_argument(
        "--exit-at-end",
        action="store_true",
        help="exit 0 once the last cue completes; with --go and no --go-all, exit 3 if the show "
        "comes to rest at a manual GO",
    )
    sp.add_argument(
        "--on-exit",
        choices=EXIT_MODES,
        default="safe",
        help="what a run that ends early (SIGINT, SIGTERM, a manual GO with --go --exit-at-end) leaves "
        "on the devices: safe, each device's safe state (default); hold, what they show now",
    )
    sp.add_argument(
        "--control-port",
        type=_int_in(-1, 65535, "a UDP port; 0: any free port, -1: off"),
        default=53000,
        help="OSC control port (0: any free port, -1: off)",
    )
    sp.add_argument(
        "--control-allow",
        action="append",
        default=None,
        metavar="ADDR",
        type=_source_address,
        help="source address allowed on the control port (repeatable; default loopback only)",
    )
    _access_options(sp)
    _web_options(sp)
    _oscquery_options(sp)
    sp.add_argument("--simulate", action="store_true", help="play against a simulated venue")
    sp.add_argument("--impair", default="lan", choices=IMPAIRMENTS, help="impairment profile for --simulate")
    sp.add_argument("--seed", type=_SEED, default=0, help="seed of the simulated venue (--simulate)")
    sp.add_argument(
        "--rate",
        type=_float_in(0.05, 16, "the playback rate: 1 normal, 2 double speed"),
        default=1.0,
        help="playback rate, 0.05 to 16 (rehearsal at 2x: 2)",
    )
    sp.add_argument(
        "--go-latency",
        type=_float_in(0, 10_000, "milliseconds from a GO press to its effect"),
        default=250.0,
        metavar="MS",
        help="a GO takes effect this many ms after the press, so every device can fire in sync (default 250)",
    )
    sp.add_argument("--no-view", action="store_true", help="no live terminal view")
    sp.add_argument(
        "--sync-budget",
        type=_float_in(0, None, "microseconds", above=True),
        default=5000.0,
        metavar="US",
        help="a device whose cues are predicted to land further than this from their instant is over "
        "budget and holds the sync gate (default 5000)",
    )
    sp.add_argument(
        "--ready-timeout",
        type=_float_in(0, None, "seconds", above=True),
        default=60.0,
        metavar="S",
        help="--go waits this long for the sync gate's READY, then fails the run (default 60)",
    )
    sp.add_argument(
        "--ping-rate",
        type=_int_in(0, None, "pings a second across all devices (0: no cap)"),
        default=0,
        metavar="N",
        help="clock-sync pings a second across all devices, at most; a mass join queues behind it, "
        "first come first served (default 0: no cap; 5000 for a venue whose audience joins at once)",
    )
    tc = sp.add_argument_group("timecode (docs/timecode.md)")
    tc.add_argument("--chase", metavar="SOURCE", default=None,
                    help="the show clock chases timecode: artnet[:PORT] (ArtTimeCode, port 6454) "
                    "or mtc[:MIDI-PORT] (MIDI Time Code)")
    tc.add_argument("--timecode-out", metavar="DEST", default=None,
                    help="send timecode from the show clock: artnet:HOST[:PORT] or mtc[:MIDI-PORT]")
    tc.add_argument("--timecode-fps", default="25", choices=["24", "25", "29.97df", "30"],
                    help="the timecode's frame rate (default 25)")
    tc.add_argument("--timecode-start", default="00:00:00:00", metavar="HH:MM:SS:FF",
                    help="the timecode of show time 0 (default 00:00:00:00)")
    tc.add_argument("--chase-freewheel", type=float, default=2.0, metavar="SECONDS",
                    help="run on this long when the source falls silent (default 2)")
    tc.add_argument("--chase-loss", choices=["hold", "stop"], default="hold",
                    help="after the freewheel: hold (pause where it is) or stop the show (default hold)")
    sp.add_argument(
        "--degrade",
        action="append",
        default=[],
        metavar="DEVICE",
        help="play this device (or venue group; all: every device) on receipt: it does not hold the "
        "sync gate (repeatable)",
    )
    sp.add_argument(
        "--report", metavar="FILE", help="write the post-show report (JSON, with per-device sync telemetry)"
    )
    sp.add_argument(
        "--journal",
        metavar="DIR",
        help="keep the show's journal in DIR (default for a real run: a folder per show under "
        "$XDG_STATE_HOME/madang/journals, printed at start; --simulate keeps none unless given)",
    )
    sp.add_argument("--no-journal", action="store_true", help="keep no journal (no --resume possible)")
    sp.add_argument(
        "--standby-of",
        metavar="tcp://HOST:PORT",
        type=_peer_endpoint,
        help="run as the hot standby of the primary serving at this address (its --standby-port): "
        "follow its journal, drive nothing, take over if it dies (docs/standby.md)",
    )
    sp.add_argument(
        "--standby-port",
        type=_int_in(1, 65535, "a TCP port"),
        metavar="PORT",
        help="serve a hot standby on this TCP port while live (the primary of a pair; a standby that "
        "takes over serves the next one there)",
    )
    sp.add_argument(
        "--heartbeat-ms",
        type=_float_in(1, 1000, "milliseconds between a pair's heartbeats"),
        default=25.0,
        metavar="MS",
        help="a hot-standby pair's heartbeat interval, both ways (default 25; give both the same)",
    )
    sp.add_argument(
        "--missed-heartbeats",
        type=_int_in(3, 1000, "heartbeat intervals of silence"),
        default=4,
        metavar="N",
        help="the standby takes over after N heartbeat intervals of silence from the primary "
        "(default 4: 100 ms, a takeover within ~115 ms; raise it on a loaded machine; give both the same)",
    )
    sp.add_argument(
        "--resume",
        action="store_true",
        help="carry on the show its journal says was live: same keys, what fell due while no "
        "controller was live reported missed",
    )

    sp = cmd("simulate", _cmd_simulate, "bring a venue to life for a controller running elsewhere")
    sp.add_argument("venue")
    sp.add_argument("--broker", type=_broker_url, help="MQTT broker URL (default: start a private Mosquitto)")
    sp.add_argument(
        "--device-secrets",
        metavar="FILE",
        help="an ACL'd --broker: each device logs in as its id with its password from this secrets file "
        "(madang broker-config)",
    )
    sp.add_argument(
        "--broker-ca", metavar="FILE", help="CA certificate (PEM) that signed the broker's (mqtts://)"
    )
    sp.add_argument("--impair", default="lan", choices=IMPAIRMENTS, help="network impairment profile")
    sp.add_argument("--seed", type=_SEED, default=0)
    sp.add_argument(
        "--record",
        metavar="FILE",
        help="write what every device executed (JSON lines, appended as it happens; complete after any stop)",
    )
    sp.add_argument("--map", metavar="FILE", help="write the venue with loopback endpoints to FILE")
    sp.add_argument("--duration", type=_SECONDS, default=None, metavar="S", help="stop after S seconds")

    sp = cmd("demo", _cmd_demo, "play a shipped show against its simulated venue; end with a sync report")
    sp.add_argument("--venue", default="han-river", choices=["han-river", "gwanghwamun"])
    sp.add_argument(
        "--duration", type=_SECONDS, default=60.0, metavar="S", help="seconds of show to play (default 60)"
    )
    sp.add_argument("--report", metavar="FILE", help="write the report as FILE (JSON) and FILE.html")
    sp.add_argument("--impair", default="wifi", choices=IMPAIRMENTS)
    sp.add_argument("--seed", type=_SEED, default=1)
    sp.add_argument("--broker", type=_broker_url, help="MQTT broker URL (default: start a private Mosquitto)")
    sp.add_argument(
        "--devices",
        type=_COUNT,
        default=300,
        help="simulate the first N headsets (default 300; the venue has 1,200: --devices 1200)",
    )
    sp.add_argument("--no-view", action="store_true")

    sp = cmd(
        "broker-config",
        _cmd_broker_config,
        "write a venue's Mosquitto config, password file and ACL: each device publishes only its own "
        "reports, only the controller drives (docs/security.md)",
    )
    sp.add_argument("venue", help="venue file, or the id of a shipped venue")
    sp.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write the files into")
    sp.add_argument(
        "--show",
        action="append",
        default=[],
        metavar="FILE",
        help="a show file whose MQTT event triggers (on: {mqtt: 'xr/+/ready'}) the devices may publish, "
        "each as itself (repeatable)",
    )
    sp.add_argument(
        "--port",
        type=_int_in(1, 65535, "a TCP port"),
        default=None,
        help="the listener's port (default 8883 with TLS, else 1883)",
    )
    sp.add_argument("--bind", metavar="ADDR", help="the listener's address (default: every interface)")
    sp.add_argument("--tls-cert", metavar="FILE", help="the broker's certificate (PEM): a TLS listener")
    sp.add_argument("--tls-key", metavar="FILE", help="the broker's private key (PEM)")
    sp.add_argument(
        "--tls-ca", metavar="FILE", help="the CA certificate (PEM) clients' certificates are checked with"
    )
    sp.add_argument(
        "--require-certificate",
        action="store_true",
        help="clients must present a certificate signed by --tls-ca (besides their password)",
    )
    sp.add_argument(
        "--bridge",
        metavar="HUB_HOST:PORT",
        help="also write a leaf broker config (leaf-NAME.conf) per zone, bridged to this hub, carrying only "
        "its own devices' topics (docs/mqtt.md, 'Laying out brokers')",
    )
    sp.add_argument(
        "--leaf",
        action="append",
        default=[],
        metavar="NAME=ZONE[,ZONE...]",
        help="with --bridge: a leaf broker and the zones whose devices join it "
        "(repeatable; default one leaf per zone)",
    )
    sp.add_argument(
        "--leaf-port",
        type=_int_in(1, 65535, "a TCP port"),
        default=1883,
        help="the leaves' listener port (1883)",
    )

    sp = cmd("bench", _cmd_bench, "measure speed and accuracy; prints JSON with --json")
    bsub = sp.add_subparsers(dest="bench", required=True, metavar="BENCH")

    def bench(name: str, fn: _BenchFn, help: str) -> argparse.ArgumentParser:
        bp = bsub.add_parser(name, help=help, description=help)
        bp.set_defaults(bench_fn=fn, fn=_cmd_bench)
        bp.add_argument("--json", action="store_true")
        return bp

    bp = bench("lateness", _bench_lateness, "emission lateness of the firing edge vs loop.call_at")
    bp.add_argument("--n", type=_COUNT, default=10_000)
    bp = bench("osc", _bench_osc, "OSC messages encoded and sent per second vs python-osc")
    bp.add_argument("--endpoints", type=_COUNT, default=1000)
    bp.add_argument("--seconds", type=_SECONDS, default=3.0)
    bp = bench("estimator", _bench_estimator, "clock-model estimation time per batch (Numba vs reference)")
    bp.add_argument("--devices", type=_COUNT, default=10_000)
    bp.add_argument("--samples", type=_int_in(2, None, "clock-sync samples per device"), default=64)
    bp = bench("sync-tick", _bench_sync_tick, "CPU per ping of the controller's clock-sync service")
    bp.add_argument("--devices", type=_COUNT, default=10_000)
    bp.add_argument("--seconds", type=_COUNT, default=120, help="seconds of show clock to drive")
    bp.add_argument("--seed", type=_SEED, default=1)
    bp = bench("sync", _bench_sync, "fire-instant spread across simulated devices")
    bp.add_argument("--devices", type=_COUNT, default=1000)
    bp.add_argument("--profile", default="wifi", choices=IMPAIRMENTS)
    bp.add_argument("--virtual", action="store_true", help="seeded virtual time instead of real sockets")
    bp.add_argument("--seed", type=_SEED, default=1)
    bp.add_argument(
        "--duration",
        type=_SECONDS,
        default=None,
        metavar="S",
        help="seconds of show after GO (default: the whole show with --virtual, 60 s over real sockets)",
    )
    bp.add_argument(
        "--go-latency",
        type=_float_in(0, 10_000, "milliseconds from a GO press to its effect"),
        default=250.0,
        metavar="MS",
        help="the controller's GO latency, as madang run --go-latency (default 250)",
    )
    bp.add_argument(
        "--phones",
        type=_float_in(0, 1, "share of the audience that is phones"),
        default=None,
        metavar="SHARE",
        help="share of the audience devices that are phones over WebSocket (default: 0.5 on "
        "wifi-crowded, 0 on the other profiles)",
    )
    bp = bench("fanout", _bench_fanout, "the show to N real MQTT headsets on a broker topology")
    bp.add_argument("--topology", default="single", choices=("single", "bridged", "nats"))
    bp.add_argument("--devices", type=_COUNT, default=500)
    bp.add_argument("--duration", type=_SECONDS, default=30.0, metavar="S", help="seconds of show")
    bp.add_argument("--profile", default="lan", choices=IMPAIRMENTS)
    bp.add_argument("--seed", type=_SEED, default=0)
    bp.add_argument("--processes", type=_COUNT, default=None, help="headset child processes")
    bp.add_argument("--ping-rate", type=_COUNT, default=None, help="controller clock-sync pings per second")
    bp.add_argument("--sync-budget", type=_SECONDS, default=None, metavar="US", help="sync gate budget (us)")
    bp.add_argument("--direct", action="store_true", help="bridged: leaves bridge to the hub without relays")
    bp.add_argument(
        "--wide-bridges",
        action="store_true",
        help="bridged: every leaf bridges the whole topic tree (default: each only its own devices' topics)",
    )
    bp = bench("ws", _bench_ws, "cues to WebSocket devices: fan-out, spread, edge lateness; MQTT as baseline")
    bp.add_argument("--devices", type=_COUNT, default=2000, help="WebSocket devices (default 2,000)")
    bp.add_argument(
        "--mqtt",
        type=_int_in(0, None, "MQTT headsets"),
        default=None,
        help="MQTT headsets for the baseline (default: as many as --devices; 0: none)",
    )
    bp.add_argument("--cues", type=_COUNT, default=3, help="group cues to each side (default 3)")
    bp.add_argument(
        "--settle",
        type=_SECONDS,
        default=120.0,
        metavar="S",
        help="GO once the sync gate is READY, or (forced) this long after the devices connected "
        "(default 120)",
    )
    bp.add_argument("--profile", default="lan", choices=IMPAIRMENTS)
    bp.add_argument("--seed", type=_SEED, default=1)
    bp.add_argument(
        "--ping-rate",
        type=_int_in(0, None, "pings a second across all devices (0: no cap)"),
        default=0,
        metavar="N",
        help="the controller's global ping cap, as madang run --ping-rate (default 0: none)",
    )
    bp = bench("console", _bench_console, "the browser console at a venue's worth of devices: bytes, CPU")
    bp.add_argument("--devices", type=_COUNT, default=1200, help="devices in the grid (default 1,200)")
    bp.add_argument("--cues", type=_COUNT, default=40, help="cues in the cue list (default 40)")
    bp.add_argument(
        "--churn",
        type=_float_in(0, 1, "the share of devices whose state changes per grid update"),
        default=0.05,
        help="share of devices whose presence or sync changes per grid update (default 0.05)",
    )
    bp.add_argument("--no-browser", action="store_true", help="skip the page's own timings (Chromium)")
    bp = bench("mqtt", _bench_mqtt, "MQTT publish throughput and round trip, TCP_NODELAY on vs off")
    bp.add_argument(
        "--broker", type=_broker_url, default=None, help="broker URL (default: a private Mosquitto)"
    )
    bp.add_argument("--messages", type=_COUNT, default=100_000)
    bp = bench("timecode", _bench_timecode, "chasing Art-Net TimeCode on loopback: lock, jitter, a dropout")
    bp.add_argument("--fps", default="25", help="24, 25, 29.97df or 30 (default 25)")
    bp.add_argument("--seconds", type=float, default=6.0, help="how long the source runs (default 6)")
    bp.add_argument("--dropout", type=float, default=2.0, help="the source's silence, seconds (default 2)")
    bp = bench("check", _bench_check, "time to check a generated show of N cues")
    bp.add_argument("--cues", type=_COUNT, default=5000)
    bp = bench("devices", _bench_devices, "the simulators' own speed: scheduler, virtual show, MQTT headsets")
    bp.add_argument("what", choices=["vtime", "virtual", "mqtt"])
    bp.add_argument("--events", type=_COUNT, default=1_000_000, help="vtime: events to schedule and run")
    bp.add_argument(
        "--devices",
        type=_COUNT,
        default=None,
        help="virtual: headsets (default 10,000); mqtt: (default 1,000)",
    )
    bp.add_argument("--cues", type=_COUNT, default=10, help="virtual: group cues, each sent 3 times")
    bp.add_argument(
        "--profile", default="wifi-crowded", choices=IMPAIRMENTS, help="virtual: impairment profile"
    )
    bp = bench("dmx", _bench_dmx, "DMX frames: render and encode cost, lateness over loopback (docs/dmx.md)")
    bp.add_argument(
        "--seconds", type=_SECONDS, default=5.0, metavar="S", help="seconds of frames (default 5)"
    )
    bp = bench(
        "failover",
        _bench_failover,
        "kill -9 the live controller N times mid-show: takeover time, lost and duplicated cues, spread",
    )
    bp.add_argument("--kills", type=_COUNT, default=20, help="how many times to kill the live controller")
    bp.add_argument(
        "--mode",
        choices=["restart", "standby"],
        default="restart",
        help="who takes over: restart, `madang run --resume` started after the kill (default); "
        "standby, a hot standby (--standby-of) following the live one, started before each kill",
    )
    bp.add_argument("--seed", type=_SEED, default=1, help="seed of the kill instants and the simulated venue")
    bp.add_argument("--profile", default="lan", choices=IMPAIRMENTS, help="the simulated network")
    bp.add_argument(
        "--every",
        type=_float_in(0.1, 10, "seconds between cues"),
        default=0.75,
        metavar="S",
        help="seconds between the bench show's cues (default 0.75)",
    )
    bp.add_argument("--keep", metavar="DIR", help="keep the run's files (journal, record, logs) in DIR")
    bp = bench(
        "fuzz",
        _bench_fuzz,
        "play a show while one surface gets N hostile messages: drops, crashes, memory, missed cues, spread",
    )
    bp.add_argument(
        "--surface",
        choices=["osc-control", "osc-device", "mqtt", "ws"],
        default="osc-control",
        help="the control port, the device report port, the broker's device topics, or the WebSocket port",
    )
    bp.add_argument("--messages", type=_COUNT, default=100_000, help="hostile messages to send")
    bp.add_argument(
        "--rate",
        type=_float_in(100, 1_000_000, "messages a second"),
        default=20_000.0,
        help="hostile messages a second (default 20,000); the show lasts 1.25 times the flood and 5 s more",
    )
    bp.add_argument("--seed", type=_SEED, default=1, help="seed of the hostile messages and the venue")
    bp.add_argument(
        "--kinds",
        default=None,
        metavar="K,K",
        help="only these kinds of hostile message (simulators/hostile.py: e.g. forged_status,forged_pong)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``madang`` console script."""
    args = _parser().parse_args(argv)
    setup_logging(verbose=args.verbose, json_logs=args.log_json)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "madang" / "numba"))
    try:
        rc: int = args.fn(args)
    except SourceErrors as err:
        _print_findings(err)
        n = len(err.errors())
        print(f"{n} error{'s' if n != 1 else ''}; nothing was played.", file=sys.stderr)
        return 1
    except (MadangError, AccessError) as err:
        print(f"madang: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
