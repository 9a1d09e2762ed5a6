"""Virtual time: a seeded discrete-event scheduler, and a network that delivers through it.

Theory of operation
-------------------
:class:`VirtualTime` is a heap of ``(instant, counter, callback)``: the counter breaks ties in
the order events were scheduled, so a run is a pure function of its inputs and seed. Nothing
sleeps and nothing touches a socket; ``run_until(t)`` pops events in order, sets ``now`` to each
instant and calls it. A whole show at ten thousand devices runs in seconds.

:class:`VirtualNetwork` moves bytes between named endpoints through each device's
:class:`~simulators.network.Path`, scheduling each delivery on the :class:`VirtualTime`:

* datagrams (``send_datagram``): OSC/UDP, lost/duplicated/reordered by the path;
* a publish/subscribe broker (``connect``/``subscribe``/``publish``): MQTT 3.1.1 semantics that
  matter here (``+``/``#`` filters matched by :func:`venues.names.topic_matches`, so a filter
  starting with a wildcard does not receive ``$`` topics, as with a real broker; retained
  messages; last will on an unclean disconnect),
  carried over each client's path as a TCP stream (no loss, FIFO per client, retransmission delay);
* the controller (or any endpoint without a path of its own) sits on the venue's wired LAN.

Devices are the same sans-I/O cores as in real time: they get bytes and a receive instant.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Any

from simulators.network import Direction, Path
from venues.names import topic_matches

__all__ = ["Handle", "VirtualNetwork", "VirtualTime", "topic_matches"]


class Handle:
    """A scheduled call; :meth:`cancel` stops it from running."""

    __slots__ = ("args", "cancelled", "fn", "when")

    def __init__(self, when: int, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.when = when
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run this call (no effect once it has run)."""
        self.cancelled = True


# A heap entry: (instant, tie-break counter, fn, args, handle or None). ``fn is None`` marks a
# batch: ``args`` is then a ``_Batch`` whose calls run in order under the entry's counter.
_Entry = tuple[int, int, Callable[..., object] | None, Any, Handle | None]


class _Batch:
    """Calls sorted by instant that share one heap entry: ``items[i:]`` are still to run."""

    __slots__ = ("i", "items")

    def __init__(self, items: list[tuple[int, Callable[..., object], tuple[Any, ...]]]) -> None:
        self.items = items
        self.i = 0


