"""When a scripted run ends (literal times): ``--go --exit-at-end`` on a show with more than one
manual GO ends at the second one instead of waiting forever; ``--go-all`` plays to the end."""

from __future__ import annotations

from controller.playback import Go, State
from tests.controller.test_player import T0, S, _player, _run


def test_go_exit_at_end_ends_at_a_manual_go_nothing_presses() -> None:
    player, _ = _player(exit_at_end=True, end_at_standby=True)
    assert not player.done(T0)  # armed: the first GO is still to come
    player.command(Go(), T0)
    assert not player.done(T0)  # the GO is pressed, its sequence starts after the GO latency
    now = T0
    while not player.done(now) and now < T0 + 30 * S:
        player.poll(now)
        now = max(player.next_wake(now), now + 1)
    assert player.done(now), "the run waits forever at the second manual GO"
    assert player.stranded_at == "two"
    assert player.core.state is State.PLAYING
    assert player.core.engine.snapshot.current_cue == "one"  # "two" was never started


def test_without_end_at_standby_an_attended_run_waits_for_the_operator() -> None:
    player, _ = _player(exit_at_end=True)
    player.command(Go(), T0)
    _run(player, T0 + 10 * S)
    assert not player.done(T0 + 10 * S) and player.stranded_at is None
    player.command(Go(), T0 + 10 * S)  # the operator presses the second GO
    _run(player, T0 + 20 * S)
    assert player.done(T0 + 20 * S) and player.stranded_at is None


def test_go_all_plays_every_manual_go_to_the_end_and_is_not_stranded() -> None:
    player, _ = _player(auto_go=True, exit_at_end=True, end_at_standby=True)
    now = T0
    while not player.done(now) and now < T0 + 30 * S:
        player.poll(now)
        now = max(player.next_wake(now), now + 1)
    assert player.done(now) and player.core.finished
    assert player.stranded_at is None
    assert player.core.engine.snapshot.current_cue == "two"
