"""Broker topologies for tests and benchmarks: one Mosquitto, a star of Mosquitto bridges, a NATS cluster.

Theory of operation
-------------------
Past one broker, Madang runs on brokers that already scale; this module starts the layouts that
docs/mqtt.md ("Broker topologies") describes, on free loopback ports, as child processes that
never outlive the test (:mod:`simulators.children`: parent-death signal, ``atexit`` stop, stop by
PID; see :mod:`simulators.broker`).

``start_topology(kind)`` returns a started :class:`Topology`:

* ``"single"``: one :class:`~simulators.broker.MosquittoBroker`. The hub is the only leaf.
* ``"bridged"``: a hub Mosquitto (where the controller connects) and ``leaves`` leaf Mosquittos
  (where the devices of a zone connect). Each leaf opens an MQTT bridge to the hub through a
  :class:`~simulators.relay.Relay`, a TCP relay the test can cut (:meth:`Topology.drop_bridge`)
  and heal. The bridge carries the Madang topic tree by direction (:data:`BRIDGE_TOPICS`): what
  the controller publishes for devices (cues, pings, clock models, the controller state) comes
  *in* from the hub; what devices publish for the controller (pongs, status, fire reports,
  audience events) goes *out* to it. Why each bridge setting is what it is, is said next to it in
  :func:`bridge_config` and in docs/mqtt.md.
  The hub persists (:func:`hub_config`): a restarted hub gives each bridge its session back.
* ``"nats"``: a three-node nats-server cluster with JetStream (which its MQTT interface needs) and
  an MQTT listener on every node. The hub is node 0; the leaves are the three nodes' MQTT ports.

:meth:`Topology.restart_leaf`, :meth:`Topology.restart_hub` stop a broker and start it again on
the same port after ``down_s`` (clients see a broker restart); :meth:`Topology.drop_bridge` /
:meth:`Topology.heal_bridge` cut and restore one leaf's link to the hub (bridged only: a NATS
route cannot be cut from outside, see :meth:`Topology.drop_bridge`). :meth:`Topology.pids` lists
every broker process, for CPU accounting through ``/proc/PID/stat``.

Like :mod:`simulators.broker`, this module never imports :mod:`controller`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from simulators.broker import MosquittoBroker, _answers_mqtt, _death_pact, _free_port, find_mosquitto
from simulators.children import stop_at_exit
from simulators.relay import Relay
from venues.errors import MadangError
from venues.model import Device

__all__ = [
    "BRIDGE_TOPICS",
    "KINDS",
    "BridgeTopic",
    "Topology",
    "TopologyUnavailable",
    "bridge_config",
    "find_nats_server",
    "start_topology",
]

log = logging.getLogger(__name__)

KINDS = ("single", "bridged", "nats")
_PROBE_ROOT = "madang/topology/probe"
_BRIDGE_TIMEOUT_S = 15.0
_NATS_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin", "/opt/homebrew/bin")
_NATS_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 5.0


@dataclass
class TopologyUnavailable(MadangError, RuntimeError):
    """A topology cannot be started here: a broker program is missing, or it did not come up."""

    kind: str
    reason: str
    fix: str

    def __post_init__(self) -> None:
        Exception.__init__(self, self.kind, self.reason)

    def __str__(self) -> str:
        return f"broker topology {self.kind!r} is not available: {self.reason}; {self.fix}"


@dataclass(frozen=True, slots=True)
class BridgeTopic:
    """One ``topic`` line of a Mosquitto bridge: ``pattern`` carried ``direction`` at ``qos``.

    ``in``: the leaf subscribes to it on the hub (controller -> devices); ``out``: the leaf
    forwards what its clients publish on it to the hub (devices -> controller). The QoS is the
    bridge's subscription QoS, an upper bound: a QoS 0 ping stays QoS 0 across the bridge.
    """

    pattern: str
    direction: str
    qos: int

    def line(self) -> str:
        """The ``topic`` line of mosquitto.conf(5)."""
        return f"topic {self.pattern} {self.direction} {self.qos}"


BRIDGE_TOPICS: tuple[BridgeTopic, ...] = (
    # controller -> devices (docs/protocol.md): the group and device cue topics, pings, clock
    # models (retained), the controller state (retained). QoS 1 on the bridge, so a cue or a
    # model is queued for a leaf whose link is down and delivered when it heals; pings are
    # published QoS 0 and stay so (a late ping is worthless: the sync drops it as stale).
    BridgeTopic("madang/cue/#", "in", 1),
    BridgeTopic("madang/dev/+/ping", "in", 0),
    BridgeTopic("madang/dev/+/clock", "in", 1),
    BridgeTopic("madang/dev/+/param/#", "in", 1),
    BridgeTopic("madang/controller/state", "in", 1),
    # devices -> controller: pongs, status (retained: ready, alive, the offline will), fire
    # reports, audience events (docs/protocol.md, "WebSocket" events use the same tree).
    BridgeTopic("madang/dev/+/pong", "out", 0),
    BridgeTopic("madang/dev/+/status", "out", 1),
    BridgeTopic("madang/dev/+/fired", "out", 1),
    BridgeTopic("madang/audience/#", "out", 1),
    # the topology's own readiness probe (Topology.wait_bridged): hub -> leaf
    BridgeTopic(_PROBE_ROOT + "/#", "in", 0),
)
"""The Madang topic tree, by direction, as the test bridges carry it. A venue whose devices
have their own topic ``base`` or whose show publishes its own topics adds lines
(``start_topology(..., extra_topics=...)``)."""


def bridge_config(
    *,
    index: int,
    listen_port: int,
    hub_port: int,
    topics: Sequence[BridgeTopic] = BRIDGE_TOPICS,
    protocol: str = "mqttv311",
) -> str:
    """The mosquitto.conf of leaf ``index``: a listener like the test broker's, and one bridge.

    Each bridge setting, and why (docs/mqtt.md, "Broker topologies"):

    * ``cleansession false`` with a fixed ``remote_clientid``: the hub keeps the leaf's
      subscriptions and queues QoS 1 cues and models while the link is down, and replays them
      when it heals; devices drop the repeats by idempotency key (docs/protocol.md). With a clean
      session every cue published during a drop would be lost to that whole zone.
    * ``local_clean_session`` is not set: Mosquitto 2.0.11 (Debian 12) does not know it, and later
      versions default it to ``cleansession``.
    * ``try_private true``: the leaf announces itself as a bridge, so a Mosquitto hub neither
      sends a leaf's own messages back to it (no loop with two-way topics) and keeps the retain
      flag on what it forwards: the leaf then holds the controller state and the clock models
      retained, and serves them itself to devices that join it (late join without the hub).
    * ``restart_timeout 1 2``: after a drop the leaf redials within 1-2 s (a backoff from 1 s
      capped at 2 s). Measured on Mosquitto 2.0.11: with ``restart_timeout 1`` or ``0`` the leaf
      redialled after 5 s, too slow for a show. ``keepalive_interval 5`` bounds
      how long a link that dies silently (no FIN) goes unnoticed.
    * ``bridge_attempt_unsubscribe false``: the leaf does not send the hub an UNSUBSCRIBE for
      every ``out`` pattern on each connect (it never subscribed to them there).
    * ``bridge_protocol_version mqttv311``: what every broker we bridge to speaks (NATS's MQTT
      interface has no MQTT 5); ``notifications false``: no ``$SYS`` connection topic on the hub.
    * ``set_tcp_nodelay true``: no Nagle delay on the leaf's client sockets (35-42 ms spikes were
      measured without it); the bridge's own socket is the relay's, which sets it too.
    """
    lines = [
        f"listener {listen_port} 127.0.0.1",
        "allow_anonymous true",
        "set_tcp_nodelay true",
        "persistence false",
        "max_queued_messages 100000",
        "max_inflight_messages 100",
        "max_keepalive 3600",
        f"connection madang-leaf-{index}",
        f"address 127.0.0.1:{hub_port}",
        f"bridge_protocol_version {protocol}",
        f"remote_clientid madang-leaf-{index}",
        f"local_clientid madang-leaf-{index}-local",
        "cleansession false",
        "try_private true",
        "notifications false",
        "start_type automatic",
        "restart_timeout 1 2",
        "bridge_attempt_unsubscribe false",
        "keepalive_interval 5",
        *(t.line() for t in topics),
    ]
    return "\n".join(lines) + "\n"


def hub_config(*, listen_port: int, store: Path) -> str:
    """The hub's mosquitto.conf: the test broker's listener, with persistence in ``store``.

    The hub persists (``persistence true``) where the test broker does not: its leaves' bridges
    hold sessions there (``cleansession false``), and a hub restarted with its database gives each
    bridge its session back, subscriptions and queued QoS 1 cues included, so the cues the
    controller publishes before a bridge has redialled reach that leaf when it has (measured:
    without it, the devices of every leaf missed the cue due 1.5 s after a hub restart). Mosquitto
    writes the database on a clean stop (SIGTERM, what :meth:`Topology.restart_hub` sends);
    ``autosave_interval`` bounds what a crash loses.
    """
    return (
        "\n".join(
            [
                f"listener {listen_port} 127.0.0.1",
                "allow_anonymous true",
                "set_tcp_nodelay true",
                "persistence true",
                f"persistence_location {store}/",
                "autosave_interval 10",
                "max_queued_messages 100000",
                "max_inflight_messages 100",
                "max_keepalive 3600",
            ]
        )
        + "\n"
    )


def _probe_received(_client: paho.Client, got: threading.Event, _message: paho.MQTTMessage) -> None:
    got.set()


def find_nats_server() -> str:
    """The path of ``nats-server``; raises :class:`TopologyUnavailable` naming the package."""
    found = shutil.which("nats-server")
    if found:
        return found
    for directory in _NATS_DIRS:
        candidate = os.path.join(directory, "nats-server")
        if os.access(candidate, os.X_OK):
            return candidate
    raise TopologyUnavailable(
        "nats",
        f"nats-server not found (looked on PATH and in {', '.join(_NATS_DIRS)})",
        "install it: `sudo apt-get install nats-server` (Debian/Ubuntu), `brew install nats-server` (macOS)",
    )


class _NatsNode:
    """One nats-server process of the cluster: client, cluster (route) and MQTT ports."""

    def __init__(
        self, executable: str, index: int, workdir: Path, ports: Sequence[tuple[int, int, int]]
    ) -> None:
        self.executable = executable
        self.index = index
        self.client_port, self.route_port, self.mqtt_port = ports[index]
        self.dir = workdir / f"nats-{index}"
        shutil.rmtree(self.dir, ignore_errors=True)  # an old store names peers on other ports
        self.dir.mkdir(parents=True)
        routes = ", ".join(f'"nats-route://127.0.0.1:{p[1]}"' for i, p in enumerate(ports) if i != index)
        # JetStream is what NATS's MQTT interface keeps sessions, retained messages and QoS 1
        # deliveries in; in a cluster it needs every node named and a store of its own.
        self.conf = self.dir / "nats.conf"
        self.conf.write_text(
            f'server_name: "madang-n{index}"\n'
            f"listen: 127.0.0.1:{self.client_port}\n"
            f'jetstream {{ store_dir: "{self.dir / "js"}", max_memory_store: 64MB, max_file_store: 512MB }}\n'
            f'cluster {{ name: "madang", listen: 127.0.0.1:{self.route_port}, routes: [{routes}] }}\n'
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port}, stream_replicas: {min(3, len(ports))} }}\n",
            encoding="utf-8",
        )
        self.log = self.dir / "nats.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._unregister: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def pid(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None
        return self.proc.pid

    def spawn(self) -> None:
        if self.pid is not None:
            return
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [self.executable, "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_death_pact(),
            )
        if self._unregister is None:
            self._unregister = stop_at_exit(self.stop)

    def answers(self) -> bool:
        return self.pid is not None and _answers_mqtt(self.mqtt_port)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self._unregister is not None:
            self._unregister()
            self._unregister = None
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_STOP_TIMEOUT_S)


class Topology:
    """Started brokers of one layout (see the module docstring). A context manager; :meth:`stop`
    is idempotent and also runs at interpreter exit.

    ``hub_url`` is where the controller connects; ``leaf_urls`` where devices connect
    (:meth:`leaf_for` spreads them round-robin, or pass a zone's leaf index).
    """

    def __init__(
        self,
        kind: str,
        *,
        hub: MosquittoBroker | None = None,
        leaves: Sequence[MosquittoBroker] = (),
        relays: Sequence[Relay] = (),
        nats: Sequence[_NatsNode] = (),
        workdir: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        self.kind = kind
        self._hub = hub
        self._leaves = list(leaves)
        self._relays = list(relays)
        self._nats = list(nats)
        self._tmp = workdir
        self._stopped = False
        self._unregister: Callable[[], None] | None = stop_at_exit(self.stop)
        if nats:
            self.hub_url = nats[0].url
            self.leaf_urls: tuple[str, ...] = tuple(n.url for n in nats)
        else:
            assert hub is not None
            self.hub_url = hub.url
            self.leaf_urls = tuple(b.url for b in self._leaves) or (hub.url,)

    # -- queries ----------------------------------------------------------------------------

    def pids(self) -> list[int]:
        """Every running broker process (hub, leaves, NATS nodes); relays are :meth:`relay_pids`."""
        procs: list[int | None] = [n.pid for n in self._nats]
        if self._hub is not None:
            procs.append(self._hub.pid)
        procs.extend(b.pid for b in self._leaves)
        return [p for p in procs if p is not None]

    def relay_pids(self) -> list[int]:
        """The bridge relays' processes (bridged only): they copy bytes, they are not brokers."""
        return [p for p in (r.pid for r in self._relays) if p is not None]

    def leaf_for(self, index: int) -> str:
        """The leaf URL of device number ``index``: ``leaf_urls[index % len(leaf_urls)]``."""
        return self.leaf_urls[index % len(self.leaf_urls)]

    def device_brokers(self, devices: Iterable[Device], *, by: str = "zone") -> dict[str, str]:
        """Device id -> the leaf URL it joins. ``by="zone"``: every device of a zone on the same
        leaf (zones in order of first appearance, round-robin over the leaves), as a venue lays
        out one leaf broker per zone; ``by="index"``: devices round-robin, zones ignored."""
        if by not in ("zone", "index"):
            raise ValueError(f"device_brokers(by={by!r}): use 'zone' or 'index'")
        devices = list(devices)
        if self.kind == "nats":
            bad = sorted({v for d in devices for v in (d.id, d.zone, d.kind) if "." in v or " " in v})
            if bad:
                raise TopologyUnavailable(
                    "nats",
                    f"NATS's MQTT interface refuses topics with '.' or ' ' (it closes the connection), "
                    f"and these device ids, zones or kinds would be topic levels: {', '.join(bad[:10])}",
                    "rename them in the venue file (use '-' or '_'), or use Mosquitto bridges",
                )
        out: dict[str, str] = {}
        zones: dict[str, int] = {}
        for n, d in enumerate(devices):
            k = zones.setdefault(d.zone, len(zones)) if by == "zone" else n
            out[d.id] = self.leaf_for(k)
        return out

    def leaf_index(self, url: str) -> int:
        """The index of leaf ``url`` in :attr:`leaf_urls` (for :meth:`restart_leaf`)."""
        return self.leaf_urls.index(url)

    @property
    def hub_broker(self) -> MosquittoBroker | None:
        """The hub's :class:`~simulators.broker.MosquittoBroker` (``restart()`` restarts the hub;
        :meth:`simulators.devices.venue.SimulatedVenue.restart_broker` uses it); ``None`` for NATS."""
        return self._hub

    # -- faults -----------------------------------------------------------------------------

    def restart_leaf(self, i: int, down_s: float = 1.0) -> None:
        """Stop leaf ``i``'s broker, wait ``down_s``, start it again on the same port. A restarted
        Mosquitto leaf has lost its retained messages and sessions (no persistence); its bridge
        reconnects to the hub, which replays what it queued and sends the retained ones again."""
        if self._nats:
            node = self._nats[i % len(self._nats)]
            node.stop()
            time.sleep(down_s)
            node.spawn()
            self._wait_nats([node])
            return
        if not self._leaves:
            self.restart_hub(down_s)
            return
        leaf = self._leaves[i % len(self._leaves)]
        leaf.stop()
        time.sleep(down_s)
        leaf.start()
        self.wait_bridged([i % len(self._leaves)])

    def restart_hub(self, down_s: float = 1.0) -> None:
        """Stop the hub (NATS: node 0), wait ``down_s``, start it again on the same port."""
        if self._nats:
            self.restart_leaf(0, down_s)
            return
        assert self._hub is not None
        self._hub.stop()
        time.sleep(down_s)
        self._hub.start()

    def drop_bridge(self, i: int) -> None:
        """Cut leaf ``i``'s link to the hub (its devices stay connected to the leaf).

        Bridged only. A NATS route cannot be cut from outside: either node of a pair may dial it
        and the cluster gossips every node's route address, so a relay in front of one node's
        route port leaves the connections that node dialed itself; restarting a node
        (:meth:`restart_leaf`) is the NATS fault. ``single`` has no bridge.
        """
        self._relay(i).cut()

    def heal_bridge(self, i: int) -> None:
        """Restore leaf ``i``'s link; its bridge redials within ``restart_timeout`` (1-2 s)."""
        self._relay(i).heal()

    def _relay(self, i: int) -> Relay:
        if self.kind == "nats":
            raise NotImplementedError(
                "a NATS route cannot be cut from outside (either node dials it, routes are gossiped); "
                "use restart_leaf() for a node fault"
            )
        if not self._relays:
            why = "has no bridge to cut" if self.kind == "single" else "was started with relay=False"
            raise NotImplementedError(f"topology {self.kind!r} {why}")
        return self._relays[i % len(self._relays)]

    # -- lifecycle --------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every broker and relay and remove the working folder. Idempotent."""
        if self._unregister is not None:
            self._unregister()
            self._unregister = None
        if self._stopped:
            return
        self._stopped = True
        for leaf in self._leaves:
            leaf.close()
        for relay in self._relays:
            relay.stop()
        if self._hub is not None:
            self._hub.close()
        for node in self._nats:
            node.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def wait_bridged(self, leaves: Iterable[int] | None = None, timeout_s: float = _BRIDGE_TIMEOUT_S) -> None:
        """Wait until each leaf's bridge carries messages from the hub (all leaves by default):
        a probe published on the hub must reach a subscriber on the leaf. Mosquitto answers on a
        leaf's port before its bridge has connected, and a cue published on the hub before then
        is not the leaf's to deliver (its session on the hub does not exist yet).
        :func:`start_topology` and :meth:`restart_leaf` call it; a no-op without bridges."""
        if self.kind != "bridged":
            return
        assert self._hub is not None
        todo = list(range(len(self._leaves)) if leaves is None else leaves)
        deadline = time.monotonic() + timeout_s
        for i in todo:
            leaf = self._leaves[i]
            got = threading.Event()
            topic = f"{_PROBE_ROOT}/{i}/{os.getpid()}"
            sub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"madang-probe-leaf-{i}-{os.getpid()}")
            pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"madang-probe-hub-{i}-{os.getpid()}")
            sub.user_data_set(got)
            sub.on_message = _probe_received
            try:
                sub.connect("127.0.0.1", leaf.port)
                sub.subscribe(topic, 0)
                sub.loop_start()
                pub.connect("127.0.0.1", self._hub.port)
                pub.loop_start()
                while not got.wait(0.1):
                    if time.monotonic() > deadline:
                        raise TopologyUnavailable(
                            "bridged",
                            f"leaf {i} (port {leaf.port}) got nothing from the hub within {timeout_s:.0f} s",
                            f"its bridge did not connect; the leaf's log says:\n{leaf._log_tail()}",
                        )
                    pub.publish(topic, b"probe", 0)
            finally:
                for c in (sub, pub):
                    c.disconnect()
                    c.loop_stop()

    def _wait_nats(self, nodes: Sequence[_NatsNode]) -> None:
        deadline = time.monotonic() + _NATS_START_TIMEOUT_S
        waiting = list(nodes)
        while waiting:
            for node in list(waiting):
                if node.proc is not None and node.proc.poll() is not None:
                    raise TopologyUnavailable(
                        "nats",
                        f"nats-server node {node.index} exited with status {node.proc.returncode}",
                        f"see its log:\n{node.tail()}",
                    )
                if node.answers():
                    waiting.remove(node)
            if waiting and time.monotonic() > deadline:
                names = ", ".join(f"node {n.index} (MQTT port {n.mqtt_port})" for n in waiting)
                raise TopologyUnavailable(
                    "nats",
                    f"{names} did not answer MQTT CONNECT within {_NATS_START_TIMEOUT_S:.0f} s",
                    f"check the JetStream cluster formed; last log lines:\n{waiting[0].tail()}",
                )
            if waiting:
                time.sleep(0.1)

    def __enter__(self) -> Topology:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"Topology({self.kind!r}, hub={self.hub_url}, leaves={len(self.leaf_urls)}, pids={self.pids()})"
        )


