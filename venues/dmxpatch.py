"""The DMX patch of a venue file: check each ``dmx:`` block and build :class:`DmxEndpoint` values.

Rules (docs/dmx.md): a universe is 512 channels; Art-Net universes are 15-bit port-addresses
(0-32767, Art-Net 4 "Port-Address"), sACN universes 1-63999 (ANSI E1.31-2018, 6.2.7). A fixture
takes ``footprint`` channels from its start ``address``; every parameter sits inside the
footprint (a 16-bit one takes its channel and the next). Two fixtures on one universe must not
share a channel, and the fixtures of one sACN universe agree on its priority and sync (they go
out in one packet). Every finding carries the file position of the value at fault.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from venues.model import DmxChannel, DmxEndpoint, DmxSettings
from venues.schema import DeviceSpec, DmxChannelSpec, DmxVenueSpec

__all__ = ["ARTNET_PORT", "SACN_PORT", "DmxPatcher", "dmx_settings"]

ARTNET_PORT: Final = 6454  # Art-Net 4: UDP port 0x1936
SACN_PORT: Final = 5568  # ANSI E1.31: ACN_SDT_MULTICAST_PORT

_RUN_RE: Final = re.compile(r"(\d+)\s*\+\Z")
_UNIVERSES: Final = {"artnet": (0, 32767), "sacn": (1, 63999)}

Report = Callable[[Sequence[str | int], str, str], None]
"""``report(path, message, hint)``: a finding at a path of the venue document."""


def dmx_settings(spec: DmxVenueSpec | None) -> DmxSettings:
    """The venue's DMX output settings (defaults when the file has no ``dmx:`` block)."""
    if spec is None:
        return DmxSettings()
    return DmxSettings(spec.rate, spec.keepalive, spec.sync_universe, spec.source_name, spec.artsync)


@dataclass(slots=True)
class _Use:
    start: int
    end: int
    device: str
    index: int


class DmxPatcher:
    """Checks device entries' ``dmx:`` blocks one by one, then across entries (overlaps).

    ``endpoints(index, spec, ids)`` gives one endpoint per expanded id (or None after a
    finding); :meth:`finish` reports fixtures that share channels of a universe.
    """

    def __init__(self, report: Report, mark: Callable[[Sequence[str | int]], str]) -> None:
        self._report = report
        self._mark = mark
        self._used: dict[tuple[str, int], list[_Use]] = {}
        self._universe_opts: dict[tuple[str, int], tuple[int, bool, int]] = {}

    def endpoints(self, index: int, spec: DeviceSpec, ids: Sequence[str]) -> list[DmxEndpoint] | None:
        """The DMX endpoints of the devices of one entry, or None when the entry has findings."""
        d = spec.dmx
        if d is None:
            return None
        base = ("devices", index, "dmx")
        ok = True
        lo, hi = _UNIVERSES[d.transport]
        if not lo <= d.universe <= hi:
            self._report(
                (*base, "universe"),
                f"{d.transport} universe {d.universe} is out of range",
                f"{d.transport} universes are {lo}-{hi}",
            )
            ok = False
        if d.transport == "artnet" and d.host is None:
            self._report(
                base,
                "an Art-Net fixture needs a host",
                "add 'host: <node IP>' (unicast) or 'host: 2.255.255.255' (the Art-Net broadcast)",
            )
            ok = False
        chans = self._channels(base, d.channels, d.footprint)
        starts = self._addresses(base, d.address, d.footprint, len(ids), spec.id)
        if chans is None or starts is None or not ok:
            return None
        port = d.port or (ARTNET_PORT if d.transport == "artnet" else SACN_PORT)
        out: list[DmxEndpoint] = []
        for dev_id, start in zip(ids, starts, strict=True):
            key = (d.transport, d.universe)
            opts = (d.priority, d.sync, index)
            first = self._universe_opts.setdefault(key, opts)
            if d.transport == "sacn" and first[:2] != opts[:2]:
                there = self._mark(("devices", first[2], "dmx"))
                self._report(
                    (*base, "priority" if first[0] != d.priority else "sync"),
                    f"sACN universe {d.universe} is sent as one stream, but this fixture's priority/sync "
                    f"({d.priority}/{d.sync}) differ from those at {there} "
                    f"({first[0]}/{first[1]})",
                    "give every fixture of a universe the same priority and sync",
                )
                return None
            self._claim(key, _Use(start, start + d.footprint - 1, dev_id, index))
            out.append(
                DmxEndpoint(
                    d.transport,
                    d.universe,
                    start,
                    d.footprint,
                    tuple(DmxChannel(p, start + c - 1, b) for p, c, b in chans),
                    d.host,
                    port,
                    d.priority,
                    d.sync,
                )
            )
        return out

    def _channels(
        self, base: tuple[str | int, ...], channels: dict[str, int | DmxChannelSpec], footprint: int
    ) -> list[tuple[str, int, int]] | None:
        out: list[tuple[str, int, int]] = []
        taken: dict[int, str] = {}
        ok = True
        if not channels:
            self._report(
                (*base, "channels"), "the fixture maps no parameter", "map one, like {brightness: 1}"
            )
            return None
        for param, c in channels.items():
            chan, bits = (c, 8) if isinstance(c, int) else (c.channel, c.bits)
            last = chan + (1 if bits == 16 else 0)
            if not chan >= 1 or last > footprint:
                what = f"channels {chan}-{last}" if bits == 16 else f"channel {chan}"
                self._report(
                    (*base, "channels", param),
                    f"'{param}' on {what} lies outside the footprint of {footprint} channels",
                    f"channels count from 1 within the fixture: 1-{footprint}",
                )
                ok = False
                continue
            for n in range(chan, last + 1):
                other = taken.get(n)
                if other is not None:
                    self._report(
                        (*base, "channels", param),
                        f"'{param}' and '{other}' both use channel {n}",
                        "give each parameter its own channel (a 16-bit one takes two)",
                    )
                    ok = False
                taken[n] = param
            out.append((param, chan, bits))
        return out if ok else None

    def _addresses(
        self, base: tuple[str | int, ...], address: int | str, footprint: int, count: int, pattern: str
    ) -> list[int] | None:
        path = (*base, "address")
        if isinstance(address, int):
            if count > 1:
                self._report(
                    path,
                    f"{count} fixtures from '{pattern}' would share start channel {address}",
                    f'write address: "{address}+" to patch them one after another',
                )
                return None
            first = address
        else:
            m = _RUN_RE.match(address.strip())
            if m is None:
                self._report(
                    path, f"'{address}' is not a start channel", 'write a number like 1, or "1+" for a run'
                )
                return None
            first = int(m.group(1))
        last = first + count * footprint - 1
        if first < 1 or last > 512:
            self._report(
                path,
                f"{count} fixture(s) of {footprint} channels from channel {first} run to channel {last}",
                "a universe has channels 1-512: start lower, or split the entry over universes",
            )
            return None
        return [first + n * footprint for n in range(count)]

    def _claim(self, key: tuple[str, int], use: _Use) -> None:
        uses = self._used.setdefault(key, [])
        for u in uses:
            if use.start <= u.end and u.start <= use.end:
                where = self._mark(("devices", u.index, "dmx", "address"))
                self._report(
                    ("devices", use.index, "dmx", "address"),
                    f"'{use.device}' (channels {use.start}-{use.end}) overlaps '{u.device}' "
                    f"(channels {u.start}-{u.end}, at {where}) on {key[0]} universe {key[1]}",
                    "patch each fixture on channels of its own",
                )
                return
        uses.append(use)
