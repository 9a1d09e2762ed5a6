"""Fixtures shared by every test package: a private Mosquitto broker.

Tests never use a system broker (on 1883 or anywhere else): each session starts its own on a
free port of 127.0.0.1. When mosquitto is not installed, tests that need it are skipped with
the install command.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from simulators.broker import BrokerNotFound, MosquittoBroker

# Two shared cores make per-example deadlines meaningless (a GC pause or another process is not a
# failure of the property). Under CI (CI=true) runs are derandomized so a red build reproduces.
settings.register_profile(
    "madang",
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("madang")


def _started(broker: MosquittoBroker) -> MosquittoBroker:
    try:
        return broker.start()
    except BrokerNotFound as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))  # CI installs mosquitto (.ci/run): its absence is a failure there
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[MosquittoBroker]:
    """A broker shared by the whole test session. Do not stop or restart it: use ``fresh_mosquitto``."""
    broker = MosquittoBroker()
    try:
        yield _started(broker)
    finally:
        broker.close()


@pytest.fixture
def fresh_mosquitto() -> Iterator[MosquittoBroker]:
    """A broker of this test's own, free to stop, kill and restart (fault tests)."""
    broker = MosquittoBroker()
    try:
        yield _started(broker)
    finally:
        broker.close()
