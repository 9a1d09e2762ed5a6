"""Generate show-like YAML files for tests and the loader benchmark.

``python3 tests/venues/venue_showgen.py`` prints a JSON line with the time :func:`venues.load_yaml`
takes on a 5,000-cue show (about 3 MB), best of a few runs.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

_EASES = ("linear", "in-out-cubic", "out-quad", "in-sine", "out-back")
_ZONES = ("yeouido", "banpo", "ttukseom")


def show_yaml(cues: int = 5000, *, seed: int = 7) -> str:
    """A show-like YAML text with ``cues`` cues, anchors, merge keys, flow and block styles."""
    out = [
        "# generated show for the loader benchmark",
        "show: han-river-night-bloom",
        "venue: han-river",
        "tempo: {bpm: 96, signature: 4/4}",
        "defaults: &defaults",
        "  go: auto-follow",
        "  pre_wait: 250ms",
        "  post_wait: 0s",
        "cues:",
    ]
    n = seed
    for i in range(cues):
        n = (n * 1103515245 + 12345) % 2**31
        zone = _ZONES[n % 3]
        ease = _EASES[n % len(_EASES)]
        out.append(f"  - id: c{i:05d}")
        out.append(f'    name: "Bloom {i} over {zone}"')
        if i % 7 == 0:
            out.append("    <<: *defaults")
        else:
            out.append("    go: manual" if i % 5 == 0 else "    go: auto-continue")
        out.append(f"    at: {i // 60:02d}:{i % 60:02d}.{n % 1000:03d}")
        out.append(f"    note: 'cue {i}: colour wash, keep it calm; no strobe'")
        out.append("    actions:")
        out.append(f'      - target: "kind:facade & zone:{zone}"')
        args = f'[{n % 100 / 100}, {n % 17}, "{{zone}}"]'
        out.append(f"        osc: {{address: /scene/{n % 40}, args: {args}}}")
        out.append("        at: 0s")
        out.append("      - target: audience")
        out.append("        fade:")
        out.append("          param: brightness")
        out.append(f"          from: {n % 10 / 10}")
        out.append(f"          to: {(n // 10) % 10 / 10}")
        out.append(f"          duration: {1 + n % 8}s")
        out.append(f"          ease: {ease}")
        out.append(f"      - target: xr-{1 + n % 1200:04d}")
        out.append("        mqtt:")
        out.append("          topic: xr/{device}/video")
        loop = "true" if i % 2 == 0 else "false"
        out.append(f"          payload: {{clip: bloom-{n % 30}.mp4, seek: 0, loop: {loop}}}")
        out.append("          qos: 1")
        out.append(f"        at: {n % 4}.{n % 10}s")
    return "\n".join(out) + "\n"


def main() -> None:
    """Write a 5,000-cue show to a temporary file and time ``load_yaml`` on it."""
    from venues.source import load_yaml

    cues = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    text = show_yaml(cues)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big-show.yaml"
        path.write_text(text, encoding="utf-8")
        times = []
        cpu = []
        for _ in range(5):
            t0, c0 = time.perf_counter(), time.process_time()
            doc = load_yaml(path)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        # The floor: libyaml producing ruamel's Python event objects, with nothing built.
        from _ruamel_yaml import CParser

        floor = []
        for _ in range(3):
            c0 = time.process_time()
            parser = CParser(text)
            while type(parser.get_event()).__name__ != "StreamEndEvent":
                pass
            floor.append(time.process_time() - c0)
    print(
        json.dumps(
            {
                "benchmark": "venues.load_yaml",
                "cues": cues,
                "bytes": len(text.encode()),
                "values_marked": len(doc.marks),
                "best_s": round(min(times), 4),
                "median_s": round(sorted(times)[len(times) // 2], 4),
                "best_cpu_s": round(min(cpu), 4),
                "events_only_cpu_s": round(min(floor), 4),
            }
        )
    )


if __name__ == "__main__":
    main()
