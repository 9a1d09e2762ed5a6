"""The sans-I/O chaser: lock, jitter, freewheel, loss, jump, and the commands it asks for."""

from __future__ import annotations

import random

from controller.chase import (
    ChaseOptions,
    Chaser,
    ChaseState,
    Freewheeling,
    Jumped,
    Locked,
    Lost,
    Relocked,
    commands_for,
)
from controller.playback import Go, LoadAt, Pause, Resume, Seek, State, Stop

MS = 1_000_000
F = 40 * MS  # 25 fps


def feed(ch: Chaser, start_arrival: int, start_tc: int, n: int, jitter: int = 0, seed: int = 1):
    rng = random.Random(seed)
    events = []
    for i in range(n):
        arrival = start_arrival + i * F + (rng.randrange(jitter) if jitter else 0)
        events += ch.receive(arrival, start_tc + i * F)
    return events


def test_locks_after_n_consistent_frames_and_ignores_jitter() -> None:
    ch = Chaser(ChaseOptions(frame_ns=F, lock_frames=4))
    ev = feed(ch, 1_000 * MS, 3_600_000 * MS, 3)
    assert ev == [] and ch.state is ChaseState.LOCKING and ch.show_ns_at(0) is None
    ev = feed(ch, 1_000 * MS + 3 * F, 3_600_000 * MS + 3 * F, 1)
    assert ev == [Locked(3_600_000 * MS + 3 * F)]
    # delay jitter of up to 5 ms: the clock follows the soonest arrivals (offset = tc - arrival)
    feed(ch, 1_000 * MS + 4 * F, 3_600_000 * MS + 4 * F, 50, jitter=5 * MS)
    assert abs(ch.show_ns_at(5_000 * MS) - (3_600_000 * MS + 4_000 * MS)) <= 1 * MS


def test_dropout_freewheels_then_relocks_without_a_seek() -> None:
    ch = Chaser(ChaseOptions(frame_ns=F, freewheel_ns=2_000 * MS))
    feed(ch, 0, 10_000 * MS, 10)
    last = 9 * F
    assert ch.next_deadline() == last + ch.options.dropout_ns
    assert ch.poll(last + 200 * MS) == [Freewheeling()]
    assert ch.show_ns_at(last + 1_000 * MS) == 10_000 * MS + last + 1_000 * MS  # runs on
    ev = ch.receive(last + 1_500 * MS, 10_000 * MS + last + 1_500 * MS)
    assert ev == [Relocked()] and ch.state is ChaseState.LOCKED


def test_loss_after_freewheel_applies_the_policy_and_relocks_later() -> None:
    ch = Chaser(ChaseOptions(frame_ns=F, freewheel_ns=2_000 * MS, on_loss="stop"))
    feed(ch, 0, 0, 10)
    ev = ch.poll(9 * F + 2_001 * MS)
    assert ev == [Freewheeling(), Lost("stop")]
    assert ch.state is ChaseState.IDLE and ch.show_ns_at(10**10) is None
    ev = feed(ch, 5_000 * MS, 7_000 * MS, 4)
    assert ev == [Locked(7_000 * MS + 3 * F)]


def test_jump_needs_n_frames_on_the_new_line_and_a_glitch_never_seeks() -> None:
    ch = Chaser(ChaseOptions(frame_ns=F, lock_frames=3))
    feed(ch, 0, 0, 10)
    assert ch.receive(10 * F, 99_000 * MS) == []  # one stray frame
    assert feed(ch, 11 * F, 11 * F, 3) == []  # back on the line
    ev = feed(ch, 14 * F, 60_000 * MS, 3)  # located to 60 s
    assert ev == [Jumped(60_000 * MS + 2 * F)]
    assert ch.jumps == 1 and ch.locks == 1


def test_a_stopped_source_repeating_one_frame_is_a_dropout() -> None:
    ch = Chaser(ChaseOptions(frame_ns=F))
    feed(ch, 0, 0, 6)
    events = []
    for i in range(6, 20):
        events += ch.receive(i * F, 5 * F)  # parked on one frame
    assert Freewheeling() in events and ch.state is ChaseState.FREEWHEEL


def test_commands_for_events() -> None:
    assert commands_for(Locked(5), State.ARMED) == [LoadAt(show_ns=5), Go()]
    assert commands_for(Locked(5), State.STOPPED) == [LoadAt(show_ns=5), Go()]
    assert commands_for(Jumped(7), State.PLAYING) == [Seek(show_ns=7)]
    assert commands_for(Locked(7), State.PAUSED) == [Seek(show_ns=7), Resume()]
    assert commands_for(Lost("hold"), State.PLAYING) == [Pause()]
    assert commands_for(Lost("stop"), State.PLAYING) == [Stop()]
    assert commands_for(Freewheeling(), State.PLAYING) == []
