"""Includes and templates: expansion, positions, and every way they can go wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cues.check import CheckReport, check_loaded
from cues.loader import load_show
from cues.timeline import Fade, MqttSend, OscSend
from tests.cues.cue_helpers import HEADER
from venues.model import Venue

Check = Callable[..., CheckReport]
Write = Callable[..., Path]


def test_include_appends_cues_in_order(write: Write, venue: Venue) -> None:
    write("parts/act2.yaml", "include: [more/act3.yaml]\ncues:\n  - id: c\n  - id: d\n")
    write("parts/more/act3.yaml", "cues:\n  - id: e\n    go: auto-follow\n    duration: 1s\n")
    main = write("show.yaml", HEADER + "include: [parts/act2.yaml]\ncues:\n  - id: a\n  - id: b\n")
    loaded = load_show(main)
    assert loaded.findings == []
    assert [c.cue.id for c in loaded.cues] == ["a", "b", "c", "d", "e"]
    assert loaded.cues[4].where.mark().file.endswith("parts/more/act3.yaml")
    assert loaded.files[-1].endswith("act3.yaml")
    r = check_loaded(loaded, venue)
    assert r.ok and r.timeline is not None and r.timeline.duration_ns == 10**9


def test_missing_include_is_positioned_with_a_suggestion(write: Write) -> None:
    write("parts/act2.yaml", "cues: []\n")
    main = write("show.yaml", HEADER + "include:\n  - parts/act-2.yaml\ncues: []\n")
    (f,) = load_show(main).findings
    assert f.mark is not None and (f.mark.line, f.mark.col) == (6, 5)
    assert "not found" in f.message and "parts/act2.yaml" in f.hint


def test_include_loop(write: Write) -> None:
    write("a.yaml", "include: [b.yaml]\ncues: [{id: a}]\n")
    write("b.yaml", "include: [a.yaml]\ncues: [{id: b}]\n")
    main = write("show.yaml", HEADER + "include: [a.yaml]\ncues: []\n")
    loaded = load_show(main)
    (f,) = loaded.findings
    assert f.mark is not None and f.mark.file.endswith("b.yaml") and f.mark.line == 1
    assert "include loop: a.yaml -> b.yaml -> a.yaml" in f.message
    assert [c.cue.id for c in loaded.cues] == ["a", "b"]


def test_self_include(write: Write) -> None:
    main = write("show.yaml", HEADER + "include: show.yaml\ncues: []\n")
    (f,) = load_show(main).findings
    assert "include loop: show.yaml -> show.yaml" in f.message


def test_included_file_may_not_set_the_header(write: Write) -> None:
    write("part.yaml", "venue: elsewhere\ncues: []\n")
    main = write("show.yaml", HEADER + "include: [part.yaml]\ncues: []\n")
    (f,) = load_show(main).findings
    assert f.mark is not None and f.mark.file.endswith("part.yaml") and "venue" in f.message


def test_bad_yaml_in_an_include_is_reported_there(write: Write) -> None:
    write("part.yaml", "cues:\n  - id: a\n   bad: indent\n")
    main = write("show.yaml", HEADER + "include: [part.yaml]\ncues: []\n")
    fs = load_show(main).findings
    assert fs and all(f.mark is not None and f.mark.file.endswith("part.yaml") for f in fs)


TEMPLATES = """\
templates:
  flash:
    params: [who, level]
    defaults: {level: 1.0}
    actions:
      - osc: {targets: "${who}", address: /flash, args: ["${level}", "at ${level}"]}
      - at: 250ms
        fade: {targets: "${who}", param: brightness, to: "${level}", over: 1s}
  double:
    params: [who]
    use: flash
    with: {who: "${who}", level: 0.5}
    timeline:
      - at: 2s
        mqtt: {targets: audience, topic: "xr/{device}/x", payload: {who: "${who}"}}
"""


def test_template_expansion(check: Check) -> None:
    r = check(
        TEMPLATES
        + """\
cues:
  - id: a
    use: flash
    with: {who: barges}
  - id: b
    use: double
    with: {who: facades}
    actions:
      - osc: {targets: fountain, address: /own}
