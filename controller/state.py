"""What every device should be showing at a nominal show time: ``state_at(t)``.

Theory of operation
-------------------
Seek, late join and recovery all ask the same question: at nominal show time ``t``, what is the
last value of every parameter on a device (a mid-fade value computed with the easing), the last
OSC message on every address, the last MQTT payload on every topic template, and which clips are
up. Replaying the timeline from zero answers it in O(actions); :class:`StateIndex` answers it in
O(devices x keys x log actions) from an index built once: per device, per key, the sorted list of
change points, searched with :func:`bisect.bisect_right`.

Rules (the brute-force reference in the tests follows the same ones):

* An action counts at ``t`` when ``action.at_ns <= t``; actions at the same instant apply in
  ``seq`` order.
* A fade owns its parameter from its start; a later fade on the same parameter supersedes it
  from *its* start. A fade whose ``start`` is ``None`` starts from the value the parameter had at
  that instant (the previous fade evaluated there), else the device's safe value, else ``0.0``.
* Only fades set parameters; OSC and MQTT sends are remembered verbatim per address/topic
  template (placeholders are substituted per device at send time, not here).
* Clips: an OSC address ending in ``/clip`` (``/layer/2/clip``) sets the clip of its prefix
  (``/layer/2``) to its first argument; an MQTT payload object with a ``clip`` key sets the clip of
  its topic template.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from controller.fades import value_at
from cues.timeline import Action, Ease, Fade, JsonValue, MqttSend, OscArg, OscSend, OscTyped, Timeline
from venues.model import Venue

__all__ = ["DeviceState", "DeviceStates", "ParamSegment", "StateIndex"]

_INF = 1 << 62
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class ParamSegment:
    """A parameter's course from ``at_ns``: ``start`` to ``end`` over ``duration_ns`` (0 = a step)."""

    at_ns: int
    seq: int
    start: float
    end: float
    duration_ns: int
    ease: Ease

    def value(self, t: int) -> float:
        """The value at nominal time ``t`` (``t >= at_ns``)."""
        return value_at(self.start, self.end, self.ease, t - self.at_ns, self.duration_ns)


@dataclass(frozen=True, slots=True)
class DeviceState:
    """One device's state at an instant: parameters, last OSC args per address, last MQTT payload
    per topic template, and active clips (layer or topic -> clip)."""

    params: Mapping[str, float] = field(default_factory=dict)
    osc: Mapping[str, tuple[OscArg, ...]] = field(default_factory=dict)
    mqtt: Mapping[str, JsonValue] = field(default_factory=dict)
    clips: Mapping[str, OscArg | JsonValue] = field(default_factory=dict)

    def to_json(self) -> dict[str, JsonValue]:
        """The protocol's ``state`` op body (``{"params": ..., "mqtt": ..., "osc": ...}``)."""
        return {
            "params": dict(self.params),
            "mqtt": dict(self.mqtt),
            "osc": {a: [_json_arg(v) for v in args] for a, args in self.osc.items()},
        }


def _json_arg(v: OscArg) -> JsonValue:
    if isinstance(v, OscTyped):
        return v.value
    return v.hex() if isinstance(v, bytes) else v


@dataclass(frozen=True, slots=True)
class DeviceStates:
    """Every device's state at nominal show time ``show_ns``."""

    show_ns: int
    devices: Mapping[str, DeviceState]

    def __getitem__(self, device_id: str) -> DeviceState:
        return self.devices[device_id]


class _Track(Generic[_V]):
    """Sorted change points of one key on one device."""

    __slots__ = ("keys", "values")

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []
        self.values: list[_V] = []

    def add(self, at_ns: int, seq: int, value: _V) -> None:
        self.keys.append((at_ns, seq))
        self.values.append(value)

    def last_at(self, t: int) -> _V | None:
        i = bisect_right(self.keys, (t, _INF))
        return self.values[i - 1] if i else None


class _DeviceIndex:
    __slots__ = ("clips", "mqtt", "osc", "params")

    def __init__(self) -> None:
        self.params: dict[str, _Track[ParamSegment]] = {}
        self.osc: dict[str, _Track[tuple[OscArg, ...]]] = {}
        self.mqtt: dict[str, _Track[JsonValue]] = {}
        self.clips: dict[str, _Track[OscArg | JsonValue]] = {}


