"""The failover machine: its table, claims and their races, step-down, partitions, as pure inputs.

Every test passes literal instants (ns); nothing sleeps and no socket is opened.
"""

from __future__ import annotations

import pytest

from controller.failover import (
    CLAIM_WINDOW_NS,
    HEARTBEAT_NS,
    MISSED,
    TABLE,
    Assert,
    Claim,
    Effect,
    Event,
    Failover,
    FailoverPolicy,
    FailoverPolicyError,
    GoLive,
    Rejected,
    Role,
    StepDown,
    Transition,
    outranks,
    transition,
)

MS = 1_000_000
HB = HEARTBEAT_NS
D = MISSED * HB  # the standby's detection
W = CLAIM_WINDOW_NS

# --- the table, written out independently: role -> {event: next role} ------------------------

ST, SB, OR, CL, PR, FE, DE = "starting", "standby", "orphan", "claiming", "primary", "fenced", "deposed"
PEER = [
    "peer-live-above",
    "peer-live-below",
    "peer-claiming",
    "peer-fenced",
    "peer-fenced-blind",
    "peer-follower",
    "peer-follower-blind",
    "peer-left",
]
WIT = [
    "witness-own",
    "witness-above",
    "witness-above-offline",
    "witness-above-self",
    "witness-below",
    "witness-up",
    "witness-lost",
]


def _same(role: str, events: list[str]) -> dict[str, str]:
    return dict.fromkeys(events, role)


EXPECTED: dict[str, dict[str, str]] = {
    ST: {
        **_same(ST, WIT),
        "witness-up": CL,
        "peer-live-above": DE,
        "peer-live-below": DE,
        "peer-follower": ST,
        "peer-follower-blind": ST,
    },
    SB: {
        **_same(SB, PEER),
        **_same(SB, WIT),
        "peer-fenced": CL,
        "peer-silent": CL,
        "peer-silent-blind": OR,
        "takeover": CL,
        "witness-above-self": CL,
    },
    OR: {
        **_same(OR, WIT),
        "witness-up": CL,
        "peer-live-above": SB,
        "peer-live-below": SB,
        "peer-claiming": SB,
        "peer-fenced-blind": SB,
        "peer-follower": SB,
        "peer-follower-blind": SB,
        "peer-left": OR,
    },
    CL: {
        **_same(CL, PEER),
        "witness-own": CL,
        "witness-above": DE,
        "witness-above-offline": CL,
        "witness-above-self": CL,
        "witness-below": CL,
        "witness-up": CL,
        "witness-lost": "(back)",
        "peer-live-above": DE,
        "claim-held": PR,
        "claim-timeout": CL,
    },
    PR: {
        **_same(PR, PEER),
        **_same(PR, WIT),
        "peer-live-above": DE,
        "witness-above": DE,
        "witness-above-offline": DE,
        "isolated": FE,
    },
    FE: {
        **_same(FE, PEER),
        **_same(FE, WIT),
        "witness-up": CL,
        "peer-follower-blind": PR,
        "peer-live-above": DE,
    },
    DE: {**_same(DE, PEER), **_same(DE, WIT)},
}


def test_the_table_is_exactly_the_expected_one() -> None:
    got: dict[str, dict[str, str]] = {}
    for (role, event), t in TABLE.items():
        got.setdefault(role.value, {})[event.value] = t.role.value if t.role is not None else "(back)"
    assert got == EXPECTED


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("event", list(Event))
def test_every_role_and_event_is_a_transition_a_refusal_or_ignored(role: Role, event: Event) -> None:
    found = transition(role, event)
    if (role, event) in TABLE:
        assert isinstance(found, Transition)
        assert found == TABLE[(role, event)]
    elif event in (Event.TAKEOVER, Event.TAKEOVER_BLIND):
        assert isinstance(found, Rejected)
        assert "takeover is not possible while" in str(found)
        assert found.role is role
    else:
        assert found is None


