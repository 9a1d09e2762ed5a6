"""The runtime's side of a hot-standby pair: the failover machine, the peer link and the witness.

Theory of operation
-------------------
:mod:`controller.failover` decides who of the pair drives (sans I/O); :mod:`controller.peer` is the
ZeroMQ link between the two; the witness is the broker's retained controller state, read and
written on the controller's own MQTT connection (:class:`~controller.mqtt.MqttLink`). A
:class:`Pair` wires the three (docs/standby.md, "What the runtime does"):

* the state topic's messages, with their retain flag, go to ``Failover.witness``; the MQTT
  session coming up (every subscription acknowledged, so the retained message comes next) is
  ``witness_up``, its drop ``witness_lost``;
* the link's heartbeats go to ``Failover.peer_heartbeat``, a ``bye`` to ``peer_left``;
* a ticker calls ``Failover.tick`` at its deadline;
* the machine's actions are carried out: :class:`~controller.failover.Claim` and
  :class:`~controller.failover.Assert` publish the retained state at that term on the current
  connection only (:meth:`~controller.mqtt.MqttLink.publish_now`: a claim never outlives the
  connection it was made on); :class:`~controller.failover.GoLive` and
  :class:`~controller.failover.StepDown` call the runtime back (take over, or stop driving);
* after every input the link's heartbeats are told the machine's term, role and witness.

The primary serves its journal records to standbys (:class:`~controller.peer.PeerServer`,
``serve``); a standby follows one (:class:`~controller.peer.PeerClient`, ``follow``) and, once
live, serves in turn so that a new standby can follow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from controller import wire
from controller.failover import (
    Assert,
    Claim,
    Failover,
    FailoverPolicy,
    GoLive,
    Role,
    StepDown,
)
from controller.mqtt import MqttLink
from controller.peer import PeerBeat, PeerChange, PeerClient, PeerServer

__all__ = ["Pair"]

log = logging.getLogger(__name__)


class Pair:
    """One controller of a hot-standby pair, as the runtime drives it (see the module docstring).

    ``follow``: the primary's link endpoint (``tcp://HOST:PORT``) for a standby, else None.
    ``serve``: the endpoint to serve standbys on while live (``tcp://0.0.0.0:PORT``), or None.
    ``state_payload(term)``: the retained controller state to publish at ``term``.
    ``go_live(term)`` / ``step_down(reason)``: the runtime takes over, or stops driving.
    ``on_records(records)``: a standby's journal records from the primary, in order.
    ``on_reset()``: the primary began another run (a standby cannot follow it from here).
    """

    def __init__(
        self,
        controller: str,
        mqtt: MqttLink,
        *,
        follow: str | None,
        serve: str | None,
        term: int,
        state_payload: Callable[[int], bytes],
        go_live: Callable[[int], None],
        step_down: Callable[[str], None],
        on_records: Callable[[list[dict[str, Any]]], None] | None = None,
        on_reset: Callable[[], None] | None = None,
        show_clock: Callable[[], int] = time.time_ns,
        policy: FailoverPolicy | None = None,
    ) -> None:
        self.controller = controller
        self.mqtt = mqtt
        self.follow_endpoint = follow
        self.serve_endpoint = serve
        self.policy = policy or FailoverPolicy()
        self.failover = Failover(
            controller, Role.STANDBY if follow else Role.STARTING, policy=self.policy, term=term
        )
        self._state_payload = state_payload
        self._go_live = go_live
        self._step_down = step_down
        self._on_records = on_records
        self._on_reset = on_reset
        self._show_clock = show_clock
        self.server: PeerServer | None = None
        self.client: PeerClient | None = None
        self._history: list[dict[str, Any]] = []  # every record of the run, for a new standby
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.live_event = asyncio.Event()  # set while live
        self.claims = 0
        self.stalls = 0  # times the ticker found itself held up and let the link catch up first
        self.bad_witness = 0
        self.went_live_ns: int | None = None  # monotonic: when the last GoLive was carried out
        self.web = ""  # this controller's audience WebSocket address, told to the peer
        mqtt.subscribe(wire.STATE_TOPIC, 1)
        mqtt.on_retained(self._on_message)
        mqtt.on_session(self._on_session)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the link (follow the primary, or serve standbys) and start the ticker."""
        if self.follow_endpoint is not None:
            self.client = PeerClient(
                self.follow_endpoint,
                self.controller,
                on_records=self._records,
                on_reset=self._reset,
                show_clock=self._show_clock,
                on_heartbeat=self._beat,
                on_peer=self._peer,
                heartbeat_ns=self.policy.heartbeat_ns,
                missed=self.policy.missed,
            )
            await self.client.start()
        elif self.serve_endpoint is not None:
            await self._serve()
        self._sync_link()
        self._task = asyncio.create_task(self._tick_loop(), name="failover")

    async def _serve(self) -> None:
        assert self.serve_endpoint is not None
        self.server = PeerServer(
            self.serve_endpoint,
            self.controller,
            show_clock=self._show_clock,
            on_heartbeat=self._beat,
            on_peer=self._peer,
            heartbeat_ns=self.policy.heartbeat_ns,
            missed=self.policy.missed,
        )
        await self.server.start()
        if self._history:
            self.server.publish(self._history)
        log.info("serving a hot standby", extra={"endpoint": self.server.endpoint})

    async def close(self) -> None:
        """Say bye on the link (a clean exit is no reason for a takeover) and close it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for link in (self.client, self.server):
            if link is not None:
                with contextlib.suppress(Exception):
                    await link.close()

    # -- records -----------------------------------------------------------------------------

    def publish(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Journal records of this (live) controller: kept for a standby that joins later, sent
        to the ones connected."""
        batch = [dict(r) for r in records]
        if not batch:
            return
        self._history.extend(batch)
        if self.server is not None:
            self.server.publish(batch)

    def remember(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Records this controller followed (or replayed): a standby of ours gets them too."""
        self._history.extend(dict(r) for r in records)

    def _records(self, first: int, records: list[dict[str, Any]]) -> None:
        self._history.extend(records)
        if self._on_records is not None:
            self._on_records(records)

    def _reset(self, run: str) -> None:
        if self._on_reset is not None:
            self._on_reset()

    # -- inputs ------------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes, rx_ns: int, retain: bool) -> None:
        if topic != wire.STATE_TOPIC:
            return
        state = wire.decode_controller_state(payload)
        if isinstance(state, wire.Malformed):
            self.bad_witness += 1
            return
        term = state.term if state.term is not None else 0
        live = state.state != "offline"
        self._carry_out(
            self.failover.witness(time.monotonic_ns(), term, state.controller, live=live, retained=retain)
        )

    def _on_session(self, up: bool) -> None:
        now = time.monotonic_ns()
        self._carry_out(self.failover.witness_up(now) if up else self.failover.witness_lost(now))

    def _beat(self, beat: PeerBeat) -> None:
        self._carry_out(
            self.failover.peer_heartbeat(
                time.monotonic_ns(), beat.term, beat.role, beat.controller, witness=beat.witness
            )
        )

    def _peer(self, change: PeerChange) -> None:
        if not change.up and change.reason == "bye":
            self._carry_out(self.failover.peer_left(time.monotonic_ns()))
        else:
            self._wake.set()

    def takeover(self) -> str | None:
        """The operator asks this standby to take over now; the reason it cannot, or None."""
        found = self.failover.takeover(time.monotonic_ns())
        if not isinstance(found, list):
            return str(found)
        self._carry_out(found)
        return None

    async def _tick_loop(self) -> None:
        beat = self.policy.heartbeat_ns
        while True:
            deadline = self.failover.next_deadline()
            now = time.monotonic_ns()
            wait = min(0.05, 0.05 if deadline is None else max(0.0, (deadline - now) / 1e9))
            self._wake.clear()
            woke_by = now + round(wait * 1e9)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            now = time.monotonic_ns()
            deadline = self.failover.next_deadline()
            if deadline is None or deadline > now:
                continue
            if now - woke_by > beat // 2:
                # This loop itself was held up (a busy event loop: a catch-up of records, a
                # loaded machine): the peer's heartbeats may be waiting in the socket, unread.
                # Let the link deliver them before deciding that the peer is silent.
                self.stalls += 1
                await asyncio.sleep(beat / 1e9)
                now = time.monotonic_ns()
                deadline = self.failover.next_deadline()
                if deadline is None or deadline > now:
                    continue
            self._carry_out(self.failover.tick(now))

    # -- actions -----------------------------------------------------------------------------

    def _carry_out(self, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Claim | Assert):
                self.claims += isinstance(action, Claim)
                sent = self.mqtt.publish_now(wire.STATE_TOPIC, self._state_payload(action.term), 1, True)
                log.log(
                    logging.WARNING if isinstance(action, Claim) else logging.INFO,
                    "claim" if isinstance(action, Claim) else "assert",
                    extra={
                        "term": action.term,
                        "sent": sent,
                        "controller": self.controller,
                        "reason": self.failover.reason,
                        "stalls": self.stalls,
                    },
                )
            elif isinstance(action, GoLive):
                self.went_live_ns = time.monotonic_ns()
                self._go_live(action.term)
                self.live_event.set()
                if self.client is not None and self.serve_endpoint is not None and self.server is None:
                    asyncio.get_running_loop().create_task(self._serve_after_takeover())
            elif isinstance(action, StepDown):
                self.live_event.clear()
                if action.was_live:
                    self._step_down(action.reason)
                log.warning("stepped down", extra={"reason": action.reason, "term": action.term})
        self._sync_link()
        self._wake.set()

    async def _serve_after_takeover(self) -> None:
        """A standby that went live serves in turn (after leaving the dead primary's link)."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close(bye=False)
        with contextlib.suppress(Exception):
            await self._serve()
        self._sync_link()

    def _sync_link(self) -> None:
        f = self.failover
        for link in (self.client, self.server):
            if link is not None:
                link.term = f.term
                link.role = f.role
                link.witness = f.witness_ok
                link.web = self.web

    @property
    def peer_web(self) -> str:
        """The other controller's audience WebSocket address, as its heartbeats say ("": not
        heard yet, or it serves none)."""
        for link in (self.client, self.server):
            if link is not None and link.peer_web:
                return link.peer_web
        return ""

    # -- the operator ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """For the view, ``/state`` and the report: the failover status and the link's."""
        st = self.failover.status(time.monotonic_ns())
        out: dict[str, Any] = {
            "pair_role": str(st.role),
            "pair_term": st.term,
            "witness": st.witness,
            "peer": st.peer,
            "peer_role": None if st.peer_role is None else str(st.peer_role),
            "peer_alive": st.peer_alive,
            "reason": st.reason,
            "claims": self.claims,
            "stalls": self.stalls,
        }
        client = self.client
        if client is not None and not self.failover.live:
            out.update(
                following=self.follow_endpoint,
                in_step=client.in_step,
                lag=client.lag,
                offset_us=None if client.offset_ns is None else client.offset_ns / 1000,
            )
        if self.server is not None:
            peers = list(self.server.peers.values())
            out.update(
                serving=self.server.endpoint,
                standbys=[{"controller": p.controller, "in_step": p.in_step, "seq": p.seq} for p in peers],
            )
        return out