class StateIndex:
    """The index behind ``state_at``: built once from a timeline, then queried at any ``t``."""

    def __init__(self, timeline: Timeline, venue: Venue) -> None:
        self._venue = venue
        self._devices: dict[str, _DeviceIndex] = {d.id: _DeviceIndex() for d in venue.devices}
        self._segments: dict[tuple[str, int], ParamSegment] = {}
        for action in timeline.actions:  # already sorted by (at_ns, seq)
            self._add(action)

    def _add(self, action: Action) -> None:
        op = action.op
        # devices whose parameter had the same course before this fade share one segment
        shared: dict[tuple[str, float | int], ParamSegment] = {}
        for dev in action.devices:
            idx = self._devices.get(dev)
            if idx is None:
                idx = self._devices[dev] = _DeviceIndex()
            if isinstance(op, Fade):
                track = _track(idx.params, op.param)
                prev = track.values[-1] if track.values and op.start is None else None
                if op.start is not None:
                    key: tuple[str, float | int] = ("start", 0)
                elif prev is not None:
                    key = ("prev", id(prev))
                else:
                    key = ("safe", self._safe_value(dev, op.param))
                seg = shared.get(key)
                if seg is None:
                    start = op.start
                    if start is None:
                        start = prev.value(action.at_ns) if prev is not None else float(key[1])
                    seg = ParamSegment(action.at_ns, action.seq, start, op.end, op.duration_ns, op.ease)
                    shared[key] = seg
                track.add(action.at_ns, action.seq, seg)
                self._segments[(dev, action.seq)] = seg
            elif isinstance(op, OscSend):
                if not op.replay:  # an event (a profile verb: docs/profiles.md), not a state
                    continue
                _track(idx.osc, op.address).add(action.at_ns, action.seq, op.args)
                if op.address.endswith("/clip") and op.args:
                    _track(idx.clips, op.address[: -len("/clip")]).add(action.at_ns, action.seq, op.args[0])
            elif isinstance(op, MqttSend):
                _track(idx.mqtt, op.topic).add(action.at_ns, action.seq, op.payload)
                if isinstance(op.payload, dict) and "clip" in op.payload:
                    _track(idx.clips, op.topic).add(action.at_ns, action.seq, op.payload["clip"])

    def _safe_value(self, device_id: str, param: str) -> float:
        dev = self._venue.by_id.get(device_id)
        v = dev.safe.get(param) if dev is not None else None
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0

    def segment(self, device_id: str, seq: int) -> ParamSegment | None:
        """The resolved course of fade action ``seq`` on a device (its ``start`` resolved)."""
        return self._segments.get((device_id, seq))

    def segment_at(self, device_id: str, param: str, t: int) -> ParamSegment | None:
        """The fade that owns ``param`` on a device at ``t`` (the latest one started by then)."""
        idx = self._devices.get(device_id)
        track = idx.params.get(param) if idx is not None else None
        return track.last_at(t) if track is not None else None

    def param_at(self, device_id: str, param: str, t: int) -> float | None:
        """One parameter's value at ``t``, or ``None`` when no fade has touched it yet."""
        idx = self._devices.get(device_id)
        track = idx.params.get(param) if idx is not None else None
        if track is None:
            return None
        seg = track.last_at(t)
        return seg.value(t) if seg is not None else None

    def state_for_device(self, device_id: str, t: int) -> DeviceState:
        """What ``device_id`` should be showing at nominal show time ``t`` (late join)."""
        idx = self._devices.get(device_id)
        if idx is None:
            return DeviceState()
        params: dict[str, float] = {}
        for name, track in idx.params.items():
            seg = track.last_at(t)
            if seg is not None:
                params[name] = seg.value(t)
        return DeviceState(
            params=params,
            osc=_lasts(idx.osc, t),
            mqtt=_lasts(idx.mqtt, t),
            clips=_lasts(idx.clips, t),
        )

    def state_at(self, t: int, devices: Iterable[str] | None = None) -> DeviceStates:
        """Every device's state (or those in ``devices``) at nominal show time ``t``."""
        ids = list(devices) if devices is not None else [d.id for d in self._venue.devices]
        return DeviceStates(t, {d: self.state_for_device(d, t) for d in ids})


def _track(tracks: dict[str, _Track[_V]], key: str) -> _Track[_V]:
    t = tracks.get(key)
    if t is None:
        t = tracks[key] = _Track()
    return t


def _lasts(tracks: Mapping[str, _Track[_V]], t: int) -> dict[str, _V]:
    out: dict[str, _V] = {}
    for key, track in tracks.items():
        i = bisect_right(track.keys, (t, _INF))
        if i:
            out[key] = track.values[i - 1]
    return out
