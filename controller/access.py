"""Who may drive the show: the roles, their secrets and the limit on guessing them.

Theory of operation
-------------------
Every surface that takes commands from the network (the browser console, the OSC control port)
asks the same question of the same object: which role does this presented secret grant? There are
two roles, as in QLab's workspace passcodes and Companion's admin/view split:

- ``operator`` may drive: GO, pause, stop, panic, arm, load;
- ``viewer`` may only watch: the cue list, the devices, the log, pushed as they change.

:class:`Access` holds one secret per role. They come from the environment
(``MADANG_OPERATOR_TOKEN``, ``MADANG_VIEWER_TOKEN``), from files (one line each, so a secret is
never on a command line or in ``ps``), or are generated at start (``secrets.token_urlsafe``) and
printed once in the console's URLs. Comparison is constant-time (:func:`hmac.compare_digest`).

:class:`Attempts` bounds guessing: a source that presents wrong secrets is refused outright for a
while once it has used its allowance, and the table of sources is bounded (the oldest is
forgotten first), so a flood of addresses cannot grow memory. Nothing here does I/O or reads a
clock: the caller passes ``now`` (integer nanoseconds).

:class:`Sessions` remembers, per source, the role a right secret granted, until the source has
been quiet for :data:`SESSION_IDLE_NS` (QLab's ``/connect``: a UDP client renews by sending
anything); the table is bounded, the least recently heard source is forgotten first.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from venues.errors import MadangError

__all__ = ["ENV", "SESSION_IDLE_NS", "Access", "AccessError", "Attempts", "Role", "Sessions"]

S = 1_000_000_000


class Role(StrEnum):
    """What a holder of a secret may do."""

    OPERATOR = "operator"
    VIEWER = "viewer"

    @property
    def may_drive(self) -> bool:
        """True for the role that may send transport commands."""
        return self is Role.OPERATOR


ENV = {Role.OPERATOR: "MADANG_OPERATOR_TOKEN", Role.VIEWER: "MADANG_VIEWER_TOKEN"}
"""The environment variables a role's secret may come from."""

_MIN_LENGTH = 8  # shorter secrets are guessed too easily over a shared venue network


class AccessError(MadangError, ValueError):
    """A secret could not be read or is unusable; says which, where and what to do."""

    def __init__(self, role: Role, where: str, problem: str) -> None:
        super().__init__(role, where, problem)
        self.role, self.where, self.problem = role, where, problem

    def __str__(self) -> str:
        return (
            f"the {self.role} secret from {self.where} {self.problem}; give one line of at least "
            f"{_MIN_LENGTH} characters, or leave it out and madang generates one"
        )


