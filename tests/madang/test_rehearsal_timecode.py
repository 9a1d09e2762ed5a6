"""``madang run --simulate`` honours the timecode options as ``madang run`` does: tried as an
operator, ``--chase artnet:PORT`` on a rehearsal was silently ignored (the show never followed)."""

from __future__ import annotations

from pathlib import Path

from cues.compiler import compile_show
from madang import cli, rehearsal

SHOW = Path(__file__).resolve().parents[2] / "config" / "shows" / "gwanghwamun-light-gate.yaml"


def test_a_rehearsal_gets_the_chase_and_timecode_out_options() -> None:
    chase = ["--chase", "artnet:16454", "--timecode-out", "artnet:127.0.0.1:16455"]
    args = cli._parser().parse_args(["run", str(SHOW), "--simulate", *chase])
    timeline, _ = compile_show(SHOW)
    opts = rehearsal._web(args, timeline)
    tc = opts["timecode"]
    assert tc is not None and tc.chase is not None and tc.out is not None
    assert (tc.chase.kind, tc.chase.port) == ("artnet", 16454)
    assert (tc.out.kind, tc.out.host, tc.out.port) == ("artnet", "127.0.0.1", 16455)


def test_a_rehearsal_without_timecode_options_has_none() -> None:
    args = cli._parser().parse_args(["run", str(SHOW), "--simulate"])
    timeline, _ = compile_show(SHOW)
    assert rehearsal._web(args, timeline)["timecode"] is None
