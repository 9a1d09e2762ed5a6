"""Assertions about what the audience saw, for people who test shows.

A :class:`ShowRun` wraps one run of a show against a simulated venue (virtual or real time): the
simulator's records in true time, the sync report, and the instant the show started. Its methods
read like the sentences a show's designer would write::

    run.assert_shows("00:50", "zone:banpo & kind:xr", "scene", {"scene": "welcome", "area": "B"})
    run.assert_no_jumps("kind:facade", "/brightness", max_step=0.05)
    run.assert_spread("headsets-ready", under_us=5_000)

Each failure raises :class:`ShowAssertionError` (an ``AssertionError``) naming the devices that
failed and what they showed instead, so a red test says what the audience would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cues.timecode import TimeContext, format_time, parse_time_ns
from cues.timeline import Timeline
from simulators.devices._wire import substitute
from simulators.record import RECEIPT, STALE_TERM, Fire, Recorder
from venues.errors import MadangError
from venues.model import Venue
from venues.selector import resolve

__all__ = ["ShowAssertionError", "ShowRun"]


class ShowAssertionError(MadangError, AssertionError):
    """What the audience saw was not what the test expected."""

    def __init__(self, what: str, failures: Sequence[str], total: int) -> None:
        super().__init__(what)
        self.what = what
        self.failures = list(failures)
        self.total = total

    def __str__(self) -> str:
        shown = "\n  ".join(self.failures[:10])
        more = f"\n  ... and {len(self.failures) - 10} more" if len(self.failures) > 10 else ""
        return f"{self.what}: {len(self.failures)} of {self.total} devices failed:\n  {shown}{more}"


@dataclass
class ShowRun:
    """One finished run: records (true time), report, and when the show's first GO landed."""

    timeline: Timeline
    venue: Venue
    recorder: Recorder
    report: dict[str, Any]
    start_true_ns: int  # true instant of show time 0 (the first GO)

    def devices(self, targets: str) -> tuple[str, ...]:
        """Device ids for a target: a device id, a group, or a selector (as in show files)."""
        return resolve(targets, self.venue)

    def _at(self, t: str | float | int) -> int:
        return self.start_true_ns + parse_time_ns(t, TimeContext())

    def _rows_by_device(self) -> dict[str, list[Fire]]:
        out: dict[str, list[Fire]] = {}
        for r in self.recorder.rows():
            out.setdefault(r.device_id, []).append(r)
        for rows in out.values():
            rows.sort(key=lambda r: r.true_ns)
        return out

    def shown_at(self, t: str | float | int, device: str, leaf: str) -> object:
        """What ``device`` showed for ``leaf`` at show time ``t``: the last MQTT payload whose topic
        ends in ``/leaf``, or the last value of OSC address/parameter ``leaf``; None if nothing yet."""
        return self._shown(self._rows_by_device().get(device, []), self._at(t), device, leaf)

    def _shown(self, rows: Sequence[Fire], when: int, device: str, leaf: str) -> object:
        """The value of ``leaf`` on a device after its rows up to true instant ``when``.

        A catch-up ``state`` (a device that joined or rebooted mid-show) counts as showing
        every parameter and topic it carries; a ``panic`` clears what was shown."""
        last: object = None
        for r in rows:
            if r.true_ns > when:
                break
            if r.what == "panic":
                last = None
            elif r.what == "state":
                found, value = self._from_state(r.value, device, leaf)
                if found:
                    last = value
            elif r.what not in (RECEIPT, STALE_TERM) and _is_leaf(r.param, leaf):
                last = r.value
        return last

    def _from_state(self, body: object, device: str, leaf: str) -> tuple[bool, object]:
        """``(True, value)`` when a catch-up state body sets ``leaf`` (a parameter, or a topic
        ending in ``/leaf``, with the device's placeholders substituted as the device does)."""
        if not isinstance(body, dict):
            return False, None
        params = body.get("params")
        if isinstance(params, dict) and leaf.lstrip("/") in params:
            return True, params[leaf.lstrip("/")]
        topics = body.get("mqtt")
        if isinstance(topics, dict):
            for topic, payload in topics.items():
                if isinstance(topic, str) and _is_leaf(topic, leaf):
                    return True, substitute(payload, self._attrs(device))
        return False, None

    def _attrs(self, device: str) -> dict[str, str]:
        d = self.venue.device(device)
        return {
            **{k: str(v) for k, v in d.attrs.items()},
            "id": d.id,
            "device": d.id,
            "zone": d.zone,
            "kind": d.kind,
        }

    def assert_shows(self, t: str | float | int, targets: str, leaf: str, expected: object) -> None:
        """By show time ``t`` every device of ``targets`` shows ``expected`` for ``leaf``."""
        ids = self.devices(targets)
        rows = self._rows_by_device()
        when = self._at(t)
        bad = []
        for did in ids:
            last = self._shown(rows.get(did, []), when, did, leaf)
            if last != expected:
                bad.append(f"{did} shows {last!r}")
        if bad:
            raise ShowAssertionError(
                f"by {format_time(when - self.start_true_ns)} {targets} should show {leaf} = {expected!r}",
                bad,
                len(ids),
            )

    def assert_no_jumps(self, targets: str, param: str, *, max_step: float) -> None:
        """No device of ``targets`` changes ``param`` by more than ``max_step`` between two values."""
        ids = self.devices(targets)
        rows = self._rows_by_device()
        bad = []
        for did in ids:
            prev: float | None = None
            for r in rows.get(did, []):
                if r.param != param or not isinstance(r.value, int | float):
                    continue
                v = float(r.value)
                if prev is not None and abs(v - prev) > max_step:
                    bad.append(
                        f"{did} jumped {prev:.3f} -> {v:.3f} at {format_time(r.true_ns - self.start_true_ns)}"
                    )
                    break
                prev = v
        if bad:
            raise ShowAssertionError(
                f"{param} on {targets} must not jump by more than {max_step}", bad, len(ids)
            )

    def spread_us(self, cue: str, stat: str = "p99_us") -> float:
        """The spread of ``cue`` across devices (largest over its actions), from the sync report.

        ``stat``: ``p50_us``, ``p99_us`` or ``max_us`` (distance from the cue's median instant), or
        ``range_us`` (latest minus earliest device)."""
        rows = [c for c in self.report["cues"] if c["cue"] == cue]
        if not rows:
            fired = sorted({c["cue"] for c in self.report["cues"]})
            raise ShowAssertionError(
                f"cue {cue!r} never fired on two or more devices", [f"fired: {fired}"], 0
            )
        return max(float(c[stat]) for c in rows)

    def assert_spread(self, cue: str, *, under_us: float, stat: str = "p99_us") -> None:
        """The spread of ``cue`` across devices is under ``under_us`` microseconds."""
        got = self.spread_us(cue, stat)
        if not got < under_us:
            raise ShowAssertionError(
                f"the spread of cue {cue!r} ({stat}) should be under {under_us:.0f} us",
                [f"it was {got:.0f} us"],
                1,
            )


def _is_leaf(param: str, leaf: str) -> bool:
    """``param`` (an OSC address, a parameter or a topic) is ``leaf`` or ends in ``/leaf``."""
    return param == leaf or param.rsplit("/", 1)[-1] == leaf.lstrip("/")
