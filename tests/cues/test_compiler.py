"""The compiler: nominal layout, sequences, sorting, targets, addresses, topics, placeholders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cues.check import CheckReport
from cues.compiler import (
    compile_doc,
    compile_loaded,
    mqtt_filter_problem,
    mqtt_topic_problem,
    osc_address_problem,
)
from cues.loader import load_show_doc
from cues.timeline import NS_PER_S, Ease, Fade, Go, MqttSend, OscSend, OscTyped
from tests.cues.cue_helpers import make_venue
from venues.errors import SourceErrors
from venues.model import Venue
from venues.source import parse_yaml

S = NS_PER_S
Check = Callable[..., CheckReport]


def only_errors(report: CheckReport) -> list[str]:
    return [str(f) for f in report.errors]


def test_brief_example_compiles(check: Check) -> None:
    r = check(
        """
        cues:
          - id: house-open
            name: Preshow loop
            go: manual
            actions:
              - osc: {targets: facades, address: /layer/1/clip, args: [3, 0.5, "loop"]}
              - mqtt: {targets: audience, topic: "xr/{device}/scene", payload: {scene: lobby}, qos: 1}
          - id: bloom
            pre_wait: 2s
            post_wait: 1.5s
            timeline:
              - at: 0
                fade: {targets: "zone:yeouido & kind:facade", param: brightness,
                       from: 0.3, to: 1.0, over: 8s, ease: in-out-cubic}
              - at: "00:00:08:15"
                osc: {targets: facade-yeouido-1, address: /flash, args: [1]}
              - at: "9.1"
                mqtt: {targets: audience, topic: "xr/{device}/video", payload: {clip: bloom.mp4, seek: 0}}
          - id: finale
            go: auto-follow
            actions:
              - osc: {targets: fountain, address: /jet/all, args: [{f: 1}, {h: 5}]}
        """
    )
    assert only_errors(r) == []
    t = r.timeline
    assert t is not None
    assert t.show == "test-show" and t.venue == "test-river"
    house, bloom, finale = t.cues
    assert (house.start_ns, house.end_ns) == (0, 0)
    # bloom is manual: a new sequence, nominally after the first one ended
    assert bloom.go is Go.MANUAL and bloom.sequence == 1
    assert bloom.body_ns == bloom.start_ns + 2 * S
    # bar 9 beat 1 at 120 bpm 4/4 = 8 bars * 2 s = 16 s after the body start
    assert bloom.end_ns == bloom.body_ns + 16 * S
    assert finale.start_ns == bloom.end_ns + 1_500_000_000
    assert finale.sequence == 1
    acts = t.actions_by_cue["bloom"]
    assert [a.at_ns - bloom.body_ns for a in acts] == [0, 8 * S + S // 2, 16 * S]
    fade = acts[0].op
    assert isinstance(fade, Fade)
    assert fade == Fade("brightness", 0.3, 1.0, 8 * S, Ease("in-out-cubic"))
    assert acts[0].devices == ("facade-yeouido-1", "facade-yeouido-2", "facade-yeouido-3")
    (fin,) = t.actions_by_cue["finale"]
    assert fin.op == OscSend("/jet/all", (1.0, OscTyped("h", 5)))
    mq = t.actions_by_cue["house-open"][1].op
    assert mq == MqttSend("xr/{device}/scene", {"scene": "lobby"}, 1, False)
    assert t.duration_ns == finale.end_ns
    assert [a.seq for a in t.actions] == list(range(1, len(t.actions) + 1))
    assert t.device_count == len({d for a in t.actions for d in a.devices})


def test_action_marks_point_at_the_action(check: Check) -> None:
    r = check(
        """
        cues:
          - id: one
            actions:
              - osc: {targets: facades, address: /a}
        """
    )
    assert r.timeline is not None
    (a,) = r.timeline.actions
    assert a.mark is not None and (a.mark.line, a.mark.col) == (9, 9)
    assert a.mark.file.endswith("show.yaml")


def test_auto_continue_counts_from_previous_start(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
            post_wait: 3s
            actions:
              - fade: {targets: facades, param: level, to: 1, over: 10s}
          - id: b
            go: auto-continue
            pre_wait: 1s
            actions:
              - at: 500ms
                osc: {targets: facades, address: /b}
        """
    )
    assert r.timeline is not None
    a, b = r.timeline.cues
    assert b.start_ns == a.start_ns + 3 * S
    assert b.body_ns == b.start_ns + S
    assert r.timeline.actions_by_cue["b"][0].at_ns == 4 * S + 500_000_000
    assert r.timeline.duration_ns == 10 * S
    assert len(r.timeline.sequences) == 1 and r.timeline.sequences[0].end_ns == 10 * S


def test_duration_and_hold_and_disabled(check: Check) -> None:
    r = check(
        """
        cues:
          - id: blackout-wait
            duration: "01:30.000"
          - id: skipped
            enabled: false
            go: auto-follow
            duration: 100s
          - id: after
            go: auto-follow
            hold: 2s
            actions:
              - at: 1s
                osc: {targets: facades, address: /x}
        """
    )
    assert r.timeline is not None
    wait, after = r.timeline.cues
    assert [c.id for c in r.timeline.cues] == ["blackout-wait", "after"]
    assert wait.end_ns == 90 * S
    assert after.start_ns == 90 * S and after.end_ns == 93 * S
    assert after.index == 1


