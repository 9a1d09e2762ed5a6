"""The control port's pure parts: the address table, the parser, subscriptions and what is pushed."""

from __future__ import annotations

import json

import pytest

from controller.control import (
    ADDRESSES,
    Push,
    Query,
    Refusal,
    Subscribe,
    Subscriptions,
    parse_command,
    plan_updates,
)
from controller.playback import (
    Arm,
    Go,
    LoadAt,
    Panic,
    Pause,
    PlayheadNext,
    PlayheadPrevious,
    Reset,
    Resume,
    Seek,
    SetRate,
    Stop,
    TogglePause,
)

S = 1_000_000_000


@pytest.mark.parametrize(
    ("address", "args", "expected"),
    [
        ("/go", (), Go()),
        ("/go/force", (), Go(cue=None, force=True)),
        ("/go/force/bloom", (), Go(cue="bloom", force=True)),
        ("/go/bloom", (), Go(cue="bloom")),
        ("/cue/bloom/start", (), Go(cue="bloom")),
        ("/cue/force/start", (), Go(cue="force")),
        ("/stop", (), Stop()),
        ("/pause", (), Pause()),
        ("/resume", (), Resume()),
        ("/togglePause", (), TogglePause()),
        ("/panic", (), Panic()),
        ("/arm", (), Arm()),
        ("/reset", (), Reset()),
        ("/load", (60,), LoadAt(show_ns=60 * S)),
        ("/load", (1.5,), LoadAt(show_ns=1_500_000_000)),
        ("/load", ("2.25",), LoadAt(show_ns=2_250_000_000)),
        ("/load/bloom", (), LoadAt(cue="bloom")),
        ("/cue/bloom/load", (), LoadAt(cue="bloom")),
        ("/playhead/next", (), PlayheadNext()),
        ("/playhead/previous", (), PlayheadPrevious()),
        ("/seek", (1.0,), Seek(show_ns=S)),
        ("/seek/bloom", (), Seek(cue="bloom")),
        ("/rate", (2,), SetRate(rate=2.0)),
        ("/state", (), Query("state")),
        ("/thump", (), Query("thump")),
        ("/updates", (1,), Subscribe(on=True)),
        ("/updates", (0,), Subscribe(on=False)),
    ],
)
def test_every_address_parses_to_its_command(
    address: str, args: tuple[object, ...], expected: object
) -> None:
    assert parse_command(address, args) == expected


@pytest.mark.parametrize(
    ("address", "args", "words"),
    [
        ("/arm/now", (), "unknown address /arm/now; see docs/operator.md"),
        ("/load", (), "/load takes one number of seconds from 0 to 10000000, or use /load/{cue}"),
        ("/load", (1e308,), "/load takes one number"),  # would overflow as nanoseconds
        ("/seek", (float("inf"),), "/seek takes one number"),
        ("/load", (-1,), "/load takes one number"),
        ("/load", ("soon",), "/load takes one number"),
        ("/load", (float("nan"),), "/load takes one number"),
        ("/seek", (), "/seek takes one number"),
        ("/rate", (99,), "between 0.05 and 16"),
        ("/updates", (), "/updates takes 1"),
        ("/updates", (2,), "/updates takes 1"),
        ("/", (), "empty address"),
    ],
)
def test_bad_messages_are_refused_with_what_to_do(address: str, args: tuple[object, ...], words: str) -> None:
    got = parse_command(address, args)
    assert isinstance(got, Refusal) and words in got.reason


def test_the_table_has_one_row_per_pattern_and_every_pattern_parses() -> None:
    patterns = [a.pattern for a in ADDRESSES]
    assert len(patterns) == len(set(patterns))
    for row in ADDRESSES:
        address = row.pattern.replace("{cue}", "some-cue")
        args: tuple[object, ...] = (1,) if row.args else ()
        assert not isinstance(parse_command(address, args), Refusal), row.pattern


def test_subscriptions_are_bounded_renewed_by_any_message_and_lapse() -> None:
    subs = Subscriptions(limit=2, ttl_ns=60 * S)
    a, b, c = ("127.0.0.1", 1), ("127.0.0.1", 2), ("127.0.0.1", 3)
    assert subs.subscribe(a, 0) is None and subs.subscribe(b, 0) is None
    refused = subs.subscribe(c, 1 * S)
    assert refused is not None and "/updates 0" in refused
    assert subs.subscribe(a, 10 * S) is None  # renewing is not a new subscription: a until 70 s
    subs.seen(b, 30 * S)  # any message renews: b until 90 s
    assert subs.peers(69 * S) == [a, b]
    assert subs.peers(70 * S) == [b]  # a lapsed
    assert subs.expire(90 * S) == [b]
    assert subs.subscribe(c, 91 * S) is None and subs.unsubscribe(c) and not subs.unsubscribe(c)
    assert len(subs) == 0


def test_subscriptions_peers_before_expiry() -> None:
    subs = Subscriptions(limit=4, ttl_ns=60 * S)
    subs.subscribe(("h", 1), 0)
    assert subs.peers(59 * S) == [("h", 1)]
    assert subs.peers(60 * S) == []


STATE: dict[str, object] = {"state": "armed", "cue": None, "standby": "one", "show_ns": None, "rate": 1.0,
         "running": [], "waiting_for": None, "take": 1}


def test_a_new_subscriber_gets_everything_and_only_changes_follow() -> None:
    peers = [("127.0.0.1", 9000), ("127.0.0.1", 9001)]
    first = plan_updates(None, STATE, peers[:1])
    everything = ["/update/state", "/update/transport", "/update/playhead", "/update/cue"]
    assert [p.address for p in first] == everything
    body = json.loads(first[0].args[0])
    assert body == {"address": "/state", "status": "ok", "data": STATE}
    assert first[1].args == ("armed",) and first[2].args == ("one",) and first[3].args == ("",)
    # Only the show time moved: nothing.
    assert plan_updates({**STATE, "show_ns": 5}, {**STATE, "show_ns": 9}, peers) == []
    # GO: state and cue changed, playhead too; every subscriber gets the same messages.
    playing = {**STATE, "state": "playing", "cue": "one", "standby": "two", "show_ns": 0, "running": ["one"]}
    pushes = plan_updates(STATE, playing, peers)
    assert {p.peer for p in pushes} == set(peers)
    mine = [(p.address, p.args) for p in pushes if p.peer == peers[0]]
    assert [a for a, _ in mine] == everything
    assert mine[1:] == [("/update/transport", ("playing",)), ("/update/playhead", ("two",)),
                        ("/update/cue", ("one",))]
    # The rate alone: only the state.
    rate_only = plan_updates(playing, {**playing, "rate": 2.0}, peers[:1])
    assert [p.address for p in rate_only] == ["/update/state"]
    assert plan_updates(STATE, STATE, []) == []
    assert all(isinstance(p, Push) for p in pushes)
