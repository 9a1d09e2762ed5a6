"""check_show: every bad input is a clear positioned finding; cross-checks; the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cues.check import CheckReport, check_show, format_duration
from tests.cues.cue_helpers import HEADER
from venues.model import Venue

Check = Callable[..., CheckReport]
Write = Callable[..., Path]

ROOT = Path(__file__).resolve().parents[2]
SHOWS = ROOT / "config" / "shows"


def messages(r: CheckReport) -> list[str]:
    return [str(f) for f in r.findings]


@pytest.mark.parametrize("name", ["han-river-night-bloom.yaml", "gwanghwamun-light-gate.yaml"])
def test_shipped_shows_check_clean(name: str) -> None:
    r = check_show(SHOWS / name)
    assert r.findings == [], messages(r)
    t = r.timeline
    assert t is not None
    assert t.duration_ns >= 10 * 60 * 10**9
    assert r.summary().startswith(f"{name}: ok: ")
    # features the shipped shows promise to demonstrate
    gos = {c.go.value for c in t.cues}
    assert gos == {"manual", "auto-continue", "auto-follow"}
    assert any(c.trigger is not None and c.trigger.timeout_ns for c in t.cues)
    assert any(a.mark is not None and "parts/" in a.mark.file for a in t.actions)  # the include
    kinds = {type(a.op).__name__ for a in t.actions}
    assert kinds == {"OscSend", "MqttSend", "Fade"}
    eases = {a.op.ease.kind for a in t.actions if type(a.op).__name__ == "Fade"}  # type: ignore[union-attr]
    assert {"cubic-bezier", "steps"} <= eases and len(eases) >= 5


def test_summary_and_json(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
            duration: "12:34.500"
            actions:
              - osc: {targets: facades, address: /x}
        """
    )
    assert r.summary() == "show.yaml: ok: 1 cues, 1 actions on 5 devices, 12:34.500 long"
    data = r.to_json()
    json.dumps(data)
    assert data["ok"] is True and data["errors"] == 0
    assert data["show"] == {
        "id": "test-show",
        "venue": "test-river",
        "cues": 1,
        "sequences": 1,
        "actions": 1,
        "devices": 5,
        "duration_ns": 754_500_000_000,
        "duration": "12:34.500",
    }


def test_summary_with_errors(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
            pre_wiat: 2s
          - id: b
            actions:
              - osc: {targets: facades, address: /x, args: [{q: 1}]}
        """
    )
    assert r.summary() == "show.yaml: 2 errors"
    assert r.timeline is None
    data = r.to_json()
    assert data["ok"] is False and data["show"] is None
    findings = data["findings"]
    assert isinstance(findings, list)
    f0 = findings[0]
    assert isinstance(f0, dict) and f0["line"] == 8 and "did you mean 'pre_wait'?" in str(f0["hint"])


def test_format_duration() -> None:
    assert format_duration(0) == "00:00.000"
    assert format_duration(754_500_000_000) == "12:34.500"
    assert format_duration(3_723_000_000_000) == "1:02:03.000"


# ---------------------------------------------------------------------------------------------
# Bad input: each gives a positioned finding with a useful message


def test_yaml_syntax_error(write: Write, venue: Venue) -> None:
    p = write("show.yaml", HEADER + "cues:\n  - id: a\n    actions: [\n")
    r = check_show(p, venue_path=None)
    assert not r.ok
    (f,) = r.errors
    assert f.mark is not None and f.mark.file.endswith("show.yaml") and f.mark.line >= 6
    assert "syntax" in f.message.lower()


def test_duplicate_keys(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
            go: manual
            go: auto-follow
        """
    )
    (f,) = r.errors
    assert f.mark is not None and f.mark.line == 9 and "go" in f.message


@pytest.mark.parametrize(
    ("cue", "line", "needle"),
    [
        ("pre_wait: true", 8, "pre_wait"),
        ("pre_wait: -2s", 8, "negative"),
        ("pre_wait: soon", 8, "not a time"),
        ("go: sideways", 8, "auto-follow"),
        ("actions: {osc: 1}", 8, "actions"),
        ("enabled: 'no'", 8, "enabled"),
        ("color: '#12345'", 8, "color"),
        ("on: {mqtt: 'xr/#/x', count: 3}", 8, "'#'"),
        ("on: {mqtt: 'xr/+', osc: /x}", 8, "exactly one"),
        ("on: {mqtt: 'xr/+', count: 0}", 8, "count"),
        ("timeline: [{osc: {targets: facades, address: /x}}]", 8, "missing 'at'"),
        ("actions: [{at: '9.1.999', osc: {targets: facades, address: /x}}]", 8, "9.1.999"),
        ("actions: [{at: '00:00:01:40', osc: {targets: facades, address: /x}}]", 8, "00:00:01:40"),
        ("actions: [{osc: {targets: facades, address: /x}, mqtt: {targets: b, topic: t}}]", 8, "exactly one"),
        ("actions: [{fade: {targets: b, param: l, to: 1, over: 1, ease: in-out-cubc}}]", 8, "in-out-cubic"),
        ("actions: [{osc: {targets: '', address: /x}}]", 8, "empty selector"),
        ("actions: [{osc: {targets: 'facades &', address: /x}}]", 8, "finish the expression"),
        ("actions: [{osc: {targets: '(facades', address: /x}}]", 8, "("),
        ("actions: [{mqtt: {targets: audience, topic: t, qos: 3}}]", 8, "qos"),
        ("actions: [{osc: {targets: facades, address: /x, args: [3000000000]}}]", 8, "{h: 3000000000}"),
    ],
)
def test_bad_values(check: Check, cue: str, line: int, needle: str) -> None:
    r = check(
        f"""
        cues:
          - id: a
            {cue}
        """
    )
    assert not r.ok
    assert any(needle in str(f) for f in r.errors), messages(r)
    assert all(f.mark is not None and f.mark.line == line for f in r.errors), messages(r)