def test_event_trigger_starts_a_sequence(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
          - id: ready
            go: auto-follow
            on: {mqtt: "xr/+/ready", count: 8, timeout: 30s, else: go}
        """
    )
    assert r.timeline is not None
    cue = r.timeline.cue_by_id["ready"]
    assert cue.needs_trigger and cue.sequence == 1
    assert cue.trigger is not None
    assert (cue.trigger.transport, cue.trigger.pattern, cue.trigger.count) == ("mqtt", "xr/+/ready", 8)
    assert cue.trigger.timeout_ns == 30 * S and cue.trigger.on_timeout == "go"


def test_targets_union_and_transport_filter(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
            actions:
              - osc: {targets: [barges, "fountain", barge-1], address: /x}
              - mqtt: {targets: "barges | audience", topic: "show/{zone}/{kind}"}
              - mqtt: {targets: "(barges | fountain)", topic: "show/all"}
        """
    )
    assert only_errors(r) == []
    assert r.timeline is not None
    a0, a1, a2 = r.timeline.actions
    assert a0.devices == ("barge-1", "barge-2", "fountain-banpo")
    assert len(a1.devices) == 12
    # the fountain has no MQTT endpoint: skipped, with a warning at the targets
    assert a2.devices == ("barge-1", "barge-2")
    assert any("cannot receive MQTT" in f.message for f in r.warnings)


@pytest.mark.parametrize(
    ("action", "needle"),
    [
        ("osc: {targets: facdes, address: /x}", "facdes"),
        ("osc: {targets: audience, address: /x}", "can receive OSC"),
        ("osc: {targets: facades, address: x/y}", "must start with '/'"),
        ("osc: {targets: facades, address: /a b}", "a space"),
        ("osc: {targets: facades, address: '/a/*'}", "'*'"),
        ("osc: {targets: facades, address: '/a/{seat}'}", "{seat}"),
        ("osc: {targets: facades, address: '/a/{zone'}", "'{'"),
        ("mqtt: {targets: audience, topic: 'xr/+/x'}", "wildcard"),
        ("mqtt: {targets: audience, topic: 'xr/{device}/'}", "empty level"),
        ("mqtt: {targets: audience, topic: 'xr/{hull}'}", "{hull}"),
        ("mqtt: {targets: audience, topic: 'xr', payload: {a: 'x{nope}'}}", "{nope}"),
        ("mqtt: {targets: audience, topic: 'xr/${who}'}", "template parameter"),
        (
            "fade: {targets: facades, param: level, to: 1, over: 1s, address: '/{param}/{layer}/{seat}'}",
            "{seat}",
        ),
    ],
)
def test_bad_actions_are_positioned_errors(check: Check, action: str, needle: str) -> None:
    r = check(
        f"""
        cues:
          - id: a
            actions:
              - {action}
        """
    )
    errs = r.errors
    assert errs, r.findings
    assert any(needle in f.message or needle in f.hint for f in errs), [str(f) for f in errs]
    assert all(f.mark is not None and f.mark.line == 9 for f in errs), [str(f) for f in errs]
    assert r.timeline is None


def test_placeholder_hint_lists_attributes(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
            actions:
              - mqtt: {targets: "audience | barges", topic: "xr/{seat}"}
        """
    )
    (f,) = r.errors
    assert "2 of 12 lack it" in f.message and "'barge-1'" in f.message
    assert "device" in f.hint and "zone" in f.hint and "seat" not in f.hint


def test_placeholders_available_to_every_target(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
            actions:
              - mqtt: {targets: audience, topic: "xr/{zone}/{device}/seat-{seat}", payload: {who: "{id}"}}
              - fade: {targets: facades, param: level, to: 1, over: 1s, address: "/layer/{layer}/{param}"}
        """
    )
    assert only_errors(r) == []


def test_a_bad_selector_is_reported_at_every_use(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
            actions:
              - osc: {targets: nowhere, address: /x}
          - id: b
            actions:
              - osc: {targets: nowhere, address: /x}
        """
    )
    assert sorted(f.mark.line for f in r.errors if f.mark) == [9, 12]


def test_compile_doc_raises_every_error(venue: Venue) -> None:
    doc = parse_yaml(
        "show: x\nvenue: v\ncues:\n  - id: a\n    actions:\n      - osc: {targets: zz, address: y}\n"
        "  - id: a\n  - id: b\n    go: sideways\n",
        "mem.yaml",
    )
    with pytest.raises(SourceErrors) as e:
        compile_doc(doc, venue)
    text = str(e.value)
    assert "mem.yaml:6:" in text and "duplicate cue id 'a'" in text
    lines = {f.mark.line for f in e.value.findings if f.mark}
    assert lines == {6, 7, 9}
    assert sum(1 for f in e.value.findings if f.mark and f.mark.line == 6) == 2  # targets and address


def test_duplicate_cue_ids(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
          - id: a
        """
    )
    (f,) = r.errors
    assert "duplicate cue id 'a'" in f.message and f.mark is not None and f.mark.line == 8
    assert ":7:" in f.hint


