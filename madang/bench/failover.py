"""``madang bench failover``: ``kill -9`` the live controller mid-show, again and again; what did
the devices do?

Theory of operation
-------------------
Three kinds of process, as on a show night, and the bench watching them from outside:

* **the venue**: ``madang simulate VENUE --map MAPPED --record RECORD`` with its own private
  Mosquitto: LED screens that honour OSC bundle timetags and headsets over MQTT
  (``madang/bench/data/failover-venue.yaml``), the two kinds of device Madang sends a cue ahead of
  its instant. The record is the devices' own account of what they executed, in true time;
* **the controllers**: ``madang run SHOW --venue MAPPED --broker URL --go-all --journal DIR``, one
  live at a time (:class:`Controllers`). The bench waits a random, seeded while after a controller
  becomes live, ``kill -9`` s it and lets the next one take over: in ``restart`` mode a new process,
  the same command with ``--resume`` (what a service manager's restart does); in ``standby`` mode
  a hot standby (``madang run --standby-of tcp://...``) started while a controller is live,
  following its journal over ZeroMQ, which takes over through the broker when the live one dies
  (and then serves the next standby on its own ``--standby-port``);
* **the bench**, which reads only what a venue engineer could: the journal (the ``term`` record a
  takeover writes and the ``sent`` records after it), each controller's log (``--log-json``: what
  a resumed controller reported missed) and the devices' record.

The show (:func:`bench_show`) is generated for the number of kills: one GO, then a cue every
``every_s`` seconds, each an MQTT scene for the headsets and an OSC ``/scene`` for the screens.
After the last takeover the last controller plays ``tail_s`` more seconds and is stopped with
SIGTERM (``--on-exit hold``); what was due up to its stop is what the devices should have done.

What is measured (:func:`analyse`), for each device that executes keyed cues (``app`` and
``timetag``; ``echo`` and ``none`` devices are sent a cue at its instant, so what falls due while
no controller is live is missed for them whatever the lead, and they record no key):

* a **key** is a timeline action's idempotency key ``(show, cue, seq)``; ``seq`` is unique across
  the show, so ``(device, seq)`` names one cue action on one device. A screen's record holds
  ``key`` = the show (``"show #take"`` from the second take on) and ``seq``; a headset's holds
  ``key`` = the cue id and ``seq`` (its ``rx`` rows: the first arrival of each distinct key);
* **lost**: an action due (up to the end) that a device it targets never executed, other than
  those due while no controller was live (from a kill to the takeover after it) and never sent:
  those are **missed_in_outage**, which must equal what the resumed controllers reported missed
  (an action reported *uncertain*, being sent when the controller died, counts for the devices
  that never executed it: ``missed_uncertain``, ``uncertain_but_fired``)
  (``missed_match``: outage by outage, so a takeover that reports an earlier outage's misses
  again, or misses of its own it did not have, fails it);
* **duplicated**: an action executed more than once by one device, under the same key (the
  device's deduplication failed) or under two keys (two controllers sent the same action as
  different keys, e.g. under another take): for a screen, two ``osc`` executions of one ``seq``
  (``duplicated_other_key``: with different ``key``); for a headset, two ``cue``/``fade``
  executions of one ``(cue, seq)`` (``duplicated_other_key``: it received more than one key for
  it, more than one ``rx`` row);
* **takeover**: from the kill to the new controller's takeover, its ``term`` record: the poll
  in which it starts sending (its retained controller state and every cue still to come leave
  in that poll; both instants on the show clock, this machine's wall clock);
  **first_cue_send**: from the kill to its first keyed send (the first ``sent`` record at or
  after the ``term`` record: later than the takeover when no cue falls due within a lead of it);
  **resume** (restart mode): from the new process's start to its takeover;
* **spread**: for each cue, the latest minus the earliest true instant at which the devices first
  executed it; ``before``: cues due in the ``spread_window_s`` before each kill, ``after``: in
  the ``spread_window_s`` after each takeover.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from controller.journal import JOURNAL_FILE, MAGIC, decode_records
from cues.compiler import compile_show
from cues.timeline import Fade, Timeline
from simulators.children import die_with_parent
from venues.errors import MadangError
from venues.model import Sync, Venue

__all__ = [
    "MODES",
    "VENUE",
    "Controllers",
    "FailoverBenchError",
    "Outage",
    "Restarts",
    "analyse",
    "bench_show",
    "run",
]

MS = 1_000_000
S = 1_000_000_000
MODES = ("restart", "standby")
VENUE = Path(__file__).resolve().parent / "data" / "failover-venue.yaml"
"""The bench's venue: four timetag screens and eight headsets (packaged with :mod:`madang.bench`)."""