def test_only_claiming_goes_live_and_only_primary_steps_down() -> None:
    for (role, _event), t in TABLE.items():
        if t.effect is Effect.GO_LIVE:
            assert t.role is Role.PRIMARY and role in (Role.CLAIMING, Role.FENCED)
        if t.effect is Effect.STEP_DOWN:
            assert role is Role.PRIMARY
        if t.role is Role.PRIMARY:
            assert role is Role.PRIMARY or t.effect is Effect.GO_LIVE
    # Nothing leaves deposed.
    assert all(t.role is Role.DEPOSED for (r, _), t in TABLE.items() if r is Role.DEPOSED)


def test_pair_order() -> None:
    assert outranks((3, "a"), (2, "z"))
    assert outranks((3, "b"), (3, "a"))
    assert not outranks((3, "a"), (3, "a"))
    assert not outranks((2, "z"), (3, "a"))


# --- helpers: a machine brought to a role through its inputs ----------------------------------


def _standby(t: int = 0, *, term: int = 5, witness: bool = True, me: str = "b", peer: str = "a") -> Failover:
    f = Failover(me, Role.STANDBY)
    if witness:
        assert f.witness_up(t) == []
    assert f.peer_heartbeat(t, term, Role.PRIMARY, peer) == []
    return f


def _primary(t: int = 0, *, me: str = "a", retained: int | None = None) -> Failover:
    """A controller started as the primary, live at term 1 (or above ``retained``) at ``t``."""
    f = Failover(me, Role.STARTING)
    out = f.witness_up(t)
    assert out == [Claim(1)]
    if retained is not None:
        out = f.witness(t, retained, me, retained=True)
        assert out == [Claim(retained + 1)]
    term = f.claim_term
    assert term is not None
    assert f.witness(t, term, me) == []  # the echo
    assert f.role is Role.CLAIMING
    assert f.tick(t + W) == [GoLive(term)]
    assert f.role is Role.PRIMARY and f.live and f.term == term
    return f


def _live_pair(t: int = 0) -> tuple[Failover, Failover]:
    a = _primary(t)
    b = _standby(t, term=a.term)
    assert a.peer_heartbeat(t, 0, Role.STANDBY, "b") == []
    return a, b


# --- the standby takes over ----------------------------------------------------------------------


def test_standby_claims_after_missed_heartbeats_and_goes_live_after_the_window() -> None:
    b = _standby(0, term=5)
    assert b.next_deadline() == D
    assert b.tick(D - 1) == []
    assert b.role is Role.STANDBY
    assert b.tick(D) == [Claim(6)]
    assert b.role is Role.CLAIMING and not b.live
    assert b.next_deadline() == D + b.policy.claim_timeout_ns
    assert b.witness(D + 2 * MS, 6, "b") == []  # the echo
    assert b.next_deadline() == D + 2 * MS + W
    assert b.tick(D + 2 * MS + W - 1) == []
    assert b.tick(D + 2 * MS + W) == [GoLive(6)]
    assert b.live and b.term == 6 and b.status(D + 12 * MS).live
    # With the default policy the takeover completes within 150 ms of the last heartbeat.
    assert D + 2 * MS + W < 150 * MS


def test_heartbeats_keep_the_standby_from_claiming() -> None:
    b = _standby(0)
    for t in range(HB, 20 * HB, HB):
        assert b.peer_heartbeat(t, 5, Role.PRIMARY, "a") == []
        assert b.tick(t + HB - 1) == []
    assert b.role is Role.STANDBY


def test_standby_that_never_saw_a_live_primary_does_not_claim() -> None:
    b = Failover("b", Role.STANDBY)
    b.witness_up(0)
    b.peer_heartbeat(0, 0, Role.STARTING, "a")
    assert b.next_deadline() is None
    assert b.tick(10 * D) == []
    assert b.role is Role.STANDBY


def test_peer_that_said_bye_is_not_taken_over_from() -> None:
    b = _standby(0)
    assert b.peer_left(HB) == []
    assert b.tick(10 * D) == []
    assert b.role is Role.STANDBY


