"""controller.access.Sessions: a role per source until it goes quiet, bounded."""

from __future__ import annotations

from controller.access import Role, Sessions

S = 1_000_000_000


def test_a_session_lapses_when_quiet_and_any_message_renews_it() -> None:
    s = Sessions(idle_ns=60 * S)
    s.connect(("127.0.0.1", 9000), Role.VIEWER, 0)
    assert s.role(("127.0.0.1", 9000), 59 * S) is Role.VIEWER  # renewed until 119 s
    assert s.role(("127.0.0.1", 9000), 118 * S) is Role.VIEWER
    assert s.role(("127.0.0.1", 9000), 178 * S + 1) is None
    assert len(s) == 0
    assert s.role(("127.0.0.1", 9001), 0) is None  # another port is another source


def test_a_new_passcode_replaces_the_role_and_disconnect_ends_it() -> None:
    s = Sessions()
    s.connect("a", Role.VIEWER, 0)
    s.connect("a", Role.OPERATOR, 1)
    assert s.role("a", 2) is Role.OPERATOR
    assert s.end("a")
    assert not s.end("a")
    assert s.role("a", 3) is None


def test_the_table_is_bounded_and_forgets_the_least_recently_heard() -> None:
    s = Sessions(limit=3)
    for i in range(3):
        s.connect(i, Role.OPERATOR, i)
    assert s.role(0, 10) is Role.OPERATOR  # 0 is now the most recently heard
    assert s.connect(3, Role.OPERATOR, 11) == [1]
    assert s.role(1, 12) is None
    assert s.role(0, 12) is Role.OPERATOR
    assert len(s) == 3
    assert s.evicted == 1
