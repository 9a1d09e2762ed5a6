from __future__ import annotations

import itertools

import pytest

from simulators.network import PROFILES, Direction, Path, profile_names

MS = 1_000_000


def _draw(name: str, seed: int, n: int) -> list[tuple[int, ...]]:
    p = Path(name, seed=seed)
    return [p.deliveries(i * MS, Direction.DOWN) for i in range(n)]


def test_profiles_are_named() -> None:
    assert {"lan", "wifi", "wifi-crowded", "lossy"} <= set(profile_names())
    with pytest.raises(KeyError, match="wifi-crowded"):
        Path("nope")


@pytest.mark.parametrize("name", ["lan", "wifi", "wifi-crowded", "lossy"])
def test_same_seed_same_draws(name: str) -> None:
    assert _draw(name, 7, 2000) == _draw(name, 7, 2000)
    assert _draw(name, 7, 2000) != _draw(name, 8, 2000)


def test_directions_are_independent_streams() -> None:
    a, b = Path("wifi", 3), Path("wifi", 3)
    for i in range(100):
        b.deliveries(i, Direction.UP)  # uplink traffic must not shift downlink draws
    assert [a.deliveries(i, "down") for i in range(100)] == [b.deliveries(i, "down") for i in range(100)]


@pytest.mark.parametrize(
    ("name", "loss", "dup"),
    [("lan", 0.0, 0.0), ("wifi", 0.01, 0.002), ("wifi-crowded", 0.05, 0.01), ("lossy", 0.2, 0.002)],
)
def test_loss_and_dup_rates(name: str, loss: float, dup: float) -> None:
    n = 40_000
    draws = _draw(name, 11, n)
    lost = sum(1 for d in draws if not d) / n
    dups = sum(1 for d in draws if len(d) == 2) / n
    # Binomial: 5 standard deviations, plus a floor for the rare events.
    assert abs(lost - loss) <= 5 * (loss * (1 - loss) / n) ** 0.5 + 1e-4
    assert abs(dups - dup * (1 - loss)) <= 5 * (dup / n) ** 0.5 + 2e-4


def test_delays_respect_floor_and_spike_bounds() -> None:
    prof = PROFILES["wifi"]
    delays = [d for ds in _draw("wifi", 5, 20_000) for d in ds]
    assert min(delays) >= prof.floor_ns
    spikes = [d for d in delays if d > prof.floor_ns + 25 * MS]
    assert 0.01 < len(spikes) / len(delays) < 0.04  # ~2 % spikes
    # floor + a long queue + the largest spike is far below a second
    assert max(delays) < prof.floor_ns + prof.spike_max_ns + 100 * MS
    mean = sum(delays) / len(delays)
    assert 5 * MS < mean < 10 * MS  # 2 ms floor + 4 ms queue + 2 % x ~60 ms spikes


def test_lan_is_sub_millisecond() -> None:
    delays = [d for ds in _draw("lan", 1, 5000) for d in ds]
    assert min(delays) >= 150_000
    assert sorted(delays)[len(delays) // 2] < 300_000


def test_reordering_falls_out_of_independent_delays() -> None:
    p = Path("wifi", 2)
    arrivals = [i * MS + d for i in range(2000) for d in p.deliveries(i * MS, Direction.DOWN)[:1]]
    assert any(b < a for a, b in itertools.pairwise(arrivals))


def test_partition_drops_everything_in_its_window() -> None:
    p = Path("lan", 1)
    p.partition(10 * MS, 20 * MS)
    assert p.deliveries(9 * MS, "down")
    assert all(p.deliveries(t * MS, "down") == () for t in range(10, 20))
    assert p.deliveries(20 * MS, "up")


def test_stream_messages_are_never_lost_and_wait_out_a_partition() -> None:
    p = Path("lossy", 4)
    delays = [p.stream_delay(i, "down") for i in range(5000)]
    assert all(d >= 2 * MS for d in delays)
    assert sum(1 for d in delays if d >= 200 * MS) > 500  # ~20 % retransmitted after an RTO
    p.partition(0, 1000 * MS)
    assert p.stream_delay(100 * MS, "down") >= 900 * MS
