"""Failover: the role of one controller of a hot-standby pair, and the one table of its transitions.

Theory of operation
-------------------
Two controllers run the same show: the *primary* drives the devices, the *standby* mirrors its
journal over the peer link (:mod:`controller.peer`), keeps its own MQTT and clock models warm, and
drives nothing. Who may drive is a **term** (an epoch): an integer that only grows, carried on every
controller message, and checked by the devices, which ignore any term lower than the highest they
have seen (docs/protocol.md). A controller is *live* only in role :attr:`Role.PRIMARY`, and only
under a term that a **witness** confirmed.

The witness is the broker's retained controller state (``madang/controller/state``): a JSON
object that carries ``term`` and ``controller``. MQTT has no compare-and-set, so a claim is
*read-after-write*: the claimant publishes ``{term: T, controller: me}`` retained, on the topic it
is subscribed to, and waits for its own message to come back (the *echo*). Mosquitto handles one
topic in one thread: every subscriber receives the publishes in the order the broker accepted them,
so whatever claim the broker took before ours reaches us before our echo, and the retained message
of the topic, sent when we subscribed, reaches us before anything we publish after subscribing.
Claims are ordered by the pair ``(term, controller id)``: a higher term wins, and between equal
terms the greater id wins (a deterministic tie-break that needs no agreement on arrival order).
The claim **holds** when the echo has come back and no higher pair arrived, neither before the echo
nor during a short *claim window* after it (``claim_window_ns``: a rival who claimed at the same
instant has its claim delivered within it). A higher pair that arrives later still deposes us: the
window shortens the overlap of two simultaneous claimants, the pair order ends it.

:class:`Failover` is that decision, sans I/O (h11's style): it reads no clock, opens no socket and
publishes nothing. Its driver feeds it

* :meth:`Failover.peer_heartbeat` for every heartbeat of the peer (its term, role, id, and whether
  it reaches the witness), :meth:`Failover.peer_left` when the peer said ``bye``;
* :meth:`Failover.witness` for every retained-state message read from the broker (our own echo
  included), :meth:`Failover.witness_up` once the subscription to the state topic is acknowledged
  (so the retained message comes next), :meth:`Failover.witness_lost` when the broker connection
  drops;
* :meth:`Failover.tick` at :meth:`Failover.next_deadline`, and the operator's
  :meth:`Failover.takeover` (a planned switchover);

each with the instant ``now`` (ns, the monotonic clock), and carries out the actions each call
returns, in order: :class:`Claim` (publish the retained state at that term, then feed back what
arrives), :class:`Assert` (publish it again: a lower claim overwrote it), :class:`GoLive` (start
driving under that term), :class:`StepDown` (stop driving now).

Every input is first classified into an :class:`Event` (the guards: who ranks above whom, whether
we reach the witness) and then looked up in :data:`TABLE`, ``(role, event) -> (next role,
effect)``, in the manner of :mod:`controller.playback`. An input from the network that has no entry
is ignored (it changes nothing in that role); an operator command without one is refused with a
:class:`Rejected` that says why.

::

    starting --witness up--> claiming --echo + window--> primary --higher term--> deposed
    standby --peer silent (witness up)--> claiming      primary --peer and witness lost--> fenced
    standby --peer silent (witness down)--> orphan --witness up--> claiming
    orphan --peer heartbeat--> standby                  fenced --witness up--> claiming (own term)
    standby --peer says fenced (witness up)--> claiming fenced --peer cannot claim--> primary
    claiming --higher live claim--> deposed             claiming --witness lost--> where it started

Roles
-----
``starting``: started to be the primary; claims as soon as the witness is up (a controller other
than us that is live, seen on the peer link, deposes it before it claims).
``standby``: follows a live peer, drives nothing. ``orphan``: a standby that lost the peer and
cannot reach the witness: it must not go live, since it cannot prove that nobody else is.
``claiming``: published a claim, waits for it to hold. ``primary``: live. ``fenced``: a primary
that lost both the peer and the witness for ``fence_after_ns``: it stops driving, because its
standby may be taking over right now; it resumes through the witness (re-asserting its own term)
or when the peer's heartbeat says the peer cannot reach the witness either (then nobody can take
over). ``deposed``: saw a higher term (or lost a claim to a live rival): drives nothing, for good;
the operator restarts it as the standby of the live controller (following again with a core that
diverged is not simple, so it is not done).

Timing
------
Both sides send a heartbeat every ``heartbeat_ns`` (25 ms by default). The standby declares the
peer silent ``missed`` heartbeat intervals (4: 100 ms) after the last one it received, then claims;
the claim is a round trip through a local broker (a few ms) plus the claim window (10 ms), so a
takeover completes about 115 ms after the primary's death, within the 150 ms budget with room for a
loaded machine's scheduling. The primary fences after ``fence_after_ns`` (default one interval
less than the standby's detection: 75 ms) of silence from the peer while the witness is down. The
standby can go live no earlier than ``missed`` intervals after the *last heartbeat it received*,
which is at most one interval older than the last one the primary received (both send
independently): so the fenced primary has stopped before the standby's claim can hold, with the
claim's round trip and window as the margin.

Failure cases (docs/standby.md has the full table)
--------------------------------------------------
* *The primary dies*: the standby misses its heartbeats, claims ``T+1``, goes live.
* *The link is cut, both alive*: the standby claims ``T+1``; the primary reads the claim on the
  broker and steps down (:data:`Event.WITNESS_ABOVE`): a takeover, fenced at the devices by term
  during the few ms in between. The deposed controller stays deposed after the link heals.
* *The primary loses the broker*: it keeps driving (its standby hears it and does not claim);
  MQTT devices are unreachable for it anyway.
* *The standby loses the broker*: nothing changes while the primary lives; if the primary then
  dies, the standby is an orphan and waits for the broker: no takeover without a confirmed claim.
* *Both lose the broker*: no claim can hold, so no takeover; the show goes on on the primary while
  the link lives. If the link is lost too the primary fences (with ``fence=True``, the default) and
  nobody drives until the broker or the link returns: safety over availability. With
  ``fence=False`` the primary keeps driving its OSC devices while isolated; if the standby reached
  the broker meanwhile, both drive OSC devices (MQTT devices fence by term).
* *Both claim at once*: the pair order decides; the loser is deposed (during the claim window or,
  if its rival's claim was late, as soon as it arrives).
* *A paused primary* (SIGSTOP, a VM freeze): it cannot fence while stopped. On resuming, the
  pending witness messages depose it; devices that check the term have ignored it all along.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import TypeAlias

from venues.errors import MadangError

__all__ = [
    "CLAIM_TIMEOUT_NS",
    "CLAIM_WINDOW_NS",
    "HEARTBEAT_NS",
    "MISSED",
    "TABLE",
    "Action",
    "Assert",
    "Claim",
    "Effect",
    "Event",
    "Failover",
    "FailoverPolicy",
    "FailoverPolicyError",
    "FailoverStatus",
    "GoLive",
    "Rejected",
    "Role",
    "StepDown",
    "Transition",
    "outranks",
    "transition",
]

MS = 1_000_000
HEARTBEAT_NS = 25 * MS
"""Default heartbeat interval, both ways."""
MISSED = 4
"""Default number of heartbeat intervals without one before the standby claims (100 ms)."""
CLAIM_WINDOW_NS = 10 * MS
"""Default time a claim must stand after its echo before it holds."""
CLAIM_TIMEOUT_NS = 500 * MS
"""Default time without an echo after which the same claim is published again."""


class Role(StrEnum):
    """What one controller of the pair is doing (carried in its heartbeats)."""

    STARTING = "starting"  # started to be the primary: claims when the witness is up
    STANDBY = "standby"  # follows a live peer; drives nothing
    ORPHAN = "orphan"  # standby without peer and without witness: waits, never goes live
    CLAIMING = "claiming"  # a claim is out; waits for it to hold
    PRIMARY = "primary"  # live: drives the devices under its term
    FENCED = "fenced"  # a primary that lost peer and witness: stopped, may resume
    DEPOSED = "deposed"  # saw a higher term: drives nothing, for good


class Event(StrEnum):
    """An input, classified against the controller's own standing (the table's key)."""

    # a heartbeat of the peer
    PEER_LIVE_ABOVE = "peer-live-above"  # the peer says primary and ranks above us
    PEER_LIVE_BELOW = "peer-live-below"  # the peer says primary; we rank above it
    PEER_CLAIMING = "peer-claiming"  # the peer has a claim out
    PEER_FENCED = "peer-fenced"  # the peer is a fenced primary, and we reach the witness
    PEER_FENCED_BLIND = "peer-fenced-blind"  # ... and we do not reach the witness
    PEER_FOLLOWER = "peer-follower"  # the peer is not live and reaches the witness
    PEER_FOLLOWER_BLIND = "peer-follower-blind"  # the peer is not live and cannot claim
    PEER_LEFT = "peer-left"  # the peer said bye: it will not claim
    # the witness (the broker's retained controller state)
    WITNESS_OWN = "witness-own"  # our own message at our current term came back (an echo)
    WITNESS_ABOVE = "witness-above"  # another controller, live, ranks above us
    WITNESS_ABOVE_OFFLINE = "witness-above-offline"  # ... ranks above us but is offline (its will)
    WITNESS_ABOVE_SELF = "witness-above-self"  # a higher term of ours: an earlier life of this id
    WITNESS_BELOW = "witness-below"  # anything that ranks below us (or a retained copy of ours)
    WITNESS_UP = "witness-up"  # subscribed to the state topic
    WITNESS_LOST = "witness-lost"  # the broker connection dropped
    # time (from tick, or checked after every input)
    PEER_SILENT = "peer-silent"  # `missed` intervals without a heartbeat of a live peer; witness up
    PEER_SILENT_BLIND = "peer-silent-blind"  # ... and the witness is down
    ISOLATED = "isolated"  # primary: no peer for `fence_after_ns` and no witness
    CLAIM_HELD = "claim-held"  # the echo came back and the claim window passed
    CLAIM_TIMEOUT = "claim-timeout"  # no echo within `claim_timeout_ns`
    # the operator
    TAKEOVER = "takeover"  # a planned switchover, asked on the standby
    TAKEOVER_BLIND = "takeover-blind"  # ... while the witness is unreachable


class Effect(Enum):
    """What :class:`Failover` does when a transition is taken."""

    NOTE = "note"  # bookkeeping only (terms seen, who is where)
    CLAIM = "claim"  # publish a claim: max term seen + 1 (a fenced primary: its own term)
    CLAIM_AGAIN = "claim-again"  # publish the same claim again (no echo in time)
    ASSERT = "assert"  # publish our state again: a lower claim (or our will) overwrote it, or the
    # broker restarted without it
    ECHO = "echo"  # our claim came back: it holds once the claim window has passed
    GO_LIVE = "go-live"  # start driving under our term
    STEP_DOWN = "step-down"  # stop driving now
    LOSE = "lose"  # not live and never will be in this run (a live rival exists)
    ABANDON = "abandon"  # the witness went away mid-claim: back to the role the claim came from
    FOLLOW = "follow"  # the peer is back: follow it
    WAIT = "wait"  # nothing can be done until the peer or the witness returns


# --- actions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """Publish the retained controller state with ``term`` and our id (QoS 1), then feed every
    message that arrives on the state topic to :meth:`Failover.witness` (our echo included).
    ``again``: the same claim once more (the first had no echo in time)."""

    term: int
    again: bool = False


@dataclass(frozen=True, slots=True)
class Assert:
    """We are live: publish the retained controller state at ``term`` again (no echo awaited),
    because a lower claim (or our own last will) overwrote it, or the broker connection is new
    (a restarted broker may have lost it): late joiners read the retained message."""

    term: int


@dataclass(frozen=True, slots=True)
class GoLive:
    """The claim holds (or a fenced primary may resume): start driving, stamping ``term`` on every
    controller message."""

    term: int


@dataclass(frozen=True, slots=True)
class StepDown:
    """Stop driving now (idempotent when not driving: ``was_live`` says which). ``term`` is the
    highest term known; ``reason`` is for the operator's log and view."""

    reason: str
    term: int
    was_live: bool


