"""A whole venue brought to life: every device of a :class:`~venues.model.Venue`, simulated.

``SimulatedVenue(venue, mode="virtual")`` builds a seeded clock and network path per device and the
device cores (OSC displays for devices with an OSC endpoint, app devices for MQTT or WebSocket),
and drives them in seeded virtual time (``run_until``; the controller side is
:attr:`SimulatedVenue.controller`). ``mode="real"`` runs the same cores on real UDP sockets on
127.0.0.1 (free ports, see :meth:`endpoints` / :meth:`mapped_venue`), a real MQTT broker
(``broker_url``, or per device ``device_brokers``: a zone's leaf broker of a
:mod:`simulators.topology`) and the controller's WebSocket endpoint (``ws_url``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from simulators.clock import DeviceClock, clocks_for_venue
from simulators.devices.app import AppDevice
from simulators.devices.osc_display import OscDisplay
from simulators.devices.realtime import MqttApp, UdpDisplay, WsApp
from simulators.devices.virtual import SyncLane, VirtualController, VirtualDriver
from simulators.network import Path, profile
from simulators.record import Recorder
from simulators.vtime import VirtualNetwork, VirtualTime
from venues.broker import BrokerLogin, parse_broker_url
from venues.errors import MadangError
from venues.model import OscEndpoint, Venue

__all__ = ["SimulatedVenue", "SimulatorError"]

log = logging.getLogger(__name__)
_S = 1_000_000_000


class SimulatorError(MadangError, RuntimeError):
    """The simulated venue was used in a way its mode does not allow."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(what)
        self.what, self.hint = what, hint

    def __str__(self) -> str:
        return f"simulated venue: {self.what} ({self.hint})"