def start_topology(
    kind: str,
    *,
    leaves: int = 3,
    workdir: Path | None = None,
    extra_topics: Sequence[BridgeTopic] = (),
    topics: Callable[[int], Sequence[BridgeTopic]] | None = None,
    relay: bool = True,
) -> Topology:
    """Start a ``"single"``, ``"bridged"`` (hub + ``leaves`` leaf Mosquittos) or ``"nats"``
    (``leaves`` nats-server nodes, default 3) topology on loopback; returns it started.

    ``workdir`` holds configurations, logs and the NATS JetStream stores (default: a temporary
    folder removed by :meth:`Topology.stop`). ``topics``: leaf index -> its bridge lines, instead
    of :data:`BRIDGE_TOPICS` for every leaf (for example only the pings and clock models of that
    leaf's zone, when the venue's topic ``base`` names the zone). ``relay=False``: the leaves'
    bridges connect to the hub directly (no relay process in the path, as in a venue; then
    :meth:`Topology.drop_bridge` is not available). ``extra_topics``: bridge lines beyond
    :data:`BRIDGE_TOPICS` (a venue's own topic ``base``, a show's own MQTT topics).
    Raises :class:`TopologyUnavailable` when a broker program is missing or does not come up.
    """
    if kind not in KINDS:
        raise ValueError(f"topology kind {kind!r} is not known; use one of: {', '.join(KINDS)}")
    if leaves < 1:
        raise ValueError(f"a topology needs at least one leaf (got leaves={leaves})")
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix=f"madang-{kind}-")
        workdir = Path(tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "nats":
            return _start_nats(leaves, workdir, tmp)
        try:
            find_mosquitto()
        except FileNotFoundError as exc:
            raise TopologyUnavailable(kind, "mosquitto is not installed", str(exc)) from exc
        if kind == "single":
            return Topology(kind, hub=MosquittoBroker().start(), workdir=tmp)

        def lines(i: int) -> Sequence[BridgeTopic]:
            return (*(BRIDGE_TOPICS if topics is None else topics(i)), *extra_topics)

        return _start_bridged(leaves, workdir, tmp, lines, relay=relay)
    except BaseException:
        if tmp is not None:
            tmp.cleanup()
        raise


def _start_bridged(
    count: int,
    workdir: Path,
    tmp: tempfile.TemporaryDirectory[str] | None,
    topics: Callable[[int], Sequence[BridgeTopic]],
    *,
    relay: bool,
) -> Topology:
    hub_port = _free_port()
    store = workdir / "hub-db"
    shutil.rmtree(store, ignore_errors=True)  # a reused workdir must not restore an old show's state
    store.mkdir(parents=True)
    (workdir / "hub.conf").write_text(hub_config(listen_port=hub_port, store=store), "utf-8")
    hub = MosquittoBroker(config=workdir / "hub.conf", port=hub_port)
    relays: list[Relay] = []
    leaves: list[MosquittoBroker] = []
    try:
        hub.start()
        for i in range(count):
            upstream = hub.port
            if relay:
                relays.append(Relay(hub.port).start())
                upstream = relays[-1].port
            port = _free_port()
            conf = workdir / f"leaf-{i}.conf"
            conf.write_text(
                bridge_config(index=i, listen_port=port, hub_port=upstream, topics=topics(i)), "utf-8"
            )
            leaf = MosquittoBroker(config=conf, port=port)
            leaves.append(leaf)
            leaf.start()
    except BaseException:
        for leaf in leaves:
            leaf.close()
        for r in relays:
            r.stop()
        hub.close()
        raise
    topo = Topology("bridged", hub=hub, leaves=leaves, relays=relays, workdir=tmp)
    try:
        topo.wait_bridged()
    except BaseException:
        topo.stop()
        raise
    return topo


def _start_nats(count: int, workdir: Path, tmp: tempfile.TemporaryDirectory[str] | None) -> Topology:
    executable = find_nats_server()
    ports = [(_free_port(), _free_port(), _free_port()) for _ in range(count)]
    nodes = [_NatsNode(executable, i, workdir, ports) for i in range(count)]
    topo = Topology("nats", nats=nodes, workdir=tmp)
    try:
        for node in nodes:
            node.spawn()
        topo._wait_nats(nodes)
    except BaseException:
        with contextlib.suppress(Exception):
            topo.stop()
        raise
    return topo


# -- python -m simulators.topology: bursts through a topology ---------------------------------------


def _bursts(kind: str, *, relay: bool, bursts: int, size: int) -> dict[str, object]:
    """Send ``bursts`` bursts of ``size`` QoS 0 messages each way between a client on the hub and
    one on leaf 0 (both with ``TCP_NODELAY``), 20 ms apart; the time from a burst's first publish
    to its last arrival, in ms. Nagle's algorithm on a socket in the path shows as ~40 ms tails."""
    out: dict[str, object] = {"kind": kind, "relay": relay, "bursts": bursts, "size": size}
    with start_topology(kind, leaves=1, relay=relay) as topo:
        clients: list[paho.Client] = []
        got: dict[str, list[float]] = {"hub": [], "leaf": []}

        def client(url: str, name: str, sub: str) -> paho.Client:
            c = paho.Client(CallbackAPIVersion.VERSION2, client_id=name)
            c.on_message = lambda _c, _u, _m: got[name].append(time.monotonic())
            c.connect("127.0.0.1", int(url.rsplit(":", 1)[1]))
            sock = c.socket()
            if isinstance(sock, socket.socket):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.subscribe(sub, 0)
            c.loop_start()
            clients.append(c)
            return c

        try:
            hub = client(topo.hub_url, "hub", "madang/dev/+/pong")
            leaf = client(topo.leaf_urls[0], "leaf", "madang/cue/#")
            time.sleep(0.5)
            for name, pub, topic, into in (
                ("leaf_to_hub_ms", leaf, "madang/dev/probe/pong", "hub"),
                ("hub_to_leaf_ms", hub, "madang/cue", "leaf"),
            ):
                lat: list[float] = []
                for _ in range(bursts):
                    n, t0 = len(got[into]), time.monotonic()
                    for _ in range(size):
                        pub.publish(topic, b"x" * 64, 0)
                    while len(got[into]) < n + size and time.monotonic() - t0 < 1.0:
                        time.sleep(0.0002)
                    lat.append((got[into][-1] - t0) * 1e3 if len(got[into]) >= n + size else 1000.0)
                    time.sleep(0.02)
                lat.sort()
                out[name] = {
                    "p50": round(lat[len(lat) // 2], 2),
                    "p99": round(lat[int(len(lat) * 0.99) - 1], 2),
                    "max": round(lat[-1], 2),
                    "over_30ms": sum(x > 30 for x in lat),
                }
        finally:
            for c in clients:
                c.disconnect()
                c.loop_stop()
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _main(argv: list[str]) -> int:
    import argparse
    import json

    ap = argparse.ArgumentParser(
        prog="python -m simulators.topology",
        description="Message bursts each way between the hub and a leaf of a topology (JSON).",
    )
    ap.add_argument("kind", choices=KINDS)
    ap.add_argument("--direct", action="store_true", help="bridged: no relay between leaf and hub")
    ap.add_argument("--bursts", type=int, default=200)
    ap.add_argument("--size", type=int, default=3)
    args = ap.parse_args(argv)
    print(json.dumps(_bursts(args.kind, relay=not args.direct, bursts=args.bursts, size=args.size)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