RESUME_GOAL_MS = 1000.0  # restart mode: a resumed controller takes over within 1 s of its start
LATE_MS = 50.0  # an execution this much after its instant is counted as fired late
LIVE_TIMEOUT_S = 180.0  # the first controller's GO waits for the sync gate (a loaded machine: slow)
TAKEOVER_TIMEOUT_S = 60.0
POLL_S = 0.05  # how often the bench reads the journal (its figures come from the journal's own instants)


class FailoverBenchError(MadangError, RuntimeError):
    """The bench could not run: ``what`` happened, with the files to look at."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what

    def __str__(self) -> str:
        return f"bench failover: {self.what}"


# ---------------------------------------------------------------------------------------------
# the show


def bench_show(cues: int, every_s: float, venue_file: str) -> str:
    """The bench's show (YAML): one manual GO, then a cue every ``every_s`` seconds
    (auto-continue), each an MQTT scene for the headsets and an OSC ``/scene`` for the screens."""
    lines = [
        f"# Generated by `madang bench failover` (madang/bench/failover.py): a cue every {every_s:g} s.",
        "show: Failover Yard",
        f"venue: {venue_file}",
        "",
        "cues:",
    ]
    for i in range(1, cues + 1):
        lines += [
            f"  - id: c{i:04d}",
            f"    go: {'manual' if i == 1 else 'auto-continue'}",
            f"    post_wait: {round(every_s * 1000)}ms",
            "    actions:",
            '      - mqtt: {targets: audience, topic: "xr/{device}/scene", '
            f"payload: {{scene: {i}}}, qos: 1}}",
            f"      - osc: {{targets: screens, address: /scene, args: [{i}]}}",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# processes


def _env() -> dict[str, str]:
    path = os.environ.get("PATH", "")
    if "/usr/sbin" not in path.split(os.pathsep):  # Debian's mosquitto
        path = path + os.pathsep + "/usr/sbin"
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": path}


class _Child:
    """``python -m madang ARGS`` in its own session, output in files of ``folder``; killed by the
    kernel if the bench dies (``PR_SET_PDEATHSIG``), stopped by :meth:`stop` otherwise."""

    def __init__(self, name: str, args: Sequence[str], folder: Path) -> None:
        self.name = name
        self.out_path = folder / f"{name}.out"
        self.err_path = folder / f"{name}.err"
        self._out: IO[str] = self.out_path.open("w", encoding="utf-8")
        self._err: IO[str] = self.err_path.open("w", encoding="utf-8")
        self.started_ns = time.time_ns()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "madang", *args],
            stdin=subprocess.DEVNULL,  # never a terminal: no resume offer, no live view
            stdout=self._out,
            stderr=self._err,
            env=_env(),
            start_new_session=True,  # a Ctrl-C of the bench reaches the bench alone; it stops us
            preexec_fn=functools.partial(die_with_parent, os.getpid()),  # the bench has no threads
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> int:
        """``kill -9``; returns the instant (wall clock, ns) just before the signal; reaps it."""
        at = time.time_ns()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return at

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout``); returns the exit code."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        self._err.close()
        return self.proc.returncode

    def stdout(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")


class _Venue:
    """``madang simulate``: the devices and their private broker, in a process of their own."""

    def __init__(self, venue: Path, folder: Path, *, seed: int, profile: str) -> None:
        self.mapped = folder / "mapped-venue.yaml"
        self.record = folder / "record.jsonl"
        self.child = _Child(
            "simulate",
            ["simulate", str(venue), "--map", str(self.mapped), "--record", str(self.record),
             "--seed", str(seed), "--impair", profile],
            folder,
        )  # fmt: skip
        self.broker = ""

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.child.stdout()
            if "ready;" in out:
                for word in out.split():
                    if word.startswith("mqtt://"):
                        self.broker = word
                        return
            if not self.child.alive():
                break
            time.sleep(0.05)
        raise FailoverBenchError(
            f"the simulated venue did not come up; its output is in {self.child.err_path}:\n"
            + self.child.stderr()[-2000:]
        )


class _JournalWatch:
    """What the bench learns from the show's journal, read as it grows: the GO, the terms
    claimed, the keyed sends and the end. Reads are incremental; a compaction (the file replaced
    by a new one) is read again from its start, and everything read before is kept."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.go_ns: int | None = None
        self.terms: dict[int, int] = {}  # term -> the instant of its takeover
        self.sent_at: set[int] = set()  # instants of sent records
        self.due: dict[int, int] = {}  # seq -> due instant (show clock)
        self.end_ns: int | None = None
        self._inode = -1
        self._offset = len(MAGIC)

    def read(self) -> None:
        """Take in what was appended since the last read."""
        try:
            with self.path.open("rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != self._inode or st.st_size < self._offset:
                    self._inode, self._offset = st.st_ino, len(MAGIC)
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        contents = decode_records(MAGIC + data)  # the intact records; a torn tail waits
        self._offset += contents.end - len(MAGIC)
        for r in contents.records:
            self._take(r)

    def _take(self, r: Mapping[str, Any]) -> None:
        k, at = r.get("k"), r.get("at")
        if not isinstance(at, int):
            return
        if k == "cmd" and isinstance(r.get("cmd"), dict) and r["cmd"].get("type") == "Go":
            self.go_ns = at if self.go_ns is None else min(self.go_ns, at)
        elif k == "term" and isinstance(r.get("term"), int):
            self.terms.setdefault(r["term"], at)
        elif k == "sent":
            self.sent_at.add(at)
            for s in r.get("sends", ()):
                if isinstance(s, list) and len(s) > 3 and isinstance(s[2], int) and s[2] >= 0:
                    self.due[s[2]] = s[3]
        elif k == "end":
            self.end_ns = at

    def term_after(self, since: int) -> int | None:
        """The instant of the first takeover (``term`` record) at or after ``since``."""
        later = [t for t in self.terms.values() if t >= since]
        return min(later) if later else None

    def first_sent(self, since: int | None) -> int | None:
        """The instant of the first ``sent`` record at or after ``since``."""
        if since is None:
            return None
        later = [t for t in self.sent_at if t >= since]
        return min(later) if later else None


@dataclass(slots=True)
class Outage:
    """One failover, on the show clock (ns): the kill, the restart's process start (restart
    mode), the takeover (``term`` record), the first keyed send after it, and what the new
    controller reported missed (``(device, seq)`` pairs; ``missed_count``: actions)."""

    kill_ns: int
    spurious: bool = False  # a standby took over from a live primary (not a kill): kill_ns is its step-down
    start_ns: int | None = None
    takeover_ns: int | None = None
    first_send_ns: int | None = None
    term: int = 0
    missed: set[tuple[str, int]] = field(default_factory=set)
    # reported missed as uncertain: being sent when the live controller died (some may have it)
    uncertain: set[tuple[str, int]] = field(default_factory=set)
    missed_count: int | None = None
    missed_listed: int = 0
    mismatches: int = 0  # journalled commands its replay did not end the same way (should be 0)


class Controllers(ABC):
    """The show's controllers, one live at a time: what a failover mode provides the bench.

    The bench calls :meth:`start_primary`, waits for it to be live, and then for each kill:
    :meth:`kill_live`, then :meth:`start_follower` (unless ``hot``: a hot standby is started as
    soon as a controller is live, before the kill), and waits for the takeover in the journal.
    """

    hot = False  # the follower runs before the kill (a standby), not after it (a restart)

    def __init__(self, show: Path, mapped: Path, broker: str, folder: Path) -> None:
        self.show = show
        self.mapped = mapped
        self.broker = broker
        self.folder = folder
        self.journal_dir = folder / "journal"
        self.live: _Child | None = None
        self.follower: _Child | None = None
        self.done: list[_Child] = []

    def args(self, n: int, *extra: str) -> list[str]:
        """The ``madang run`` command line of controller ``n``."""
        return [
            "--log-json", "run", str(self.show), "--venue", str(self.mapped), "--broker", self.broker,
            "--go-all", "--no-view", "--control-port", "-1", "--journal", str(self.journal_dir),
            "--on-exit", "hold", "--exit-at-end", "--report", str(self.folder / f"report-{n}.json"),
            *extra,
        ]  # fmt: skip

    @abstractmethod
    def start_primary(self) -> _Child:
        """Start the first live controller."""

    @abstractmethod
    def start_follower(self) -> _Child:
        """Start the controller that takes over after the next kill."""

    def journal_of(self, n: int) -> Path:
        """The journal controller ``n`` writes (restart mode: one for all, each resumes it)."""
        return self.journal_dir / JOURNAL_FILE

    @property
    def last_index(self) -> int:
        """The number of the controller started last."""
        return len(self.done) + (self.live is not None) + (self.follower is not None) - 1

    def kill_live(self) -> int:
        """``kill -9`` the live controller (and reap it); returns the instant of the kill. The
        follower becomes the live one at :meth:`promote`, once the journal shows its takeover."""
        assert self.live is not None
        at = self.live.kill9()
        self.live.stop()
        self.done.append(self.live)
        self.live = None
        return at

    def promote(self) -> _Child:
        """The follower has taken over: it is the live controller now."""
        assert self.follower is not None
        self.live, self.follower = self.follower, None
        return self.live

    def close(self) -> None:
        """Stop every controller still running (SIGTERM, then SIGKILL)."""
        for c in (self.live, self.follower):
            if c is not None:
                c.stop()
                self.done.append(c)
        self.live = self.follower = None


class Restarts(Controllers):
    """``restart`` mode: the follower is a new ``madang run ... --resume`` started right after
    the kill, reading the dead controller's journal (a service manager's restart)."""

    def start_primary(self) -> _Child:
        self.live = _Child("controller-0", self.args(0), self.folder)
        return self.live

    def start_follower(self) -> _Child:
        n = len(self.done)
        self.follower = _Child(f"controller-{n}", self.args(n, "--resume"), self.folder)
        return self.follower


class Standbys(Controllers):
    """``standby`` mode: each controller serves a hot standby on a port of its own
    (``--standby-port``) and keeps its own journal; the follower is ``madang run ...
    --standby-of tcp://127.0.0.1:PORT`` of the live one, started while it plays."""

    hot = True

    def __init__(self, show: Path, mapped: Path, broker: str, folder: Path) -> None:
        super().__init__(show, mapped, broker, folder)
        self.ports: list[int] = []

    def _args(self, n: int, *extra: str) -> list[str]:
        args = self.args(n, *extra)
        i = args.index("--journal")
        args[i + 1] = str(self.folder / f"journal-{n}")
        port = _free_tcp_port()
        self.ports.append(port)
        return [*args, "--standby-port", str(port)]

    def journal_of(self, n: int) -> Path:
        return self.folder / f"journal-{n}" / JOURNAL_FILE

    def start_primary(self) -> _Child:
        self.live = _Child("controller-0", self._args(0), self.folder)
        return self.live

    def start_follower(self) -> _Child:
        n = len(self.ports)
        primary = f"tcp://127.0.0.1:{self.ports[-1]}"
        self.follower = _Child(f"controller-{n}", self._args(n, "--standby-of", primary), self.folder)
        return self.follower


def _stepped_down_ns(log_text: str) -> int | None:
    """When a controller's log (``--log-json``) says it stepped down (wall clock, ns)."""
    for line in log_text.splitlines():
        if line.startswith("{") and '"stepped down' in line:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                return round(float(json.loads(line)["ts"]) * S)
    return None


def _free_tcp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _controllers(mode: str, show: Path, mapped: Path, broker: str, folder: Path) -> Controllers:
    if mode == "restart":
        return Restarts(show, mapped, broker, folder)
    if mode == "standby":
        return Standbys(show, mapped, broker, folder)
    raise FailoverBenchError(f"unknown --mode {mode!r}; give one of {', '.join(MODES)}")


def _resume_log(text: str, outage: Outage) -> None:
    """What a resumed controller logged about its takeover (``--log-json``): the missed actions
    (the runtime lists the first 20 with their devices; the core gives the count) and the
    commands its replay did not end as the journal says."""
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        msg = str(rec.get("msg", ""))
        if msg.startswith("the replay of a journalled command ended differently"):
            outage.mismatches += 1
        elif msg == "took over the show" and isinstance(rec.get("missed"), int):
            outage.missed_count = rec["missed"]
        elif msg.startswith("resumed the show") and isinstance(rec.get("missed"), list):
            outage.missed_listed = len(rec["missed"])
            for m in rec["missed"]:
                if isinstance(m, dict) and isinstance(m.get("seq"), int):
                    pairs = {(str(d), m["seq"]) for d in m.get("devices", ())}
                    (outage.uncertain if m.get("uncertain") else outage.missed).update(pairs)


def _wait(
    pred: Callable[[], int | None], timeout: float, what: str, child: _Child, watch: _JournalWatch
) -> int:
    """Read the journal until ``pred`` gives an instant; fail if ``child`` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        watch.read()
        got = pred()
        if got is not None:
            return got
        if not child.alive():
            watch.read()
            got = pred()
            if got is not None:
                return got
            raise FailoverBenchError(
                f"{child.name} exited ({child.proc.returncode}) before {what}; its log: {child.err_path}\n"
                + child.stderr()[-2000:]
            )
        if time.monotonic() > deadline:
            raise FailoverBenchError(
                f"timed out after {timeout:g} s waiting for {what}; see {child.err_path}"
            )
        time.sleep(POLL_S)


# ---------------------------------------------------------------------------------------------
# the record and the figures


def read_record(path: Path) -> list[dict[str, Any]]:
    """The devices' record (``madang simulate --record``): whole JSON lines (a torn last line,
    from a kill in the middle of a write, is dropped)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.endswith("}"):
            with contextlib.suppress(ValueError):
                rows.append(json.loads(line))
    return rows


