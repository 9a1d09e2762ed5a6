"""The player: how a show is driven, shared by the real-time runtime and the virtual-time harness.

Theory of operation
-------------------
:class:`~controller.core.ControllerCore` decides what happens when; a *driver* moves bytes and
sleeps. Between the two sit a few decisions that are neither show logic nor I/O, and that both
drivers must make the same way, or a rehearsal in virtual time would not rehearse the night:

* **starting**: load, arm, the playback rate, an optional GO at once;
* **unattended GO** (``auto_go``, and the GO of ``start(go=True)``): press GO whenever the show
  stands at a manual cue (armed, or playing with nothing running and a cue on standby that waits
  for no event), from an instant on, once the sync gate lets it (:mod:`controller.gate`: READY,
  or the cue's own devices ready); if the gate holds it ``ready_timeout_ns``, the run fails
  (:attr:`Player.failure`, a :class:`~controller.gate.GateTimeoutError`) rather than play out of
  sync;
* **how long**: exit when the show has played to its end (``exit_at_end``), or a set time after
  the first GO (``play_for_ns``); with ``end_at_standby`` also when, after a GO, it comes to rest
  at a manual cue that nothing will press (``madang run --go --exit-at-end`` without
  ``--go-all``: :attr:`Player.stranded_at` says where);
* **when to wake**: at the core's next deadline, never later than ``max_wait_ns`` (so a driver
  that sleeps also notices the world), never earlier than now;
* **telemetry notes**: what left (each cue's instant, each bundle's timetag, from the sends'
  metadata) and what devices reported firing, for :class:`~controller.telemetry.Telemetry`.

Like the core it does no I/O and reads no clock: every call takes ``now``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from controller.core import ControllerCore, Item
from controller.delivery import Kind, MqttPublish, UdpSend
from controller.engine import Accepted, Result
from controller.gate import GateTimeoutError
from controller.playback import Arm, Command, Go, Load, SetRate, State
from controller.telemetry import Telemetry, TelemetrySync

__all__ = ["Player", "PlayerOptions"]

log = logging.getLogger(__name__)

MS = 1_000_000
S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class PlayerOptions:
    """How a show is driven (see the module docstring)."""

    auto_go: bool = False
    auto_go_from_ns: int = 0  # no unattended GO before this instant (show clock)
    exit_at_end: bool = False
    # With exit_at_end: also end when, after a GO, the show rests at a manual cue and nothing
    # presses GO for it (no auto_go): a scripted run must not wait forever for a hand.
    end_at_standby: bool = False
    play_for_ns: int | None = None  # stop this long after the first GO
    max_wait_ns: int = 50 * MS
    ready_timeout_ns: int | None = 60 * S  # an unattended GO waits this long for READY, then fails


class Player:
    """Drives one :class:`ControllerCore` (see the module docstring)."""

    def __init__(
        self,
        core: ControllerCore,
        options: PlayerOptions | None = None,
        *,
        telemetry: Telemetry | None = None,
        sync: TelemetrySync | None = None,
    ) -> None:
        self.core = core
        self.options = options or PlayerOptions()
        self.auto_go = self.options.auto_go  # a driver may turn it on later (once devices settled)
        self.telemetry = telemetry
        self._sync = sync  # for fire errors: the clock models that turn a device's instant back
        self.first_go_ns: int | None = None  # when GO was first pressed (show clock)
        self.end_ns: int | None = None  # when play_for_ns runs out
        self.failure: GateTimeoutError | None = None  # the run failed: READY never came
        self._go_pending = False  # start(go=True): GO once the gate lets it
        self._held_since: int | None = None  # when the gate first held an unattended GO
        self.stranded_at: str | None = None  # the manual cue the run ended at (end_at_standby)

    # -- operator ----------------------------------------------------------------------------

    def start(self, now: int, *, rate: float = 1.0, go: bool = False) -> None:
        """Load and arm the show (at ``rate``); when ``go``, press GO as soon as the sync gate
        lets it (:meth:`poll`)."""
        self.core.command(Load(), now)
        self.core.command(Arm(), now)
        if rate != 1.0:
            self.core.command(SetRate(rate=rate), now)
        if go:
            self._go_pending = True
            self._unattended_go(now)

    def command(self, cmd: Command, now: int) -> Result:
        """An operator command, through to the core; the first GO starts ``play_for_ns``."""
        result = self.core.command(cmd, now)
        if isinstance(cmd, Go) and isinstance(result, Accepted) and self.first_go_ns is None:
            self.first_go_ns = now
            if self.options.play_for_ns is not None:
                self.end_ns = now + self.options.play_for_ns
        return result

    def wants_go(self) -> bool:
        """Whether the show stands at a manual cue: armed, or playing with nothing running and a
        cue on standby that waits for no event."""
        state = self.core.state
        if state is State.ARMED:
            return True
        snap = self.core.engine.snapshot
        return (
            state is State.PLAYING
            and not snap.running
            and snap.standby_cue is not None
            and snap.waiting_for is None
        )

    def _unattended_go(self, now: int) -> None:
        """GO if the show stands at a manual cue and the sync gate lets it; a gate that holds it
        past ``ready_timeout_ns`` fails the run."""
        if self.failure is not None:
            return
        if not self.wants_go():
            self._go_pending = False  # the operator (or the show) went on without us
            self._held_since = None
            return
        go = Go(cue=None)
        if self.core.gate_refusal(go, now) is None:
            self._go_pending = False
            self._held_since = None
            self.command(go, now)
            return
        if self._held_since is None:
            self._held_since = now
            log.info("GO waits for the sync gate", extra={"reason": self.core.readiness(now).summary()})
            return
        timeout = self.options.ready_timeout_ns
        if timeout is not None and now - self._held_since >= timeout:
            self.failure = GateTimeoutError(self.core.readiness(now), timeout)
            self._go_pending = False

    @property
    def waiting_for_gate(self) -> bool:
        """Whether an unattended GO is being held by the sync gate."""
        return self._held_since is not None and self.failure is None

    @property
    def show_start_ns(self) -> int | None:
        """The instant of show time 0: the first GO plus the engine's GO delay."""
        return None if self.first_go_ns is None else self.first_go_ns + self.core.engine.go_delay_ns

    # -- time --------------------------------------------------------------------------------

    def poll(self, now: int) -> list[Item]:
        """An unattended GO if one is due, then everything the core releases as of ``now``."""
        if self.core.live and (
            self._go_pending or (self.auto_go and now >= self.options.auto_go_from_ns and self.wants_go())
        ):
            self._unattended_go(now)
        items = self.core.poll(now)
        tel = self.telemetry
        if tel is not None:
            for item in items:
                if isinstance(item, MqttPublish):
                    if item.kind is Kind.CUE and item.key is not None and item.due_ns is not None:
                        tel.sent_cue(item.key[2], item.due_ns, item.key[1])
                elif isinstance(item, UdpSend) and item.key is not None:
                    if item.timetag is not None:
                        tel.sent_bundle(item.device, item.key[2], item.timetag, item.key[1])
                    elif item.degraded and item.kind is Kind.CUE:
                        tel.sent_degraded(item.device)
        return items

    def next_wake(self, now: int) -> int:
        """When to call :meth:`poll` next: the core's next deadline (not before ``now``), an
        unattended GO's first instant, and at most ``max_wait_ns`` from now."""
        latest = now + self.options.max_wait_ns
        deadline = self.core.next_deadline()
        wake = latest if deadline is None else min(max(deadline, now), latest)
        if self.auto_go and now < self.options.auto_go_from_ns:
            wake = min(wake, self.options.auto_go_from_ns)
        return wake

    def done(self, now: int) -> bool:
        """Whether the run is over: the show ended (``exit_at_end``), ``play_for_ns`` ran out, or
        the sync gate held an unattended GO too long (:attr:`failure`)."""
        if self.failure is not None:
            return True
        if self.options.exit_at_end and self.core.finished:
            return True
        if self._stranded():
            return True
        return self.end_ns is not None and now >= self.end_ns

    def _stranded(self) -> bool:
        """``end_at_standby``: the show plays, nothing runs, and a manual cue waits for a GO that
        nothing will press (no ``auto_go``); notes the cue in :attr:`stranded_at`."""
        opts = self.options
        if not (opts.exit_at_end and opts.end_at_standby) or self.auto_go:
            return False
        if self.core.state is not State.PLAYING or not self.wants_go():
            return False
        self.stranded_at = self.core.engine.snapshot.standby_cue
        return True

    # -- receiving ---------------------------------------------------------------------------

    def receive_mqtt(self, topic: str, payload: bytes, now: int) -> None:
        """A message from the broker (see :meth:`ControllerCore.receive_mqtt`)."""
        self.core.receive_mqtt(topic, payload, now)
        self._note_fired()

    def receive_datagram(self, data: bytes, source: tuple[str, int], now: int) -> bool:
        """A UDP datagram (see :meth:`ControllerCore.receive_datagram`): True when it was taken in."""
        if not self.core.receive_datagram(data, source, now):
            return False
        self._note_fired()
        return True

    def _note_fired(self) -> None:
        fired = self.core.take_fired()
        tel = self.telemetry
        if tel is None:
            return
        for device, f in fired:
            tel.receive_fired(device, f.seq, f.local, f.synced, self._sync)