def test_takeover_when_the_primary_says_it_is_fenced() -> None:
    b = _standby(0, term=5)
    assert b.peer_heartbeat(HB, 5, Role.FENCED, "a") == [Claim(6)]
    assert b.role is Role.CLAIMING


def test_standby_without_witness_becomes_an_orphan_and_never_goes_live_blind() -> None:
    b = _standby(0, term=5, witness=False)
    assert b.tick(D) == []
    assert b.role is Role.ORPHAN
    assert b.tick(100 * D) == []
    assert b.role is Role.ORPHAN and b.next_deadline() is None
    refused = b.takeover(100 * D)
    assert isinstance(refused, Rejected) and "witness" in refused.reason
    # The witness comes back: now the claim can be confirmed.
    assert b.witness_up(101 * D) == [Claim(6)]
    assert b.witness(101 * D, 6, "b") == []
    assert b.tick(101 * D + W) == [GoLive(6)]


def test_orphan_follows_the_peer_again_when_it_is_back() -> None:
    b = _standby(0, witness=False)
    b.tick(D)
    assert b.role is Role.ORPHAN
    assert b.peer_heartbeat(2 * D, 5, Role.PRIMARY, "a") == []
    assert b.role is Role.STANDBY
    assert b.next_deadline() == 3 * D


def test_claim_is_sent_again_when_no_echo_comes_back() -> None:
    b = _standby(0, term=5)
    b.tick(D)
    timeout = b.policy.claim_timeout_ns
    assert b.tick(D + timeout) == [Claim(6, again=True)]
    assert b.next_deadline() == D + 2 * timeout
    assert b.witness(D + timeout + MS, 6, "b") == []
    assert b.tick(D + timeout + MS + W) == [GoLive(6)]


def test_claim_given_up_with_the_witness_returns_to_where_it_started() -> None:
    b = _standby(0, term=5)
    b.tick(D)
    assert b.role is Role.CLAIMING
    assert b.witness_lost(D + MS) == []
    assert b.role is Role.ORPHAN  # back to standby, whose peer is silent and witness down
    assert b.claim_term is None
    # A takeover claim given up with the peer alive is back to a plain standby.
    s = _standby(0)
    assert s.takeover(MS) == [Claim(6)]
    s.peer_heartbeat(2 * MS, 5, Role.PRIMARY, "a")
    assert s.witness_lost(3 * MS) == []
    assert s.role is Role.STANDBY


# --- claims: the compare step and its races ------------------------------------------------------


def test_claim_lost_to_a_live_rival_that_the_broker_took_first() -> None:
    b = _standby(0, term=5)
    b.tick(D)  # Claim(6)
    out = b.witness(D + MS, 6, "c")  # "c" > "b": the rival's claim, taken first
    assert len(out) == 1 and isinstance(out[0], StepDown) and not out[0].was_live
    assert b.role is Role.DEPOSED
    assert b.witness(D + 2 * MS, 6, "b") == []  # our echo, too late: nothing
    assert b.tick(D + 100 * MS) == []
    assert not b.live


def test_claim_lost_to_a_rival_inside_the_window() -> None:
    b = _standby(0, term=5)
    b.tick(D)
    assert b.witness(D + MS, 6, "b") == []  # echo
    out = b.witness(D + MS + W - 1, 7, "a")  # a higher term before the window closed
    assert [type(a) for a in out] == [StepDown]
    assert b.role is Role.DEPOSED and not b.live


def test_a_lower_claim_does_not_stop_ours() -> None:
    b = _standby(0, term=5, me="b")
    b.tick(D)
    assert b.witness(D + MS, 6, "a") == []  # same term, "a" < "b": we rank above
    assert b.witness(D + 2 * MS, 6, "b") == []
    assert b.tick(D + 2 * MS + W) == [GoLive(6)]


def _broker(msgs: list[tuple[int, str]], *machines: Failover, t: int) -> None:
    """Deliver ``msgs`` (term, controller) in one order to every machine: one topic on one broker."""
    for term, ctl in msgs:
        for m in machines:
            m.witness(t, term, ctl)