class VirtualTime:
    """A deterministic discrete-event scheduler over integer nanoseconds of true time.

    ``now`` starts at ``start_ns``. ``rng`` is a seeded random stream for whoever needs one.
    Schedule with :meth:`call_at` / :meth:`call_later` (cancellable), :meth:`post` (not
    cancellable, cheaper) or :meth:`post_batch` (many calls in one heap entry), then drive with
    :meth:`run_until`. Events run in order of ``(instant, order of scheduling)``; the calls of one
    batch share the order of the batch.
    """

    __slots__ = ("_counter", "_heap", "events_run", "now", "rng", "seed")

    def __init__(self, start_ns: int = 0, seed: int = 0) -> None:
        self.now = start_ns
        self.seed = seed
        self.rng = random.Random(f"vtime:{seed}")
        self._heap: list[_Entry] = []
        self._counter = 0
        self.events_run = 0

    def call_at(self, when: int, fn: Callable[..., object], *args: Any) -> Handle:
        """Run ``fn(*args)`` at true instant ``when`` (``now`` if ``when`` is in the past)."""
        if when < self.now:
            when = self.now
        h = Handle(when, fn, args)
        self._counter += 1
        heapq.heappush(self._heap, (when, self._counter, fn, args, h))
        return h

    def call_later(self, delay_ns: int, fn: Callable[..., object], *args: Any) -> Handle:
        """Run ``fn(*args)`` ``delay_ns`` from now."""
        return self.call_at(self.now + delay_ns, fn, *args)

    def post(self, when: int, fn: Callable[..., object], *args: Any) -> None:
        """Like :meth:`call_at`, without a handle: the call cannot be cancelled."""
        if when < self.now:
            when = self.now
        self._counter += 1
        heapq.heappush(self._heap, (when, self._counter, fn, args, None))

    def post_batch(self, items: list[tuple[int, Callable[..., object], tuple[Any, ...]]]) -> None:
        """Run each ``fn(*args)`` of ``(when, fn, args)`` at its instant (not earlier than now);
        ``items`` is sorted here, in place, by instant (stable: equal instants keep their order).
        One heap entry serves them all: a fan-out to ten thousand subscribers costs one push, and
        runs of them due before anything else need none."""
        if not items:
            return
        items.sort(key=_at)
        if items[0][0] < self.now:
            raise ValueError("post_batch: items must not be in the past")
        self._counter += 1
        heapq.heappush(self._heap, (items[0][0], self._counter, None, _Batch(items), None))

    def next_at(self) -> int | None:
        """The instant of the next pending event, or ``None`` when there is none."""
        heap = self._heap
        while heap:
            h = heap[0][4]
            if h is None or not h.cancelled:
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def run_until(self, until_ns: int) -> int:
        """Run every event due at or before ``until_ns`` in order, then set ``now = until_ns``.

        Returns how many events ran. Events scheduled while running are honoured if due in time.
        """
        n = self._run(until_ns)
        if until_ns > self.now:
            self.now = until_ns
        return n

    def run(self, limit_ns: int | None = None) -> int:
        """Run until nothing is pending (or until ``limit_ns``); returns how many events ran."""
        return self._run(limit_ns)

    def _run(self, until: int | None) -> int:
        heap = self._heap
        pop = heapq.heappop
        push = heapq.heappush
        n = 0
        while heap and (until is None or heap[0][0] <= until):
            when, order, fn, args, h = pop(heap)
            if fn is not None:
                if h is not None and h.cancelled:
                    continue
                self.now = when
                fn(*args)
                n += 1
                continue
            # A batch: run its calls while they come before every other pending event.
            batch: _Batch = args
            items = batch.items
            i = batch.i
            end = len(items)
            while True:
                at, f, a = items[i]
                self.now = at
                f(*a)
                n += 1
                i += 1
                if i == end:
                    break
                nxt = items[i][0]
                if (until is not None and nxt > until) or (
                    heap and (heap[0][0] < nxt or (heap[0][0] == nxt and heap[0][1] < order))
                ):
                    batch.i = i
                    push(heap, (nxt, order, None, batch, None))
                    break
        self.events_run += n
        return n


DatagramReceiver = Callable[[str, bytes, int], None]  # (source endpoint, data, true now)
MessageReceiver = Callable[[str, bytes, int], None]  # (topic, payload, true now)


@dataclass(slots=True)
class _Client:
    name: str
    on_message: MessageReceiver
    will: tuple[str, bytes] | None
    filters: set[str] = field(default_factory=set)
    connected: bool = True
    last_down: int = 0  # FIFO: a stream never delivers before what it delivered earlier
    last_up: int = 0


