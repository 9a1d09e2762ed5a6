"""How far ahead a timed bundle leaves: a delay tail ahead alone (a pause can still withdraw most
of it), at least a takeover's length ahead for one of a hot-standby pair (issue 11: what falls
due while the standby takes over is already on the screens). Literal clock models."""

from __future__ import annotations

import dataclasses

from controller.delivery import Delivery, UdpSend
from cues.timeline import OscSend
from tests.controller.test_engine import MS, C, build
from venues.model import OscEndpoint, Sync

S = 1_000 * MS


class _Settled:
    """Every device's clock 5 s ahead of the show clock, a 30 ms lead, a tiny predicted error."""

    def to_device(self, device: str, ref_ns: int) -> int | None:
        return ref_ns + 5 * S

    def one_way_ns(self, device: str) -> int | None:
        return MS

    def lead_ns(self, device: str) -> int | None:
        return 30 * MS

    def predicted_error_ns(self, device: str, at_ns: int) -> int | None:
        return 100_000

    def receipt_error_ns(self, device: str) -> int | None:
        return MS


def _screen_send(min_lead_ns: int) -> UdpSend:
    _, venue = build([C("one", ops=[(0, ("a",), OscSend("/x", (1,)))])], devices=("a",))
    screen = dataclasses.replace(venue.devices[0], sync=Sync.TIMETAG, osc=OscEndpoint("127.0.0.1", 9000))
    venue = dataclasses.replace(venue, devices=(screen,))
    delivery = Delivery(venue, "show", models=_Settled(), min_timetag_lead_ns=min_lead_ns)
    sends = delivery.osc(("show", "one", 0), 100 * S, ["a"], "/x", (1,), 0)
    assert len(sends) == 1 and isinstance(sends[0], UdpSend) and sends[0].timetag is not None
    return sends[0]


def test_a_timed_bundle_leaves_a_delay_tail_ahead_alone_and_a_takeover_ahead_in_a_pair() -> None:
    assert _screen_send(0).at_ns == 100 * S - 30 * MS  # the model's lead
    paired = _screen_send(160 * MS)
    assert paired.at_ns == 100 * S - 160 * MS  # longer than a takeover (~115 ms)
    assert paired.timetag == _screen_send(0).timetag  # the instant it names is the same