@pytest.mark.parametrize("first", ["a", "b"])
def test_two_simultaneous_claimants_end_with_exactly_one_live_the_greater_id(first: str) -> None:
    a = Failover("a", Role.STANDBY)
    b = Failover("b", Role.STANDBY)
    for m in (a, b):
        m.witness_up(0)
        assert m.takeover(0) == [Claim(1)]
    order = [(1, "a"), (1, "b")] if first == "a" else [(1, "b"), (1, "a")]
    _broker(order, a, b, t=MS)
    a.tick(MS + W)
    b.tick(MS + W)
    assert [m.controller for m in (a, b) if m.live] == ["b"]
    assert a.role is Role.DEPOSED


def test_a_rival_claim_after_the_window_deposes_the_lower_one() -> None:
    a = Failover("a", Role.STANDBY)
    b = Failover("b", Role.STANDBY)
    for m in (a, b):
        m.witness_up(0)
        m.takeover(0)
    _broker([(1, "a")], a, b, t=MS)
    assert a.tick(MS + W) == [GoLive(1)]  # a's window passed before b's claim arrived
    _broker([(1, "b")], a, b, t=MS + 2 * W)
    assert b.tick(MS + 3 * W) == [GoLive(1)]
    assert a.role is Role.DEPOSED and not a.live
    assert [m.controller for m in (a, b) if m.live] == ["b"]


# --- the primary's side -----------------------------------------------------------------------


def test_primary_steps_down_when_the_witness_shows_a_higher_term() -> None:
    a = _primary(0)
    out = a.witness(MS, 2, "b")
    assert len(out) == 1 and isinstance(out[0], StepDown) and out[0].was_live and out[0].term == 2
    assert a.role is Role.DEPOSED and not a.live
    assert "higher term" in a.status(MS).reason


def test_primary_steps_down_for_an_offline_higher_term_too() -> None:
    a = _primary(0)
    out = a.witness(MS, 2, "b", live=False)
    assert [type(x) for x in out] == [StepDown]


def test_primary_steps_down_when_the_peer_says_it_is_live_above() -> None:
    a = _primary(0)
    out = a.peer_heartbeat(MS, 2, Role.PRIMARY, "b")
    assert [type(x) for x in out] == [StepDown] and a.role is Role.DEPOSED


def test_primary_ignores_a_peer_that_thinks_it_is_live_below() -> None:
    a = _primary(0, retained=4)  # live at 5
    assert a.peer_heartbeat(MS, 3, Role.PRIMARY, "b") == []
    assert a.live


def test_primary_reasserts_when_a_lower_claim_overwrote_the_retained_state() -> None:
    a = _primary(0, retained=4)  # live at 5
    assert a.witness(MS, 5, "a") == []  # its own keep-alive
    assert a.witness(2 * MS, 4, "b") == [Assert(5)]
    assert a.live


def test_starting_defers_to_a_live_controller_on_the_witness_or_the_link() -> None:
    s = Failover("a", Role.STARTING)
    s.witness_up(0)
    out = s.witness(0, 5, "b", retained=True)
    assert [type(x) for x in out] == [StepDown] and s.role is Role.DEPOSED
    s2 = Failover("a", Role.STARTING)
    out = s2.peer_heartbeat(0, 5, Role.PRIMARY, "b")
    assert [type(x) for x in out] == [StepDown] and s2.role is Role.DEPOSED


def test_starting_claims_above_an_offline_controller_and_an_earlier_life_of_its_own() -> None:
    s = Failover("a", Role.STARTING)
    assert s.witness_up(0) == [Claim(1)]
    assert s.witness(0, 5, "b", live=False, retained=True) == [Claim(6)]
    assert s.witness(MS, 1, "a") == []  # the echo of the first claim: below the current one
    assert s.role is Role.CLAIMING
    assert s.witness(MS, 6, "a") == []
    assert s.tick(MS + W) == [GoLive(6)]
    t = Failover("a", Role.STARTING)
    t.witness_up(0)
    assert t.witness(0, 9, "a", retained=True) == [Claim(10)]


