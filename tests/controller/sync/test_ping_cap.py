"""The global ping cap (PingPlanner ``max_rate``, SyncService ``max_ping_rate``), with literal
instants and no loop: 5,000 devices that join in one instant never get more pings than the cap in
any second and all get a clock model; joiners are served in the order they joined; the devices
waiting for their first ping are counted, and the sync gate says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controller.core import ControllerCore
from controller.sync.clockmodel import PingPlanner
from controller.sync.estimator import warm
from controller.sync.service import SyncService
from cues.compiler import compile_show
from venues.loader import load_venue

T0 = 1_763_694_000_000_000_000
MS = 1_000_000
S = 1_000_000_000


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    warm()


def max_in_any_second(sent_at: list[int]) -> int:
    """The most pings sent in any window of one second ([t, t + 1 s), t anywhere)."""
    t = np.sort(np.asarray(sent_at, dtype=np.int64))
    ends = np.searchsorted(t, t + S, side="left")
    return int((ends - np.arange(t.size)).max()) if t.size else 0


def test_5000_joins_in_one_instant_stay_under_the_cap_and_all_get_a_model(tmp_path: Path) -> None:
    (tmp_path / "venue.yaml").write_text(
        "venue: doors\nzones: [a]\ndevices:\n"
        '  - {id: "ph-{0001..5000}", kind: phone, zone: a, ws: {}, sync: app}\n',
        encoding="utf-8",
    )
    venue = load_venue(tmp_path / "venue.yaml")
    cap = 2_000
    sync = SyncService(venue, max_ping_rate=cap, seed=3)
    sent_at: list[int] = []
    queued: list[tuple[int, int]] = []
    # Each device's clock: offset 0..4.999 ms, a symmetric 2 ms path; a pong arrives 4 ms later.
    offset = (np.arange(5_000, dtype=np.int64) * 1_000).astype(np.int64)
    waiting: list[tuple[np.ndarray, np.ndarray, int]] = []
    now = T0
    while now <= T0 + 90 * S:
        rows, seqs = sync.due_rows(now)
        if rows.size:
            sent_at.extend([now] * int(rows.size))
            waiting.append((rows, seqs, now))
        while waiting and waiting[0][2] + 4 * MS <= now:
            r, q, t1 = waiting.pop(0)
            n = r.size
            t1s = np.full(n, t1, dtype=np.int64)
            t2 = t1s + 2 * MS + offset[r]
            sync.receive_pong_rows(r, q, t1s, t2, t2, t1s + 4 * MS)
        sync.update_rows(now)
        if (now - T0) % S == 0:
            queued.append((now - T0, sync.queued()))
        now += 4 * MS
    assert max_in_any_second(sent_at) <= cap
    assert len(sent_at) >= cap * 80  # the cap is used, not merely respected: ~2,000 a second
    assert queued[0] == (0, 5_000 - min(5_000, cap // 20))  # the first tick's bucket went out
    assert 0 < dict(queued)[1 * S] < 5_000  # a second later: still queued, and counted
    assert sync.queued() == 0
    assert bool(sync.models.has_model[: len(sync.ids)].all())  # every device synced, eventually
    stats = sync.ping_stats()
    assert stats["max_rate"] == cap and stats["deferred"] and stats["peak_deferred"]


def test_joiners_are_served_first_come_first_served() -> None:
    p = PingPlanner(max_rate=500, seed=1)
    p.reserve(2_000)
    p.join_many(np.arange(1_000), T0)
    p.join_many(np.arange(1_000, 2_000), T0 + 100 * MS)
    first: dict[int, int] = {}
    now = T0
    while len(first) < 2_000 and now < T0 + 60 * S:
        rows, _ = p.due_at(now)
        for r in rows.tolist():
            first.setdefault(r, now)
        now += 2 * MS
    assert len(first) == 2_000
    assert max(first[r] for r in range(1_000)) <= min(first[r] for r in range(1_000, 2_000))


def test_without_a_cap_nothing_is_held() -> None:
    p = PingPlanner(seed=1)
    p.reserve(5_000)
    p.join_many(np.arange(5_000), T0)
    rows, _ = p.due_at(T0)
    assert rows.size == 5_000 and p.deferred == 0 and p.queued() == 0


def test_a_bad_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="max_rate"):
        PingPlanner(max_rate=0)


def test_the_sync_gate_counts_phones_queued_for_their_first_sync(tmp_path: Path) -> None:
    (tmp_path / "venue.yaml").write_text(
        "venue: stand\nzones: [a]\ndevices:\n  - {id: xr-1, kind: xr, zone: a, ws: {}, sync: app}\n"
        "audience:\n  capacity: 400\n  zones: [a]\n",
        encoding="utf-8",
    )
    (tmp_path / "show.yaml").write_text(
        "show: S\nvenue: venue.yaml\ncues:\n  - id: c\n    actions:\n"
        '      - light: {targets: "kind:phone", color: white}\n',
        encoding="utf-8",
    )
    timeline, venue = compile_show(tmp_path / "show.yaml")
    c = ControllerCore(timeline, venue, sync=SyncService(venue, max_ping_rate=100))
    c.poll(T0)
    assert venue.audience is not None
    for i, d in enumerate(venue.audience.slots["a"][:300]):  # doors open: 300 phones at once
        c.receive_mqtt(f"madang/dev/{d}/status", b'{"state":"ready","boot":1}', T0 + S + i)
    c.poll(T0 + S + MS)
    r = c.readiness(T0 + S + MS)
    assert 200 < r.queued <= 300
    assert f"{r.queued:,} queued for their first sync" in r.summary()
    assert r.as_dict()["queued"] == r.queued
