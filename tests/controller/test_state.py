"""state_at: the index against a brute-force replay from zero."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.fades import evaluate, value_at
from controller.state import DeviceState, StateIndex
from cues.timeline import Action, Ease, Fade, MqttSend, OscSend, Timeline
from venues.model import Device, Sync, Venue

S = 1_000_000_000
MS = 1_000_000
DEVICES = ("a", "b", "c")


def venue(safe: dict[str, dict[str, float | int | str]] | None = None) -> Venue:
    safe = safe or {}
    return Venue("v", "V", ("z",), "b",
                 tuple(Device(d, "led", "z", Sync.NONE, safe=safe.get(d, {})) for d in DEVICES), {})


def timeline(actions: list[Action]) -> Timeline:
    acts = tuple(sorted(actions, key=lambda a: (a.at_ns, a.seq)))
    return Timeline("show", "v", (), (), acts, max((a.end_ns for a in acts), default=0))


def replay(actions: list[Action], v: Venue, t: int) -> dict[str, DeviceState]:
    """The reference: apply every action up to ``t`` in order, from zero."""
    fades: dict[tuple[str, str], tuple[int, float, Fade]] = {}
    osc: dict[str, dict[str, Any]] = {d: {} for d in DEVICES}
    mqtt: dict[str, dict[str, Any]] = {d: {} for d in DEVICES}
    clips: dict[str, dict[str, Any]] = {d: {} for d in DEVICES}

    def current(dev: str, param: str, at: int) -> float:
        prev = fades.get((dev, param))
        if prev is None:
            s = v.by_id[dev].safe.get(param)
            return float(s) if isinstance(s, int | float) else 0.0
        p_at, p_start, p_op = prev
        return value_at(p_start, p_op.end, p_op.ease, at - p_at, p_op.duration_ns)

    for a in sorted(actions, key=lambda a: (a.at_ns, a.seq)):
        if a.at_ns > t:
            break
        for dev in a.devices:
            op = a.op
            if isinstance(op, Fade):
                start = op.start if op.start is not None else current(dev, op.param, a.at_ns)
                fades[(dev, op.param)] = (a.at_ns, start, op)
            elif isinstance(op, OscSend):
                osc[dev][op.address] = op.args
                if op.address.endswith("/clip") and op.args:
                    clips[dev][op.address[:-5]] = op.args[0]
            elif isinstance(op, MqttSend):
                mqtt[dev][op.topic] = op.payload
                if isinstance(op.payload, dict) and "clip" in op.payload:
                    clips[dev][op.topic] = op.payload["clip"]
    out = {}
    for dev in DEVICES:
        params = {p: current(dev, p, t) for (d, p) in fades if d == dev}
        out[dev] = DeviceState(params, osc[dev], mqtt[dev], clips[dev])
    return out


EASES = [Ease(), Ease("in-out-cubic"), Ease("out-quad"), Ease("steps", (4, 0))]

ops = st.one_of(
    st.builds(lambda addr, x: OscSend(addr, (x,)),
              st.sampled_from(["/x", "/layer/1/clip"]), st.integers(0, 9)),
    st.builds(lambda topic, x: MqttSend(topic, {"clip": f"c{x}"} if x % 2 else x),
              st.sampled_from(["t/{device}", "u"]), st.integers(0, 9)),
    st.builds(
        lambda param, start, end, dur, ease: Fade(param, start, end, dur * 100 * MS, ease),
        st.sampled_from(["dim", "hue"]),
        st.one_of(st.none(), st.floats(0, 1)),
        st.floats(0, 1),
        st.integers(0, 5),
        st.sampled_from(EASES),
    ),
)

actions_st = st.lists(
    st.tuples(st.integers(0, 12),
              st.lists(st.sampled_from(DEVICES), min_size=1, max_size=3, unique=True), ops),
    max_size=25,
).map(lambda xs: [Action(at * 100 * MS, "c", i, tuple(devs), op) for i, (at, devs, op) in enumerate(xs)])


@settings(max_examples=150, deadline=None)
@given(actions=actions_st, t=st.integers(-1, 20 * 100 * MS), safe_dim=st.floats(0, 1))
def test_state_at_equals_a_replay_from_zero(actions: list[Action], t: int, safe_dim: float) -> None:
    v = venue({"b": {"dim": safe_dim, "mode": "off"}})
    index = StateIndex(timeline(actions), v)
    times = [t, *(a.at_ns for a in actions), *(a.end_ns for a in actions), *(a.at_ns - 1 for a in actions)]
    for tt in times:
        got = index.state_at(tt)
        want = replay(actions, v, tt)
        for dev in DEVICES:
            g, w = got[dev], want[dev]
            assert g.params == pytest.approx(w.params), (dev, tt)
            assert g.osc == w.osc and g.mqtt == w.mqtt and g.clips == w.clips, (dev, tt)


def test_mid_fade_value_is_eased() -> None:
    ease = Ease("in-out-cubic")
    index = StateIndex(timeline([Action(S, "c", 0, ("a",), Fade("dim", 0.2, 1.0, 2 * S, ease))]), venue())
    assert index.param_at("a", "dim", S + 800 * MS) == pytest.approx(0.2 + 0.8 * evaluate(ease, 0.4))
    assert index.param_at("a", "dim", S - 1) is None
    assert index.param_at("a", "dim", 10 * S) == 1.0
    assert index.param_at("b", "dim", 10 * S) is None


def test_fade_from_none_resolves_from_the_previous_fade_or_the_safe_value() -> None:
    acts = [
        Action(0, "c", 0, ("a",), Fade("dim", 0.0, 1.0, S)),
        Action(S // 2, "c", 1, ("a", "b"), Fade("dim", None, 0.0, S)),
    ]
    index = StateIndex(timeline(acts), venue({"b": {"dim": 0.7}}))
    seg_a, seg_b = index.segment("a", 1), index.segment("b", 1)
    assert seg_a is not None and seg_a.start == pytest.approx(0.5)
    assert seg_b is not None and seg_b.start == pytest.approx(0.7)


def test_late_join_state_and_its_json() -> None:
    acts = [
        Action(0, "c", 0, ("a",), MqttSend("xr/{device}/scene", {"scene": "lotus", "clip": "l.mp4"})),
        Action(0, "c", 1, ("a",), OscSend("/layer/2/clip", ("bloom",))),
        Action(S, "c", 2, ("a",), Fade("brightness", 0.0, 0.8, 0)),
    ]
    index = StateIndex(timeline(acts), venue())
    st8 = index.state_for_device("a", 2 * S)
    assert st8.params == {"brightness": 0.8}
    assert st8.clips == {"xr/{device}/scene": "l.mp4", "/layer/2": "bloom"}
    assert st8.to_json() == {
        "params": {"brightness": 0.8},
        "mqtt": {"xr/{device}/scene": {"scene": "lotus", "clip": "l.mp4"}},
        "osc": {"/layer/2/clip": ["bloom"]},
    }
    assert index.state_for_device("nobody", 2 * S) == DeviceState()
    assert index.state_at(2 * S, ["b"]).devices == {"b": DeviceState()}
