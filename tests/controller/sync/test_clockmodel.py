"""Clock models, ping planning and lead time, in virtual time (pure maths, no sockets)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.sync.clockmodel import (
    ClockModel,
    ClockModels,
    NoClockModelError,
    PingPlanner,
    UnknownDeviceError,
    material_change,
)
from controller.sync.estimator import warm
from controller.sync.synthetic import LAN, WIFI, PathProfile
from venues.errors import MadangError

T0 = 1_763_694_000_000_000_000
MS = 1_000_000
S = 1_000_000_000


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    warm()


_models = st.builds(
    ClockModel,
    epoch=st.integers(0, 2**62),
    offset_ns=st.integers(-10 * S, 10 * S),
    drift_ppb=st.integers(-1_000_000, 1_000_000),
    uncertainty_ns=st.just(0),
    delay_p50_ns=st.just(0),
    delay_p99_ns=st.just(0),
    n=st.just(1),
)


@settings(max_examples=300, deadline=None)
@given(_models, st.integers(-(10**13), 10**13))
def test_to_ref_inverts_to_device_within_one_ns(m: ClockModel, dt: int) -> None:
    ref = m.epoch + dt
    assert abs(m.to_ref(m.to_device(ref)) - ref) <= 1
    dev = m.epoch + m.offset_ns + dt
    assert abs(m.to_device(m.to_ref(dev)) - dev) <= 1


def test_to_device_follows_the_protocol_formula() -> None:
    m = ClockModel(T0, -2_481_113, 41_250, 180_000, 0, 0, 10)
    at = T0 + 12_500_000_000
    # local = at + offset_ns + drift_ppb * (at - epoch) / 1e9  (docs/protocol.md)
    assert m.to_device(at) == at - 2_481_113 + round(41_250 * 12.5)
    assert m.to_message() == {
        "epoch": T0,
        "offset_ns": -2_481_113,
        "drift_ppb": 41_250,
        "uncertainty_ns": 180_000,
    }


def _ping(
    rng: np.random.Generator, t1: int, offset: int, drift_ppb: int, p: PathProfile
) -> tuple[int, int, int, int]:
    out = p.floor_ns / 2 + rng.exponential(p.queue_out_mean_ns)
    back = p.floor_ns / 2 + rng.exponential(p.queue_back_mean_ns)
    if rng.random() < p.spike_prob:
        out += rng.uniform(p.spike_min_ns, p.spike_max_ns)
    arrive = t1 + round(out)
    depart = arrive + p.hold_ns

    def dev(t: int) -> int:
        return t + offset + round(drift_ppb * (t - T0) / 1e9)

    t4 = depart + round(back)
    return t1, dev(arrive), dev(depart), t4


def _run_join(profile: PathProfile, seconds: float, seed: int) -> tuple[ClockModels, PingPlanner, int]:
    rng = np.random.default_rng(seed)
    models = ClockModels()
    planner = PingPlanner(seed=seed)
    truth = {"offset": 1_234_567_890, "drift": 37_000}
    dev = models.add_device("xr-0001")
    planner.join(dev, T0)
    inflight: list[tuple[int, int, int, int, int]] = []  # arrival t4, seq, t1, t2, t3
    now = T0
    end = T0 + int(seconds * S)
    while now <= end:
        devs, seqs = planner.due_at(now)
        for d, q in zip(devs.tolist(), seqs.tolist(), strict=True):
            t1, t2, t3, t4 = _ping(rng, now, truth["offset"], truth["drift"], profile)
            assert d == dev
            inflight.append((t4, q, t1, t2, t3))
        for item in [i for i in inflight if i[0] <= now]:
            inflight.remove(item)
            t4, q, t1, t2, t3 = item
            if planner.receive_pong(dev, q, t4):
                models.add_sample(dev, t1, t2, t3, t4)
        models.estimate(now)
        now += MS
    return models, planner, now


def test_joining_device_gets_a_usable_model_after_its_burst() -> None:
    models, planner, now = _run_join(LAN, 1.05, seed=3)
    m = models.model(0)
    assert m is not None
    assert m.n >= 9  # the burst: one ping every 100 ms, 20 of them over the first 2 s
    assert planner.sent == 11
    assert m.uncertainty_ns < 2 * MS
    assert T0 < m.epoch <= now
    true_offset = 1_234_567_890 + round(37_000 * (m.epoch - T0) / 1e9)
    assert abs(m.offset_ns - true_offset) <= m.uncertainty_ns
    assert models.over_budget(2 * MS) == []
    assert models.over_budget(1_000) == [0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_joining_wifi_device_model_error_stays_within_its_uncertainty(seed: int) -> None:
    models, _, _ = _run_join(WIFI, 1.5, seed=seed)
    m = models.model(0)
    assert m is not None
    true_offset = 1_234_567_890 + round(37_000 * (m.epoch - T0) / 1e9)
    assert abs(m.offset_ns - true_offset) <= m.uncertainty_ns < 20 * MS


def _send_times(planner: PingPlanner, until: int, step: int = 10 * MS) -> dict[int, list[int]]:
    sends: dict[int, list[int]] = {}
    now = T0
    while now < until:
        devs, _ = planner.due_at(now)
        for d in devs.tolist():
            sends.setdefault(d, []).append(now)
        now += step
    return sends


def test_burst_then_fast_then_slow_once_settled() -> None:
    planner = PingPlanner(seed=1)
    planner.join_many(np.arange(100), T0)
    planner.set_settled(np.arange(50), np.ones(50, dtype=np.bool_))  # rows 0-49 have good models
    sends = _send_times(planner, T0 + 90 * S, step=2 * MS)
    for dev in (7, 77):
        t = np.array(sends[dev])
        assert t[0] == T0  # the first ping at once
        gaps = np.diff(t)
        assert 100 * MS <= gaps[0] < 200 * MS  # then the burst, at a seeded phase
        assert (gaps[1:29] == 100 * MS).all()  # the burst: 30 pings over 3 s
        fast = gaps[29:][t[30:] <= T0 + 60 * S]
        assert len(fast) >= 50 and fast.min() >= 700 * MS and fast.max() <= 1_300 * MS + 2 * MS
    late7 = np.diff(np.array(sends[7]))[np.array(sends[7])[1:] > T0 + 65 * S]
    late77 = np.diff(np.array(sends[77]))[np.array(sends[77])[1:] > T0 + 65 * S]
    assert late7.min() >= 4_700 * MS and late7.max() <= 5_300 * MS + 2 * MS  # settled: slow
    assert late77.max() <= 1_300 * MS + 2 * MS  # not settled: stays fast
    # jitter spreads devices that joined together over the ticks of a burst gap, and again over
    # the fast interval; instants sit on the 2 ms tick grid
    assert len({v[1] for v in sends.values()}) >= 30
    assert len({v[31] for v in sends.values()}) > 50
    assert all(t % (2 * MS) == T0 % (2 * MS) for v in sends.values() for t in v)


def test_unsettled_device_goes_back_to_the_fast_interval() -> None:
    planner = PingPlanner(seed=2)
    planner.join(0, T0)
    planner.set_settled([0], [True])
    sends: list[int] = []
    now = T0
    while now < T0 + 110 * S:
        if now == T0 + 80 * S:
            planner.set_settled([0], [False])  # e.g. its pongs stopped coming and the model aged
        devs, _ = planner.due_at(now)
        if devs.size:
            sends.append(now)
        now += 10 * MS
    t = np.array(sends)
    slow = np.diff(t[(t > T0 + 65 * S) & (t < T0 + 80 * S)])
    assert slow.size >= 2 and slow.min() >= 4_700 * MS
    fast = np.diff(t[t > T0 + 86 * S])
    assert fast.size >= 15 and fast.max() <= 1_300 * MS + 2 * MS


def test_due_at_does_no_work_before_the_next_deadline() -> None:
    planner = PingPlanner(seed=0)
    planner.join_many(np.arange(1000), T0)
    first = planner.next_deadline()
    assert first is not None and first >= T0
    before = planner.sent
    devs, seqs = planner.due_at(first - 1)
    assert devs.size == 0 and seqs.size == 0 and planner.sent == before
    devs, _ = planner.due_at(first)
    assert devs.size >= 1
    nxt = planner.next_deadline()
    assert nxt is not None and nxt > first


def test_pongs_are_matched_once_and_stale_or_unknown_ones_counted() -> None:
    planner = PingPlanner(timeout_ns=5 * S, seed=0)
    planner.join(2, T0)
    devs, seqs = planner.due_at(T0)
    assert devs.tolist() == [2] and seqs.tolist() == [0]
    assert planner.in_flight(2) == 1
    assert planner.receive_pong(2, 0, T0 + MS)
    assert not planner.receive_pong(2, 0, T0 + 2 * MS)  # a duplicate
    assert not planner.receive_pong(2, 77, T0 + MS)  # never sent
    assert not planner.receive_pong(9, 0, T0 + MS)  # unknown device
    assert planner.dropped_unknown == 3
    second = planner.next_deadline()
    assert second is not None and T0 + 100 * MS <= second < T0 + 200 * MS  # the burst's phase
    assert planner.due_at(second - 1)[0].size == 0
    _, seqs = planner.due_at(second)
    assert not planner.receive_pong(2, int(seqs[0]), second + 6 * S)  # too late
    assert planner.dropped_stale == 1 and planner.matched == 1
    assert planner.next_deadline() == second + 100 * MS
    planner.leave(2)
    assert planner.next_deadline() is None


@pytest.mark.parametrize("batch", [1, 5, 64])
def test_pongs_matched_as_arrays_count_as_one_by_one(batch: int) -> None:
    planners = [PingPlanner(timeout_ns=2 * S, seed=4) for _ in range(2)]
    pongs: list[tuple[int, int, int]] = []
    rng = np.random.default_rng(batch)
    for p in planners:
        p.join_many(np.arange(8), T0)
    t = T0
    while t < T0 + 6 * S:
        got = [p.due_at(t) for p in planners]
        assert got[0][0].tolist() == got[1][0].tolist()
        for dev, seq in zip(*(a.tolist() for a in got[0]), strict=True):
            late = int(rng.choice([MS, 30 * MS, 3 * S]))  # answered, or past the timeout
            pongs.append((dev, seq, t + late))
            if rng.random() < 0.1:
                pongs.append((dev, seq, t + late + MS))  # a duplicate
        t += 50 * MS
        if t == T0 + 3 * S:
            for p in planners:
                p.join(5, t)  # a reboot: its pings in flight are no longer answers
    pongs += [(3, 1 << 20, T0 + S), (99, 0, T0 + S), (-1, 0, T0 + S)]  # never sent, unknown rows
    pongs.sort(key=lambda x: x[2])
    one = [planners[0].receive_pong(d, q, at) for d, q, at in pongs]
    arrays = np.array(pongs, dtype=np.int64)
    many: list[bool] = []
    for i in range(0, len(pongs), batch):
        chunk = arrays[i : i + batch]
        many += planners[1].receive_pong_rows(chunk[:, 0], chunk[:, 1], chunk[:, 2]).tolist()
    assert many == one and any(one) and not all(one)
    a, b = planners
    assert (a.matched, a.dropped_stale, a.dropped_unknown) == (b.matched, b.dropped_stale, b.dropped_unknown)
    assert [a.in_flight(d) for d in range(8)] == [b.in_flight(d) for d in range(8)]


def test_batch_translation_matches_the_scalar_model() -> None:
    models = ClockModels()
    rng = np.random.default_rng(8)
    for i in range(20):
        d = models.add_device(f"led-{i:02d}")
        off = int(rng.integers(-5 * S, 5 * S))
        drift = int(rng.integers(-100_000, 100_000))
        for k in range(8):
            t1, t2, t3, t4 = _ping(rng, T0 + k * S, off, drift, LAN)
            models.add_sample(d, t1, t2, t3, t4)
    assert models.estimate(T0 + 8 * S).tolist() == list(range(20))
    idx = rng.integers(0, 20, size=500)
    ref = T0 + rng.integers(-100 * S, 3600 * S, size=500)
    dev = models.to_device_many(idx, ref)
    back = models.to_ref_many(idx, dev)
    for i, r, dv, b in zip(idx.tolist(), ref.tolist(), dev.tolist(), back.tolist(), strict=True):
        m = models.model(i)
        assert m is not None
        assert abs(dv - m.to_device(r)) <= 1
        assert abs(b - r) <= 1


def test_lead_time_and_messages() -> None:
    rng = np.random.default_rng(4)
    models = ClockModels(fanout_ns=20 * MS, margin_ns=10 * MS, default_lead_ns=300 * MS)
    lan = models.add_device("lan")
    wifi = models.add_device("wifi")
    assert models.lead_ns(lan) == 300 * MS
    with pytest.raises(NoClockModelError) as e:
        models.clock_message(lan)
    assert isinstance(e.value, MadangError) and "'lan'" in str(e.value)
    for k in range(64):
        models.add_sample(lan, *_ping(rng, T0 + k * S, 0, 0, LAN))
        models.add_sample(wifi, *_ping(rng, T0 + k * S, 0, 0, WIFI))
    models.estimate(T0 + 64 * S)
    assert 30 * MS < models.lead_ns(lan) < 40 * MS
    m = models.model(wifi)
    assert m is not None
    # one-way tail (p99 round trip less half the floor) + fan-out + margin
    assert models.lead_ns(wifi) == m.delay_p99_ns - m.min_delay_ns // 2 + 30 * MS
    assert models.lead_ns(wifi) > models.lead_ns(lan) + 5 * MS
    assert set(models.clock_message(wifi)) == {"epoch", "offset_ns", "drift_ppb", "uncertainty_ns"}
    assert models.clock_message(lan)["epoch"] == T0 + 64 * S
    models.reset(lan)
    assert models.model(lan) is None and models.over_budget(10**12) == [lan]
    with pytest.raises(UnknownDeviceError):
        models.index("nope")
    with pytest.raises(KeyError):
        models.add_sample(7, 1, 2, 3, 4)


def test_material_change() -> None:
    a = ClockModel(T0, 1_000, 0, 0, 0, 0, 1)
    assert material_change(None, a, T0, 100)
    assert not material_change(a, ClockModel(T0 + S, 1_050, 0, 0, 0, 0, 1), T0, 100)
    assert material_change(a, ClockModel(T0, 1_000, 20, 0, 0, 0, 1), T0, 100)  # 200 ns in 10 s


def test_impossible_samples_are_dropped_and_counted_not_raised() -> None:
    models = ClockModels()
    d = models.add_device("bad")
    assert not models.add_sample(d, 100, 50, 40, 200)  # t3 < t2
    assert not models.add_sample(d, 100, 50, 60, 90)  # t4 < t1
    assert models.add_sample(d, 100, 150, 160, 200)
    assert models.rejected_samples == 2
    assert models.estimate(T0).tolist() == [d]
    m = models.model(d)
    assert m is not None and m.n == 1 and m.offset_ns == ((150 - 100) + (160 - 200)) // 2
