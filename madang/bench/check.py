"""``madang bench check``: how long checking a big show takes.

:func:`bench_check` writes a venue (40 facades on OSC, 1,200 headsets on MQTT) and a show of
``cues`` cues to a temporary directory, every cue with a mix of OSC, MQTT and fade actions, a
third of them as timelines, some through a template, and times :func:`cues.check.check_show`
end to end (reading, YAML, validation, compiling, cross-checks). This measures; it asserts
nothing. ``python3 -m madang.bench.check [CUES]`` prints the JSON on one line.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from cues.check import check_show

__all__ = ["bench_check", "bench_show_yaml", "bench_venue_yaml"]

_ZONES = ("yeouido", "banpo", "ttukseom")
_EASES = ("linear", "in-out-cubic", "out-quad", "in-sine", "cubic-bezier(0.2, 0, 0.1, 1)", "steps(4)")
_GO = ("auto-follow", "auto-continue", "auto-follow", "manual")


def bench_venue_yaml(headsets: int = 1200) -> str:
    """A venue file with facades in three zones and ``headsets`` MQTT headsets."""
    lines = [
        "venue: bench-river",
        "name: Bench River",
        f"zones: [{', '.join(_ZONES)}]",
        "devices:",
    ]
    for z, zone in enumerate(_ZONES):
        lines += [
            f"  - id: facade-{zone}-{{01..14}}",
            "    kind: facade",
            f"    zone: {zone}",
            "    sync: timetag",
            f"    osc: {{host: 127.0.0.1, port: '{9100 + 100 * z}+'}}",
        ]
    lines += [
        f"  - id: xr-{{0001..{headsets:04d}}}",
        "    kind: xr",
        "    zone: banpo",
        "    sync: app",
        "    mqtt: {}",
        "groups:",
        "  facades: kind:facade",
        "  audience: kind:xr",
    ]
    return "\n".join(lines) + "\n"


def bench_show_yaml(cues: int) -> str:
    """A show file of ``cues`` cues against :func:`bench_venue_yaml`."""
    out = [
        "show: Bench Show",
        "venue: bench-river.yaml",
        "tempo: {bpm: 120, meter: 4/4}",
        "fps: 30",
        "templates:",
        "  flash:",
        "    params: [who]",
        "    actions:",
        "      - osc: {targets: '${who}', address: /flash, args: [1]}",
        "      - at: 250ms",
        "        osc: {targets: '${who}', address: /flash, args: [0]}",
        "cues:",
    ]
    for i in range(cues):
        zone = _ZONES[i % 3]
        ease = _EASES[i % len(_EASES)]
        out += [
            f"  - id: c{i:05d}",
            f'    name: "Bloom {i} over {zone}"',
            f"    go: {_GO[i % len(_GO)] if i else 'manual'}",
            "    pre_wait: 250ms",
        ]
        if i % 5 == 4:
            out += ["    use: flash", f"    with: {{who: 'zone:{zone} & kind:facade'}}"]
            continue
        key = "timeline" if i % 3 == 0 else "actions"
        out += [
            f"    {key}:",
            "      - at: 0",
            f"        osc: {{targets: 'kind:facade & zone:{zone}', address: /scene/{i % 40}, "
            f"args: [{i % 17}, 0.5]}}",
            f"      - at: {'00:00:01:15' if i % 2 else '1.5s'}",
            "        fade: {targets: facades, param: brightness, from: 0.2, to: 0.9, "
            f"over: {1 + i % 4}s, ease: '{ease}'}}",
            f"      - at: {'2.1' if i % 2 else '00:02.500'}",
            "        mqtt: {targets: audience, topic: 'xr/{device}/video', "
            "payload: {clip: bloom.mp4, seek: 0}}",
        ]
    return "\n".join(out) + "\n"


def bench_check(cues: int = 5000, *, repeat: int = 3) -> dict[str, object]:
    """Time :func:`check_show` on a generated ``cues``-cue show; the best of ``repeat`` runs.

    Returns ``{"cues", "actions", "bytes", "ok", "errors", "check_ms", "runs_ms", "cpu_ms",
    "cpu_runs_ms", "loadavg_1m"}``: ``check_ms`` is wall time, ``cpu_ms`` this process's CPU time
    (``time.process_time``), the figure to trust on a shared machine.
    """
    with tempfile.TemporaryDirectory(prefix="madang-bench-") as tmp:
        d = Path(tmp)
        (d / "bench-river.yaml").write_text(bench_venue_yaml(), encoding="utf-8")
        show = d / "bench-show.yaml"
        show.write_text(bench_show_yaml(cues), encoding="utf-8")
        runs: list[float] = []
        cpu: list[float] = []
        report = None
        for _ in range(max(1, repeat)):
            report = None  # free the previous run's objects before timing the next
            c0 = time.process_time()
            t0 = time.perf_counter()
            report = check_show(show)
            runs.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        assert report is not None
        t = report.timeline
        return {
            "cues": cues,
            "actions": len(t.actions) if t is not None else 0,
            "bytes": show.stat().st_size,
            "ok": report.ok,
            "errors": [str(f) for f in report.errors[:5]],
            "check_ms": round(min(runs), 1),
            "runs_ms": [round(r, 1) for r in runs],
            "cpu_ms": round(min(cpu), 1),
            "cpu_runs_ms": [round(r, 1) for r in cpu],
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(bench_check(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)))
