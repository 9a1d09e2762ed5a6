"""Telemetry bookkeeping (controller/telemetry.py) with literal instants: no loop, no sockets.

The clock-sync service is the real one, fed with pongs from a device whose clock is 5 ms ahead
over a symmetric 2 ms round trip, so the figures it reports are known exactly enough to check."""

from __future__ import annotations

from controller.sync.service import SyncService
from controller.telemetry import COLUMNS, Telemetry, TelemetrySink, ntp_to_unix_ns
from controller.wire.ntp import ns_to_ntp
from venues.model import Device, MqttEndpoint, OscEndpoint, Sync, Venue

MS = 1_000_000
S = 1_000_000_000
T0 = 1_763_683_200 * S
OFFSET = 5 * MS


def _venue() -> Venue:
    devices = (
        Device("xr-1", "xr", "north", Sync.APP, mqtt=MqttEndpoint("madang/dev/xr-1")),
        Device("led-1", "display", "south", Sync.TIMETAG, osc=OscEndpoint("127.0.0.1", 9000)),
        Device("led-2", "display", "south", Sync.NONE, osc=OscEndpoint("127.0.0.1", 9001)),
    )
    return Venue("v", "V", ("north", "south"), "mqtt://127.0.0.1:1", devices, {})


def _synced(budget_ns: int = 10 * MS) -> tuple[Telemetry, TelemetrySink, int]:
    venue = _venue()
    tel = Telemetry(venue, budget_ns=budget_ns)
    sink = TelemetrySink(SyncService(venue), tel)
    now = T0
    for _ in range(40):
        rows, seqs = sink.due_rows(now)
        for device, seq in zip([sink.ids[r] for r in rows.tolist()], seqs.tolist(), strict=True):
            t1 = now
            t2 = t1 + MS + OFFSET  # 1 ms each way, device clock 5 ms ahead
            sink.receive_pong(device, seq, t1, t2, t2, t1 + 2 * MS)
        sink.update_rows(now)
        now += 100 * MS
    return tel, sink, now


def test_ntp_timetags_convert_back_to_the_instant() -> None:
    for ns in (T0, T0 + 123_456_789, T0 + 999_999_999):
        assert abs(ntp_to_unix_ns(ns_to_ntp(ns)) - ns) <= 1


def test_rows_hold_the_clock_figures_acks_and_fire_errors() -> None:
    tel, sink, now = _synced()
    # An app cue due at T0 + 10 s, fired 300 us late on the device's clock.
    at = now + 10 * S
    tel.sent_cue(42, at)
    tel.receive_fired("xr-1", 42, at + OFFSET + 300_000, True, sink)
    # A timetag display fired its bundle 0 us off (its timetag is in its own clock).
    tel.sent_bundle("led-1", 43, ns_to_ntp(at + 7 * MS))
    tel.receive_fired("led-1", 43, at + 7 * MS, True, sink)
    tel.receive_fired("led-1", 99, at, True, sink)  # an unknown key: an ack, no error
    rows = {r["device"]: r for r in tel.rows(sink, now)}
    assert all(set(COLUMNS) <= set(r) for r in rows.values())
    xr = rows["xr-1"]
    assert xr["synced"] and abs(xr["offset_us"] - OFFSET / 1000) < 50
    assert xr["delay_p50_us"] == xr["delay_p99_us"] == 2_000
    assert xr["acks"] == 1 and abs(xr["fire_error_us"] - 300) < 50
    led = rows["led-1"]
    assert led["acks"] == 2 and led["fire_error_us"] == 0 and led["fire_error_max_us"] == 0
    none = rows["led-2"]
    assert not none["synced"] and none["offset_us"] is None and none["acks"] == 0


def test_unsynced_reports_are_acks_without_fire_errors() -> None:
    venue = _venue()
    tel = Telemetry(venue)
    sink = TelemetrySink(SyncService(venue), tel)
    tel.sent_cue(1, T0)
    tel.receive_fired("xr-1", 1, T0, False, sink)  # "synced": false: executed on receipt
    tel.receive_fired("xr-1", None, None, False, sink)
    tel.receive_fired("nobody", 1, T0, True, sink)
    assert tel.acks("xr-1") == 2 and tel.fire_errors_ns("xr-1") == []
    assert tel.total_acks() == 2


def test_summary_and_worst_first_order() -> None:
    # Over a budget below every device's predicted fire error, both pinged devices; within a
    # generous one, none.
    tel, sink, now = _synced()
    uncs = []
    for d in ("xr-1", "led-1"):
        err = sink.predicted_error_ns(d, now)
        assert err is not None
        uncs.append(err)
    for budget, over in ((max(1, min(uncs) // 2), 2), (max(uncs) * 10 + MS, 0)):
        tel.budget_ns = budget
        summary = tel.summary(sink, now)
        assert summary.pinged == 2 and summary.synced == sink.synced_count() == 2
        assert summary.over_budget == over
        assert len(summary.worst) == 2
        worst = [u for _, u, _ in summary.worst]
        assert worst == sorted(worst, reverse=True)
        rows = tel.rows(sink, now)
        assert [r["over_budget"] for r in rows] == [True] * over + [False] * (3 - over)
        assert rows[-1]["device"] == "led-2"  # never pinged: last