def test_a_retained_copy_of_our_claim_is_not_its_echo() -> None:
    f = Failover("a", Role.STARTING, term=3)
    assert f.witness_up(0) == [Claim(4)]
    f.witness(0, 4, "a", retained=True)
    assert f.tick(W) == []
    assert f.role is Role.CLAIMING


# --- partitions --------------------------------------------------------------------------------


def test_link_cut_both_alive_moves_the_show_to_the_standby_and_never_two_live() -> None:
    a, b = _live_pair(0)
    term = a.term
    # The link is cut at 0: no heartbeats either way; both still reach the broker.
    claim = b.tick(D)
    assert claim == [Claim(term + 1)]
    # The broker delivers the claim to both at once.
    out_a = a.witness(D + MS, term + 1, "b")
    assert [type(x) for x in out_a] == [StepDown]
    assert b.witness(D + MS, term + 1, "b") == []
    assert not a.live and not b.live  # a stopped before b goes live
    assert b.tick(D + MS + W) == [GoLive(term + 1)]
    # The link heals: a stays deposed, b stays live.
    assert a.peer_heartbeat(D + 2 * W, term + 1, Role.PRIMARY, "b") == []
    assert b.peer_heartbeat(D + 2 * W, term, Role.DEPOSED, "a") == []
    assert a.role is Role.DEPOSED and b.live
    assert a.tick(10 * D) == [] and b.tick(10 * D) == []
    assert [m.controller for m in (a, b) if m.live] == ["b"]