"""
    )
    assert r.findings == []
    t = r.timeline
    assert t is not None
    a = t.actions_by_cue["a"]
    assert [type(x.op) for x in a] == [OscSend, Fade]
    assert a[0].op == OscSend("/flash", (1.0, "at 1.0"))  # a whole "${level}" keeps its type
    assert a[0].devices == ("barge-1", "barge-2")
    assert isinstance(a[1].op, Fade) and a[1].op.end == 1.0
    b = t.actions_by_cue["b"]
    ops = [x.op for x in b]
    assert ops[0] == OscSend("/flash", (0.5, "at 0.5"))
    assert isinstance(ops[-1], MqttSend) and ops[-1].payload == {"who": "facades"}
    assert any(isinstance(o, OscSend) and o.address == "/own" for o in ops)
    # marks of template actions point at the cue's use:, the line an operator can act on
    assert {x.mark.line for x in a if x.mark} == {22}


def test_template_errors(check: Check) -> None:
    r = check(
        TEMPLATES
        + """\
cues:
  - id: a
    use: flash
  - id: b
    use: flahs
    with: {who: barges}
  - id: c
    use: flash
    with: {who: barges, lvl: 2}
  - id: d
    use: flash
    with: {who: nowhere}
  - id: e
    with: {who: barges}
"""
    )
    msgs = {f.mark.line if f.mark else 0: str(f) for f in r.errors}
    assert "needs 'who'" in msgs[22]
    assert "unknown template 'flahs'" in msgs[24] and "did you mean 'flash'?" in msgs[24]
    assert "no parameter 'lvl'" in msgs[28] and "did you mean 'level'?" in msgs[28]
    # a bad value given to a template: reported in the template, saying which use
    assert "nowhere" in msgs[10] and "used by cue 'd'" in msgs[10]
    assert "add 'use: <template>'" in msgs[32]


def test_template_loop_and_unknown_param(check: Check) -> None:
    r = check(
        """\
templates:
  ping:
    use: pong
  pong:
    use: ping
  oops:
    params: [who]
    actions:
      - osc: {targets: "${whom}", address: /x}
cues:
  - id: a
    use: ping
  - id: b
    use: oops
    with: {who: barges}
"""
    )
    text = "\n".join(str(f) for f in r.errors)
    assert "template loop: ping -> pong -> ping" in text
    assert "${whom}" in text and "did you mean 'who'?" in text


def test_template_value_errors_name_the_use(check: Check) -> None:
    r = check(
        """\
templates:
  wait:
    params: [t]
    actions:
      - at: "${t}"
        osc: {targets: barges, address: /x}
cues:
  - id: ok
    use: wait
    with: {t: 2s}
  - id: bad
    use: wait
    with: {t: -1s}
"""
    )
    (f,) = r.errors
    assert f.mark is not None and f.mark.line == 9 and "negative" in f.message
    assert "used by cue 'bad'" in f.hint


def test_template_used_again_with_the_same_values(check: Check) -> None:
    # The expanded body is built once per (template, values); each use keeps its own marks and
    # "used by" note, and a bad value is reported at every use that gives it.
    r = check(
        """\
templates:
  wait:
    params: [t, who]
    actions:
      - at: "${t}"
        osc: {targets: "${who}", address: /x}
cues:
  - id: a
    use: wait
    with: {t: 2s, who: barges}
  - id: b
    use: wait
    with: {t: 2s, who: barges}
  - id: c
    use: wait
    with: {t: 2, who: barges}
  - id: d
    use: wait
    with: {t: -1s, who: barges}
  - id: e
    use: wait
    with: {t: -1s, who: barges}
"""
    )
    bad = [f for f in r.errors if "negative" in f.message]
    assert [f.hint.rsplit("used by ", 1)[1].split(" ")[1] for f in bad] == ["'d'", "'e'"]
    assert all(f.mark is not None and f.mark.line == 9 for f in bad)  # the at: (after a 4-line header)
    clean = check(
        """\
templates:
  wait:
    params: [t, who]
    actions:
      - at: "${t}"
        osc: {targets: "${who}", address: /x}
cues:
  - id: a
    use: wait
    with: {t: 2s, who: barges}
  - id: b
    go: auto-continue
    use: wait
    with: {t: 2s, who: barges}
  - id: c
    go: auto-continue
    use: wait
    with: {t: 3, who: fountain}
"""
    )
    assert clean.ok, clean.findings
    t = clean.timeline
    assert t is not None
    (a,), (b,), (c,) = t.actions_by_cue["a"], t.actions_by_cue["b"], t.actions_by_cue["c"]
    assert (
        a.mark is not None and b.mark is not None and (a.mark.line, b.mark.line) == (13, 17)
    )  # each its own use:
    assert a.devices == b.devices == ("barge-1", "barge-2") and c.devices != a.devices
    assert (b.at_ns - t.cues[1].body_ns, c.at_ns - t.cues[2].body_ns) == (2 * 10**9, 3 * 10**9)
