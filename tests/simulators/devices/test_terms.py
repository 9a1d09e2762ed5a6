"""Controller terms on the device side (docs/protocol.md, "Controller terms (hot standby)"): a device
keeps the highest term it has seen and never obeys a lower one; messages without a term are
obeyed; keys stay the same across terms."""

from __future__ import annotations

import json
from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from simulators.clock import DeviceClock
from simulators.devices import AppDevice, OscDisplay
from simulators.record import EXECUTIONS, STALE_TERM, Recorder
from tests.simulators._helpers import bundle, display, headset, msg, timed
from tests.simulators._helpers import key as key2

S = 1_000_000_000
T0 = 1_763_694_000 * S
CLOCK = DeviceClock(offset_ns=-40_000_000, drift_ppm=-30.0, epoch_ns=T0)
SCENE = {"mqtt": {"topic": "xr/{device}/scene", "payload": {"scene": "x"}}}


def j(obj: object) -> bytes:
    return json.dumps(obj).encode()


def cue(seq: int, at: int, term: int | None, op: Mapping[str, object] = SCENE) -> bytes:
    body: dict[str, object] = {
        "show": "night",
        "cue": f"c{seq}",
        "seq": seq,
        "at": at,
        "show_ns": 0,
        "op": op,
    }
    if term is not None:
        body["term"] = term
    return j(body)


def state(term: int | None, name: str = "playing") -> bytes:
    body: dict[str, object] = {"state": name, "show": "night", "at": T0}
    if term is not None:
        body.update(term=term, controller=f"madang-{term}")
    return j(body)


def clock(offset_ns: int, term: int | None) -> bytes:
    body: dict[str, object] = {"epoch": T0, "offset_ns": offset_ns, "drift_ppb": 0, "uncertainty_ns": 0}
    if term is not None:
        body["term"] = term
    return j(body)


def app() -> AppDevice:
    d = AppDevice(headset(), CLOCK, Recorder())
    d.connect(T0)
    return d


def executed(d: AppDevice | OscDisplay) -> list[tuple[int, int]]:
    """``(seq, term)`` of every execution, in order."""
    return [(r.seq, r.term) for r in d.recorder.rows(EXECUTIONS)]


def test_an_app_device_obeys_the_highest_term_and_drops_lower_ones() -> None:
    d = app()
    d.receive("madang/cue", cue(1, T0, term=2), T0)
    assert executed(d) == [(1, 2)] and d.term_floor == 2
    # A cue from the replaced controller (term 1), a key the device has not executed: dropped.
    out = d.receive("madang/cue", cue(2, T0, term=1), T0 + 1)
    assert out == [] and executed(d) == [(1, 2)]
    assert d.dropped[STALE_TERM] == 1 and d.recorder.stale_term() == {"xr-0001": 1}
    (stale,) = d.recorder.rows([STALE_TERM])
    assert (stale.key, stale.seq, stale.param, stale.term, stale.true_ns) == ("c2", 2, "cue", 1, T0 + 1)
    # A message without a term (a controller older than terms) is obeyed.
    d.receive("madang/cue", cue(3, T0, term=None), T0 + 2)
    assert executed(d) == [(1, 2), (3, 0)] and d.term_floor == 2
    # The retained controller state raises the floor: now term 2 is stale too.
    d.receive("madang/controller/state", state(3), T0 + 3)
    assert d.term_floor == 3 and d.controller_state is not None and d.controller_state["term"] == 3
    d.receive("madang/cue", cue(4, T0, term=2), T0 + 4)
    assert executed(d) == [(1, 2), (3, 0)] and d.dropped[STALE_TERM] == 2
    d.receive("madang/cue", cue(5, T0, term=3), T0 + 5)
    assert executed(d)[-1] == (5, 3)
    assert d.recorder.term_regressions() == []


def test_a_key_executed_under_one_term_is_not_executed_again_under_the_next() -> None:
    d = app()
    d.receive("madang/cue", cue(1, T0, term=1), T0)
    d.receive("madang/cue", cue(1, T0, term=2), T0 + 1)  # the new controller re-sends it
    assert executed(d) == [(1, 1)] and d.term_floor == 2 and d.dropped[STALE_TERM] == 0


