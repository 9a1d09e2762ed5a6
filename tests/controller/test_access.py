"""controller/access.py: roles, their secrets and the bound on guessing, with literal times."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.access import ENV, Access, AccessError, Attempts, Role

S = 1_000_000_000


def test_each_secret_grants_its_role_and_nothing_else_grants_any() -> None:
    access = Access("operator-secret", "viewer-secret")
    assert access.role_of("operator-secret") is Role.OPERATOR
    assert access.role_of("viewer-secret") is Role.VIEWER
    assert access.role_of("operator-secre") is None
    assert access.role_of("") is None and access.role_of(None) is None
    assert Role.OPERATOR.may_drive and not Role.VIEWER.may_drive


def test_the_two_secrets_must_differ() -> None:
    with pytest.raises(AccessError, match=r"viewer secret .* is the operator's secret"):
        Access("same-secret", "same-secret")


def test_generated_secrets_are_long_and_distinct() -> None:
    a, b = Access.generated(), Access.generated()
    assert len(a.operator) >= 20 and a.operator != a.viewer and a.operator != b.operator


def test_a_file_wins_over_the_environment_and_a_missing_role_is_generated(tmp_path: Path) -> None:
    f = tmp_path / "operator.token"
    f.write_text("from-the-file-1234\nignored second line\n")
    access = Access.configured({Role.OPERATOR: f}, env={ENV[Role.OPERATOR]: "from-the-env-1234"})
    assert access.operator == "from-the-file-1234"
    assert len(access.viewer) >= 20
    access = Access.configured({}, env={ENV[Role.VIEWER]: " viewer-from-env "})
    assert access.viewer == "viewer-from-env"


def test_a_short_or_unreadable_secret_says_where_and_what_to_do(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(AccessError) as err:
        Access.configured({Role.OPERATOR: short}, env={})
    assert str(short) in str(err.value) and "3 characters" in str(err.value)
    with pytest.raises(AccessError, match="cannot be read"):
        Access.configured({Role.VIEWER: tmp_path / "absent"}, env={})
    with pytest.raises(AccessError, match=r"\$MADANG_VIEWER_TOKEN"):
        Access.configured({}, env={ENV[Role.VIEWER]: "short"})


def test_a_source_is_blocked_after_its_allowance_until_the_window_passes() -> None:
    attempts = Attempts(allowance=3, window_ns=10 * S)
    for i in range(3):
        assert not attempts.blocked("10.0.0.9", i * S)
        attempts.failed("10.0.0.9", i * S)
    assert attempts.blocked("10.0.0.9", 5 * S) and attempts.refused == 1
    assert not attempts.blocked("10.0.0.8", 5 * S)  # another source is not punished
    assert not attempts.blocked("10.0.0.9", 10 * S)  # the window has passed
    attempts.failed("10.0.0.9", 11 * S)
    attempts.succeeded("10.0.0.9")
    assert len(attempts) == 0


def test_the_table_of_sources_is_bounded() -> None:
    attempts = Attempts(sources=100)
    for i in range(100_000):
        attempts.failed(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", i)
    assert len(attempts) == 100 and attempts.failed_total == 100_000