def test_timeline_going_backwards_warns(check: Check) -> None:
    r = check(
        """
        cues:
          - id: a
            timeline:
              - at: 5s
                osc: {targets: facades, address: /x}
              - at: 2s
                osc: {targets: facades, address: /y}
        """
    )
    assert r.ok
    (w,) = r.warnings
    assert "back in time" in w.message and w.mark is not None and w.mark.line == 11
    assert r.timeline is not None
    assert [a.op.address for a in r.timeline.actions if isinstance(a.op, OscSend)] == ["/y", "/x"]


def test_address_and_topic_rules() -> None:
    assert osc_address_problem("/layer/{device}/clip") is None
    assert osc_address_problem("/a,b") is not None
    assert osc_address_problem("/a//b") is not None
    assert osc_address_problem("/é") is not None
    assert mqtt_topic_problem("xr/{device}/video") is None
    assert mqtt_topic_problem("a" * 65536) is not None
    assert mqtt_topic_problem("/xr") is not None
    assert mqtt_topic_problem("$SYS/x") is not None
    assert mqtt_filter_problem("xr/+/ready") is None
    assert mqtt_filter_problem("xr/#") is None
    assert mqtt_filter_problem("xr/#/x") is not None
    assert mqtt_filter_problem("xr/a+/x") is not None


# ---------------------------------------------------------------------------------------------
# Properties of the layout, on random cue lists

_GO = st.sampled_from(["manual", "auto-continue", "auto-follow"])
_MS = st.integers(min_value=0, max_value=20_000)


@st.composite
def _action(draw: st.DrawFn) -> dict[str, Any]:
    at = f"{draw(_MS)}ms"
    if draw(st.booleans()):
        over = f"{draw(_MS)}ms"
        return {"at": at, "fade": {"targets": "facades", "param": "level", "to": 1, "over": over}}
    return {"at": at, "osc": {"targets": "barges", "address": "/x"}}


@st.composite
def _cue(draw: st.DrawFn, i: int) -> dict[str, Any]:
    cue: dict[str, Any] = {"id": f"c{i}", "go": draw(_GO)}
    for key in ("pre_wait", "post_wait", "duration", "hold"):
        if draw(st.booleans()):
            cue[key] = f"{draw(_MS)}ms"
    cue["actions"] = draw(st.lists(_action(), max_size=4))
    if draw(st.integers(0, 5)) == 0:
        cue["enabled"] = False
    return cue


@st.composite
def _show(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 12))
    return {"show": "prop", "venue": "v", "cues": [draw(_cue(i)) for i in range(n)]}


_VENUE = make_venue(headsets=2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_show())
def test_layout_properties(show: dict[str, Any]) -> None:
    doc = parse_yaml(json.dumps(show), "prop.yaml")
    result = compile_loaded(load_show_doc(doc, Path("prop.yaml")), _VENUE)
    assert result.ok, [str(f) for f in result.findings]
    t = result.timeline
    assert t is not None
    enabled = [c for c in show["cues"] if c.get("enabled", True)]
    assert [c.id for c in t.cues] == [c["id"] for c in enabled]

    # actions sorted by (at_ns, seq); seq unique and increasing
    keys = [(a.at_ns, a.seq) for a in t.actions]
    assert keys == sorted(keys)
    assert [a.seq for a in t.actions] == list(range(1, len(t.actions) + 1))
    assert len(t.actions) == sum(len(c["actions"]) for c in enabled)

    for a in t.actions:
        span = t.cue_by_id[a.cue]
        assert span.body_ns <= a.at_ns and a.end_ns <= span.end_ns

    for prev, cue in zip(t.cues, t.cues[1:], strict=False):
        if cue.go is Go.AUTO_FOLLOW:
            assert cue.start_ns == prev.end_ns + prev.post_wait_ns
        elif cue.go is Go.AUTO_CONTINUE:
            assert cue.start_ns == prev.start_ns + prev.post_wait_ns
        else:
            assert cue.sequence == prev.sequence + 1
            assert cue.start_ns == max(c.end_ns for c in t.cues[: cue.index])
        assert cue.start_ns <= cue.body_ns <= cue.end_ns

    assert t.duration_ns == max([c.end_ns for c in t.cues] + [a.end_ns for a in t.actions], default=0)
    # sequences partition the cue list, in order, each starting with the cue that needs a trigger
    flat = [cid for s in t.sequences for cid in s.cues]
    assert flat == [c.id for c in t.cues]
    for s in t.sequences:
        spans = [t.cue_by_id[c] for c in s.cues]
        assert s.start_ns == spans[0].start_ns
        assert s.end_ns == max(c.end_ns for c in spans)
        assert all(c.sequence == s.index for c in spans)
