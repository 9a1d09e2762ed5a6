"""Write a :class:`~venues.model.Venue` back out as a venue file: the loader's inverse.

Theory of operation
-------------------
``madang simulate VENUE --map FILE`` hands a controller in another process the venue it is
simulating, with each OSC endpoint moved to the loopback port its simulated display listens on.
That file must mean everything the original meant, or the show that plays against the real venue
fails against the mapped one: every device with its kind, zone, sync, latency, transports,
``interpolates``, extra ``attrs`` (selectors and ``{placeholders}`` use them) and safe state;
every group; the zones and the name. So the file is emitted from the model, by a YAML writer
(ruamel.yaml, YAML 1.2, the dialect :mod:`venues.source` reads), never by formatting text:

- devices are written in venue order, and consecutive devices that differ only in the number at
  the end of their id (and their OSC port, by one) fold back into one ranged entry
  (``xr-{0001..0400}``, ``port: "9001+"``), so a 1,200-headset venue stays readable;
- ``safe:`` per kind is the state most devices of that kind have; a device that differs gets its
  own ``safe:`` with just the keys that differ (the loader merges it over its kind's, key by key);
- a group is written as the selectors its venue file gave (:attr:`Venue.group_sources`) when
  they still select exactly its members in this venue, and as the list of its device ids
  otherwise (a venue built in code, or cut down to a subset);
- MQTT topic roots are written back as the template they came from (``{id}`` in place of the
  id), or omitted when they are the default.

Loading the text again gives a venue equal to the one written (the tests check it on both
shipped venues). Nothing here does I/O: :func:`venue_yaml` returns text.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from venues.broker import BrokerFiles
from venues.errors import SourceError
from venues.model import Device, DmxSettings, Venue, topic_root
from venues.profiles import find_profile
from venues.schema import DEFAULT_AUDIENCE_PATH, DEFAULT_SAFE
from venues.selector import resolve
from venues.units import format_duration_ns

__all__ = ["venue_yaml"]

_TAIL_NUMBER: Final = re.compile(r"\A(.*?)([0-9]+)([^0-9]*)\Z")
_RESERVED: Final = frozenset({"id", "kind", "zone"})

SafeState = Mapping[str, float | int | str]


@dataclass(frozen=True, slots=True)
class _IdParts:
    """An id split around its last number: ``xr-0042`` -> ``("xr-", 42, 4, "")``."""

    head: str
    number: int
    width: int  # zero-padding width, 0 when the number is written without leading zeros
    tail: str

    def text(self, n: int) -> str:
        return f"{self.head}{n:0{self.width}d}{self.tail}" if self.width else f"{self.head}{n}{self.tail}"


def _id_parts(device_id: str) -> _IdParts | None:
    m = _TAIL_NUMBER.match(device_id)
    if m is None:
        return None
    digits = m.group(2)
    padded = len(digits) > 1 and digits.startswith("0")
    return _IdParts(m.group(1), int(digits), len(digits) if padded else 0, m.group(3))


def _files_of(files: BrokerFiles) -> tuple[str | None, ...]:
    """The paths of ``broker_auth`` in its key order (absolute, as the loader made them)."""
    return (files.ca, files.cert, files.key, files.password_file)


def venue_yaml(venue: Venue, *, broker: str | None = None, header: Sequence[str] = ()) -> str:
    """The venue file text for ``venue``; ``broker`` replaces its broker URL, ``header`` lines
    become comments at the top. Loading the text gives back an equal venue."""
    devices = [d for d in venue.devices if not d.pooled]  # the audience's slots: its own block
    kind_safe = _kind_safe(devices)
    doc = CommentedMap()
    doc["venue"] = venue.id
    if venue.name != venue.id:
        doc["name"] = venue.name
    doc["zones"] = _flow_seq(list(venue.zones))
    doc["broker"] = broker if broker is not None else venue.broker
    files = venue.broker_files
    if files is not None and broker is None:  # another broker: the venue's login is not its
        auth = {
            k: v for k, v in zip(("ca", "cert", "key", "password_file"), _files_of(files), strict=True) if v
        }
        if auth:
            doc["broker_auth"] = _flow_map(auth)
    if kind_safe:
        safe = CommentedMap()
        for kind, state in kind_safe.items():
            safe[kind] = _flow_map(dict(state))
        doc["safe"] = safe
    entries = CommentedSeq()
    for run in _runs(devices, kind_safe):
        entry = _entry(run, kind_safe)
        if run[0].profile is not None:
            entry["profile"] = _profile_ref(venue, run[0].profile)
        entries.append(entry)
    doc["devices"] = entries
    if venue.dmx != DmxSettings():
        x = venue.dmx
        settings = {"rate": x.rate_hz, "keepalive": format_duration_ns(x.keepalive_ns)}
        doc["dmx"] = _flow_map(
            {**settings, "sync_universe": x.sync_universe, "source_name": x.source_name, "artsync": x.artsync}
        )
    if venue.audience is not None:
        doc["audience"] = _audience(venue)
    groups = _groups(venue)
    if groups:
        doc["groups"] = groups
    yaml = YAML(typ="rt")
    yaml.width = 4096  # one entry per line: long selectors stay on theirs
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    for line in header:
        out.write(f"# {line}\n" if line else "#\n")
    yaml.dump(doc, out)
    return out.getvalue()


# --- safe states --------------------------------------------------------------------------------


def _kind_safe(devices: Sequence[Device]) -> dict[str, SafeState]:
    """Per kind, the safe state most of its devices have (the first seen wins a tie)."""
    counts: dict[str, Counter[tuple[tuple[str, float | int | str], ...]]] = {}
    for d in devices:
        counts.setdefault(d.kind, Counter())[tuple(d.safe.items())] += 1
    out: dict[str, SafeState] = {}
    for kind, c in counts.items():
        out[kind] = dict(c.most_common(1)[0][0])  # written even when it is the default: plain to read
    return out


def _safe_override(d: Device, kind_safe: Mapping[str, SafeState]) -> dict[str, float | int | str] | None:
    base = kind_safe.get(d.kind, DEFAULT_SAFE)
    if dict(d.safe) == dict(base):
        return None
    missing = [k for k in base if k not in d.safe]
    if missing:
        # The loader merges a device's safe over its kind's, so it cannot drop a key; a venue
        # built in code can. Say so rather than write a file that means something else.
        raise ValueError(
            f"device '{d.id}' has no safe value for {', '.join(missing)} that its kind '{d.kind}' has; "
            "a venue file cannot express that"
        )
    return {k: v for k, v in d.safe.items() if base.get(k) != v or k not in base}


# --- devices ------------------------------------------------------------------------------------


def _mqtt_template(d: Device) -> str | None:
    """The ``mqtt.base`` to write: None for the default root, else the template it came from."""
    assert d.mqtt is not None
    base = d.mqtt.base
    if base == topic_root(None, d.id, d.kind, d.zone):
        return None
    template = base.replace(d.id, "{id}") if d.id else base
    if template != base and topic_root(template, d.id, d.kind, d.zone) == base:
        return template
    return base


def _signature(d: Device, kind_safe: Mapping[str, SafeState]) -> tuple[Any, ...]:
    """Everything of a device but its id and OSC port: devices in one ranged entry share it."""
    extra = tuple(sorted((k, v) for k, v in d.attrs.items() if k not in _RESERVED))
    override = _safe_override(d, kind_safe)
    return (
        d.kind,
        d.zone,
        d.sync,
        d.latency_ns,
        None if d.osc is None else d.osc.host,
        None if d.mqtt is None else _mqtt_template(d),
        d.mqtt is not None,
        None if d.ws is None else d.ws.path,
        d.interpolates,
        extra,
        None if override is None else tuple(sorted(override.items())),
        d.profile,
        _dmx_signature(d),
    )


def _dmx_signature(d: Device) -> tuple[Any, ...] | None:
    """A DMX patch without its start channel (devices of one ranged entry share it)."""
    x = d.dmx
    if x is None:
        return None
    chans = tuple((c.param, c.channel - x.address, c.bits) for c in x.channels)
    return (x.transport, x.universe, x.footprint, chans, x.host, x.port, x.priority, x.sync)


def _dmx_block(d: Device, ranged: bool) -> CommentedMap:
    x = d.dmx
    assert x is not None
    block: dict[str, Any] = {"transport": x.transport}
    if x.host is not None:
        block["host"] = x.host
    block.update(universe=x.universe, address=f"{x.address}+" if ranged else x.address, footprint=x.footprint)
    chans: dict[str, Any] = {}
    for c in x.channels:
        at = c.channel - x.address + 1
        chans[c.param] = at if c.bits == 8 else _flow_map({"channel": at, "bits": c.bits})
    block["channels"] = _flow_map(chans)
    if x.port != (6454 if x.transport == "artnet" else 5568):
        block["port"] = x.port
    if x.transport == "sacn":
        if x.priority != 100:
            block["priority"] = x.priority
        if not x.sync:
            block["sync"] = False
    return _flow_map(block)


def _continues(run: list[Device], d: Device, kind_safe: Mapping[str, SafeState]) -> bool:
    first, last = run[0], run[-1]
    a, b, c = _id_parts(first.id), _id_parts(last.id), _id_parts(d.id)
    if a is None or b is None or c is None:
        return False
    if (c.head, c.tail) != (a.head, a.tail) or a.text(b.number + 1) != d.id:
        return False
    if _signature(d, kind_safe) != _signature(first, kind_safe):
        return False
    if d.mqtt is not None and first.mqtt is not None:
        # a literal (non-template) topic root would be shared by the whole range: not the same
        t = _mqtt_template(first)
        if t is not None and "{" not in t:
            return False
    if (d.osc is None) != (last.osc is None):
        return False
    if d.dmx is not None and last.dmx is not None and d.dmx.address != last.dmx.address + last.dmx.footprint:
        return False
    return d.osc is None or last.osc is None or d.osc.port == last.osc.port + 1


def _runs(devices: Sequence[Device], kind_safe: Mapping[str, SafeState]) -> list[list[Device]]:
    runs: list[list[Device]] = []
    for d in devices:
        if runs and _continues(runs[-1], d, kind_safe):
            runs[-1].append(d)
        else:
            runs.append([d])
    return runs


def _entry(run: list[Device], kind_safe: Mapping[str, SafeState]) -> CommentedMap:
    d = run[0]
    e = CommentedMap()
    if len(run) == 1:
        e["id"] = d.id
    else:
        a, b = _id_parts(d.id), _id_parts(run[-1].id)
        assert a is not None and b is not None
        lo = f"{a.number:0{a.width}d}" if a.width else str(a.number)
        hi = f"{b.number:0{a.width}d}" if a.width else str(b.number)
        e["id"] = f"{a.head}{{{lo}..{hi}}}{a.tail}"
    e["kind"] = d.kind
    e["zone"] = d.zone
    e["sync"] = str(d.sync)
    if d.latency_ns:
        e["latency"] = format_duration_ns(d.latency_ns)
    if d.osc is not None:
        port: int | str = d.osc.port if len(run) == 1 else f"{d.osc.port}+"
        e["osc"] = _flow_map({"host": d.osc.host, "port": port})
    if d.mqtt is not None:
        template = _mqtt_template(d)
        e["mqtt"] = _flow_map({} if template is None else {"base": template})
    if d.ws is not None:
        e["ws"] = _flow_map({"path": d.ws.path})
    if d.interpolates:
        e["interpolates"] = True
    if d.dmx is not None:
        e["dmx"] = _dmx_block(d, len(run) > 1)
    extra = {k: v for k, v in d.attrs.items() if k not in _RESERVED}
    if extra:
        e["attrs"] = _flow_map(extra)
    override = _safe_override(d, kind_safe)
    if override is not None:
        e["safe"] = _flow_map(override)
    return e


def _profile_ref(venue: Venue, name: str) -> str:
    """How the written venue names a device's profile: the name, when it finds the same file
    from anywhere (a shipped profile); else the absolute path of the file it was loaded from (a
    profile of the venue's own ``profiles`` folder, or a relative path, would not be found from
    where the written file goes)."""
    profile = venue.profiles.get(name)
    if profile is None:
        return name
    try:
        found = find_profile(name)
    except SourceError:
        found = None
    if found is not None and found.resolve() == Path(profile.source).resolve():
        return name
    return str(Path(profile.source).resolve())


# --- groups -------------------------------------------------------------------------------------


def _groups(venue: Venue) -> CommentedMap:
    out = CommentedMap()
    for name, members in venue.groups.items():
        if not members:
            continue  # the loader refuses a group that selects nothing
        sources = venue.group_sources.get(name, ())
        if sources and _selects(venue, sources) == set(members):
            out[name] = sources[0] if len(sources) == 1 else _flow_seq(list(sources))
        else:
            out[name] = _flow_seq(list(members))
    return out


def _selects(venue: Venue, sources: Sequence[str]) -> set[str]:
    got: set[str] = set()
    for s in sources:
        try:
            got.update(resolve(s, venue))
        except SourceError:
            return set()  # names a device or attribute this venue no longer has
    return got


# --- YAML nodes ---------------------------------------------------------------------------------


def _audience(venue: Venue) -> CommentedMap:
    """The ``audience:`` block: the pool as its venue file wrote it (its slots are not entries)."""
    pool = venue.audience
    assert pool is not None
    out = CommentedMap()
    out["capacity"] = pool.capacity
    if pool.prefix != "aud-":
        out["prefix"] = pool.prefix
    if pool.kind != "phone":
        out["kind"] = pool.kind
    out["zones"] = _flow_seq(list(pool.zones))
    if pool.path != DEFAULT_AUDIENCE_PATH:
        out["path"] = pool.path
    first = venue.device(next(iter(pool.slots.values()))[0])
    if not first.interpolates:
        out["interpolates"] = False
    if dict(first.safe) != DEFAULT_SAFE:
        out["safe"] = _flow_map(dict(first.safe))
    if pool.sections:
        seats = CommentedSeq()
        for s in pool.sections:
            seats.append(
                _flow_map(
                    {
                        "section": s.name,
                        "zone": s.zone,
                        "rows": s.rows,
                        "seats": s.seats,
                        "origin": _flow_seq(list(s.origin)),
                        "row_step": _flow_seq(list(s.row_step)),
                        "seat_step": _flow_seq(list(s.seat_step)),
                    }
                )
            )
        out["seats"] = seats
    return out


def _flow_map(items: Mapping[str, Any]) -> CommentedMap:
    m = CommentedMap(items)
    m.fa.set_flow_style()
    return m


def _flow_seq(items: list[Any]) -> CommentedSeq:
    s = CommentedSeq(items)
    s.fa.set_flow_style()
    return s
