"""Clean exits of the real ``madang`` process, as an operator, a service manager or a crash ends
it: nothing of the run is left behind (its Mosquitto, its headset process), a signal stops the
show with exit 0 and no traceback, and scripted runs end.

Every run here is a process in its own session (as a terminal or a service manager starts it);
its children are found by their parent (``/proc``) while it runs, and must be gone after, polled
with a generous bound.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from tests.integration.conftest import REPO, free_udp_port, wait_until

pytestmark = pytest.mark.integration

SIM = REPO / "tests" / "data" / "sim"
SIM_YARD = SIM / "sim-yard.yaml"
SIM_GOS = SIM / "sim-yard-gos.yaml"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": os.environ.get("PATH", "") + ":/usr/sbin"}
WAIT_S = 120.0  # generous: 200 headsets connecting on a loaded 2-core machine


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(pid: int) -> dict[int, str]:
    """The live child processes of ``pid``: ``{pid: command line}``."""
    out: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat(int(entry))
        if st is None or int(st[1]) != pid or st[0] == "Z":
            continue
        try:
            out[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return out


def alive(pids: dict[int, str]) -> dict[int, str]:
    """Those of ``pids`` still running the same command (a zombie, or a reused pid, is gone)."""
    out = {}
    for pid, cmd in pids.items():
        st = _stat(pid)
        try:
            same = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode() == cmd
        except OSError:
            same = False
        if st is not None and st[0] != "Z" and same:
            out[pid] = cmd
    return out


def assert_all_gone(pids: dict[int, str]) -> None:
    deadline = time.monotonic() + 60
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pids), f"left behind: {alive(pids)}"


class Madang:
    """``python -m madang ARGS`` in its own session, output in files, a control-port client."""

    def __init__(self, *args: str, control_port: int | None = None) -> None:
        self.control_port = control_port
        self._out = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._err = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "madang", *args],
            cwd=REPO,
            stdout=self._out,
            stderr=self._err,
            text=True,
            env=ENV,
            start_new_session=True,
        )
        self._ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._ctl.bind(("127.0.0.1", 0))
        self.stdout = self.stderr = ""

    def state(self) -> str | None:
        """The transport state from ``/state`` on the control port (None: no answer yet)."""
        assert self.control_port is not None
        self._ctl.sendto(OscMessageBuilder("/state").build().dgram, ("127.0.0.1", self.control_port))
        self._ctl.settimeout(0.3)
        try:
            data, _ = self._ctl.recvfrom(65536)
        except TimeoutError:
            return None
        body = json.loads(OscMessage(data).params[0])
        state: str | None = (body.get("data") or {}).get("state")
        return state

    def until_playing(self) -> None:
        def playing() -> bool:
            assert self.proc.poll() is None, f"madang exited early:\n{self.read()[1][-3000:]}"
            return self.state() == "playing"

        wait_until(playing, WAIT_S, "the show to play")

    def output(self, text: str) -> bool:
        """Whether ``text`` has appeared on stdout so far."""
        self._out.seek(0)
        return text in self._out.read()

    def wait(self, timeout: float = WAIT_S) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"madang did not exit:\n{self.read()[1][-3000:]}") from None
        self.stdout, self.stderr = self.read()
        return code

    def read(self) -> tuple[str, str]:
        self._out.seek(0)
        self._err.seek(0)
        return self._out.read(), self._err.read()

    def close(self) -> None:
        self._ctl.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
        self._err.close()


@pytest.fixture
def madang() -> Iterator[type[Madang]]:
    started: list[Madang] = []

    class Tracked(Madang):
        def __init__(self, *args: str, control_port: int | None = None) -> None:
            super().__init__(*args, control_port=control_port)
            started.append(self)

    yield Tracked
    for m in started:
        m.close()


def venue_with_headsets(tmp_path: Path, n: int = 200) -> Path:
    """The sim-yard venue with ``n`` headsets: at 200 and more they run in the headset process."""
    text = (SIM / "sim-yard-venue.yaml").read_text(encoding="utf-8")
    half = n // 2
    text = text.replace("xr-{1..3}", f"xr-{{001..{half:03d}}}")
    text = text.replace("xr-{4..6}", f"xr-{{{half + 1:03d}..{n:03d}}}")
    path = tmp_path / "venue-headsets.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _start_show(madang: type[Madang], tmp_path: Path, *extra: str) -> tuple[Madang, dict[int, str]]:
    """``madang run --simulate`` of the sim-yard show at a tenth of its speed (so it still plays
    when signalled), with 200 headsets; returns it, playing, and its children."""
    port = free_udp_port()
    m = madang(
        "run", str(SIM_YARD), "--venue", str(venue_with_headsets(tmp_path)), "--simulate", "--go",
        "--rate", "0.1", "--no-view", "--control-port", str(port), *extra,
        control_port=port,
    )  # fmt: skip
    m.until_playing()
    kids = children(m.proc.pid)
    assert any("mosquitto" in c for c in kids.values()), kids
    assert any("multiprocessing" in c for c in kids.values()), f"no headset process: {kids}"
    return m, kids


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_show_cleanly_and_ends_every_child(
    madang: type[Madang], tmp_path: Path, sig: signal.Signals
) -> None:
    report = tmp_path / "report.json"
    m, kids = _start_show(madang, tmp_path, "--report", str(report))
    # SIGINT as a terminal's Ctrl-C sends it: to the whole foreground group (the headset process
    # too); SIGTERM as `kill PID` does: to madang alone.
    if sig is signal.SIGINT:
        os.killpg(m.proc.pid, sig)
    else:
        m.proc.send_signal(sig)
    code = m.wait()
    assert code == 0, m.stderr[-3000:]
    for bad in ("Traceback", "KeyboardInterrupt", "EOFError"):
        assert bad not in m.stderr, m.stderr[-3000:]
    assert f"{sig.name}: stopping the show (devices to their safe state)" in m.stderr
    assert json.loads(report.read_text(encoding="utf-8"))["controller"]["counters"]  # the report was written
    assert_all_gone(kids)


def test_kill_9_of_madang_leaves_no_broker_and_no_headset_process(
    madang: type[Madang], tmp_path: Path
) -> None:
    m, kids = _start_show(madang, tmp_path)
    m.proc.kill()
    m.wait()
    assert_all_gone(kids)


def test_go_all_exit_at_end_plays_every_manual_go_to_the_end(
    madang: type[Madang], tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    m = madang(
        "run", str(SIM_GOS), "--simulate", "--go-all", "--exit-at-end", "--no-view", "--control-port", "-1",
        "--report", str(report),
    )  # fmt: skip
    assert m.wait() == 0, m.stderr[-3000:]
    assert "Traceback" not in m.stderr
    r = json.loads(report.read_text(encoding="utf-8"))
    assert list(dict.fromkeys(c["cue"] for c in r["cues"])) == ["open", "river", "finale"]  # every GO played
    assert r["missed"] == 0


def test_go_exit_at_end_on_a_multi_go_show_ends_at_the_second_go_and_says_why(
    madang: type[Madang], tmp_path: Path
) -> None:
    m = madang(
        "run", str(SIM_GOS), "--simulate", "--go", "--exit-at-end", "--no-view", "--control-port", "-1"
    )  # fmt: skip
    assert m.wait() == 3, m.stderr[-3000:]  # it used to wait forever
    assert "Traceback" not in m.stderr
    assert "the show stopped at cue 'river': it waits for a manual GO" in m.stderr
    assert "--go-all" in m.stderr


def test_simulate_record_is_written_as_it_goes_and_complete_after_sigterm(
    madang: type[Madang], tmp_path: Path
) -> None:
    record = tmp_path / "out" / "record.jsonl"
    m = madang("simulate", str(SIM / "sim-yard-venue.yaml"), "--record", str(record))
    wait_until(lambda: m.output("ready;") or m.proc.poll() is not None, WAIT_S, "the simulator to be ready")
    assert m.proc.poll() is None, m.read()[1][-3000:]
    kids = children(m.proc.pid)
    assert any("mosquitto" in c for c in kids.values()), kids
    # Drive the displays as a controller would: plain OSC, executed on receipt and recorded.
    out, _ = m.read()
    ports = [
        int(line.split("udp://127.0.0.1:")[1].split()[0]) for line in out.splitlines() if "udp://" in line
    ]
    assert len(ports) == 4, out
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(n: int) -> None:
        for port in ports:
            tx.sendto(_scene(n), ("127.0.0.1", port))

    try:
        send(1)

        def rows() -> list[dict[str, object]]:
            text = record.read_text(encoding="utf-8") if record.exists() else ""
            return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

        # Written as it goes: the rows are in the file while the simulator still runs.
        wait_until(lambda: len([r for r in rows() if r["what"] == "osc"]) >= 4, WAIT_S, "rows in the record")
        send(2)  # then stopped right after: these must be in the record too
        time.sleep(0.5)
        m.proc.send_signal(signal.SIGTERM)
        assert m.wait() == 0, m.stderr[-3000:]
    finally:
        tx.close()
    assert "Traceback" not in m.stderr
    lines = record.read_text(encoding="utf-8").splitlines()
    parsed = [json.loads(line) for line in lines]  # every line whole
    scenes = sorted((r["device_id"], int(_first(r["value"]))) for r in parsed if r["what"] == "osc")
    assert scenes == sorted((d, n) for d in ("disp-e", "disp-n", "disp-t1", "disp-t2") for n in (1, 2))
    assert_all_gone(kids)


def _scene(n: int) -> bytes:
    b = OscMessageBuilder("/scene")
    b.add_arg(n)
    return b.build().dgram


def _first(value: object) -> float:
    """A recorded OSC value: the first argument (a list), or the only one."""
    v = value[0] if isinstance(value, list) else value
    assert isinstance(v, int | float), value
    return v
