"""Who may speak for a WebSocket device: each device's key, checked before its session is touched.

A WebSocket device proves it is the device it names with the key the venue's secrets file gives
it (``madang broker-config`` writes one for every device, WebSocket ones included; the
controller reads the file with ``--device-secrets``). The device presents it in the handshake,
``/ws?device={id}&key={key}`` (docs/protocol.md, "WebSocket": device keys). The key is
compared in constant time; a missing or wrong one is refused *before* the hub hears of the
connection, so the device's live session is never replaced by a connection that cannot prove
it. Wrong keys are rate-limited per source address with :class:`~controller.access.Attempts`:
past the allowance a source is refused unchecked until its window has passed.

Pure: every call takes ``now`` (nanoseconds).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from controller.access import Attempts

__all__ = ["KEY_MAX", "DeviceKeys"]

KEY_MAX = 256
"""The longest key looked at (characters): a longer one is wrong without being compared."""


class DeviceKeys:
    """The WebSocket devices' keys (``device id -> key``) and the refusals, counted by reason:

    * ``no_key``: the device has no key in the secrets file (it cannot connect at all);
    * ``missing_key``: the handshake named no key;
    * ``wrong_key``: the key did not match;
    * ``rate_limited``: the source used up its allowance of wrong keys (not checked).
    """

    REASONS = ("no_key", "missing_key", "wrong_key", "rate_limited")

    def __init__(self, keys: Mapping[str, str], attempts: Attempts | None = None) -> None:
        self._keys = {d: k.encode() for d, k in keys.items()}
        self.attempts = attempts if attempts is not None else Attempts()
        self.refused: dict[str, int] = dict.fromkeys(self.REASONS, 0)
        self.accepted = 0

    def __contains__(self, device: str) -> bool:
        return device in self._keys

    def check(self, device: str, key: str | None, source: str, now: int) -> str | None:
        """None when ``key`` is ``device``'s; otherwise the reason it is refused (counted).
        ``source`` is the connection's address (its host): wrong keys count against it."""
        if self.attempts.blocked(source, now):
            return self._refuse("rate_limited")
        want = self._keys.get(device)
        if not key:
            self.attempts.failed(source, now)
            return self._refuse("missing_key")
        got = key.encode()
        # Compare even for a device without a key (against itself), so the time taken says
        # nothing about which ids have keys.
        match = hmac.compare_digest(got[:KEY_MAX], want if want is not None else got[:KEY_MAX])
        if want is None or not match or len(got) > KEY_MAX:
            self.attempts.failed(source, now)
            return self._refuse("no_key" if want is None else "wrong_key")
        self.attempts.succeeded(source)
        self.accepted += 1
        return None

    def _refuse(self, reason: str) -> str:
        self.refused[reason] += 1
        return reason

    def report(self) -> dict[str, object]:
        """For the post-show report: accepted, refused by reason, sources held."""
        return {"accepted": self.accepted, "refused": dict(self.refused), "sources": len(self.attempts)}
