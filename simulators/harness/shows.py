"""The shows and venues a rehearsal plays: the shipped ones, smaller subsets of them, and which
fires a run should expect."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from pathlib import Path

from controller.core import ControllerCore
from cues.timeline import Fade, Timeline
from venues.model import Sync, Venue

__all__ = ["expected_fires", "limit_headsets", "shipped_show", "subset"]


CONFIG = Path(__file__).resolve().parents[2] / "config"
SHOWS = {"han-river": "han-river-night-bloom.yaml", "gwanghwamun": "gwanghwamun-light-gate.yaml"}


def shipped_show(venue: str) -> Path:
    """The shipped show for a shipped venue name."""
    return CONFIG / "shows" / SHOWS[venue]


def subset(timeline: Timeline, venue: Venue, keep: Iterable[str]) -> tuple[Timeline, Venue]:
    """The show and venue restricted to the devices in ``keep`` (for smaller rehearsals)."""
    ids = set(keep)
    devices = tuple(d for d in venue.devices if d.id in ids)
    groups = {g: tuple(d for d in members if d in ids) for g, members in venue.groups.items()}
    v = dataclasses.replace(venue, devices=devices, groups=groups)
    actions = tuple(
        dataclasses.replace(a, devices=tuple(d for d in a.devices if d in ids))
        for a in timeline.actions
        if any(d in ids for d in a.devices)
    )
    return dataclasses.replace(timeline, actions=actions, device_count=len(devices)), v


def limit_headsets(timeline: Timeline, venue: Venue, n: int | None) -> tuple[Timeline, Venue]:
    """Keep every display and ``n`` app devices (all when ``n`` is None), taken in turn from each
    zone in venue order (the first of each zone, then the second, ...), so a small rehearsal
    still has headsets in every viewing area that a show's zone selectors name."""
    if n is None:
        return timeline, venue
    by_zone: dict[str, list[str]] = {}
    for d in venue.devices:
        if d.sync is Sync.APP:
            by_zone.setdefault(d.zone, []).append(d.id)
    apps = [did for row in itertools.zip_longest(*by_zone.values()) for did in row if did is not None]
    others = [d.id for d in venue.devices if d.sync is not Sync.APP]
    return subset(timeline, venue, others + apps[:n])


def expected_fires(timeline: Timeline, core: ControllerCore) -> tuple[dict[int, list[str]], dict[int, str]]:
    """Sequence numbers the engine emitted -> their target devices that report keyed fires.

    ``app`` and ``timetag`` devices execute keyed cues, so each fire is attributed to its action;
    on-receipt OSC devices (``echo``/``none``) get plain messages and are left out of *missed*.
    Streamed fade frames carry no key and are left out too (their ramp start counts for ``app``).
    """
    emitted = core.emitted_seqs
    # Audience slots are left out: phones' browsers take them, the simulator does not.
    keyed = {d.id for d in core.venue.devices if d.sync in (Sync.APP, Sync.TIMETAG) and not d.pooled}
    interp = {d.id for d in core.venue.devices if d.interpolates and d.sync is Sync.APP}
    expected: dict[int, list[str]] = {}
    cue_of: dict[int, str] = {}
    for a in timeline.actions:
        cue_of[a.seq] = a.cue
        if a.seq not in emitted:
            continue
        targets = interp if isinstance(a.op, Fade) else keyed
        devs = [d for d in a.devices if d in targets]
        if devs:
            expected[a.seq] = devs
    return expected, cue_of