def test_unknown_target_hints_groups(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
            actions:
              - osc: {targets: facade, address: /x}
        """
    )
    (f,) = r.errors
    assert f.mark is not None and (f.mark.line, f.mark.col) >= (9, 20)
    assert "facades" in str(f)


def test_non_utf8(write: Write) -> None:
    p = write("show.yaml", (HEADER + "cues:\n  - id: caf\xe9\n").encode("latin-1"))
    r = check_show(p)
    (f,) = r.errors
    assert f.mark is not None and f.mark.line == 6 and "UTF-8" in str(f)


def test_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    p = tmp_path / "huge.yaml"
    with p.open("wb") as fh:
        fh.write(HEADER.encode())
        fh.truncate(100 * 2**20)  # sparse: 100 MB on paper, nothing on disk
    r = check_show(p)
    (f,) = r.errors
    assert f.mark is not None and f.mark.file.endswith("huge.yaml")
    assert "MB" in str(f) or "MiB" in str(f) or "large" in str(f)


def test_alias_bomb(write: Write) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    p = write("bomb.yaml", HEADER + "\n".join(lines) + "\ncues: []\n")
    r = check_show(p)
    assert not r.ok
    assert any("alias" in str(f).lower() or "nodes" in str(f).lower() for f in r.errors), messages(r)


def test_empty_file(write: Write) -> None:
    r = check_show(write("show.yaml", ""))
    (f,) = r.errors
    assert f.mark is not None and f.mark.line == 1


def test_not_a_mapping(write: Write) -> None:
    r = check_show(write("show.yaml", "- just\n- a list\n"))
    assert not r.ok and r.errors[0].mark is not None


def test_missing_show_file(tmp_path: Path) -> None:
    r = check_show(tmp_path / "nope.yaml")
    (f,) = r.errors
    assert "not found" in str(f)


def test_unknown_venue_points_at_venue_line(write: Write) -> None:
    p = write("show.yaml", "show: x\nvenue: no-such-venue-anywhere\ncues: []\n")
    r = check_show(p)
    (f,) = r.errors
    assert f.mark is not None and f.mark.line == 2
    assert "no-such-venue-anywhere" in str(f)


def test_venue_path_relative_to_show(write: Write) -> None:
    write(
        "venues/tiny.yaml",
        """\
        venue: tiny
        zones: [z]
        devices:
          - id: lamp-{1..3}
            kind: lamp
            zone: z
            sync: none
            osc: {port: "9500+"}
        groups:
          lamps: kind:lamp
        """,
    )
    p = write(
        "shows/s.yaml",
        """\
        show: Tiny
        venue: ../venues/tiny.yaml
        cues:
          - id: a
            actions:
              - osc: {targets: lamps, address: /on}
        """,
    )
    r = check_show(p)
    assert r.ok, messages(r)
    assert r.venue is not None and r.venue.id == "tiny"
    assert r.summary() == "s.yaml: ok: 1 cues, 1 actions on 3 devices, 00:00.000 long"


# ---------------------------------------------------------------------------------------------
# Cross-checks


def test_overlapping_fades_point_at_both(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
            actions:
              - fade: {targets: facades, param: brightness, to: 1, over: 10s}
          - id: b
            go: auto-continue
            pre_wait: 5s
            actions:
              - fade: {targets: facade-banpo-1, param: brightness, to: 0, over: 2s}
              - fade: {targets: facade-banpo-1, param: hue, to: 0, over: 2s}
          - id: c
            actions:
              - fade: {targets: facades, param: brightness, to: 0, over: 2s}
        """
    )
    assert r.ok
    lines = sorted(f.mark.line for f in r.warnings if f.mark)
    assert lines == [9, 14]
    assert all("overlap for 2s on 1 device(s)" in f.message for f in r.warnings)


def test_trigger_count_above_senders_warns(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
            on: {mqtt: "xr/+/ready", count: 800, timeout: 30s, else: skip}
          - id: b
            on: {osc: /ready, count: 6}
        """
    )
    assert r.ok
    assert sorted(f.mark.line for f in r.warnings if f.mark) == [8]
    (w,) = r.warnings
    assert "800" in w.message and "12" in w.message


def test_idle_post_wait_warns(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
            post_wait: 2s
          - id: b
        """
    )
    (w,) = r.warnings
    assert w.mark is not None and w.mark.line == 8 and "no effect" in w.message


def test_one_typo_does_not_hide_the_rest_of_the_cue(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
            pre_wiat: 2s
            actions:
              - osc: {targets: facades, address: /x, args: [{q: 1}]}
              - osc: {targets: facdes, address: /y}
        """
    )
    lines = sorted(f.mark.line for f in r.errors if f.mark)
    assert lines == [8, 10, 11]
    assert r.findings == sorted(r.findings, key=lambda f: (f.mark.line, f.mark.col) if f.mark else (0, 0))
