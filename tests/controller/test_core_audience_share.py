"""A cue that waits for a share of the audience present (``on: {audience: tap, zone: north,
count: 80%}``), in the core with literal instants: counted against the phones of the zone that are
connected now, each phone once and only while present; taps of phones elsewhere or absent do
not count; a phone leaving may make the share; the journal replays to the same decision; the
show file's mistakes are reported at their line and column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.core import ControllerCore
from controller.playback import Arm, Load
from controller.sync.service import SyncService
from controller.view import trigger_text
from cues.compiler import compile_show
from venues.errors import SourceErrors

MS = 1_000_000
S = 1_000_000_000
T0 = 1_763_683_200 * S

VENUE = """\
venue: crowd
zones: [north, south]
devices:
  - {id: led-1, kind: facade, zone: north, sync: none, osc: {port: 9000}}
audience:
  capacity: 20
  zones: [north, south]
"""

SHOW = """\
show: Share
venue: venue.yaml
cues:
  - id: bloom
    on: {audience: tap, zone: north, count: 80%, timeout: 5min}
    actions:
      - light: {targets: "kind:phone", color: white}
  - id: after
    actions:
      - light: {targets: "kind:phone", color: black}
"""


def make(tmp_path: Path, show: str = SHOW, *, journal: bool = False, live: bool = True) -> ControllerCore:
    (tmp_path / "venue.yaml").write_text(VENUE, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(show, encoding="utf-8")
    timeline, venue = compile_show(tmp_path / "show.yaml")
    return ControllerCore(timeline, venue, sync=SyncService(venue), journal=journal, live=live)


def status(c: ControllerCore, device: str, state: str, now: int) -> None:
    c.receive_mqtt(f"madang/dev/{device}/status", json.dumps({"state": state, "boot": 1}).encode(), now)
    c.poll(now)


def tap(c: ControllerCore, zone: str, device: str, now: int) -> None:
    c.receive_mqtt(f"madang/audience/{zone}/{device}/tap", b"{}", now)
    c.poll(now)


def slots(c: ControllerCore, zone: str) -> tuple[str, ...]:
    assert c.venue.audience is not None
    return c.venue.audience.slots[zone]


def armed(c: ControllerCore) -> None:
    c.command(Load(), T0)
    c.command(Arm(), T0)
    c.poll(T0)


def test_the_cue_starts_when_80_percent_of_the_zone_present_have_tapped(tmp_path: Path) -> None:
    c = make(tmp_path)
    north, south = slots(c, "north"), slots(c, "south")
    armed(c)
    for i, d in enumerate(north[:5]):  # 5 of the zone's 10 slots are taken
        status(c, d, "ready", T0 + i * MS)
    status(c, south[0], "ready", T0 + 10 * MS)
    assert c.present_audience("north") == 5 and c.present_audience() == 6
    t = T0 + S
    tap(c, "north", north[0], t)
    tap(c, "north", north[0], t + MS)  # the same phone again: counted once
    tap(c, "north", north[1], t + 2 * MS)
    tap(c, "south", south[0], t + 3 * MS)  # another zone: not counted
    tap(c, "north", north[7], t + 4 * MS)  # a slot nobody holds: not counted
    assert c.counters["taps_absent"] == 1
    tap(c, "north", north[2], t + 5 * MS)
    progress = c.engine.trigger_progress(t + 5 * MS)
    assert progress is not None
    assert (progress.counted, progress.present, progress.count) == (3, 5, 4)
    assert trigger_text(progress).startswith("tap 3 of 5 (60 %) in north")
    assert c.engine.snapshot.current_cue is None
    tap(c, "north", north[3], t + 6 * MS)  # 4 of 5: 80 %
    assert c.engine.snapshot.current_cue == "bloom"


def test_more_phones_arriving_raise_the_bar(tmp_path: Path) -> None:
    c = make(tmp_path)
    north = slots(c, "north")
    armed(c)
    for i, d in enumerate(north[:4]):
        status(c, d, "ready", T0 + i * MS)
    for i, d in enumerate(north[:3]):
        tap(c, "north", d, T0 + S + i * MS)  # 3 of 4: 75 %
    for i, d in enumerate(north[4:10]):
        status(c, d, "ready", T0 + 2 * S + i * MS)  # now 3 of 10
    progress = c.engine.trigger_progress(T0 + 3 * S)
    assert progress is not None and (progress.counted, progress.present, progress.count) == (3, 10, 8)
    for i, d in enumerate(north[3:7]):
        tap(c, "north", d, T0 + 3 * S + i * MS)  # 7 of 10
    assert c.engine.snapshot.current_cue is None
    tap(c, "north", north[7], T0 + 4 * S)
    assert c.engine.snapshot.current_cue == "bloom"


def test_phones_leaving_take_their_taps_and_may_make_the_share(tmp_path: Path) -> None:
    c = make(tmp_path)
    north = slots(c, "north")
    armed(c)
    for i, d in enumerate(north[:5]):
        status(c, d, "ready", T0 + i * MS)
    for i, d in enumerate(north[:3]):
        tap(c, "north", d, T0 + S + i * MS)  # 3 of 5
    status(c, north[0], "offline", T0 + 2 * S)  # a tapper leaves: 2 of 4
    progress = c.engine.trigger_progress(T0 + 2 * S)
    assert progress is not None and (progress.counted, progress.present) == (2, 4)
    status(c, north[4], "offline", T0 + 3 * S)  # a phone that did not tap leaves: 2 of 3
    assert c.engine.snapshot.current_cue is None
    status(c, north[3], "offline", T0 + 4 * S)  # 2 of 2: the share is made without a tap
    assert c.engine.snapshot.current_cue == "bloom"


def test_an_empty_zone_never_makes_a_share(tmp_path: Path) -> None:
    c = make(tmp_path)
    north = slots(c, "north")
    armed(c)
    status(c, north[0], "ready", T0)
    status(c, north[0], "offline", T0 + S)
    tap(c, "north", north[0], T0 + 2 * S)  # gone: not counted
    assert c.engine.snapshot.current_cue is None
    progress = c.engine.trigger_progress(T0 + 2 * S)
    assert progress is not None and (progress.counted, progress.present) == (0, 0)


def test_a_follower_replaying_the_journal_starts_the_cue_at_the_same_instant(tmp_path: Path) -> None:
    live = make(tmp_path, journal=True)
    north = slots(live, "north")
    armed(live)
    for i, d in enumerate(north[:5]):
        status(live, d, "ready", T0 + i * MS)
    for i, d in enumerate(north[:3]):
        tap(live, "north", d, T0 + S + i * MS)
    status(live, north[4], "offline", T0 + 2 * S)  # 3 of 4
    status(live, north[3], "offline", T0 + 3 * S)  # 3 of 3: starts
    assert live.engine.snapshot.current_cue == "bloom"
    records = live.take_records()
    assert {"k": "audience", "at": T0 + 3 * S, "present": 3, "gone": [north[3]]} in records
    follower = make(tmp_path, live=False)
    for r in records:
        follower.follow(r)
    assert follower.engine.snapshot.current_cue == "bloom"
    assert follower.engine.snapshot.show_ns == live.engine.snapshot.show_ns


def test_a_whole_audience_vote_share(tmp_path: Path) -> None:
    show = SHOW.replace(
        "{audience: tap, zone: north, count: 80%, timeout: 5min}", "{audience: vote/red, count: 50%}"
    )
    c = make(tmp_path, show)
    north, south = slots(c, "north"), slots(c, "south")
    armed(c)
    for i, d in enumerate([*north[:2], *south[:2]]):
        status(c, d, "ready", T0 + i * MS)
    c.receive_mqtt(f"madang/audience/north/{north[0]}/vote/blue", b"{}", T0 + S)
    c.receive_mqtt(f"madang/audience/north/{north[0]}/vote/red", b"{}", T0 + S)
    assert c.engine.snapshot.current_cue is None
    c.receive_mqtt(f"madang/audience/south/{south[1]}/vote/red", b"{}", T0 + 2 * S)  # 2 of 4
    assert c.engine.snapshot.current_cue == "bloom"


def errors(tmp_path: Path, on: str, venue: str = VENUE) -> list[str]:
    (tmp_path / "venue.yaml").write_text(venue, encoding="utf-8")
    (tmp_path / "show.yaml").write_text(
        f"show: S\nvenue: venue.yaml\ncues:\n  - id: c\n    on: {on}\n", encoding="utf-8"
    )
    with pytest.raises(SourceErrors) as ei:
        compile_show(tmp_path / "show.yaml")
    return [str(f) for f in ei.value.findings if f.severity == "error"]


@pytest.mark.parametrize(
    ("on", "where", "says"),
    [
        ("{audience: tap, zone: norht, count: 80%}", ":5:", "of venue 'crowd' are: north, south"),
        ("{audience: tap, count: 120%}", ":5:", "at most 100%"),
        ("{audience: tap, count: 0%}", ":5:", "more than 0%"),
        ("{audience: tap, count: eighty%}", ":5:", "write 800 or 80%"),
        ("{mqtt: a/+/tap, count: 80%}", ":5:", "goes with audience: tap or vote/<choice>"),
        ("{audience: clap}", ":5:", "audience"),
        ("{mqtt: a/+/tap, zone: north}", ":5:", "zone: counts an audience zone"),
    ],
)
def test_bad_audience_triggers_are_errors_at_their_place(
    tmp_path: Path, on: str, where: str, says: str
) -> None:
    found = errors(tmp_path, on)
    assert len(found) == 1, found
    assert "show.yaml" + where in found[0] and says in found[0], found[0]


def test_an_audience_trigger_needs_an_audience_pool(tmp_path: Path) -> None:
    venue = VENUE.split("audience:")[0]
    found = errors(tmp_path, "{audience: tap, count: 80%}", venue)
    assert len(found) == 1 and "has no audience pool" in found[0] and "show.yaml:5:" in found[0]