Action: TypeAlias = Claim | Assert | GoLive | StepDown


# --- the table ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """An accepted event: the role it leads to (``None``: back to the role a claim started from)
    and the effect carried out."""

    role: Role | None
    effect: Effect


@dataclass(frozen=True, slots=True)
class Rejected:
    """An operator command refused in the current role, with the reason to show."""

    reason: str
    role: Role

    def __str__(self) -> str:
        return self.reason


_R = Role
_E = Event
_X = Effect

_PEER_EVENTS = (
    _E.PEER_LIVE_ABOVE,
    _E.PEER_LIVE_BELOW,
    _E.PEER_CLAIMING,
    _E.PEER_FENCED,
    _E.PEER_FENCED_BLIND,
    _E.PEER_FOLLOWER,
    _E.PEER_FOLLOWER_BLIND,
    _E.PEER_LEFT,
)
_WITNESS_NOTES = (
    _E.WITNESS_OWN,
    _E.WITNESS_ABOVE,
    _E.WITNESS_ABOVE_OFFLINE,
    _E.WITNESS_ABOVE_SELF,
    _E.WITNESS_BELOW,
    _E.WITNESS_UP,
    _E.WITNESS_LOST,
)


def _notes(role: Role, events: tuple[Event, ...]) -> dict[tuple[Role, Event], Transition]:
    return {(role, e): Transition(role, _X.NOTE) for e in events}


TABLE: dict[tuple[Role, Event], Transition] = {
    # starting: claim as soon as the witness is up, unless a live controller shows itself first
    **_notes(_R.STARTING, _WITNESS_NOTES),
    (_R.STARTING, _E.WITNESS_UP): Transition(_R.CLAIMING, _X.CLAIM),
    (_R.STARTING, _E.PEER_LIVE_ABOVE): Transition(_R.DEPOSED, _X.LOSE),
    (_R.STARTING, _E.PEER_LIVE_BELOW): Transition(_R.DEPOSED, _X.LOSE),
    (_R.STARTING, _E.PEER_FOLLOWER): Transition(_R.STARTING, _X.NOTE),
    (_R.STARTING, _E.PEER_FOLLOWER_BLIND): Transition(_R.STARTING, _X.NOTE),
    # standby: follows; claims when the live peer falls silent (or says it is fenced)
    **_notes(_R.STANDBY, _PEER_EVENTS),
    **_notes(_R.STANDBY, _WITNESS_NOTES),
    (_R.STANDBY, _E.PEER_FENCED): Transition(_R.CLAIMING, _X.CLAIM),
    (_R.STANDBY, _E.PEER_SILENT): Transition(_R.CLAIMING, _X.CLAIM),
    (_R.STANDBY, _E.PEER_SILENT_BLIND): Transition(_R.ORPHAN, _X.WAIT),
    (_R.STANDBY, _E.TAKEOVER): Transition(_R.CLAIMING, _X.CLAIM),
    # A claim of ours above our term reached the broker after we gave it up (the connection dropped
    # with it in flight): it deposes the primary, so finish the takeover it started.
    (_R.STANDBY, _E.WITNESS_ABOVE_SELF): Transition(_R.CLAIMING, _X.CLAIM),
    # orphan: neither peer nor witness; never goes live without a confirmed claim
    **_notes(_R.ORPHAN, _WITNESS_NOTES),
    (_R.ORPHAN, _E.WITNESS_UP): Transition(_R.CLAIMING, _X.CLAIM),
    **{
        (_R.ORPHAN, e): Transition(_R.STANDBY, _X.FOLLOW)
        for e in _PEER_EVENTS
        if e is not _E.PEER_LEFT and e is not _E.PEER_FENCED  # fenced needs the witness: not here
    },
    (_R.ORPHAN, _E.PEER_LEFT): Transition(_R.ORPHAN, _X.NOTE),
    # claiming: the claim holds, is lost, or is given up with the witness
    **_notes(_R.CLAIMING, _PEER_EVENTS),
    (_R.CLAIMING, _E.WITNESS_OWN): Transition(_R.CLAIMING, _X.ECHO),
    (_R.CLAIMING, _E.WITNESS_ABOVE): Transition(_R.DEPOSED, _X.LOSE),
    (_R.CLAIMING, _E.WITNESS_ABOVE_OFFLINE): Transition(_R.CLAIMING, _X.CLAIM),  # not a rival: above it
    (_R.CLAIMING, _E.WITNESS_ABOVE_SELF): Transition(_R.CLAIMING, _X.CLAIM),  # an earlier life of ours
    (_R.CLAIMING, _E.WITNESS_BELOW): Transition(_R.CLAIMING, _X.NOTE),
    (_R.CLAIMING, _E.WITNESS_UP): Transition(_R.CLAIMING, _X.NOTE),
    (_R.CLAIMING, _E.WITNESS_LOST): Transition(None, _X.ABANDON),
    (_R.CLAIMING, _E.PEER_LIVE_ABOVE): Transition(_R.DEPOSED, _X.LOSE),
    (_R.CLAIMING, _E.CLAIM_HELD): Transition(_R.PRIMARY, _X.GO_LIVE),
    (_R.CLAIMING, _E.CLAIM_TIMEOUT): Transition(_R.CLAIMING, _X.CLAIM_AGAIN),
    # primary: live until a higher term shows itself, or until isolated
    **_notes(_R.PRIMARY, _PEER_EVENTS),
    **_notes(_R.PRIMARY, _WITNESS_NOTES),
    (_R.PRIMARY, _E.PEER_LIVE_ABOVE): Transition(_R.DEPOSED, _X.STEP_DOWN),
    (_R.PRIMARY, _E.WITNESS_ABOVE): Transition(_R.DEPOSED, _X.STEP_DOWN),
    (_R.PRIMARY, _E.WITNESS_ABOVE_OFFLINE): Transition(_R.DEPOSED, _X.STEP_DOWN),  # devices fence us
    (_R.PRIMARY, _E.WITNESS_BELOW): Transition(_R.PRIMARY, _X.ASSERT),
    (_R.PRIMARY, _E.WITNESS_UP): Transition(_R.PRIMARY, _X.ASSERT),  # a restarted broker lost it
    (_R.PRIMARY, _E.ISOLATED): Transition(_R.FENCED, _X.STEP_DOWN),
    # fenced: stopped; back through the witness, or when the peer cannot take over either
    **_notes(_R.FENCED, _PEER_EVENTS),
    **_notes(_R.FENCED, _WITNESS_NOTES),
    (_R.FENCED, _E.WITNESS_UP): Transition(_R.CLAIMING, _X.CLAIM),
    (_R.FENCED, _E.PEER_FOLLOWER_BLIND): Transition(_R.PRIMARY, _X.GO_LIVE),
    (_R.FENCED, _E.PEER_LIVE_ABOVE): Transition(_R.DEPOSED, _X.LOSE),
    # deposed: for good
    **_notes(_R.DEPOSED, _PEER_EVENTS),
    **_notes(_R.DEPOSED, _WITNESS_NOTES),
}
"""Every transition: ``(role, event) -> (next role, effect)``. A network or timer event that is
missing is ignored in that role; a missing operator command is refused."""

_OPERATOR = frozenset({_E.TAKEOVER, _E.TAKEOVER_BLIND})

_WHY_NO_TAKEOVER = {
    Role.STARTING: "this controller is starting as the primary: it claims as soon as the broker is up",
    Role.STANDBY: "the broker (the witness) is unreachable, and a standby never goes live without a "
    "confirmed claim; restore the broker connection first",
    Role.ORPHAN: "the broker (the witness) is unreachable, and a standby never goes live without a "
    "confirmed claim; restore the broker connection first",
    Role.CLAIMING: "a claim is already out: wait for it to hold",
    Role.PRIMARY: "this controller is already live",
    Role.FENCED: "this controller is a fenced primary: it resumes by itself when the broker or its "
    "standby is back",
    Role.DEPOSED: "this controller was deposed by a higher term: restart it as the standby of the live "
    "controller (--standby-of)",
}


def transition(role: Role, event: Event) -> Transition | Rejected | None:
    """Look ``event`` up in :data:`TABLE` for ``role``: the transition; for an operator command
    that is not there, why it is refused; for any other event that is not there, ``None``
    (ignored)."""
    found = TABLE.get((role, event))
    if found is not None:
        return found
    if event in _OPERATOR:
        return Rejected(f"takeover is not possible while {role.value}: {_WHY_NO_TAKEOVER[role]}", role)
    return None


def outranks(a: tuple[int, str], b: tuple[int, str]) -> bool:
    """Whether claim ``a`` = ``(term, controller id)`` wins over ``b``: the higher term, and between
    equal terms the greater id."""
    return a > b


# --- policy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailoverPolicyError(MadangError, ValueError):
    """A failover setting that cannot work; says which and what would."""

    setting: str
    value: object
    need: str

    def __post_init__(self) -> None:
        Exception.__init__(self, self.setting, self.value, self.need)

    def __str__(self) -> str:
        return f"failover setting {self.setting}={self.value!r}: {self.need}"


@dataclass(frozen=True, slots=True)
class FailoverPolicy:
    """The pair's timing. ``fence_after_ns`` ``None``: one heartbeat interval less than the
    standby's detection (``(missed - 1) * heartbeat_ns``). ``fence``: whether a primary that lost
    both the peer and the witness stops driving (the safe default), or keeps driving its OSC
    devices at the risk of two live controllers."""

    heartbeat_ns: int = HEARTBEAT_NS
    missed: int = MISSED
    claim_window_ns: int = CLAIM_WINDOW_NS
    claim_timeout_ns: int = CLAIM_TIMEOUT_NS
    fence_after_ns: int | None = None
    fence: bool = True

    def __post_init__(self) -> None:
        if self.heartbeat_ns <= 0:
            raise FailoverPolicyError("heartbeat_ns", self.heartbeat_ns, "give a positive interval (ns)")
        if self.missed < 3:
            raise FailoverPolicyError(
                "missed",
                self.missed,
                "at least 3: the primary must fence a full interval before "
                "the standby can claim, and one late heartbeat must not cause a takeover",
            )
        if self.claim_window_ns < 0:
            raise FailoverPolicyError("claim_window_ns", self.claim_window_ns, "give 0 or more (ns)")
        if self.claim_timeout_ns <= self.claim_window_ns:
            raise FailoverPolicyError(
                "claim_timeout_ns", self.claim_timeout_ns, "must be longer than the claim window"
            )
        fence_after = self.fence_after_ns
        if (
            fence_after is not None
            and not self.heartbeat_ns < fence_after <= self.detect_ns - self.heartbeat_ns
        ):
            raise FailoverPolicyError(
                "fence_after_ns",
                fence_after,
                f"between one heartbeat interval ({self.heartbeat_ns}) and the standby's detection "
                f"less one interval ({self.detect_ns - self.heartbeat_ns}), so the primary stops "
                "before a claim can hold",
            )

    @property
    def detect_ns(self) -> int:
        """How long the standby waits after the last heartbeat before it claims."""
        return self.missed * self.heartbeat_ns

    @property
    def fence_ns(self) -> int:
        """How long an isolated primary keeps driving (peer silent, witness down)."""
        if self.fence_after_ns is not None:
            return self.fence_after_ns
        return self.detect_ns - self.heartbeat_ns


@dataclass(frozen=True, slots=True)
class FailoverStatus:
    """What the operator sees of one controller of the pair."""

    controller: str
    role: Role
    term: int  # the term we hold (live) or last followed
    live: bool
    witness: bool  # whether the broker (the witness) is reachable
    peer: str | None  # the peer's id, once heard
    peer_role: Role | None
    peer_term: int | None
    peer_alive: bool  # a heartbeat within the detection time
    peer_silent_ns: int | None  # since the peer's last heartbeat
    reason: str  # why the role is what it is (the last change)


# --- the machine ----------------------------------------------------------------------------


class Failover:
    """The role of one controller of the pair; feed it inputs, carry out the actions it returns.

    ``controller``: this controller's id (unique in the pair; the greater id wins a tie). ``role``:
    :attr:`Role.STARTING` for the controller started to be the primary, :attr:`Role.STANDBY` for
    ``--standby-of``. ``term``: the highest term already known (e.g. from the journal)."""

    def __init__(
        self,
        controller: str,
        role: Role = Role.STANDBY,
        *,
        policy: FailoverPolicy | None = None,
        term: int = 0,
    ) -> None:
        if not controller:
            raise FailoverPolicyError("controller", controller, "give this controller a non-empty id")
        if role not in (Role.STARTING, Role.STANDBY):
            raise FailoverPolicyError("role", role, "a controller starts as 'starting' or 'standby'")
        self.controller = controller
        self.policy = policy or FailoverPolicy()
        self.role: Role = role
        self.term = term  # held while live; the highest followed otherwise
        self.max_term = term  # the highest term seen anywhere
        self.claim_term: int | None = None
        self.witness_ok = False
        self.reason = "started"
        # the peer
        self.peer: str | None = None
        self.peer_role: Role | None = None
        self.peer_term: int | None = None
        self.last_peer_ns: int | None = None
        self.peer_present = False  # heard since its last bye: its silence matters
        # the claim under way
        self._claim_at: int | None = None
        self._echo_at: int | None = None
        self._claim_from: Role = role
        # counters
        self.ignored = 0  # events without a table entry in their role

    # -- queries ---------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """Whether this controller drives devices now."""
        return self.role is Role.PRIMARY

    def next_deadline(self) -> int | None:
        """The next instant :meth:`tick` has something to decide (``None``: only inputs matter)."""
        p = self.policy
        if self.role is Role.STANDBY and self._peer_can_be_missed() and self.last_peer_ns is not None:
            return self.last_peer_ns + p.detect_ns
        if self.role is Role.PRIMARY and self._can_be_isolated() and self.last_peer_ns is not None:
            return self.last_peer_ns + p.fence_ns
        if self.role is Role.CLAIMING:
            if self._echo_at is not None:
                return self._echo_at + p.claim_window_ns
            if self._claim_at is not None:
                return self._claim_at + p.claim_timeout_ns
        return None

    def status(self, now: int) -> FailoverStatus:
        """What the operator sees at ``now``."""
        silent = None if self.last_peer_ns is None else now - self.last_peer_ns
        return FailoverStatus(
            controller=self.controller,
            role=self.role,
            term=self.term,
            live=self.live,
            witness=self.witness_ok,
            peer=self.peer,
            peer_role=self.peer_role,
            peer_term=self.peer_term,
            peer_alive=silent is not None and silent < self.policy.detect_ns,
            peer_silent_ns=silent,
            reason=self.reason,
        )

    # -- inputs ----------------------------------------------------------------------------

    def peer_heartbeat(
        self, now: int, term: int, role: Role, controller: str, *, witness: bool = True
    ) -> list[Action]:
        """A heartbeat of the peer arrived at ``now``: its ``term``, ``role``, id, and whether it
        reaches the witness."""
        self.peer, self.peer_role, self.peer_term = controller, role, term
        self.last_peer_ns = now
        self.peer_present = True
        if role in (Role.PRIMARY, Role.CLAIMING, Role.FENCED):
            self.max_term = max(self.max_term, term)
        if self.role in (Role.STANDBY, Role.ORPHAN) and role is Role.PRIMARY:
            self.term = max(self.term, term)
        return self._run(now, self._classify_peer(term, role, controller, witness), f"peer {controller}")

    def peer_left(self, now: int) -> list[Action]:
        """The peer said ``bye`` (a clean exit): its silence is no reason to claim or to fence."""
        self.peer_present = False
        return self._run(now, Event.PEER_LEFT, f"peer {self.peer} left")

    def witness(
        self, now: int, term: int, controller: str, *, live: bool = True, retained: bool = False
    ) -> list[Action]:
        """A retained controller state read from the broker at ``now`` (our own echo included):
        its ``term`` and ``controller`` id; ``live``: False for an offline state (a last will);
        ``retained``: the message came with the retain flag (sent on subscribing, not a publish
        that happened just now)."""
        self.max_term = max(self.max_term, term)
        event = self._classify_witness(term, controller, live, retained)
        return self._run(now, event, f"witness: {controller or '?'} at term {term}")

    def witness_up(self, now: int) -> list[Action]:
        """Subscribed to the state topic (after its acknowledgement: the retained message comes
        next)."""
        self.witness_ok = True
        return self._run(now, Event.WITNESS_UP, "the witness is up")

    def witness_lost(self, now: int) -> list[Action]:
        """The broker connection dropped."""
        self.witness_ok = False
        return self._run(now, Event.WITNESS_LOST, "the witness is lost")

    def tick(self, now: int) -> list[Action]:
        """Time passed: decide what :meth:`next_deadline` was for."""
        return self._check(now)

    def takeover(self, now: int) -> list[Action] | Rejected:
        """The operator asks this standby to take over now (a planned switchover): it claims a
        higher term, and the primary steps down when it reads the claim."""
        event = Event.TAKEOVER if self.witness_ok else Event.TAKEOVER_BLIND
        found = transition(self.role, event)
        if isinstance(found, Rejected):
            return found
        return self._run(now, event, "takeover asked by the operator")

    # -- classification (the guards) -------------------------------------------------------

    def _ref_term(self) -> int:
        if self.role is Role.CLAIMING and self.claim_term is not None:
            return self.claim_term
        return self.term

    def _classify_peer(self, term: int, role: Role, controller: str, witness: bool) -> Event:
        if role is Role.PRIMARY:
            above = outranks((term, controller), (self._ref_term(), self.controller))
            return Event.PEER_LIVE_ABOVE if above else Event.PEER_LIVE_BELOW
        if role is Role.CLAIMING:
            return Event.PEER_CLAIMING
        if role is Role.FENCED:
            return Event.PEER_FENCED if self.witness_ok else Event.PEER_FENCED_BLIND
        return Event.PEER_FOLLOWER if witness else Event.PEER_FOLLOWER_BLIND

    def _classify_witness(self, term: int, controller: str, live: bool, retained: bool) -> Event:
        ref = self._ref_term()
        if controller == self.controller:
            if term == ref and not retained:
                return Event.WITNESS_OWN
            return Event.WITNESS_ABOVE_SELF if term > ref else Event.WITNESS_BELOW
        if outranks((term, controller), (ref, self.controller)):
            return Event.WITNESS_ABOVE if live else Event.WITNESS_ABOVE_OFFLINE
        return Event.WITNESS_BELOW

    def _peer_can_be_missed(self) -> bool:
        # Only a peer that was live (or trying to be) is taken over from; one that said bye is not.
        return self.peer_present and self.peer_role in (Role.PRIMARY, Role.FENCED, Role.CLAIMING)

    def _can_be_isolated(self) -> bool:
        return self.policy.fence and self.peer_present and not self.witness_ok

    def _timer_event(self, now: int) -> Event | None:
        p = self.policy
        last = self.last_peer_ns
        if self.role is Role.STANDBY and self._peer_can_be_missed() and last is not None:
            if now - last >= p.detect_ns:
                return Event.PEER_SILENT if self.witness_ok else Event.PEER_SILENT_BLIND
        elif self.role is Role.PRIMARY and self._can_be_isolated() and last is not None:
            if now - last >= p.fence_ns:
                return Event.ISOLATED
        elif self.role is Role.CLAIMING:
            if self._echo_at is not None:
                if now - self._echo_at >= p.claim_window_ns:
                    return Event.CLAIM_HELD
            elif self._claim_at is not None and now - self._claim_at >= p.claim_timeout_ns:
                return Event.CLAIM_TIMEOUT
        return None

    # -- the engine ------------------------------------------------------------------------

    def _run(self, now: int, event: Event, why: str) -> list[Action]:
        actions = self._apply(now, event, why)
        actions.extend(self._check(now))
        return actions

    def _check(self, now: int) -> list[Action]:
        actions: list[Action] = []
        for _ in range(8):  # each timer event changes the role or restarts its timer: bounded
            event = self._timer_event(now)
            if event is None:
                break
            actions.extend(self._apply(now, event, "timer"))
        return actions

    def _apply(self, now: int, event: Event, why: str) -> list[Action]:
        found = transition(self.role, event)
        if not isinstance(found, Transition):
            self.ignored += 1
            return []
        before = self.role
        after = found.role if found.role is not None else self._claim_from
        effect = found.effect
        actions: list[Action] = []
        if effect is Effect.CLAIM:
            if before is not Role.CLAIMING:
                self._claim_from = before  # where an abandoned claim returns (then timers re-check)
            # A fenced primary re-asserts its own term (if nobody went above it, it is still the
            # devices' term); everyone else claims above everything seen.
            reassert = before is Role.FENCED and self.term >= self.max_term
            term = self.term if reassert else self.max_term + 1
            self.claim_term, self._claim_at, self._echo_at = term, now, None
            self.max_term = max(self.max_term, term)
            actions.append(Claim(term))
            self.reason = f"claiming term {term}: {self._claim_reason(event)}"
        elif effect is Effect.CLAIM_AGAIN:
            assert self.claim_term is not None
            self._claim_at = now
            actions.append(Claim(self.claim_term, again=True))
        elif effect is Effect.ECHO:
            self._echo_at = now
        elif effect is Effect.GO_LIVE:
            if before is Role.CLAIMING and self.claim_term is not None:
                self.term = self.claim_term
                if self._claim_from in (Role.STANDBY, Role.ORPHAN):
                    # We took over from a peer that went silent: it is gone, not a standby of
                    # ours, so its silence must not fence us when the broker blips later.
                    self.peer_present = False
            self._end_claim()
            actions.append(GoLive(self.term))
            self.reason = (
                f"live at term {self.term}"
                if before is Role.CLAIMING
                else f"resumed at term {self.term}: the peer cannot reach the witness either"
            )
        elif effect is Effect.ASSERT:
            actions.append(Assert(self.term))
        elif effect in (Effect.STEP_DOWN, Effect.LOSE):
            was_live = before is Role.PRIMARY
            self._end_claim()
            self.reason = self._down_reason(event, why)
            actions.append(StepDown(self.reason, self.max_term, was_live))
        elif effect is Effect.ABANDON:
            self._end_claim()
            self.reason = f"claim given up: the witness is lost (back to {after.value})"
        elif effect is Effect.FOLLOW:
            self.reason = f"following {self.peer}"
        elif effect is Effect.WAIT:
            self.reason = (
                "the peer is silent and the witness unreachable: waiting (never live without a claim)"
            )
        self.role = after
        return actions

    def _end_claim(self) -> None:
        self.claim_term, self._claim_at, self._echo_at = None, None, None

    def _claim_reason(self, event: Event) -> str:
        return {
            Event.PEER_SILENT: f"peer {self.peer} silent",
            Event.PEER_FENCED: f"peer {self.peer} is fenced",
            Event.TAKEOVER: "takeover asked by the operator",
            Event.WITNESS_UP: "the witness is up",
            Event.WITNESS_ABOVE_OFFLINE: "above an offline controller's term",
            Event.WITNESS_ABOVE_SELF: "above a claim of this controller that landed late",
        }.get(event, event.value)

    def _down_reason(self, event: Event, why: str) -> str:
        if event is Event.ISOLATED:
            return (
                f"fenced: no heartbeat from peer {self.peer} for {self.policy.fence_ns // MS} ms and "
                "the witness is unreachable (the standby may be taking over)"
            )
        if event in (Event.PEER_LIVE_ABOVE,):
            return f"peer {self.peer} is live at term {self.peer_term}"
        return f"a higher term exists ({why})"