@dataclass(frozen=True, slots=True)
class Access:
    """One secret per role. The two must differ (a viewer's secret must not let anyone drive)."""

    operator: str
    viewer: str

    def __post_init__(self) -> None:
        if hmac.compare_digest(self.operator.encode(), self.viewer.encode()):
            raise AccessError(Role.VIEWER, "the configuration", "is the operator's secret")

    @classmethod
    def generated(cls) -> Access:
        """Fresh random secrets (128 bits each), for a run that was given none."""
        return cls(secrets.token_urlsafe(16), secrets.token_urlsafe(16))

    @classmethod
    def configured(
        cls,
        files: Mapping[Role, Path | None] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Access:
        """Secrets from files (first line) or the environment, a file winning over the
        environment; a role given neither gets a generated secret."""
        env = os.environ if env is None else env
        files = files or {}
        found: dict[Role, str] = {}
        for role in Role:
            path = files.get(role)
            if path is not None:
                where = str(path)
                try:
                    text = Path(path).read_text(encoding="utf-8")
                except OSError as exc:
                    raise AccessError(role, where, f"cannot be read ({exc.strerror})") from exc
                value = text.splitlines()[0].strip() if text.strip() else ""
            elif env.get(ENV[role]):
                where, value = f"${ENV[role]}", env[ENV[role]].strip()
            else:
                found[role] = secrets.token_urlsafe(16)
                continue
            if len(value) < _MIN_LENGTH:
                raise AccessError(role, where, f"is {len(value)} characters long")
            found[role] = value
        return cls(found[Role.OPERATOR], found[Role.VIEWER])

    def role_of(self, presented: str | None) -> Role | None:
        """The role a presented secret grants, or None. Constant-time against both secrets."""
        if not presented:
            return None
        given = presented.encode()
        is_operator = hmac.compare_digest(given, self.operator.encode())
        is_viewer = hmac.compare_digest(given, self.viewer.encode())
        if is_operator:
            return Role.OPERATOR
        return Role.VIEWER if is_viewer else None

    def secret(self, role: Role) -> str:
        """The secret of ``role`` (for printing the console's URLs at start)."""
        return self.operator if role is Role.OPERATOR else self.viewer


class Attempts:
    """Wrong secrets per source, bounded: ``allowance`` failures in ``window_ns``, then the source
    is refused without checking until the window has passed. Keeps at most ``sources`` entries.

    Call :meth:`blocked` before checking a secret, :meth:`failed` after a wrong one and
    :meth:`succeeded` after a right one; :attr:`refused` counts what was turned away unchecked.
    """

    def __init__(self, allowance: int = 5, window_ns: int = 60 * S, sources: int = 4096) -> None:
        self.allowance, self.window_ns, self.sources = allowance, window_ns, sources
        self._failures: OrderedDict[str, tuple[int, int]] = OrderedDict()  # source -> (since, n)
        self.failed_total = 0
        self.refused = 0

    def blocked(self, source: str, now: int) -> bool:
        """True when ``source`` has used its allowance within the window (counted as refused)."""
        entry = self._failures.get(source)
        if entry is None:
            return False
        since, n = entry
        if now - since >= self.window_ns:
            del self._failures[source]
            return False
        if n >= self.allowance:
            self.refused += 1
            return True
        return False

    def failed(self, source: str, now: int) -> None:
        """``source`` presented a wrong secret at ``now``."""
        self.failed_total += 1
        since, n = self._failures.pop(source, (now, 0))
        if now - since >= self.window_ns:
            since, n = now, 0
        self._failures[source] = (since, n + 1)
        while len(self._failures) > self.sources:
            self._failures.popitem(last=False)

    def succeeded(self, source: str) -> None:
        """``source`` presented a right secret: its failures are forgotten."""
        self._failures.pop(source, None)

    def __len__(self) -> int:
        return len(self._failures)


SESSION_IDLE_NS = 61 * S
"""A session lapses this long after the last message from its source (QLab: renew within 60 s)."""


class Sessions:
    """The role granted to each source (any hashable: ``(host, port)`` for UDP) by its last right
    secret, until ``idle_ns`` after the last message from it. At most ``limit`` sources: a new one
    past that forgets the least recently heard (counted in :attr:`evicted`), so connecting from
    ever new ports cannot grow memory. Pure: every call takes ``now``."""

    def __init__(self, idle_ns: int = SESSION_IDLE_NS, limit: int = 256) -> None:
        self.idle_ns, self.limit = idle_ns, limit
        self._until: OrderedDict[object, tuple[Role, int]] = OrderedDict()
        self.evicted = 0

    def connect(self, source: object, role: Role, now: int) -> list[object]:
        """``source`` presented the secret of ``role`` at ``now``; returns the sources forgotten
        to make room (their subscriptions should end too)."""
        self._until.pop(source, None)
        self._until[source] = (role, now + self.idle_ns)
        gone: list[object] = []
        while len(self._until) > self.limit:
            old, _ = self._until.popitem(last=False)
            gone.append(old)
            self.evicted += 1
        return gone

    def role(self, source: object, now: int) -> Role | None:
        """The role of ``source`` at ``now`` (None: no session, or it lapsed); renews it."""
        entry = self._until.get(source)
        if entry is None:
            return None
        role, until = entry
        if until <= now:
            del self._until[source]
            return None
        self._until.move_to_end(source)
        self._until[source] = (role, now + self.idle_ns)
        return role

    def end(self, source: object) -> bool:
        """Forget ``source`` (``/disconnect``); whether it had a session."""
        return self._until.pop(source, None) is not None

    def __len__(self) -> int:
        return len(self._until)