def _pcts(values: Iterable[float], scale: float, name: str, *, top: bool = True) -> dict[str, float | None]:
    """``{name}_p50``, ``{name}_p99`` (and ``{name}_max`` with ``top``) of ``values / scale``."""
    a = np.asarray(list(values), dtype=np.float64) / scale
    keys = ("p50", "p99", "max") if top else ("p50", "p99")
    if a.size == 0:
        return {f"{name}_{k}": None for k in keys}
    p50, p99 = np.percentile(a, [50, 99])
    got = {"p50": float(p50), "p99": float(p99), "max": float(a.max())}
    return {f"{name}_{k}": round(got[k], 1) for k in keys}


def _keyed(venue: Venue, timeline: Timeline) -> dict[int, tuple[str, ...]]:
    """seq -> the devices that execute that action under its key (``app`` and ``timetag``; a
    fade's key only on ``app`` devices that run it themselves: frames streamed to the others
    carry none)."""
    sync = {d.id: d for d in venue.devices}
    out: dict[int, tuple[str, ...]] = {}
    for a in timeline.actions:
        if isinstance(a.op, Fade):
            devs = tuple(d for d in a.devices if sync[d].sync is Sync.APP and sync[d].interpolates)
        else:
            devs = tuple(d for d in a.devices if sync[d].sync in (Sync.APP, Sync.TIMETAG))
        if devs:
            out[a.seq] = devs
    return out


