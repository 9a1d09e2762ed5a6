"""A simulated ``app`` device (an XR headset app over MQTT, or a WebXR client): a sans-I/O core.

Theory of operation
-------------------
The core speaks the JSON messages of protocol.md on topics, whatever carries them (MQTT, or the
WebSocket envelope ``{"topic", "payload"}``). The driver:

1. calls :meth:`AppDevice.connect` once the transport is up, subscribes to :meth:`subscriptions`
   and sends what ``connect`` returns (``ready`` status, retained);
2. passes every message to :meth:`receive` with the true instant it arrived;
3. calls :meth:`tick` when :meth:`due_at` (true ns) comes: scheduled cues, fade ends, heartbeats;
4. on a crash, stops talking: the transport's last will (:meth:`will`) says ``offline``.

Cues (``op``: ``mqtt``, ``fade``, ``state``, ``panic``) are deduplicated by ``(show, cue, seq)``
and executed at the device-clock instant ``local = at + offset + drift_ppb * (at - epoch) / 1e9``
from the last clock model received; with no model yet, at once (reported ``"synced": false``).
``state`` and ``panic`` execute on receipt. Each execution is recorded in true and local time and
reported on ``{base}/fired``. Bad input is dropped and counted in ``dropped``, never raised.

Controller terms (protocol.md, "Controller terms (hot standby)"): the device keeps the highest
``term`` it has seen (:attr:`AppDevice.term_floor`) from cue messages, clock models and the
retained controller state. A message with a lower term is dropped, counted in
``dropped["stale_term"]`` and recorded as a ``stale_term`` row; one without a term is obeyed
(a controller older than terms). A cue scheduled under a term that is below the floor when it
falls due is dropped the same way and its key forgotten, unless a copy of it under a term at
least the floor arrived meanwhile (the new controller re-sending it): what a deposed controller
planned never fires after the device has heard from its successor.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, TypeGuard

from simulators.clock import DeviceClock
from simulators.devices._wire import BadInput, decode_json, encode_json, substitute
from simulators.devices.easing import ease
from simulators.devices.messages import Publish
from simulators.record import STALE_TERM, Recorder
from venues.model import Device

__all__ = ["PROTO", "AppDevice", "ClockModel", "Ramp"]

log = logging.getLogger(__name__)
PROTO = 1
HEARTBEAT_NS = 5_000_000_000  # protocol.md: "alive" at least every 5 s
_I64 = (-(1 << 63), (1 << 63) - 1)


@dataclass(frozen=True, slots=True)
class ClockModel:
    """The controller's model of this device's clock (protocol.md, "The clock model")."""

    epoch: int
    offset_ns: int
    drift_ppb: int
    uncertainty_ns: int = 0

    def local_of(self, at: int) -> int:
        """The device-clock instant for show-clock instant ``at`` (exact integer maths, rounded)."""
        num = self.drift_ppb * (at - self.epoch)
        return at + self.offset_ns + (num + 500_000_000) // 1_000_000_000


@dataclass(frozen=True, slots=True)
class Ramp:
    """A fade the device runs itself, in its own clock."""

    param: str
    start: float
    end: float
    local_start: int
    duration_ns: int
    kind: str
    params: tuple[float, ...]

    def value_at(self, local_ns: int) -> float:
        """The parameter's value at device-clock instant ``local_ns``."""
        if self.duration_ns <= 0 or local_ns >= self.local_start + self.duration_ns:
            return self.end
        if local_ns <= self.local_start:
            return self.start
        x = (local_ns - self.local_start) / self.duration_ns
        return self.start + (self.end - self.start) * ease(self.kind, self.params, x)


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and _I64[0] <= v <= _I64[1]


def _is_num(v: object) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