def test_stale_controller_states_and_clock_models_are_dropped() -> None:
    d = app()
    d.receive("madang/controller/state", state(3), T0)
    d.receive("madang/controller/state", state(2, "stopped"), T0 + 1)
    assert d.controller_state is not None and d.controller_state["state"] == "playing"
    d.receive("madang/dev/xr-0001/clock", clock(7, term=3), T0 + 2)
    d.receive("madang/dev/xr-0001/clock", clock(9, term=1), T0 + 3)
    assert d.model is not None and d.model.offset_ns == 7
    d.receive("madang/dev/xr-0001/clock", clock(11, term=None), T0 + 4)
    assert d.model is not None and d.model.offset_ns == 11
    assert d.recorder.stale_term() == {"xr-0001": 2}
    assert [r.param for r in d.recorder.rows([STALE_TERM])] == ["controller", "clock"]
    # The sync lane's path checks the same rule.
    assert not d.set_model(T0, 13, 0, 0, term=2, true_now=T0 + 5)
    assert d.set_model(T0, 15, 0, 0, term=4, true_now=T0 + 6) and d.term_floor == 4
    assert d.model is not None and d.model.offset_ns == 15
    # A malformed term is bad input, not a term.
    d.receive("madang/cue", cue(1, T0, term=0), T0 + 7)
    d.receive("madang/controller/state", j({"state": "x", "term": "5"}), T0 + 8)
    assert d.dropped["bad_term"] == 2 and executed(d) == [] and d.term_floor == 4