def analyse(
    timeline: Timeline,
    venue: Venue,
    rows: Sequence[Mapping[str, Any]],
    *,
    anchor_ns: int,
    end_ns: int | None,
    outages: Sequence[Outage],
    spread_window_ns: int = 3 * S,
) -> dict[str, Any]:
    """The figures of a run (pure): the devices' record ``rows`` against the timeline anchored
    at ``anchor_ns`` (show time 0 on the show clock), what was due up to ``end_ns`` (None: all),
    and the ``outages`` (kills and takeovers; what the new controllers reported missed)."""
    keyed = _keyed(venue, timeline)
    by_seq = {a.seq: a for a in timeline.actions}
    due = {seq: anchor_ns + by_seq[seq].at_ns for seq in keyed}
    windows = [(o.kill_ns, o.takeover_ns) for o in outages if o.takeover_ns is not None]
    took = [o for o in outages if o.takeover_ns is not None]  # in the order of windows

    def outage_of(t: int) -> int | None:
        return next((i for i, (k, tk) in enumerate(windows) if k <= t < tk), None)

    # executions and arrivals of keyed actions, per (device, seq)
    execs: dict[tuple[str, int], list[tuple[str, int]]] = defaultdict(list)  # -> [(key, true_ns)]
    arrivals: dict[tuple[str, int], int] = defaultdict(int)  # distinct keys received (first arrivals)
    for r in rows:
        seq = r.get("seq")
        if not isinstance(seq, int) or seq < 0 or seq not in keyed:
            continue
        dev, what, key, t = str(r["device_id"]), r["what"], str(r["key"]), int(r["true_ns"])
        if what in ("cue", "osc", "fade"):
            if (key, t) not in execs[(dev, seq)]:  # one bundle: several messages, one execution
                execs[(dev, seq)].append((key, t))
        elif what == "rx":
            arrivals[(dev, seq)] += 1

    expected = 0
    lost: list[tuple[str, int]] = []
    seen: list[set[tuple[str, int]]] = [set() for _ in took]  # never executed, due in outage i
    for seq, devs in keyed.items():
        t = due[seq]
        if end_ns is not None and t > end_ns:
            continue
        i = outage_of(t)
        for d in devs:
            expected += 1
            if (d, seq) in execs:
                continue
            if i is not None:
                seen[i].add((d, seq))
            else:
                lost.append((d, seq))
    # what each takeover reported missed, as (device, seq) of devices that execute keys
    reported = [{(d, s) for d, s in o.missed if s in keyed and d in keyed[s]} for o in took]
    # An uncertain report is right for the devices that never executed it (the others got it
    # from the dead controller before it died).
    uncertain = [{(d, s) for d, s in o.uncertain if s in keyed and d in keyed[s]} for o in took]
    reported = [r | {k for k in u if k not in execs} for r, u in zip(reported, uncertain, strict=True)]

    dup_same = dup_other = late = 0
    lateness: list[int] = []
    first: dict[tuple[str, int], int] = {}
    for (d, seq), ex in execs.items():
        first[(d, seq)] = min(t for _, t in ex)
        lateness.append(first[(d, seq)] - due[seq])
        if first[(d, seq)] - due[seq] > LATE_MS * MS:
            late += 1
        if len(ex) > 1:
            if len({k for k, _ in ex}) > 1 or arrivals.get((d, seq), 0) > 1:
                dup_other += len(ex) - 1
            else:
                dup_same += len(ex) - 1

    # spread: per cue instant (a cue's actions at one nominal time), over the devices' first execution
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for (_d, seq), t in first.items():
        a = by_seq[seq]
        groups[(a.cue, a.at_ns)].append(t)
    spreads: dict[int, int] = {}  # due instant -> spread
    for (_cue, at), ts in groups.items():
        if len(ts) > 1:
            spreads[anchor_ns + at] = max(ts) - min(ts)
    before = [
        s for t, s in spreads.items() if any(o.kill_ns - spread_window_ns <= t < o.kill_ns for o in outages)
    ]
    after = [
        s
        for t, s in spreads.items()
        if any(
            o.takeover_ns is not None and o.takeover_ns <= t < o.takeover_ns + spread_window_ns
            for o in outages
        )
    ]
    out: dict[str, Any] = {
        "expected": expected,
        "fired": sum(1 for k in execs if end_ns is None or due[k[1]] <= end_ns),
        "lost": len(lost),
        "missed_in_outage": sum(len(m) for m in seen),
        "missed_reported": sum(len(m) for m in reported),
        "missed_match": seen == reported,  # outage by outage
        "missed_but_fired": sum(1 for m in reported for k in m if k in execs),
        "missed_uncertain": sum(len(u) for u in uncertain),
        "uncertain_but_fired": sum(1 for u in uncertain for k in u if k in execs),
        "duplicated": dup_same + dup_other,
        "duplicated_same_key": dup_same,
        "duplicated_other_key": dup_other,
        "fired_late": late,
        "late_ms_max": round(max(lateness) / MS, 3) if lateness else None,
    }
    out.update(_pcts(spreads.values(), 1000, "spread_us"))
    out.update(_pcts(before, 1000, "spread_before_us", top=False))
    out.update(_pcts(after, 1000, "spread_after_us", top=False))
    out["spread_window_s"] = spread_window_ns / S
    out["cues_before"] = len(before)
    out["cues_after"] = len(after)
    cue_of = {a.seq: a.cue for a in timeline.actions}
    out["lost_keys"] = [
        {"device": d, "cue": cue_of[s], "seq": s, "due_ms": round((due[s] - anchor_ns) / MS, 1)}
        for d, s in sorted(lost, key=lambda x: (x[1], x[0]))[:20]
    ]
    return out


