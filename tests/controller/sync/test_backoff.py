"""PingPlanner backs off when its pongs come back late (a congested path), and only then."""

from __future__ import annotations

import numpy as np

from controller.sync.clockmodel import PingPlanner

MS = 1_000_000
S = 1_000_000_000


def _run(rtt_of: object, seconds: float, n: int = 500) -> tuple[PingPlanner, list[int]]:
    """``n`` devices join at 0; every ping is answered after ``rtt_of(t)`` ns (or never: None).
    Returns the planner and the pings sent in each second."""
    p = PingPlanner(seed=3)
    p.join_many(np.arange(n), 0)
    pending: list[tuple[int, int, int]] = []  # (arrival, dev, seq)
    per_s: list[int] = []
    t = 0
    while t < seconds * S:
        rows, seqs = p.due_at(t)
        rtt = rtt_of(t)  # type: ignore[operator]
        if rtt is not None:
            pending += [(t + rtt, int(d), int(q)) for d, q in zip(rows.tolist(), seqs.tolist(), strict=True)]
        if len(per_s) <= t // S:
            per_s.append(0)
        per_s[-1] += rows.size
        due = [x for x in pending if x[0] <= t]
        pending = [x for x in pending if x[0] > t]
        for _, d, q in due:
            p.receive_pong(d, q, t)
        t += 2 * MS
    return p, per_s


def test_a_healthy_path_never_backs_off() -> None:
    p, per_s = _run(lambda t: 300 * MS, 12)  # Wi-Fi's worst is hundreds of ms
    assert p.backoffs == 0 and p.max_rate is None and p.late == 0
    assert per_s[1] >= 4_000  # 500 bursts of 10 a second, uncapped


def test_late_pongs_make_it_cap_itself_then_a_quiet_path_lifts_the_cap() -> None:
    congested_until = 8 * S
    p, per_s = _run(lambda t: 3 * S if t < congested_until else 5 * MS, 40)
    assert p.backoffs >= 1 and p.late > 0
    # While congested, it sends far fewer pings than the 5,000 a second the bursts ask for.
    assert max(per_s[5:8]) < 2_500, per_s[:10]
    # Quiet again: the cap rose and was lifted; no ping is held any more.
    assert p.max_rate is None, (p.max_rate, per_s)


def test_a_set_cap_is_the_ceiling_it_returns_to() -> None:
    p = PingPlanner(seed=1, max_rate=3_000)
    p._set_rate(500)
    p._adapt(0)  # nothing answered, nothing held: back to the operator's cap, not none
    assert p.max_rate == 3_000