def _scheduled(d: AppDevice, seq: int, term: int) -> int:
    """Send a cue due in 2 s under ``term`` (the device has a model, so it waits); its true instant."""
    d.receive("madang/cue", cue(seq, T0 + 2 * S, term=term), T0 + S // 2)
    due = d.due_at()
    assert due is not None and executed(d) == []
    return due


def test_a_cue_scheduled_under_a_replaced_term_never_fires() -> None:
    d = app()
    d.heartbeats = False
    d.receive("madang/dev/xr-0001/clock", clock(CLOCK.local(T0) - T0, term=1), T0)
    due = _scheduled(d, 1, term=1)
    d.receive("madang/controller/state", state(2), T0 + S)  # a standby took over
    d.tick(due)
    assert executed(d) == [] and d.dropped[STALE_TERM] == 1
    (stale,) = d.recorder.rows([STALE_TERM])
    assert (stale.seq, stale.term, stale.true_ns) == (1, 1, due)
    # Its key was forgotten: the live controller may still send the action, and it executes.
    d.receive("madang/cue", cue(1, T0 + 2 * S, term=2), due + 1)
    assert executed(d) == [(1, 2)]


def test_a_scheduled_cue_re_sent_by_the_new_controller_fires_once_under_its_term() -> None:
    d = app()
    d.heartbeats = False
    d.receive("madang/dev/xr-0001/clock", clock(CLOCK.local(T0) - T0, term=1), T0)
    due = _scheduled(d, 1, term=1)
    d.receive("madang/cue", cue(1, T0 + 2 * S, term=2), T0 + S)  # the takeover re-sends it
    d.tick(due)
    assert executed(d) == [(1, 2)] and d.dropped[STALE_TERM] == 0


def test_a_crash_forgets_the_floor_until_the_retained_state_says_it_again() -> None:
    d = app()
    d.receive("madang/controller/state", state(5), T0)
    d.crash()
    d.boot()
    d.connect(T0 + S)
    assert d.term_floor == 0
    d.receive("madang/controller/state", state(5), T0 + S)
    d.receive("madang/cue", cue(1, T0, term=4), T0 + S)
    assert executed(d) == [] and d.dropped[STALE_TERM] == 1


def key(show: str, seq: int, term: int) -> bytes:
    return msg("/madang/key", (show, "s"), (seq, "i"), (term, "i"))


def test_an_osc_display_obeys_the_highest_term_its_keys_carried() -> None:
    d = OscDisplay(display(), CLOCK, Recorder())
    src = ("10.0.0.1", 9000)
    d.receive(bundle(1, key("night", 1, 2), msg("/scene", (1, "i"))), T0, src)
    assert executed(d) == [(1, 2)] and d.term_floor == 2
    fired = d.receive(bundle(1, key("night", 2, 1), msg("/scene", (2, "i"))), T0 + 1, src)
    assert fired == [] and executed(d) == [(1, 2)] and d.state["/scene"] == (1,)
    assert d.dropped[STALE_TERM] == 1 and d.recorder.stale_term() == {"led-1": 1}
    # A key without a term (,si: an older controller) is obeyed.
    d.receive(bundle(1, key2("night", 3), msg("/scene", (3, "i"))), T0 + 2, src)
    assert executed(d) == [(1, 2), (3, 0)]
    # A higher term raises the floor; then term 2 is stale.
    d.receive(bundle(1, key("night", 4, 3), msg("/scene", (4, "i"))), T0 + 3, src)
    d.receive(bundle(1, key("night", 5, 2), msg("/scene", (5, "i"))), T0 + 4, src)
    assert executed(d) == [(1, 2), (3, 0), (4, 3)] and d.term_floor == 3 and d.dropped[STALE_TERM] == 2
    # Plain messages carry no term: they are not fenced on the device side.
    d.receive(msg("/brightness", (0.5, "f")), T0 + 5, src)
    assert d.params["brightness"] == 0.5
    # A key executed under one term is not executed again under the next.
    d.receive(bundle(1, key("night", 4, 4), msg("/scene", (4, "i"))), T0 + 6, src)
    assert [s for s, _ in executed(d)].count(4) == 1 and d.term_floor == 4
    assert d.recorder.term_regressions() == []


def test_an_osc_display_drops_a_timed_bundle_whose_term_was_replaced_before_it_fell_due() -> None:
    d = OscDisplay(display(), CLOCK, Recorder())
    at = timed(CLOCK.local(T0 + 2 * S))
    d.receive(bundle(at, key("night", 1, 1), msg("/scene", (1, "i"))), T0, None)
    d.receive(bundle(at, key("night", 2, 1), msg("/scene", (2, "i"))), T0, None)
    due = d.due_at()
    assert due is not None
    # The new controller (term 2) re-sends action 2 only, and plays something of its own.
    d.receive(bundle(at, key("night", 2, 2), msg("/scene", (2, "i"))), T0 + S, None)
    d.receive(bundle(1, key("night", 9, 2), msg("/other", (9, "i"))), T0 + S, None)
    d.tick(due + 1)
    assert executed(d) == [(9, 2), (2, 2)]
    assert [(r.seq, r.term) for r in d.recorder.rows([STALE_TERM])] == [(1, 1)]
    assert d.recorder.term_regressions() == []
    zero = msg("/madang/key", ("night", "s"), (7, "i"), (0, "i"))  # term 0: not a term
    bad = d.receive(bundle(1, zero, msg("/x", (1, "i"))), T0, None)
    assert bad == [] and d.dropped["bad_term"] == 1 and "/x" not in d.state


def test_term_regressions_name_executions_under_a_lower_term_than_before() -> None:
    rec = Recorder()
    a, b = rec.register("a"), rec.register("b")
    rec.record(a, "cue", "x", 1, "t", 10, 10, None, 1)
    rec.record(a, "cue", "x", 2, "t", 20, 20, None, 2)
    rec.record(b, "cue", "x", 1, "t", 15, 15, None, 1)  # another device: its own history
    rec.record(a, "cue", "x", 3, "t", 25, 25, None, 0)  # no term: not counted
    rec.record(a, "rx", "x", 4, "", 26, 26, None, 1)  # a receipt, not an execution
    rec.record(a, STALE_TERM, "x", 4, "cue", 27, 27, None, 1)  # dropped, not executed
    assert rec.term_regressions() == []
    rec.record(a, "cue", "x", 5, "t", 30, 30, None, 1)
    (bad,) = rec.term_regressions()
    assert (bad.device_id, bad.seq, bad.term) == ("a", 5, 1)
    assert rec.stale_term() == {"a": 1}
    assert rec.columns()["term"].tolist() == [1, 2, 1, 0, 1, 1, 1]


def _regressions_reference(rec: Recorder) -> list[tuple[str, int, int]]:
    """term_regressions, the obvious way: each device's executions in true time, one by one."""
    rows = [(i, r) for i, r in enumerate(rec) if r.what in EXECUTIONS and r.term > 0]
    highest: dict[str, int] = {}
    out = []
    for i, r in sorted(rows, key=lambda x: (x[1].device_id, x[1].true_ns, x[0])):
        if r.term < highest.get(r.device_id, 0):
            out.append((i, r))
        else:
            highest[r.device_id] = r.term
    return [(r.device_id, r.seq, r.term) for _, r in sorted(out, key=lambda x: x[0])]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(["cue", "osc", "rx", STALE_TERM, "state"]),
            st.integers(0, 50),  # true instant: ties happen
            st.integers(0, 4),  # term (0: none)
        ),
        max_size=40,
    )
)
def test_term_regressions_agree_with_the_obvious_loop(rows: list[tuple[str, str, int, int]]) -> None:
    rec = Recorder()
    for seq, (did, what, true_ns, term) in enumerate(rows):
        rec.record(rec.register(did), what, "k", seq, "p", true_ns, true_ns, None, term)
    got = [(r.device_id, r.seq, r.term) for r in rec.term_regressions()]
    assert got == _regressions_reference(rec)
