from __future__ import annotations

from simulators.network import Path
from simulators.vtime import VirtualNetwork, VirtualTime, topic_matches

MS = 1_000_000


def test_events_run_in_time_order_with_fifo_ties() -> None:
    vt = VirtualTime(start_ns=100)
    seen: list[tuple[int, str]] = []
    vt.call_at(300, lambda: seen.append((vt.now, "c")))
    vt.call_at(200, lambda: seen.append((vt.now, "a")))
    vt.call_at(200, lambda: seen.append((vt.now, "b")))
    h = vt.call_at(250, lambda: seen.append((vt.now, "cancelled")))
    h.cancel()
    assert vt.run_until(250) == 2
    assert vt.now == 250
    vt.run_until(1000)
    assert seen == [(200, "a"), (200, "b"), (300, "c")]


def test_events_scheduled_while_running_are_honoured() -> None:
    vt = VirtualTime()
    seen: list[int] = []

    def chain(n: int) -> None:
        seen.append(vt.now)
        if n:
            vt.call_later(10, chain, n - 1)

    vt.call_at(0, chain, 3)
    vt.run_until(25)
    assert seen == [0, 10, 20]
    vt.run()
    assert seen == [0, 10, 20, 30]
    assert vt.call_at(5, seen.append, -1).when == 30  # the past means now


def test_topic_filters() -> None:
    assert topic_matches("madang/dev/+/pong", "madang/dev/xr-1/pong")
    assert topic_matches("madang/#", "madang/dev/xr-1/pong")
    assert topic_matches("#", "a")
    assert not topic_matches("madang/dev/+", "madang/dev/xr-1/pong")
    assert not topic_matches("a/b", "a")


def test_the_broker_keeps_dollar_topics_from_wildcard_first_filters() -> None:
    # MQTT 3.1.1 §4.7.2, as Mosquitto does: '#' and '+/...' do not receive '$' topics, '$SYS/#' does.
    vt = VirtualTime()
    net = VirtualNetwork(vt)
    got: dict[str, list[str]] = {"all": [], "plus": [], "sys": []}
    for name, filter_ in (("all", "#"), ("plus", "+/x"), ("sys", "$SYS/#")):
        net.connect(name, lambda t, p, n, name=name: got[name].append(t))
        net.subscribe(name, filter_)
    net.connect("pub", lambda t, p, n: None)
    for topic in ("$SYS/x", "a/x"):
        net.publish("pub", topic, b"1")
    vt.run_until(vt.now + 1000 * MS)
    assert got == {"all": ["a/x"], "plus": ["a/x"], "sys": ["$SYS/x"]}


def test_datagrams_through_paths_and_pubsub_with_retain_and_will() -> None:
    vt = VirtualTime()
    net = VirtualNetwork(vt)
    got: list[tuple[str, bytes, int]] = []
    net.attach("ctl", lambda s, d, t: got.append((s, d, t)))
    net.attach("dev", lambda s, d, t: net.send_datagram("dev", s, d + b"!"), Path("wifi", 1))
    net.send_datagram("ctl", "dev", b"hi")
    vt.run_until(2000 * MS)
    assert [(s, d) for s, d, _ in got] == [("dev", b"hi!")]
    assert got[0][2] >= 4 * MS  # two wifi hops of at least 2 ms

    msgs: list[tuple[str, bytes]] = []
    net.connect("ctl", lambda t, p, n: msgs.append((t, p)))
    net.connect("dev", lambda t, p, n: None, will=("dev/status", b"offline"))
    net.publish("dev", "dev/status", b"ready", retain=True)
    vt.run_until(vt.now + 1000 * MS)
    net.subscribe("ctl", "dev/+")
    vt.run_until(vt.now + 1000 * MS)
    assert msgs == [("dev/status", b"ready")]  # retained, delivered on subscribe
    net.disconnect("dev", clean=False)
    vt.run_until(vt.now + 1000 * MS)
    assert msgs[-1] == ("dev/status", b"offline")
    assert net.retained("dev/status") == b"offline"


def test_stream_delivery_keeps_order() -> None:
    vt = VirtualTime()
    net = VirtualNetwork(vt)
    got: list[bytes] = []
    net.connect("ctl", lambda t, p, n: None)
    net.attach("dev", None, Path("wifi-crowded", 3))
    net.connect("dev", lambda t, p, n: got.append(p))
    net.subscribe("dev", "x")
    for i in range(500):
        vt.call_at(i * MS, net.publish, "ctl", "x", str(i).encode())
    vt.run()
    assert got == [str(i).encode() for i in range(500)]