@pytest.mark.parametrize("phase", range(0, HB, HB // 5))
def test_primary_cut_from_standby_and_broker_fences_before_the_standby_can_go_live(phase: int) -> None:
    """Heartbeats go out independently both ways; the last one each side received differs by up
    to one interval (``phase``). The primary must stop before the standby's claim can hold."""
    a, b = _live_pair(0)
    a.peer_heartbeat(0, 0, Role.STANDBY, "b")  # the last from the standby, at 0
    b.peer_heartbeat(phase, a.term, Role.PRIMARY, "a")  # the last from the primary, up to HB later
    a.witness_lost(MS)  # the primary's broker connection drops too
    fence_at = a.next_deadline()
    assert fence_at is not None
    out = a.tick(fence_at)
    assert [type(x) for x in out] == [StepDown] and a.role is Role.FENCED
    claim_at = b.next_deadline()
    assert claim_at is not None
    assert fence_at <= claim_at - HB + phase  # stopped a full interval (less the phase) before the claim
    assert fence_at < claim_at + W  # and certainly before the claim can hold


def test_fenced_primary_resumes_its_own_term_through_the_witness() -> None:
    a, _b = _live_pair(0)
    term = a.term
    a.witness_lost(MS)
    a.tick(a.policy.fence_ns)
    assert a.role is Role.FENCED
    assert a.witness_up(2 * D) == [Claim(term)]  # re-assert: nobody claimed above
    a.witness(2 * D, term, "a", retained=True)  # the retained state: still ours
    assert a.witness(2 * D + MS, term, "a") == []  # the echo
    assert a.tick(2 * D + MS + W) == [GoLive(term)]


def test_fenced_primary_finds_the_standby_took_over() -> None:
    a, _b = _live_pair(0)
    a.witness_lost(MS)
    a.tick(a.policy.fence_ns)
    a.witness_up(2 * D)
    out = a.witness(2 * D, a.term + 1, "b", retained=True)
    assert [type(x) for x in out] == [StepDown] and a.role is Role.DEPOSED


def test_fenced_primary_resumes_when_the_peer_cannot_claim_either() -> None:
    a, _b = _live_pair(0)
    a.witness_lost(MS)
    a.tick(a.policy.fence_ns)
    assert a.peer_heartbeat(2 * D, a.term, Role.STANDBY, "b", witness=True) == []
    assert a.role is Role.FENCED  # the peer reaches the witness: it takes over, not us
    assert a.peer_heartbeat(2 * D + HB, a.term, Role.ORPHAN, "b", witness=False) == [GoLive(a.term)]
    assert a.live


def test_both_lose_the_witness_the_show_goes_on_on_the_primary() -> None:
    a, b = _live_pair(0)
    a.witness_lost(MS)
    b.witness_lost(MS)
    for t in range(HB, 40 * HB, HB):
        assert a.peer_heartbeat(t, 0, Role.STANDBY, "b", witness=False) == []
        assert b.peer_heartbeat(t, a.term, Role.PRIMARY, "a") == []
        assert a.tick(t) == [] and b.tick(t) == []
    assert a.live and b.role is Role.STANDBY
    # Then the primary dies: the standby cannot confirm a claim, so nobody takes over.
    last = 39 * HB
    assert b.tick(last + D) == []
    assert b.role is Role.ORPHAN and not b.live


def test_both_lose_the_witness_and_the_link_the_primary_fences_and_resumes_when_the_link_returns() -> None:
    a, b = _live_pair(0)
    a.witness_lost(MS)
    b.witness_lost(MS)
    a.tick(a.policy.fence_ns)
    b.tick(D)
    assert a.role is Role.FENCED and b.role is Role.ORPHAN
    assert not a.live and not b.live
    # The link returns: the orphan follows again, and tells the fenced primary it cannot claim.
    t = 10 * D
    assert b.peer_heartbeat(t, a.term, Role.FENCED, "a") == []
    assert b.role is Role.STANDBY
    assert a.peer_heartbeat(t, 0, Role.STANDBY, "b", witness=False) == [GoLive(a.term)]
    assert b.peer_heartbeat(t + HB, a.term, Role.PRIMARY, "a") == []
    assert [m.controller for m in (a, b) if m.live] == ["a"]


def test_without_fencing_an_isolated_primary_keeps_driving() -> None:
    a = Failover("a", Role.STARTING, policy=FailoverPolicy(fence=False))
    a.witness_up(0)
    a.witness(0, 1, "a")
    a.tick(W)
    a.peer_heartbeat(W, 0, Role.STANDBY, "b")
    a.witness_lost(W)
    assert a.next_deadline() is None
    assert a.tick(100 * D) == [] and a.live


def test_primary_whose_standby_left_does_not_fence() -> None:
    a, _b = _live_pair(0)
    a.peer_left(MS)
    a.witness_lost(MS)
    assert a.tick(100 * D) == [] and a.live


def test_primary_losing_only_the_witness_keeps_driving() -> None:
    a, _b = _live_pair(0)
    a.witness_lost(MS)
    for t in range(HB, 20 * HB, HB):
        a.peer_heartbeat(t, 0, Role.STANDBY, "b")
        assert a.tick(t) == []
    assert a.live


def test_primary_losing_only_the_standby_keeps_driving() -> None:
    a, _b = _live_pair(0)
    assert a.next_deadline() is None  # witness up: silence of the standby is not a reason to stop
    assert a.tick(100 * D) == [] and a.live


# --- the operator --------------------------------------------------------------------------------


def test_planned_takeover() -> None:
    a, b = _live_pair(0)
    assert b.takeover(MS) == [Claim(a.term + 1)]
    again = b.takeover(2 * MS)
    assert isinstance(again, Rejected) and "already out" in again.reason
    out = a.witness(3 * MS, a.term + 1, "b")
    assert [type(x) for x in out] == [StepDown]
    b.witness(3 * MS, a.term + 1, "b")
    assert b.tick(3 * MS + W) == [GoLive(a.term + 1)]
    refused = b.takeover(4 * MS)
    assert isinstance(refused, Rejected) and "already live" in refused.reason
    refused = a.takeover(4 * MS)
    assert isinstance(refused, Rejected) and "--standby-of" in refused.reason


# --- status, policy ----------------------------------------------------------------------------


def test_status_shows_who_is_live_and_the_peer() -> None:
    a, b = _live_pair(0)
    s = b.status(HB)
    assert (s.role, s.live, s.peer, s.peer_role, s.peer_term, s.peer_alive) == (
        Role.STANDBY,
        False,
        "a",
        Role.PRIMARY,
        a.term,
        True,
    )
    assert s.peer_silent_ns == HB and s.witness
    assert not b.status(D).peer_alive
    assert a.status(0).live and a.status(0).term == a.term


def test_policy_defaults_and_refusals() -> None:
    p = FailoverPolicy()
    assert (p.heartbeat_ns, p.missed, p.detect_ns, p.fence_ns) == (25 * MS, 4, 100 * MS, 75 * MS)
    with pytest.raises(FailoverPolicyError, match="missed=2"):
        FailoverPolicy(missed=2)
    with pytest.raises(FailoverPolicyError, match="heartbeat_ns"):
        FailoverPolicy(heartbeat_ns=0)
    with pytest.raises(FailoverPolicyError, match="fence_after_ns"):
        FailoverPolicy(fence_after_ns=100 * MS)  # not before the standby's claim
    with pytest.raises(FailoverPolicyError, match="claim_timeout_ns"):
        FailoverPolicy(claim_timeout_ns=W)
    with pytest.raises(ValueError, match="role"):
        Failover("a", Role.PRIMARY)
    with pytest.raises(ValueError, match="non-empty"):
        Failover("", Role.STANDBY)
    assert FailoverPolicy(heartbeat_ns=20 * MS, missed=5).detect_ns == 100 * MS


def test_events_without_an_entry_are_ignored_and_counted() -> None:
    d = _primary(0)
    d.witness(MS, 9, "z")
    assert d.role is Role.DEPOSED
    before = d.ignored
    assert d.tick(10 * D) == []
    s = Failover("a", Role.STARTING)
    s.peer_heartbeat(0, 0, Role.FENCED, "b")  # no entry for starting: ignored
    assert s.ignored == 1 and s.role is Role.STARTING
    assert d.ignored == before


def test_a_claim_that_lands_after_it_was_given_up_is_finished() -> None:
    """The broker connection dropped with the claim in flight, the claim was given up, and then the
    broker turned out to have taken it: it deposes the primary, so the standby takes over."""
    a, b = _live_pair(0)
    term = a.term
    assert b.takeover(MS) == [Claim(term + 1)]
    b.witness_lost(2 * MS)
    assert b.role is Role.STANDBY
    b.witness_up(50 * MS)
    out = a.witness(50 * MS, term + 1, "b")  # a reads the claim and steps down
    assert [type(x) for x in out] == [StepDown]
    assert b.witness(50 * MS, term + 1, "b", retained=True) == [Claim(term + 2)]
    b.witness(51 * MS, term + 2, "b")
    assert b.tick(51 * MS + W) == [GoLive(term + 2)]
    assert [m.controller for m in (a, b) if m.live] == ["b"]


def test_primary_reasserts_its_state_on_every_new_broker_connection() -> None:
    a = _primary(0)
    a.witness_lost(MS)
    assert a.witness_up(2 * MS) == [Assert(a.term)]
    assert a.witness(2 * MS, 0, "", live=False, retained=True) == [Assert(a.term)]  # its own old will
    assert a.live


def test_a_standby_that_took_over_is_not_fenced_by_the_dead_primary_s_silence() -> None:
    """After a takeover the silent peer is gone, not our standby: a broker blip must not fence us."""
    from controller.failover import Failover, GoLive, Role, StepDown

    ms = 1_000_000
    f = Failover("b", Role.STANDBY, term=1)
    f.witness_up(0)
    f.peer_heartbeat(0, 1, Role.PRIMARY, "a")
    actions = f.tick(100 * ms)
    claim = next(a for a in actions if type(a).__name__ == "Claim")
    f.witness(101 * ms, claim.term, "b")
    live = f.tick(120 * ms)
    assert any(isinstance(a, GoLive) for a in live) and f.live
    out = f.witness_lost(130 * ms)
    out += f.tick(500 * ms)
    assert not any(isinstance(a, StepDown) for a in out) and f.live
