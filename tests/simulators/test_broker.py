"""The private Mosquitto: start, port, restart on the same port, stop, and a missing install."""

from __future__ import annotations

import os
import socket
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.broker import BrokerNotFound, BrokerStartError, MosquittoBroker, find_mosquitto
from venues.errors import MadangError


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _connected_client(port: int) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="broker-test")
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    deadline = time.monotonic() + 5
    while not client.is_connected():
        assert time.monotonic() < deadline, "paho client did not connect"
        time.sleep(0.01)
    return client


def test_start_exposes_loopback_url_and_pid(fresh_mosquitto: MosquittoBroker) -> None:
    b = fresh_mosquitto
    assert b.host == "127.0.0.1"
    assert b.port != 1883
    assert b.url == f"mqtt://127.0.0.1:{b.port}"
    assert b.pid is not None and b.running
    assert _accepts(b.port)
    conf = (b.log_path.parent / "mosquitto.conf").read_text()
    assert f"listener {b.port} 127.0.0.1" in conf
    assert "set_tcp_nodelay true" in conf
    assert "persistence false" in conf


def test_stop_is_idempotent_and_frees_the_port(fresh_mosquitto: MosquittoBroker) -> None:
    b = fresh_mosquitto
    pid = b.pid
    assert pid is not None
    b.stop()
    b.stop()
    assert b.pid is None and not b.running
    assert not _accepts(b.port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_restart_keeps_the_port_with_clients_connected(fresh_mosquitto: MosquittoBroker) -> None:
    """Connections the broker closed leave TIME_WAIT on its port; SO_REUSEADDR lets it bind again."""
    b = fresh_mosquitto
    port, pid = b.port, b.pid
    clients = [_connected_client(port) for _ in range(3)]
    try:
        for _ in range(2):
            b.restart()
            assert b.port == port
            assert b.pid is not None and b.pid != pid
            pid = b.pid
            assert _accepts(port)
    finally:
        for c in clients:
            c.loop_stop()
            c.disconnect()


def test_kill_then_start_on_the_same_port(fresh_mosquitto: MosquittoBroker) -> None:
    b = fresh_mosquitto
    port = b.port
    client = _connected_client(port)
    try:
        b.kill()
        assert not b.running
        b.start()
        assert b.port == port and _accepts(port)
    finally:
        client.loop_stop()
        client.disconnect()


def test_context_manager_stops_and_cleans_up() -> None:
    try:
        find_mosquitto()
    except BrokerNotFound as exc:
        pytest.skip(str(exc))
    with MosquittoBroker() as b:
        workdir = b.log_path.parent
        pid = b.pid
        assert pid is not None
    assert b.pid is None
    assert not workdir.exists()


def test_missing_mosquitto_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("simulators.broker._SEARCH_DIRS", ("/nonexistent/sbin",))
    with pytest.raises(BrokerNotFound) as info:
        MosquittoBroker().start()
    err = info.value
    assert isinstance(err, MadangError) and isinstance(err, FileNotFoundError)
    assert "apt-get install mosquitto" in str(err)
    assert "brew install mosquitto" in str(err)


def test_port_in_use_fails_with_the_log_tail() -> None:
    try:
        find_mosquitto()
    except BrokerNotFound as exc:
        pytest.skip(str(exc))
    # Something else holds the port and never accepts: mosquitto cannot bind and exits.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        holder.listen(0)
        broker = MosquittoBroker(port=port)
        with pytest.raises(BrokerStartError) as info:
            broker.start()
        broker.close()
    assert info.value.port == port
    assert str(port) in str(info.value)