class SimulatedVenue:
    """Every device of ``venue``, simulated. See the module docstring.

    Virtual mode: ``start()`` (sync), ``run_until(t)``, faults, ``records()``.
    Real mode: ``await start_async()`` / ``await stop_async()``, ``endpoints()``, ``listening()``.
    ``start_ns`` (virtual mode) is the true instant time starts at (default 2025-11-21T00:00Z).
    """

    def __init__(
        self,
        venue: Venue,
        *,
        mode: Literal["real", "virtual"] = "real",
        profile: str = "wifi",
        seed: int = 0,
        broker_url: str | None = None,
        ws_url: str | None = None,
        start_ns: int = 1_763_683_200 * _S,
        true_clock: Callable[[], int] = time.time_ns,
        broker: Any = None,
        device_passwords: Mapping[str, str] | None = None,
        broker_ca: str | None = None,
        device_brokers: Mapping[str, str] | None = None,
    ) -> None:
        if mode not in ("real", "virtual"):
            raise SimulatorError(f"mode {mode!r}", "use 'real' or 'virtual'")
        self.venue = venue
        self.mode = mode
        self.profile = _profile(profile)
        self.seed = seed
        self.broker_url = broker_url or venue.broker or "mqtt://127.0.0.1:1883"
        self.ws_url = ws_url
        self.broker = broker  # a simulators.broker.MosquittoBroker, for restart() in real mode
        # Past one broker (simulators.topology): a device of a zone joins its zone's leaf broker,
        # not the controller's. Device id -> broker URL; everyone else uses broker_url.
        self.device_brokers: dict[str, str] = dict(device_brokers or {})
        for url in set(self.device_brokers.values()):
            parse_broker_url(url)  # a bad URL fails here, naming itself, not at connect time
        # An ACL'd broker (``madang broker-config``): each MQTT device logs in as its id with its
        # password from the secrets file; ``broker_ca`` verifies a TLS broker (mqtts://).
        self.device_passwords = dict(device_passwords or {})
        self.broker_ca = broker_ca
        self.true_clock = true_clock
        epoch = start_ns if mode == "virtual" else true_clock()
        self.clocks: dict[str, DeviceClock] = clocks_for_venue(venue, seed, epoch_ns=epoch)
        self.recorder = Recorder()
        self.paths: dict[str, Path] = {}
        self.displays: dict[str, OscDisplay] = {}
        self.apps: dict[str, AppDevice] = {}
        for i, d in enumerate(venue.devices):
            self.paths[d.id] = Path(self.profile, seed=seed * 1_000_003 + i)
            if d.pooled:
                continue  # an audience slot: a phone's browser takes it (the light page), not a simulator
            if d.osc is not None:
                self.displays[d.id] = OscDisplay(d, self.clocks[d.id], self.recorder)
            elif d.mqtt is not None or d.ws is not None:
                self.apps[d.id] = AppDevice(d, self.clocks[d.id], self.recorder)
            else:
                log.warning("device has no transport; not simulated", extra={"device": d.id})
        self.vt: VirtualTime | None = None
        self.net: VirtualNetwork | None = None
        self._driver: VirtualDriver | None = None
        if mode == "virtual":
            self.vt = VirtualTime(start_ns, seed)
            self.net = VirtualNetwork(self.vt)
            self._driver = VirtualDriver(self.vt, self.net)
        self._udp: dict[str, UdpDisplay] = {}
        self._streams: dict[str, MqttApp | WsApp] = {}
        self._started = False

    # -- virtual mode ---------------------------------------------------------------------------
    @property
    def controller(self) -> VirtualController:
        """The controller's side of the virtual network (virtual mode only)."""
        if self._driver is None:
            raise SimulatorError(
                "controller endpoint asked for in real mode", "point the controller at endpoints()"
            )
        return self._driver.controller

    @property
    def now(self) -> int:
        """True now (virtual time, or the true clock in real mode)."""
        return self.vt.now if self.vt is not None else self.true_clock()

    def start(self) -> None:
        """Virtual mode: put every device on the network and connect the app devices."""
        drv = self._need_virtual("start()")
        if self._started:
            return
        self._started = True
        for did, core in self.displays.items():
            drv.add_display(core, self.paths[did])
        for did, app in self.apps.items():
            drv.add_app(app, self.paths[did])

    def sync_lane(self) -> SyncLane:
        """Virtual mode: a :class:`~simulators.devices.virtual.SyncLane` over this venue's app
        devices, for :func:`simulators.harness.play_virtual` (``sync_lane=True``)."""
        return SyncLane(self._need_virtual("sync_lane()"), self.apps)

    def run_until(self, true_ns: int) -> int:
        """Virtual mode: advance true time to ``true_ns``; returns how many events ran."""
        drv = self._need_virtual("run_until()")
        return drv.vt.run_until(true_ns)

    def _need_virtual(self, what: str) -> VirtualDriver:
        if self._driver is None:
            raise SimulatorError(f"{what} in real mode", "use await start_async() / stop_async()")
        return self._driver

    # -- real mode ------------------------------------------------------------------------------
    async def start_async(self) -> None:
        """Real mode: bind every display to a free port on 127.0.0.1, connect the app devices."""
        if self.mode != "real":
            self.start()
            return
        if self._started:
            return
        self._started = True
        for did, core in self.displays.items():
            u = UdpDisplay(core, self.paths[did], clock=self.true_clock)
            await u.start()
            self._udp[did] = u
        for did, app in self.apps.items():
            s: MqttApp | WsApp
            if app.device.mqtt is not None:
                address = parse_broker_url(self.broker_for(did))
                s = MqttApp(
                    app,
                    self.paths[did],
                    host=address.host,
                    port=address.port,
                    clock=self.true_clock,
                    login=self.login(did),
                    tls=address.tls,
                )
            elif self.ws_url is not None:
                s = WsApp(
                    app,
                    self.paths[did],
                    self.ws_url,
                    clock=self.true_clock,
                    key=self.device_passwords.get(did),
                )
            else:
                log.warning("WebXR device without ws_url; not started", extra={"device": did})
                continue
            s.start()
            self._streams[did] = s

    def broker_for(self, device_id: str) -> str:
        """The broker URL device ``device_id`` connects to: its entry in ``device_brokers`` (a
        zone's leaf broker), else ``broker_url``."""
        return self.device_brokers.get(device_id, self.broker_url)

    def login(self, device_id: str) -> BrokerLogin | None:
        """What device ``device_id`` presents to the broker: its id and password (when the venue's
        secrets were given) and the broker's CA; None for an open broker without TLS."""
        password = self.device_passwords.get(device_id)
        if password is None and self.broker_ca is None:
            return None
        return BrokerLogin(device_id if password is not None else None, password, self.broker_ca)

    async def wait_connected(self, timeout_s: float = 10.0, *, ws: bool = True) -> None:
        """Real mode: wait until every app device has connected (ready published); ``ws=False``:
        only the MQTT ones (the WebSocket ones need the controller's server, started later)."""
        streams = [s for s in self._streams.values() if ws or isinstance(s, MqttApp)]
        await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in streams)), timeout_s)

    async def stop_async(self) -> None:
        """Real mode: close every socket and stop every task."""
        for u in self._udp.values():
            u.close()
        tasks = [s.task for s in self._streams.values() if s.task is not None]
        for s in self._streams.values():
            s.stop()
        for t, r in zip(tasks, await asyncio.gather(*tasks, return_exceptions=True), strict=True):
            if isinstance(r, Exception):
                log.warning("device task ended with an error", extra={"task": t.get_name(), "error": repr(r)})
        self._udp.clear()
        self._streams.clear()
        self._started = False

    def endpoints(self) -> dict[str, tuple[str, int]]:
        """Real mode: where each OSC display listens, ``{device_id: (host, port)}``."""
        return {did: u.address for did, u in self._udp.items()}

    def mapped_venue(self) -> Venue:
        """The venue with each OSC endpoint replaced by where its simulated display listens."""
        eps = self.endpoints()
        devices = tuple(
            dataclasses.replace(d, osc=OscEndpoint(*eps[d.id])) if d.id in eps else d
            for d in self.venue.devices
        )
        return dataclasses.replace(self.venue, devices=devices)

    def listening(self) -> dict[str, str]:
        """One line per device saying where it is reachable (for ``madang simulate``)."""
        out: dict[str, str] = {}
        for d in self.venue.devices:
            if d.id in self._udp:
                h, p = self._udp[d.id].address
                out[d.id] = f"osc udp://{h}:{p} sync={d.sync}"
            elif d.id in self.displays:
                out[d.id] = f"osc virtual:{d.id} sync={d.sync}"
            elif d.id in self.apps:
                how = "mqtt " + self.broker_for(d.id) if d.mqtt is not None else f"ws {self.ws_url}"
                out[d.id] = f"{how} as {d.id} base={self.apps[d.id].base}"
        return out

    # -- records --------------------------------------------------------------------------------
    def records(self) -> Recorder:
        """What every device executed and when (true and local time)."""
        return self.recorder

    # -- faults ---------------------------------------------------------------------------------
    def crash(self, device_id: str) -> None:
        """Kill a device now: it loses state; an app device's broker publishes its last will."""
        if device_id in self.displays:
            self.displays[device_id].crash()
            if self._driver is not None:
                self._driver.cancel_timer(device_id)
        elif device_id in self.apps:
            self.apps[device_id].crash()
            if self._driver is not None and self.net is not None:
                self._driver.cancel_timer(device_id)
                self.net.disconnect(device_id, clean=False)
            elif device_id in self._streams:
                self._streams[device_id].crash()
        else:
            raise KeyError(f"no simulated device {device_id!r}")

    def reboot(self, device_id: str, after_ns: int, *, step_ns: int = 0) -> None:
        """Crash a device now and bring it back ``after_ns`` later (its clock stepping by
        ``step_ns`` at boot, as an RTC re-read does); it rejoins and gets the controller's catch-up."""
        self.crash(device_id)
        clock = self.clocks[device_id]
        back = self.now + after_ns
        if step_ns:
            clock = clock.with_step(back, step_ns)
            self.clocks[device_id] = clock
        if self.vt is not None:
            self.vt.call_at(back, self._boot, device_id, clock)
        else:
            asyncio.get_running_loop().call_later(after_ns / 1e9, self._boot, device_id, clock)

    def _boot(self, device_id: str, clock: DeviceClock) -> None:
        if device_id in self.displays:
            self.displays[device_id].boot(clock)
            return
        app = self.apps[device_id]
        app.boot(clock)
        if self._driver is not None:
            self._driver.connect_app(app)
        elif device_id in self._streams:
            self._streams[device_id].start()

    def partition_zone(self, zone: str, start_ns: int, duration_ns: int) -> list[str]:
        """Cut every device of ``zone`` off the network during ``[start_ns, start_ns + duration_ns)``;
        returns the device ids affected."""
        ids = [d.id for d in self.venue.devices if d.zone == zone]
        for did in ids:
            self.paths[did].partition(start_ns, start_ns + duration_ns)
        return ids

    def restart_broker(self, down_ns: int = _S) -> None:
        """Restart the MQTT broker: every connection drops (no wills: the broker itself died), and
        clients reconnect after ``down_ns`` plus up to half as much jitter (virtual: the controller's
        endpoint stays connected, its own reconnection is not simulated) or by their own back-off
        (real mode, via ``broker.restart()`` of :class:`simulators.broker.MosquittoBroker`)."""
        if self.net is not None and self.vt is not None and self._driver is not None:
            for did in self.apps:
                self.net.disconnect(did, clean=True)
            for app in self.apps.values():
                if app.alive:
                    jitter = self.vt.rng.randrange(max(1, down_ns // 2))
                    self.vt.call_later(down_ns + jitter, self._driver.connect_app, app)
            return
        if self.broker is None:
            raise SimulatorError(
                "restart_broker() without a broker object", "pass broker=MosquittoBroker(...)"
            )
        self.broker.restart()


def _profile(name: str) -> Any:
    return profile(name)