class AppDevice:
    """The core of one ``app`` device (a headset or WebXR client). See the module docstring."""

    def __init__(
        self,
        device: Device,
        clock: DeviceClock,
        recorder: Recorder | None = None,
        *,
        report_fired: bool = True,
    ) -> None:
        self.device = device
        self.clock = clock
        self.recorder = recorder if recorder is not None else Recorder()
        self.index = self.recorder.register(device.id)
        self.report_fired = report_fired
        self.attrs: dict[str, str] = {
            **{k: str(v) for k, v in device.attrs.items()},
            "id": device.id,
            "device": device.id,
            "zone": device.zone,
            "kind": device.kind,
        }
        self.base: str = device.topic_root
        self._ping_topic = f"{self.base}/ping"
        self._clock_topic = f"{self.base}/clock"
        self._pong_topic = f"{self.base}/pong"
        self.dropped: Counter[str] = Counter()
        self.alive = False
        self.boot_local = 0
        self.pings = 0
        self._model: ClockModel | None = None
        self._model_fields: tuple[int, int, int, int] | None = None  # set_model, built when read
        self.controller_state: dict[str, Any] | None = None
        self.state: dict[str, Any] = {}
        self.state_by_leaf: dict[str, Any] = {}
        self.params: dict[str, float] = {}
        self.ramps: dict[str, Ramp] = {}
        self._seen: set[tuple[str, str, int]] = set()
        self._pending: list[tuple[int, int, dict[str, Any], int]] = []  # (true_at, n, msg, local_at)
        self.term_floor = 0  # the highest controller term seen (0: none yet)
        self._pending_term: dict[tuple[str, str, int], int] = {}  # scheduled cues: the term vouching for each
        self._counter = 0
        self._next_heartbeat: int | None = None
        self.heartbeats = True  # False: a sync lane sends them (hand_over_heartbeats)
        self._safe_state()

    @property
    def model(self) -> ClockModel | None:
        """The last clock model received (``None``: none since it booted)."""
        f = self._model_fields
        if f is not None:
            self._model, self._model_fields = ClockModel(*f), None
        return self._model

    @model.setter
    def model(self, m: ClockModel | None) -> None:
        self._model, self._model_fields = m, None

    def set_model(
        self,
        epoch: int,
        offset_ns: int,
        drift_ppb: int,
        uncertainty_ns: int,
        term: int = 0,
        true_now: int = 0,
    ) -> bool:
        """Take a clock model already checked (a sync lane's; the wire's goes through
        :meth:`receive`): the fields of the protocol's clock message, and its ``term`` (``0``:
        none) arriving at ``true_now``. False when it was dropped for a stale term."""
        if term and not self._admit(term, "clock", "", -1, true_now):
            return False
        self._model_fields = (epoch, offset_ns, drift_ppb, uncertainty_ns)
        return True

    # -- lifecycle ------------------------------------------------------------------------------
    def subscriptions(self) -> list[str]:
        """The topics to subscribe to (protocol.md, "Cues", "Clock synchronisation")."""
        d = self.device
        return [
            "madang/cue",
            f"madang/cue/zone/{d.zone}",
            f"madang/cue/kind/{d.kind}",
            f"madang/cue/dev/{d.id}",
            f"{self.base}/ping",
            f"{self.base}/clock",
            "madang/controller/state",
        ]

    def will(self) -> Publish:
        """The last will to register with the transport: ``offline``, retained."""
        return Publish(f"{self.base}/status", encode_json({"state": "offline"}), retain=True)

    def connect(self, true_now: int) -> list[Publish]:
        """The transport is up and subscribed: announce ``ready`` and start the heartbeat."""
        if not self.alive:
            self.alive = True
            self.boot_local = self.clock.local(true_now)
        self._next_heartbeat = true_now + HEARTBEAT_NS if self.heartbeats else None
        return [self._status("ready", true_now)]

    def hand_over_heartbeats(self) -> int | None:
        """Stop sending ``alive`` heartbeats: from now on a sync lane
        (:class:`~simulators.devices.virtual.SyncLane`) sends them for this device, every
        ``HEARTBEAT_NS`` from each connection, as :meth:`tick` would. Returns the instant the
        next one was due (``None``: not connected)."""
        self.heartbeats = False
        nxt, self._next_heartbeat = self._next_heartbeat, None
        return nxt

    def _status(self, state: str, true_now: int) -> Publish:
        return Publish(
            f"{self.base}/status", self.status_message(state, self.clock.local(true_now)), retain=True
        )

    def status_message(self, state: str, local_ns: int) -> bytes:
        """The body of a status message (``ready``, ``alive``) sent when its clock reads ``local_ns``:
        ``{"state":...,"boot":...,"proto":1,"local":...}``, compact JSON. (Formatted directly: a
        sync lane sends ten thousand headsets' heartbeats this way, a million in a show.)"""
        return b'{"state":"%s","boot":%d,"proto":%d,"local":%d}' % (
            state.encode(),
            self.boot_local,
            PROTO,
            local_ns,
        )

    def crash(self) -> None:
        """Power off: loses state, pending cues, dedup memory and its clock model."""
        self.alive = False
        self.model = None
        self.controller_state = None
        self.state.clear()
        self.state_by_leaf.clear()
        self.ramps.clear()
        self._seen.clear()
        self._pending.clear()
        self._pending_term.clear()
        self.term_floor = 0  # learned again from the retained messages it gets on subscribing
        self._next_heartbeat = None
        self._safe_state()

    def boot(self, clock: DeviceClock | None = None) -> None:
        """Power on (the driver then reconnects and calls :meth:`connect`)."""
        if clock is not None:
            self.clock = clock

    def _safe_state(self) -> None:
        self.params = {k: float(v) for k, v in self.device.safe.items() if _is_num(v)}

    # -- input ----------------------------------------------------------------------------------
    def _drop(self, reason: str, topic: str) -> list[Publish]:
        self.dropped[reason] += 1
        if self.dropped[reason] == 1:
            log.warning(
                "dropped bad message", extra={"device": self.device.id, "topic": topic, "reason": reason}
            )
        return []

    def receive(self, topic: str, payload: bytes, true_now: int) -> list[Publish]:
        """Handle one message that arrived at ``true_now``; returns what to publish."""
        if not self.alive:
            return []
        try:
            msg = decode_json(payload)
        except BadInput as e:
            return self._drop(e.reason, topic)
        return self.receive_decoded(topic, msg, true_now)

    def receive_decoded(self, topic: str, msg: dict[str, Any], true_now: int) -> list[Publish]:
        """:meth:`receive` for a message already decoded by :func:`~simulators.devices._wire.decode_json`
        (a driver may decode a message sent to many devices once: ``msg`` is only read, never changed)."""
        if not self.alive:
            return []
        if topic == "madang/controller/state":
            self.receive_controller_state(msg, true_now)
            return []
        if topic == self._ping_topic:
            return self._pong(msg, true_now, topic)
        if topic == self._clock_topic:
            return self._clock(msg, topic, true_now)
        if topic == "madang/cue" or topic.startswith("madang/cue/"):
            return self._cue(msg, true_now, topic)
        return self._drop("unknown_topic", topic)

    def receive_controller_state(self, msg: dict[str, Any], true_now: int) -> bool:
        """The retained controller state (decoded), arriving at ``true_now``: kept as
        :attr:`controller_state` and its term raises the floor; False when it was dropped (a
        stale or malformed term)."""
        term = self._term_of(msg, "madang/controller/state")
        if term is None or (term and not self._admit(term, "controller", "", -1, true_now)):
            return False
        self.controller_state = msg
        return True

    # -- controller terms -------------------------------------------------------------------------
    def _term_of(self, msg: dict[str, Any], topic: str) -> int | None:
        """The message's ``term``: ``0`` when it has none, ``None`` (dropped and counted as
        ``bad_term``) when it is not a positive integer."""
        term = msg.get("term")
        if term is None:
            return 0
        if _is_int(term) and term >= 1:
            return term
        self._drop("bad_term", topic)
        return None

    def _admit(self, term: int, what: str, key: str, seq: int, true_now: int) -> bool:
        """Whether a command under ``term`` (at least 1) may be obeyed: yes when it is not below
        the floor (which it then raises), else it is dropped, counted and recorded."""
        if term >= self.term_floor:
            self.term_floor = term
            return True
        self._stale(what, key, seq, term, true_now, self.clock.local(true_now))
        return False

    def _stale(self, what: str, key: str, seq: int, term: int, true_at: int, local_at: int) -> None:
        """A command under ``term``, below the floor, dropped: counted, recorded, logged once."""
        self.dropped[STALE_TERM] += 1
        if self.dropped[STALE_TERM] == 1:
            log.warning(
                "dropped a command from a replaced controller (its term is below the highest seen)",
                extra={"device": self.device.id, "what": what, "term": term, "floor": self.term_floor},
            )
        self.recorder.record(self.index, STALE_TERM, key, seq, what, true_at, local_at, None, term)

    def _pong(self, msg: dict[str, Any], true_now: int, topic: str) -> list[Publish]:
        seq, t1 = msg.get("seq"), msg.get("t1")
        if not (_is_int(seq) and _is_int(t1)):
            return self._drop("bad_ping", topic)
        self.pings += 1
        t2 = self.clock.local(true_now)
        # The core replies at once: t3 (just before sending) equals t2 in its own clock.
        body = {"seq": seq, "t1": t1, "t2": t2, "t3": t2}
        return [Publish(self._pong_topic, encode_json(body))]

    def _clock(self, msg: dict[str, Any], topic: str, true_now: int) -> list[Publish]:
        epoch, off, ppb = msg.get("epoch"), msg.get("offset_ns"), msg.get("drift_ppb")
        unc = msg.get("uncertainty_ns", 0)
        if not (_is_int(epoch) and _is_int(off) and _is_int(ppb) and _is_int(unc)):
            return self._drop("bad_clock", topic)
        term = self._term_of(msg, topic)
        if term is None or (term and not self._admit(term, "clock", "", -1, true_now)):
            return []
        self.model = ClockModel(epoch, off, ppb, unc)
        return []

    def _cue(self, msg: dict[str, Any], true_now: int, topic: str) -> list[Publish]:
        show, cue, seq, op = msg.get("show"), msg.get("cue"), msg.get("seq"), msg.get("op")
        if not (isinstance(show, str) and isinstance(cue, str) and _is_int(seq)):
            return self._drop("bad_cue", topic)
        if not (isinstance(op, dict) and len(op) == 1):
            return self._drop("bad_op", topic)
        term = self._term_of(msg, topic)
        if term is None or (term and not self._admit(term, "cue", cue, int(seq), true_now)):
            return []
        key = (show, cue, int(seq))
        if key in self._seen:
            # A repeat. One under a higher term than a scheduled copy's vouches for it: the live
            # controller still wants it (keys are the same across terms on purpose).
            if term > self._pending_term.get(key, term):
                self._pending_term[key] = term
            return []
        kind = next(iter(op))
        local_now = self.clock.local(true_now)
        # When it first arrived: what executing on receipt would have given (the report's baseline).
        self.recorder.record(self.index, "rx", cue, int(seq), "", true_now, local_now, None, term)
        if kind in ("panic", "state"):
            self._seen.add(key)
            return self._execute(msg, true_now, local_now, synced=self.model is not None, term=term)
        if kind not in ("mqtt", "fade"):
            return self._drop("unknown_op", topic)
        at = msg.get("at")
        if not _is_int(at):
            return self._drop("bad_cue", topic)
        self._seen.add(key)
        model = self.model
        if model is None:
            return self._execute(msg, true_now, local_now, synced=False, term=term)
        local_at = model.local_of(int(at))
        if local_at <= local_now:
            return self._execute(msg, true_now, local_now, synced=True, term=term)  # late: at once
        true_at = self.clock.true_of(local_at, after=true_now)
        self._counter += 1
        heapq.heappush(self._pending, (true_at, self._counter, msg, local_at))
        if term:
            self._pending_term[key] = term
        return []

    # -- execution ------------------------------------------------------------------------------
    def _execute(
        self, msg: dict[str, Any], true_at: int, local_at: int, *, synced: bool, term: int
    ) -> list[Publish]:
        op: dict[str, Any] = msg["op"]
        kind, body = next(iter(op.items()))
        cue, seq = str(msg["cue"]), int(msg["seq"])
        rec = self.recorder.record
        if kind == "mqtt":
            if not isinstance(body, dict) or not isinstance(body.get("topic"), str):
                return self._drop("bad_op", "mqtt")
            topic = substitute(body["topic"], self.attrs)
            payload = substitute(body.get("payload"), self.attrs)
            self._set_topic(topic, payload)
            rec(self.index, "cue", cue, seq, topic, true_at, local_at, payload, term)
        elif kind == "fade":
            ramp = self._ramp(body, local_at)
            if ramp is None:
                return self._drop("bad_fade", "fade")
            self.ramps[ramp.param] = ramp
            rec(self.index, "fade", cue, seq, ramp.param, true_at, local_at, ramp.end, term)
        elif kind == "state":
            if not isinstance(body, dict):
                return self._drop("bad_state", "state")
            self._apply_state(body, local_at)
            rec(self.index, "state", cue, seq, "", true_at, local_at, body, term)
        elif kind == "panic":
            self._pending.clear()
            self._pending_term.clear()
            self.ramps.clear()
            self._safe_state()
            rec(self.index, "panic", cue, seq, "", true_at, local_at, None, term)
        if not self.report_fired:
            return []
        report = {"show": msg["show"], "cue": cue, "seq": seq, "local": local_at, "synced": synced}
        return [Publish(f"{self.base}/fired", encode_json(report))]

    def _set_topic(self, topic: str, payload: Any) -> None:
        self.state[topic] = payload
        self.state_by_leaf[topic.rsplit("/", 1)[-1]] = payload

    def _ramp(self, body: Any, local_at: int) -> Ramp | None:
        if not isinstance(body, dict):
            return None
        param, start, end, dur = body.get("param"), body.get("from"), body.get("to"), body.get("duration_ns")
        if not (
            isinstance(param, str) and _is_num(end) and _is_int(dur) and (start is None or _is_num(start))
        ):
            return None
        if start is None:
            start = self.param_at(param, local_at, local=True)
            if start is None:
                start = end
        e = body.get("ease") or {}
        kind = e.get("kind", "linear") if isinstance(e, dict) else "linear"
        params = e.get("params", []) if isinstance(e, dict) else []
        if not isinstance(kind, str) or not isinstance(params, list) or not all(_is_num(p) for p in params):
            return None
        # The ramp replaces any running one: freeze the old value so param_at stays continuous.
        cur = self.param_at(param, local_at, local=True)
        if cur is not None:
            self.params[param] = cur
        return Ramp(
            param, float(start), float(end), local_at, int(dur), kind, tuple(float(p) for p in params)
        )

    def _apply_state(self, body: dict[str, Any], local_at: int) -> None:
        params = body.get("params")
        if isinstance(params, dict):
            for k, v in params.items():
                if _is_num(v):
                    self.ramps.pop(k, None)
                    self.params[k] = float(v)
        topics = body.get("mqtt")
        if isinstance(topics, dict):
            for t, p in topics.items():
                self._set_topic(substitute(t, self.attrs), substitute(p, self.attrs))

    def param_at(self, param: str, when: int, *, local: bool = False) -> float | None:
        """A parameter's value at an instant (true ns; device-clock ns with ``local=True``),
        following any running fade; ``None`` when it was never set."""
        local_ns = when if local else self.clock.local(when)
        ramp = self.ramps.get(param)
        if ramp is not None and local_ns >= ramp.local_start:
            return ramp.value_at(local_ns)
        return self.params.get(param)

    # -- time -----------------------------------------------------------------------------------
    def due_at(self) -> int | None:
        """The true instant of the next thing to do (a scheduled cue or a heartbeat), or ``None``."""
        if not self.alive:
            return None
        nxt = self._pending[0][0] if self._pending else None
        hb = self._next_heartbeat
        if hb is not None and (nxt is None or hb < nxt):
            return hb
        return nxt

    def tick(self, true_now: int) -> list[Publish]:
        """Execute every cue due at or before ``true_now`` (recorded at its own instant) and send
        the heartbeat when due."""
        out: list[Publish] = []
        while self.alive and self._pending and self._pending[0][0] <= true_now:
            true_at, _, msg, local_at = heapq.heappop(self._pending)
            key = (msg["show"], msg["cue"], msg["seq"])
            term = self._pending_term.pop(key, 0)
            if term and term < self.term_floor:
                # Planned by a controller that has been replaced since: never fired. Its key is
                # forgotten, so the live controller may still send it.
                self._seen.discard(key)
                self._stale("cue", key[1], key[2], term, true_at, local_at)
                continue
            out.extend(self._execute(msg, true_at, local_at, synced=True, term=term))
        if self.alive and self._next_heartbeat is not None and self._next_heartbeat <= true_now:
            out.append(self._status("alive", true_now))
            self._next_heartbeat = true_now + HEARTBEAT_NS
        # Fold finished ramps into params so state reads stay cheap.
        if self.ramps:
            local_now = self.clock.local(true_now)
            for p, r in list(self.ramps.items()):
                if local_now >= r.local_start + r.duration_ns:
                    self.params[p] = r.end
                    del self.ramps[p]
        return out