# ---------------------------------------------------------------------------------------------
# the run


def run(
    *,
    kills: int = 20,
    mode: str = "restart",
    seed: int = 1,
    profile: str = "lan",
    every_s: float = 0.75,
    live_s: tuple[float, float] = (1.5, 4.0),
    tail_s: float = 4.0,
    keep: Path | None = None,
) -> dict[str, Any]:
    """``madang bench failover``: play the bench show on a simulated venue and ``kill -9`` the
    live controller ``kills`` times, each a random (``seed``) ``live_s`` seconds after the
    controller became live; returns the figures (module docstring). ``keep``: leave the run's
    files (show, journal, record, every controller's log and report) in that folder."""
    if mode not in MODES:
        raise FailoverBenchError(f"unknown --mode {mode!r}; give one of {', '.join(MODES)}")
    t_wall = time.monotonic()
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="madang-failover-")) if keep is None else keep
    folder.mkdir(parents=True, exist_ok=True)
    try:
        result = _run(folder, kills, mode, seed, profile, every_s, live_s, tail_s, rng, t_wall, keep)
    except FailoverBenchError as err:
        err.what += f" (the run's files are kept in {folder})"
        raise
    if keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _run(
    folder: Path,
    kills: int,
    mode: str,
    seed: int,
    profile: str,
    every_s: float,
    live_s: tuple[float, float],
    tail_s: float,
    rng: random.Random,
    t_wall: float,
    keep: Path | None,
) -> dict[str, Any]:
    # A show long enough for every kill even if each restart took 3 s.
    show_s = 10.0 + kills * (live_s[1] + 3.0) + tail_s
    ncues = max(4, math.ceil(show_s / every_s))
    shutil.copy(VENUE, folder / VENUE.name)
    show = folder / "failover-show.yaml"
    show.write_text(bench_show(ncues, every_s, VENUE.name), encoding="utf-8")

    venue = _Venue(folder / VENUE.name, folder, seed=seed, profile=profile)
    ctl: Controllers | None = None
    outages: list[Outage] = []
    spurious: list[int] = []  # instants a standby took over from a live primary (not a kill)
    try:
        venue.wait_ready()
        timeline, mapped = compile_show(show, venue_path=venue.mapped)
        ctl = _controllers(mode, show, venue.mapped, venue.broker, folder)
        watch = _JournalWatch(ctl.journal_of(0))
        live = ctl.start_primary()
        live_ns = _wait(lambda: watch.first_sent(watch.go_ns), LIVE_TIMEOUT_S, "the GO and its first send",
                        live, watch)  # fmt: skip
        i = 0
        while i < kills:
            fwatch = watch
            standby: _Child | None = None
            if ctl.hot:
                # A standby is started, and the kill is timed from when it is in step (it has
                # mirrored a send released after it started).
                standby = ctl.start_follower()
                fwatch = _JournalWatch(ctl.journal_of(ctl.last_index))
                live_ns = _wait(
                    lambda sb=standby, fw=fwatch: fw.first_sent(sb.started_ns),  # type: ignore[misc]
                    TAKEOVER_TIMEOUT_S, f"standby {i + 1} to follow", standby, fwatch,
                )  # fmt: skip
            kill_at = live_ns + round(rng.uniform(*live_s) * S)
            spurious_ns: int | None = None
            while time.time_ns() < kill_at and live.alive():
                time.sleep(min(POLL_S, max(0.0, (kill_at - time.time_ns()) / S)))
                watch.read()
                if standby is not None:
                    fwatch.read()
                    spurious_ns = fwatch.term_after(standby.started_ns)
                    if spurious_ns is not None:
                        break
            if spurious_ns is not None and standby is not None:
                # The standby took over from a live primary that it took for dead (a heartbeat
                # gap: a loaded machine); the primary stepped down. Not a kill: counted apart.
                deposed = ctl.kill_live()
                down = _stepped_down_ns(ctl.done[-1].stderr()) or deposed
                spurious.append(down)
                false = Outage(kill_ns=min(down, spurious_ns), spurious=True, takeover_ns=spurious_ns)
                outages.append(false)
                live = ctl.promote()
                _resume_log(live.stderr(), false)
                live_ns = spurious_ns
                watch = fwatch
                continue
            if not live.alive():
                break  # the show ended before this kill
            i += 1
            kill_ns = ctl.kill_live()
            outage = Outage(kill_ns=kill_ns)
            outages.append(outage)
            follower = ctl.follower if ctl.hot else ctl.start_follower()
            assert follower is not None
            if not ctl.hot:
                outage.start_ns = follower.started_ns
            term_ns = _wait(functools.partial(fwatch.term_after, kill_ns), TAKEOVER_TIMEOUT_S,
                            f"takeover {i}", follower, fwatch)  # fmt: skip
            outage.term = max(t for t, at in fwatch.terms.items() if at == term_ns)
            outage.takeover_ns = term_ns
            first = functools.partial(fwatch.first_sent, term_ns)
            outage.first_send_ns = _wait(first, TAKEOVER_TIMEOUT_S, f"the first send after takeover {i}",
                                         follower, fwatch)  # fmt: skip
            live = ctl.promote()
            live_ns = term_ns
            watch = fwatch
            _resume_log(live.stderr(), outage)
        # The last controller plays on a little, then stops (unless the show ends first).
        until = time.monotonic() + tail_s
        while time.monotonic() < until and live.alive():
            time.sleep(POLL_S)
            watch.read()
        ctl.close()
        watch.read()
    finally:
        if ctl is not None:
            ctl.close()
        venue.child.stop()
    rows = read_record(venue.record)
    if watch.go_ns is None or not watch.due:
        raise FailoverBenchError(f"the journal holds no GO or no sends: see {folder}")
    by_seq = {a.seq: a for a in timeline.actions}
    offsets = {due - by_seq[seq].at_ns for seq, due in watch.due.items() if seq in by_seq}
    anchor = min(offsets)
    figures = analyse(timeline, mapped, rows, anchor_ns=anchor, end_ns=watch.end_ns, outages=outages)
    took = [o for o in outages if o.takeover_ns is not None and not o.spurious]
    result: dict[str, Any] = {
        "bench": "failover",
        "mode": mode,
        "kills": kills,
        "takeovers": len(took),
        "seed": seed,
        "profile": profile,
        "devices": {
            "timetag": sum(1 for d in mapped.devices if d.sync is Sync.TIMETAG),
            "app": sum(1 for d in mapped.devices if d.sync is Sync.APP),
        },
        "cue_every_s": every_s,
        "show_played_s": round(((watch.end_ns or time.time_ns()) - anchor) / S, 1),
    }
    result.update(_pcts((o.takeover_ns - o.kill_ns for o in took if o.takeover_ns), MS, "takeover_ms"))
    result.update(
        _pcts((o.first_send_ns - o.kill_ns for o in took if o.first_send_ns), MS, "first_cue_send_ms")
    )
    if mode == "restart":
        resumes = [o.takeover_ns - o.start_ns for o in took if o.takeover_ns and o.start_ns]
        result.update(_pcts(resumes, MS, "resume_ms"))
        result["resume_goal_ms"] = RESUME_GOAL_MS
        result["resume_over_goal"] = sum(1 for r in resumes if r > RESUME_GOAL_MS * MS)
    result.update(figures)
    result["missed_reported_truncated"] = sum(
        1 for o in took if o.missed_count is not None and o.missed_count > o.missed_listed
    )
    result["replay_mismatches"] = sum(o.mismatches for o in took)
    # A standby that took over from a live primary it took for dead (heartbeats held up on a
    # loaded machine): never two live (the primary stepped down), but a takeover nobody asked for.
    result["spurious_takeovers"] = len(spurious)
    result["anchor_disagreements"] = len(offsets) - 1
    result["failovers"] = [
        {
            "kill_s": round((o.kill_ns - anchor) / S, 3),
            "takeover_ms": None if o.takeover_ns is None else round((o.takeover_ns - o.kill_ns) / MS, 1),
            "first_cue_send_ms": None
            if o.first_send_ns is None
            else round((o.first_send_ns - o.kill_ns) / MS, 1),
            "resume_ms": None
            if o.start_ns is None or o.takeover_ns is None
            else round((o.takeover_ns - o.start_ns) / MS, 1),
            "missed": o.missed_count,
        }
        for o in outages
    ]
    result["cpus"] = os.cpu_count()
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    result["wall_s"] = round(time.monotonic() - t_wall, 1)
    if keep is not None:
        result["files"] = str(keep)
    return result

