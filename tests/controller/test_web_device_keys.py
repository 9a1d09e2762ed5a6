"""WebSocket device identity: a device must present its key (the venue's secrets file) to speak
for it. Unit tests of :class:`DeviceKeys` (pure, virtual time) and real WebSocket connections
(websockets client) against a real WebFront: a wrong key is refused and the live device keeps its
session, the right key replaces it, a flood of wrong keys is rate-limited."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from controller.access import Attempts
from controller.brokerconf import read_secrets, write_broker_config
from controller.clock import SystemClock
from controller.delivery import Kind, MqttPublish
from controller.web import WebFront
from controller.web.devkeys import KEY_MAX, DeviceKeys
from venues.loader import load_venue

S = 1_000_000_000

VENUE = """\
venue: keyed-yard
zones: [north]
devices:
  - {id: "ws-{1..2}", kind: xr, zone: north, sync: app, ws: {}}
  - {id: hs-1, kind: xr, zone: north, sync: app, mqtt: {}}
audience:
  capacity: 2
  zones: [north]
"""

KEYS = {"ws-1": "k-one-secret", "ws-2": "k-two-secret"}


# -- the check, pure ---------------------------------------------------------------------------


def test_right_key_passes_and_wrong_ones_are_counted_by_reason() -> None:
    keys = DeviceKeys(KEYS)
    assert keys.check("ws-1", "k-one-secret", "10.0.0.5", 0) is None
    assert keys.check("ws-1", "k-two-secret", "10.0.0.6", 0) == "wrong_key"  # another device's key
    assert keys.check("ws-1", "", "10.0.0.7", 0) == "missing_key"
    assert keys.check("ws-1", None, "10.0.0.7", 0) == "missing_key"
    assert keys.check("ws-3", "anything", "10.0.0.8", 0) == "no_key"
    assert keys.check("ws-1", "k-one-secret" + "x" * KEY_MAX, "10.0.0.9", 0) == "wrong_key"
    assert keys.accepted == 1
    assert keys.refused == {"no_key": 1, "missing_key": 2, "wrong_key": 2, "rate_limited": 0}


def test_a_source_past_its_allowance_is_refused_unchecked_until_the_window_passes() -> None:
    keys = DeviceKeys(KEYS, Attempts(allowance=3, window_ns=60 * S))
    for i in range(3):
        assert keys.check("ws-1", f"guess-{i}", "10.0.0.66", i) == "wrong_key"
    # Even the right key is not looked at now: the source has used its allowance.
    assert keys.check("ws-1", "k-one-secret", "10.0.0.66", 10 * S) == "rate_limited"
    assert keys.check("ws-1", "k-one-secret", "10.0.0.5", 10 * S) is None  # another source is not
    assert keys.check("ws-1", "k-one-secret", "10.0.0.66", 61 * S) is None  # the window passed
    assert keys.refused["rate_limited"] == 1


def test_broker_config_writes_keys_for_websocket_devices_but_no_broker_login(tmp_path: Path) -> None:
    path = tmp_path / "venue.yaml"
    path.write_text(VENUE, encoding="utf-8")
    write_broker_config(load_venue(path), tmp_path / "broker")
    secrets = read_secrets(tmp_path / "broker" / "secrets")
    assert {"ws-1", "ws-2", "hs-1"} <= set(secrets)
    assert not any(k.startswith("audience") for k in secrets)  # phones keep their rejoin tokens
    passwd = (tmp_path / "broker" / "passwd").read_text(encoding="utf-8")
    assert "hs-1:" in passwd and "ws-1:" not in passwd  # a key is not a broker login


# -- real sockets ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, keys: DeviceKeys) -> AsyncIterator[WebFront]:
    path = tmp_path / "venue.yaml"
    path.write_text(VENUE, encoding="utf-8")
    front = WebFront(load_venue(path), lambda t, p, n: None, clock=SystemClock(), port=0, device_keys=keys)
    await front.start()
    try:
        yield front
    finally:
        await front.close(drain_s=0.2)


async def until(pred: object, what: str) -> None:
    async with asyncio.timeout(10):
        while not pred():  # type: ignore[operator]
            await asyncio.sleep(0.01)


@pytest.mark.timeout(60)
def test_real_sockets_wrong_key_refused_right_key_replaces_flood_rate_limited(tmp_path: Path) -> None:
    async def main() -> None:
        keys = DeviceKeys(KEYS, Attempts(allowance=5, window_ns=60 * S))
        async with serving(tmp_path, keys) as front:
            url = f"ws://127.0.0.1:{front.server.port}/ws?device=ws-1"
            hub = front.hub.stats
            async with connect(f"{url}&key=k-one-secret") as live:
                await until(lambda: hub.connected == 1, "the headset attached")
                # A rogue on the same network: no key, a wrong key. Refused before the hub hears.
                for rogue in (url, f"{url}&key=guess"):
                    with pytest.raises(ConnectionClosed) as closed:
                        async with connect(rogue) as ws:
                            await ws.recv()
                    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
                assert hub.replaced == 0
                # The live headset still gets its cues.
                front.publish(
                    MqttPublish(at_ns=0, topic="madang/cue/dev/ws-1", payload=b'{"n": 1}', kind=Kind.CUE)
                )
                async with asyncio.timeout(5):
                    assert json.loads(await live.recv())["payload"] == {"n": 1}
                # The headset itself, reconnecting with its key: replaces the old session.
                async with connect(f"{url}&key=k-one-secret") as again:
                    await until(lambda: hub.replaced == 1, "replaced")
                    with pytest.raises(ConnectionClosed):
                        async with asyncio.timeout(5):
                            await live.recv()
                    # A flood of guesses from one source (its failures were forgotten when the
                    # right key came from it): 5 checked, the rest refused unchecked.
                    for i in range(20):
                        with pytest.raises(ConnectionClosed):
                            async with connect(f"{url}&key=guess-{i}") as ws:
                                await ws.recv()
                    assert keys.refused["wrong_key"] == 1 + 5
                    assert keys.refused["missing_key"] == 1
                    assert keys.refused["rate_limited"] == 15
                    assert hub.replaced == 1
                    report = front.report()["device_keys"]
                    assert report["accepted"] == 2 and report["refused"]["rate_limited"] == 15
                    # The right key from that source is refused too, until its window has passed.
                    with pytest.raises(ConnectionClosed):
                        async with connect(f"{url}&key=k-one-secret") as ws:
                            await ws.recv()
                    assert hub.replaced == 1
                    del again

    asyncio.run(main())