class VirtualNetwork:
    """Endpoints, paths and a pub/sub broker on a :class:`VirtualTime`.

    ``attach(name, on_datagram, path)`` adds an endpoint (``path=None``: on the wired LAN, like the
    controller). ``send_datagram(src, dst, data)`` sends a UDP datagram. For pub/sub,
    ``connect(name, on_message, will=...)``, ``subscribe(name, filter)``, ``publish(name, topic,
    payload, retain=...)`` and ``disconnect(name, clean=...)``. Counters: ``sent``, ``delivered``,
    ``dropped``.

    A publish that reaches several subscribers (a group cue, the controller's state) is routed
    once: each subscriber's delay is drawn from its own path, and the deliveries go on the clock
    as one batch sorted by arrival (:meth:`VirtualTime.post_batch`). Every subscriber gets the
    same ``payload`` object, which lets a receiver decode it once for all.
    """

    def __init__(self, vt: VirtualTime, *, lan: Path | None = None) -> None:
        self.vt = vt
        self.lan = lan if lan is not None else Path("lan", seed=vt.seed)
        self._paths: dict[str, Path] = {}
        self._datagram: dict[str, DatagramReceiver] = {}
        self._clients: dict[str, _Client] = {}
        self._retained: dict[str, bytes] = {}
        # Subscription index: exact topics in a dict, wildcard filters scanned (there are few);
        # which wildcard filters match a topic is remembered until the set of filters changes.
        self._exact: dict[str, dict[str, _Client]] = {}
        self._wild: dict[str, dict[str, _Client]] = {}
        self._wild_of: dict[str, tuple[str, ...]] = {}
        self.sent = 0
        self.delivered = 0
        self.dropped = 0
        self.on_presence: Callable[[str, bool], None] | None = None
        """Called with ``(client, connected)`` whenever a pub/sub client connects or disconnects."""

    # -- endpoints and datagrams ---------------------------------------------------------------
    def attach(
        self, name: str, on_datagram: DatagramReceiver | None = None, path: Path | None = None
    ) -> None:
        """Add (or replace) an endpoint; ``path`` is its link to the rest (``None``: wired LAN)."""
        self._paths[name] = path if path is not None else self.lan
        if on_datagram is not None:
            self._datagram[name] = on_datagram

    def path_of(self, name: str) -> Path:
        """The path an endpoint sits behind."""
        return self._paths.get(name, self.lan)

    def _hops(self, src: str, dst: str) -> list[tuple[Path, Direction]]:
        hops = []
        ps, pd = self.path_of(src), self.path_of(dst)
        if ps is not self.lan or pd is self.lan:
            hops.append((ps, Direction.UP))
        if pd is not self.lan:
            hops.append((pd, Direction.DOWN))
        return hops

    def send_datagram(self, src: str, dst: str, data: bytes) -> None:
        """Send ``data`` from ``src`` to ``dst`` now; it arrives later, or twice, or never."""
        self.sent += 1
        now = self.vt.now
        delays = [0]
        for path, direction in self._hops(src, dst):
            nxt: list[int] = []
            for d in delays:
                nxt.extend(d + x for x in path.deliveries(now + d, direction))
            delays = nxt
        if not delays:
            self.dropped += 1
            return
        for d in delays:
            self.vt.post(now + d, self._deliver_datagram, src, dst, data)

    def _deliver_datagram(self, src: str, dst: str, data: bytes) -> None:
        fn = self._datagram.get(dst)
        if fn is None:
            self.dropped += 1  # nobody listening: ICMP port unreachable, which UDP senders ignore
            return
        self.delivered += 1
        fn(src, data, self.vt.now)

    # -- pub/sub --------------------------------------------------------------------------------
    def connect(
        self, name: str, on_message: MessageReceiver, *, will: tuple[str, bytes] | None = None
    ) -> None:
        """Connect a pub/sub client (the broker sees it at once; its path delays its traffic)."""
        old = self._clients.get(name)
        if old is not None:
            if old.connected:
                self.disconnect(name, clean=False)  # MQTT 3.1.1 3.1.4: a second CONNECT takes over
            for f in old.filters:  # clean session: the old subscriptions go
                for index in (self._exact, self._wild):
                    subs = index.get(f)
                    if subs is not None and subs.get(name) is old:
                        del subs[name]
        self._clients[name] = _Client(name, on_message, will)
        if self.on_presence is not None:
            self.on_presence(name, True)

    def disconnect(self, name: str, *, clean: bool = True) -> None:
        """Disconnect a client; an unclean disconnect (crash) publishes its last will."""
        c = self._clients.get(name)
        if c is None or not c.connected:
            return
        c.connected = False
        if self.on_presence is not None:
            self.on_presence(name, False)
        if not clean and c.will is not None:
            topic, payload = c.will
            self._route(topic, payload, retain=True)

    def is_connected(self, name: str) -> bool:
        """Whether pub/sub client ``name`` is connected now."""
        c = self._clients.get(name)
        return c is not None and c.connected

    def subscribe(self, name: str, filter_: str) -> None:
        """Subscribe a connected client; matching retained messages are sent to it."""
        c = self._clients[name]
        c.filters.add(filter_)
        if "+" in filter_ or "#" in filter_:
            if filter_ not in self._wild:
                self._wild_of.clear()  # a new wildcard filter: topics may match it
            self._wild.setdefault(filter_, {})[name] = c
        else:
            self._exact.setdefault(filter_, {})[name] = c
        for topic, payload in list(self._retained.items()):
            if topic_matches(filter_, topic):
                self._to_client(c, topic, payload)

    def publish(
        self, name: str, topic: str, payload: bytes, *, retain: bool = False, skip: Container[str] = ()
    ) -> None:
        """Publish from client ``name``: it reaches the broker over the client's path, then every
        subscriber over theirs (but the clients in ``skip``: a lane carries it to them)."""
        self.sent += 1
        c = self._clients.get(name)
        now = self.vt.now
        at = now + self._paths.get(name, self.lan).stream_up(now)
        if c is not None:
            if at < c.last_up:
                at = c.last_up
            c.last_up = at
        if skip:
            self.vt.post(at, self._route, topic, payload, retain, skip)
        else:
            self.vt.post(at, self._route, topic, payload, retain)

    def _targets(self, topic: str) -> Iterable[_Client]:
        exact = self._exact.get(topic)
        wild = self._wild_of.get(topic)
        if wild is None:
            wild = tuple(f for f in self._wild if topic_matches(f, topic))
            self._wild_of[topic] = wild
        if not wild:
            return exact.values() if exact else ()
        targets: dict[str, _Client] = dict(exact) if exact else {}
        for f in wild:
            subs = self._wild.get(f)
            if subs:
                targets.update(subs)
        return list(targets.values())

    def _route(self, topic: str, payload: bytes, retain: bool, skip: Container[str] = ()) -> None:
        if retain:
            if payload:
                self._retained[topic] = payload
            else:
                self._retained.pop(topic, None)  # MQTT: an empty retained message clears it
        clients = self._clients
        exact = self._exact.get(topic)
        if skip:
            live = [
                c
                for c in self._targets(topic)
                if c.connected and clients.get(c.name) is c and c.name not in skip
            ]
            for c in live:
                self._to_client(c, topic, payload)
            return
        if exact is not None and len(exact) == 1 and not self._wild_of.get(topic, True):
            # The common case (a ping, a clock model): one subscriber, no wildcard filter matches.
            for c in exact.values():
                if c.connected and clients.get(c.name) is c:
                    self._to_client(c, topic, payload)
            return
        live = [c for c in self._targets(topic) if c.connected and clients.get(c.name) is c]
        if len(live) == 1:
            self._to_client(live[0], topic, payload)
            return
        if not live:
            return
        now = self.vt.now
        paths, lan = self._paths, self.lan
        deliver = self._deliver_message
        items: list[tuple[int, Callable[..., object], tuple[Any, ...]]] = []
        for c in live:
            at = now + paths.get(c.name, lan).stream_down(now)
            if at < c.last_down:
                at = c.last_down
            c.last_down = at
            items.append((at, deliver, (c, topic, payload)))
        self.vt.post_batch(items)

    def _to_client(self, c: _Client, topic: str, payload: bytes) -> None:
        now = self.vt.now
        at = now + self._paths.get(c.name, self.lan).stream_down(now)
        if at < c.last_down:
            at = c.last_down
        c.last_down = at
        self.vt.post(at, self._deliver_message, c, topic, payload)

    def _deliver_message(self, c: _Client, topic: str, payload: bytes) -> None:
        if not c.connected or self._clients.get(c.name) is not c:
            self.dropped += 1
            return
        self.delivered += 1
        c.on_message(topic, payload, self.vt.now)

    def retain(self, topic: str, payload: bytes) -> None:
        """Store (or, with an empty payload, clear) the retained message on ``topic`` now."""
        if payload:
            self._retained[topic] = payload
        else:
            self._retained.pop(topic, None)

    def retained(self, topic: str) -> bytes | None:
        """The retained message on ``topic``, if any (for tests and the harness)."""
        return self._retained.get(topic)


def _at(item: tuple[int, Callable[..., object], tuple[Any, ...]]) -> int:
    return item[0]
