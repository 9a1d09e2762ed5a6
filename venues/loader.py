"""Load a venue file into a :class:`~venues.model.Venue`, reporting every problem in one pass.

Theory of operation
-------------------
1. :func:`venues.source.load_yaml` reads the file into plain data with a position per value.
2. :class:`venues.schema.VenueSpec` checks shape and types; its errors become findings through
   :func:`venues.validation.findings_from_pydantic`. Entries that passed go on to step 3, so one
   bad device does not hide the problems of the others.
3. Cross-entry rules, each problem a positioned finding: id ranges (counted *before* expanding,
   at most 100,000 devices), port ranges (``"9100+"``), duplicate ids and OSC endpoints (both
   positions), unknown zones, sync versus transport, safe states for unknown kinds, and groups:
   each group's selector must parse, name only known devices, groups and attributes, select at
   least one device, and groups must not form a cycle.
4. If anything was found, :class:`~venues.errors.SourceErrors` carries all of it; otherwise the
   devices are expanded into a :class:`~venues.model.Venue`.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pydantic

from venues.broker import BrokerFiles
from venues.dmxpatch import DmxPatcher, dmx_settings
from venues.errors import Finding, Mark, SourceError, SourceErrors
from venues.model import (
    AudiencePool,
    Device,
    DmxEndpoint,
    MqttEndpoint,
    OscEndpoint,
    SeatSection,
    Sync,
    Venue,
    WsEndpoint,
    topic_root,
)
from venues.profiles import Profile, find_profile, load_profile
from venues.schema import DEFAULT_SAFE, AudienceSpec, DeviceSpec, OscSpec, VenueSpec, venue_json_schema
from venues.selector import And, Name, Node, Not, Or, SelectorIndex, Term, parse_selector
from venues.source import Doc, load_yaml
from venues.validation import findings_from_pydantic

__all__ = ["MAX_DEVICES", "expand_ids", "find_venue", "load_venue", "venue_from_doc", "venue_json_schema"]

log = logging.getLogger(__name__)

MAX_DEVICES: Final = 100_000
_RANGE_RE: Final = re.compile(r"\{(-?[0-9]+)\.\.(-?[0-9]+)\}")
_PORT_RUN_RE: Final = re.compile(r"([0-9]+)\+\Z")
_BROKER_RE: Final = re.compile(
    r"(mqtts?|ws|wss)://(?:[^\s:/@]+@)?([^\s:/@]+|\[[0-9a-fA-F:]+\])(?::([0-9]+))?/?\Z"
)
_RESERVED_ATTRS: Final = frozenset({"id", "kind", "zone", "group"})
_SYNC_TRANSPORTS: Final[dict[str, tuple[str, ...]]] = {
    "app": ("mqtt", "ws"),
    "timetag": ("osc",),
    "echo": ("osc", "mqtt"),
    "none": ("osc", "mqtt", "dmx"),
}


# --- finding the file -------------------------------------------------------------------------


def config_dir() -> Path:
    """The shipped ``config/`` directory: ``$MADANG_CONFIG``, else the one next to the packages."""
    env = os.environ.get("MADANG_CONFIG")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "config"


def find_venue(name_or_path: str, relative_to: Path | None = None) -> Path:
    """The venue file a show names: a bare name (``han-river``) is ``config/venues/<name>.yaml``;
    anything else is a path, relative to ``relative_to`` (the show file or its directory).

    Raises :class:`~venues.errors.SourceError` when there is no such file, listing the shipped venues.
    """
    base = relative_to.parent if relative_to is not None and relative_to.suffix else relative_to
    looks_like_path = (
        "/" in name_or_path or os.sep in name_or_path or name_or_path.endswith((".yaml", ".yml"))
    )
    candidates: list[Path] = []
    if looks_like_path:
        p = Path(name_or_path)
        candidates.append(p if p.is_absolute() or base is None else base / p)
    else:
        candidates.append(config_dir() / "venues" / f"{name_or_path}.yaml")
        if base is not None:
            candidates.append(base / f"{name_or_path}.yaml")
    for c in candidates:
        if c.is_file():
            return c
    shipped = sorted(p.stem for p in (config_dir() / "venues").glob("*.yaml"))
    close = difflib.get_close_matches(Path(name_or_path).stem, shipped, n=1)
    tried = ", ".join(str(c) for c in candidates)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise SourceError(
        None,
        f"venue '{name_or_path}' not found",
        f"{hint}tried {tried}; shipped venues: {', '.join(shipped) or 'none'}",
    )


def load_venue(path: str | os.PathLike[str]) -> Venue:
    """Load and check a venue file (a path, or a bare name of a shipped venue).

    Raises :class:`~venues.errors.SourceErrors` with every finding of the file.
    """
    p = os.fspath(path)
    if isinstance(path, str) and not Path(p).exists() and "/" not in p and not p.endswith((".yaml", ".yml")):
        try:
            p = os.fspath(find_venue(p))
        except SourceError as e:
            raise SourceErrors([e.finding]) from None
    return venue_from_doc(load_yaml(p))


# --- ranges -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Range:
    start: int
    stop: int  # inclusive
    width: int  # zero padding

    def __len__(self) -> int:
        return self.stop - self.start + 1


def _parse_ranges(pattern: str) -> tuple[list[str], list[_Range]] | str:
    """Split an id pattern into literal parts and ranges, or say what is wrong with it."""
    parts: list[str] = []
    ranges: list[_Range] = []
    pos = 0
    for m in _RANGE_RE.finditer(pattern):
        parts.append(pattern[pos : m.start()])
        a, b = m.group(1), m.group(2)
        start, stop = int(a), int(b)
        if stop < start:
            return f"the range {{{a}..{b}}} runs backwards; write {{{b}..{a}}}"
        padded = (len(a) > 1 and a.lstrip("-").startswith("0")) or (
            len(b) > 1 and b.lstrip("-").startswith("0")
        )
        ranges.append(_Range(start, stop, max(len(a), len(b)) if padded else 0))
        pos = m.end()
    parts.append(pattern[pos:])
    for lit in parts:
        if "{" in lit or "}" in lit:
            return "braces in an id must hold a range like {1..12} or {0001..1200}"
    return parts, ranges


def _range_count(ranges: Sequence[_Range]) -> int:
    n = 1
    for r in ranges:
        n *= len(r)
    return n


def _expand(parts: Sequence[str], ranges: Sequence[_Range]) -> Iterator[str]:
    if not ranges:
        yield parts[0]
        return
    head, rest = ranges[0], ranges[1:]
    for i in range(head.start, head.stop + 1):
        num = f"{i:0{head.width}d}" if head.width else str(i)
        for tail in _expand(parts[1:], rest):
            yield parts[0] + num + tail


def expand_ids(pattern: str, limit: int = MAX_DEVICES) -> list[str]:
    """The ids a device entry's ``id`` expands to (``xr-{01..03}`` -> xr-01, xr-02, xr-03).

    Raises ``ValueError`` for malformed braces, backwards ranges, or more than ``limit`` ids
    (checked before expanding anything).
    """
    parsed = _parse_ranges(pattern)
    if isinstance(parsed, str):
        raise ValueError(parsed)
    parts, ranges = parsed
    count = _range_count(ranges)
    if count > limit:
        raise ValueError(f"'{pattern}' would expand to {count:,} devices, more than {limit:,}")
    return list(_expand(parts, ranges))


# --- the venue --------------------------------------------------------------------------------


class _Check:
    """Collects findings against one document."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.findings: list[Finding] = []

    def at(self, path: Sequence[str | int], message: str, hint: str = "", *, key: bool = False) -> None:
        mark = self.doc.key_mark(path) if key else self.doc.mark(path)
        self.findings.append(Finding(mark, message, hint))

    def mark(self, path: Sequence[str | int]) -> Mark:
        return self.doc.mark(path)


@dataclass(frozen=True, slots=True)
class _Entry:
    index: int
    spec: DeviceSpec
    ids: list[str]
    ports: list[int] | None  # one OSC port per expanded id
    dmx: list[DmxEndpoint] | None = None  # one DMX endpoint per expanded id (docs/dmx.md)


def venue_from_doc(doc: Doc) -> Venue:
    """Check a loaded venue document and build the :class:`~venues.model.Venue`.

    Raises :class:`~venues.errors.SourceErrors` with every finding (positions and hints).
    """
    check = _Check(doc)
    data = doc.data
    if not isinstance(data, Mapping):
        raise SourceErrors(
            [
                Finding(
                    doc.mark(()),
                    "a venue file is a mapping",
                    "start with 'venue: <id>', then zones and devices",
                )
            ]
        )
    spec, device_specs = _validate_shape(doc, check)
    if spec is None:
        raise SourceErrors.of(check.findings)

    zones = list(spec.zones)
    _check_unique(check, [(("zones", i), z) for i, z in enumerate(zones)], "zone")
    if re.match(r"[a-z]+://[^/@\s]*:[^/@\s]*@", spec.broker):
        check.at(
            ("broker",),
            "the broker URL holds a password, which belongs in a file, never in the venue file",
            "write mqtts://USER@HOST:8883 and name the file in broker_auth: {password_file: ...}",
        )
    elif not _BROKER_RE.match(spec.broker):
        check.at(
            ("broker",),
            f"'{spec.broker}' is not a broker address",
            "write it like mqtt://127.0.0.1:1883 or mqtts://USER@HOST:8883",
        )

    entries = _expand_entries(check, device_specs)
    patcher = DmxPatcher(lambda path, msg, hint: check.at(path, msg, hint), lambda p: str(check.mark(p)))
    entries = [
        _Entry(e.index, e.spec, e.ids, e.ports, patcher.endpoints(e.index, e.spec, e.ids)) for e in entries
    ]
    kinds = {e.spec.kind for e in entries}
    for e in entries:
        _check_device(check, e, zones)
    _check_duplicates(check, entries)
    for kind in spec.safe:
        if kind not in kinds and device_specs:
            close = difflib.get_close_matches(kind, sorted(kinds), n=1)
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else f"the kinds in this venue: {', '.join(sorted(kinds))}"
            )
            check.at(
                ("safe", kind), f"safe state for kind '{kind}', but no device has that kind", hint, key=True
            )

    devices = _build_devices(entries, spec)
    pool: AudiencePool | None = None
    if spec.audience is not None:
        pool, slots = _audience(check, spec.audience, spec, zones, devices)
        devices.extend(slots)
    groups_src = {name: sel for name, sel in spec.groups.items()}
    venue = Venue(
        id=spec.venue,
        name=spec.name or spec.venue,
        zones=tuple(zones),
        broker=spec.broker,
        devices=tuple(devices),
        groups={},
        source=doc.file,
    )
    groups = _resolve_groups(check, venue, groups_src)
    profiles = _profiles(check, spec, device_specs)
    if check.findings:
        raise SourceErrors.of(check.findings)
    final = Venue(
        id=venue.id,
        name=venue.name,
        zones=venue.zones,
        broker=venue.broker,
        devices=venue.devices,
        groups=groups,
        source=doc.file,
        group_sources={
            name: (src,) if isinstance(src, str) else tuple(src)
            for name, src in groups_src.items()
            if name in groups
        },
        audience=pool,
        broker_files=_broker_files(spec, doc.file),
        profiles=profiles,
        dmx=dmx_settings(spec.dmx),
    )
    log.debug("venue loaded", extra={"venue": final.id, "devices": len(final.devices), "file": doc.file})
    return final


def _broker_files(spec: VenueSpec, file: str) -> BrokerFiles | None:
    """The venue's ``broker_auth`` with each path made absolute against the venue file's folder."""
    auth = spec.broker_auth
    if auth is None:
        return None
    base = Path(file).resolve().parent if file else Path.cwd()

    def at(p: str | None) -> str | None:
        return None if p is None else str(base / Path(p).expanduser())

    return BrokerFiles(at(auth.ca), at(auth.cert), at(auth.key), at(auth.password_file))


def _profiles(
    check: _Check, spec: VenueSpec, device_specs: list[tuple[int, DeviceSpec]]
) -> dict[str, Profile]:
    """The profiles the devices name, loaded once each (docs/profiles.md); problems of a profile
    file are findings in that file, a name that leads nowhere a finding at the device's ``profile``."""
    base = Path(check.doc.file).resolve().parent if check.doc.file else Path.cwd()
    dirs_raw = [spec.profiles] if isinstance(spec.profiles, str) else list(spec.profiles)
    dirs: list[Path] = []
    for i, d in enumerate(dirs_raw):
        p = base / Path(d).expanduser()
        if not p.is_dir():
            listed = isinstance(spec.profiles, list)
            where: tuple[str | int, ...] = ("profiles", i) if listed else ("profiles",)
            check.at(where, f"profiles folder '{d}' not found", f"looked for {p} (relative to the venue)")
        dirs.append(p)
    loaded: dict[str, Profile] = {}
    failed: set[str] = set()
    for i, s in device_specs:
        name = s.profile
        if name is None or name in loaded:
            continue
        where = ("devices", i, "profile")
        if name in failed:
            check.at(where, f"profile '{name}' could not be loaded (see above)", "fix the profile first")
            continue
        try:
            path = find_profile(name if not _looks_like_path(name) else str(base / name), dirs)
        except SourceError as e:
            failed.add(name)
            check.at(where, e.finding.message, e.finding.hint)
            continue
        try:
            loaded[name] = load_profile(path)
        except SourceErrors as e:
            failed.add(name)
            check.findings.extend(e.findings)
            check.at(where, f"profile '{name}' ({path}) has errors", "fix them in the profile file")
    return loaded


def _looks_like_path(name: str) -> bool:
    return "/" in name or os.sep in name or name.endswith((".yaml", ".yml"))


def _validate_shape(doc: Doc, check: _Check) -> tuple[VenueSpec | None, list[tuple[int, DeviceSpec]]]:
    """Pydantic shape check; returns the spec (None when the head is unusable) and good devices."""
    try:
        spec = VenueSpec.model_validate(doc.data)
        return spec, list(enumerate(spec.devices))
    except pydantic.ValidationError as err:
        check.findings.extend(findings_from_pydantic(err, doc, what="venue", model=VenueSpec))
        bad_head = any(
            not (e["loc"] and e["loc"][0] == "devices" and len(e["loc"]) > 1) for e in err.errors()
        )
    if bad_head:
        return None, []
    good: list[tuple[int, DeviceSpec]] = []
    for i, raw in enumerate(doc.data.get("devices") or []):
        try:
            good.append((i, DeviceSpec.model_validate(raw)))
        except pydantic.ValidationError:
            continue  # already reported through the whole-file validation
    head = {k: v for k, v in doc.data.items() if k != "devices"}
    spec = VenueSpec.model_validate(
        {**head, "devices": [g.model_dump() for _, g in good[:1]] or [_PLACEHOLDER]}
    )
    return spec, good


_PLACEHOLDER: Final[dict[str, Any]] = {"id": "_", "kind": "_", "zone": "_", "sync": "none", "mqtt": {}}


def _check_unique(check: _Check, items: Sequence[tuple[tuple[str | int, ...], str]], what: str) -> None:
    first: dict[str, tuple[str | int, ...]] = {}
    for path, value in items:
        if value in first:
            check.at(
                path, f"{what} '{value}' is listed twice (first at {check.mark(first[value])})", "remove one"
            )
        else:
            first[value] = path


def _expand_entries(check: _Check, specs: list[tuple[int, DeviceSpec]]) -> list[_Entry]:
    entries: list[_Entry] = []
    total = 0
    for i, spec in specs:
        parsed = _parse_ranges(spec.id)
        if isinstance(parsed, str):
            check.at(("devices", i, "id"), f"bad device id '{spec.id}': {parsed}")
            continue
        parts, ranges = parsed
        count = _range_count(ranges)
        if count > MAX_DEVICES or total + count > MAX_DEVICES:
            check.at(
                ("devices", i, "id"),
                f"'{spec.id}' would expand to {count:,} devices; a venue holds at most {MAX_DEVICES:,}",
                "check the range bounds",
            )
            continue
        total += count
        ports = _ports(check, i, spec, count)  # None after a port finding: ids are still checked
        if spec.osc is not None and spec.osc.oscquery is not None and oscquery_url(spec.osc) is None:
            check.at(
                ("devices", i, "osc", "oscquery"),
                f"oscquery {spec.osc.oscquery!r} is neither a TCP port (1-65535) nor http://host:port",
                "give the port of the device's OSCQuery server, like 5678, or its URL",
            )
        entries.append(_Entry(i, spec, list(_expand(parts, ranges)), ports))
    return entries


def _ports(check: _Check, i: int, spec: DeviceSpec, count: int) -> list[int] | None:
    if spec.osc is None:
        return None
    path = ("devices", i, "osc", "port")
    port = spec.osc.port
    if isinstance(port, int):
        if not 1 <= port <= 65535:
            check.at(path, f"port {port} is out of range", "UDP ports are 1-65535")
            return None
        if count > 1:
            check.at(
                path,
                f"{count} devices from '{spec.id}' would share port {port}",
                f'write port: "{port}+" for consecutive ports, one per device',
            )
            return None
        return [port]
    m = _PORT_RUN_RE.match(port.strip())
    if m is None:
        check.at(
            path, f"'{port}' is not a port", 'write a number like 9001, or "9100+" for consecutive ports'
        )
        return None
    first = int(m.group(1))
    last = first + count - 1
    if first < 1 or last > 65535:
        check.at(path, f"ports {first}..{last} for {count} devices run outside 1-65535", "start lower")
        return None
    return list(range(first, last + 1))


def _check_device(check: _Check, e: _Entry, zones: list[str]) -> None:
    spec, i = e.spec, e.index
    if spec.zone not in zones:
        close = difflib.get_close_matches(spec.zone, zones, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"the venue's zones: {', '.join(zones)}"
        check.at(("devices", i, "zone"), f"unknown zone '{spec.zone}'", hint)
    have = [t for t in ("osc", "mqtt", "ws", "dmx") if getattr(spec, t) is not None]
    need = _SYNC_TRANSPORTS[spec.sync]
    if not have:
        check.at(
            ("devices", i),
            f"device '{spec.id}' has no transport",
            f"sync: {spec.sync} needs {' or '.join(need)}: add e.g. '{need[0]}: {{...}}'",
        )
    elif not any(t in have for t in need):
        check.at(
            ("devices", i, "sync"),
            f"sync: {spec.sync} needs {' or '.join(need)}, but device '{spec.id}' has only {', '.join(have)}",
            _sync_hint(spec.sync, have),
        )
    for k in spec.attrs:
        if k in _RESERVED_ATTRS:
            check.at(("devices", i, "attrs", k), f"attribute '{k}' is reserved", "rename it", key=True)
    if spec.mqtt is not None and spec.mqtt.base is not None:
        base = spec.mqtt.base
        if not base or "+" in base or "#" in base or base.endswith("/"):
            check.at(
                ("devices", i, "mqtt", "base"),
                f"'{base}' is not a topic root",
                "no wildcards (+, #) and no trailing '/', like madang/dev/{id}",
            )


def _sync_hint(sync: str, have: list[str]) -> str:
    if sync == "timetag":
        return "timetag is for OSC receivers: add 'osc: {host: ..., port: ...}', or use echo/none over MQTT"
    if sync == "app":
        return "app devices speak MQTT or WebSocket: add 'mqtt: {}', or use sync: timetag/echo/none over OSC"
    return "add a transport"


def _check_duplicates(check: _Check, entries: list[_Entry]) -> None:
    first_id: dict[str, int] = {}
    first_port: dict[tuple[str, int], tuple[int, str]] = {}
    for e in entries:
        for n, dev_id in enumerate(e.ids):
            prev = first_id.get(dev_id)
            if prev is not None:
                here, there = check.mark(("devices", e.index, "id")), check.mark(("devices", prev, "id"))
                same = " (twice in one range)" if prev == e.index else ""
                check.findings.append(
                    Finding(
                        here,
                        f"device id '{dev_id}' is defined twice{same}: here and at {there}",
                        "ids are unique",
                    )
                )
                if prev != e.index:
                    check.findings.append(
                        Finding(
                            there,
                            f"device id '{dev_id}' is defined twice: here and at {here}",
                            "ids are unique",
                        )
                    )
                break  # one finding per entry is enough
            first_id[dev_id] = e.index
            if e.ports is not None and e.spec.osc is not None:
                endpoint = (e.spec.osc.host, e.ports[n])
                other = first_port.get(endpoint)
                if other is not None and other[1] != dev_id:
                    check.at(
                        ("devices", e.index, "osc", "port"),
                        f"OSC {endpoint[0]}:{endpoint[1]} of '{dev_id}' is already used by '{other[1]}' "
                        f"(at {check.mark(('devices', other[0], 'osc', 'port'))})",
                        "each OSC device listens on its own port",
                    )
                else:
                    first_port[endpoint] = (e.index, dev_id)


_OSCQUERY_URL = re.compile(r"^http://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})/?$")


def oscquery_url(osc: OscSpec) -> str | None:
    """A device's OSCQuery URL (``http://host:port``) from its ``osc.oscquery``: a port on its OSC
    host, or a URL as given; None when unset or not valid (the loader reports that)."""
    value = osc.oscquery
    if isinstance(value, int):
        if not 1 <= value <= 65535:
            return None
        host = f"[{osc.host}]" if ":" in osc.host else osc.host
        return f"http://{host}:{value}"
    if isinstance(value, str):
        m = _OSCQUERY_URL.match(value.strip())
        if m is None or not 1 <= int(m.group(2)) <= 65535:
            return None
        return f"http://{m.group(1)}:{int(m.group(2))}"
    return None


def _build_devices(entries: list[_Entry], spec: VenueSpec) -> list[Device]:
    devices: list[Device] = []
    for e in entries:
        s = e.spec
        safe: dict[str, float | int | str] = dict(spec.safe.get(s.kind, DEFAULT_SAFE))
        if s.safe is not None:
            safe.update(s.safe)
        extra = {k: _attr_text(v) for k, v in s.attrs.items()}
        for n, dev_id in enumerate(e.ids):
            attrs = {"id": dev_id, "kind": s.kind, "zone": s.zone, **extra}
            osc = (
                OscEndpoint(s.osc.host, e.ports[n], oscquery_url(s.osc))
                if s.osc is not None and e.ports is not None
                else None
            )
            mqtt = None
            if s.mqtt is not None:
                mqtt = MqttEndpoint(topic_root(s.mqtt.base, dev_id, s.kind, s.zone))
            devices.append(
                Device(
                    id=dev_id,
                    kind=s.kind,
                    zone=s.zone,
                    sync=Sync(s.sync),
                    latency_ns=s.latency or 0,
                    osc=osc,
                    mqtt=mqtt,
                    ws=WsEndpoint(s.ws.path) if s.ws is not None else None,
                    attrs=attrs,
                    safe=safe,
                    interpolates=s.interpolates,
                    profile=s.profile,
                    dmx=e.dmx[n] if e.dmx is not None else None,
                )
            )
    return devices


_SLOT_PREFIX_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_SECTION_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def _audience(
    check: _Check, a: AudienceSpec, spec: VenueSpec, zones: list[str], devices: list[Device]
) -> tuple[AudiencePool | None, list[Device]]:
    """The audience pool and its slots (``app`` devices over WebSocket), or findings."""
    ok = True
    pool_zones = list(a.zones) if a.zones is not None else list(zones)
    for i, z in enumerate(pool_zones):
        if z not in zones:
            close = difflib.get_close_matches(z, zones, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"the venue's zones: {', '.join(zones)}"
            check.at(("audience", "zones", i), f"unknown zone '{z}' for the audience", hint)
            ok = False
    if a.zones is not None:
        _check_unique(
            check, [(("audience", "zones", i), z) for i, z in enumerate(pool_zones)], "audience zone"
        )
        if not pool_zones:
            check.at(
                ("audience", "zones"), "the audience has no zone", "list at least one, or leave zones out"
            )
            ok = False
    if len(pool_zones) > a.capacity:
        check.at(
            ("audience", "capacity"),
            f"a capacity of {a.capacity} cannot be split among {len(pool_zones)} zones",
            "give every zone at least one slot: raise the capacity or list fewer zones",
        )
        ok = False
    if len(devices) + a.capacity > MAX_DEVICES:
        check.at(
            ("audience", "capacity"),
            f"{len(devices):,} devices and {a.capacity:,} audience slots make more than {MAX_DEVICES:,}",
            "lower the capacity",
        )
        ok = False
    if not _SLOT_PREFIX_RE.match(a.prefix):
        check.at(
            ("audience", "prefix"),
            f"'{a.prefix}' is not a slot id prefix",
            "letters, digits, '-', '_' and '.', starting with a letter or digit, like aud-",
        )
        ok = False
    if not a.path.startswith("/") or any(c in a.path for c in "?# "):
        check.at(("audience", "path"), f"'{a.path}' is not a URL path", "write it like /audience/ws")
        ok = False
    sections: list[SeatSection] = []
    seen: dict[str, int] = {}
    for i, sec in enumerate(a.seats):
        where = ("audience", "seats", i)
        if not _SECTION_RE.match(sec.section):
            check.at(
                (*where, "section"),
                f"'{sec.section}' is not a section name",
                "letters, digits, '-', '_' and '.' (a seat label is SECTION-ROW-SEAT, like A-12-7)",
            )
            ok = False
        if sec.section.lower() in seen:
            first = check.mark(("audience", "seats", seen[sec.section.lower()], "section"))
            check.at(
                (*where, "section"),
                f"section '{sec.section}' is listed twice (first at {first})",
                "section names are unique (case does not count)",
            )
            ok = False
        seen.setdefault(sec.section.lower(), i)
        if sec.zone not in pool_zones:
            close = difflib.get_close_matches(sec.zone, pool_zones, n=1)
            hint = (
                f"did you mean '{close[0]}'?" if close else f"the audience's zones: {', '.join(pool_zones)}"
            )
            check.at(
                (*where, "zone"),
                f"section '{sec.section}' is in zone '{sec.zone}', not an audience zone",
                hint,
            )
            ok = False
        sections.append(
            SeatSection(
                sec.section,
                sec.zone,
                sec.rows,
                sec.seats,
                (float(sec.origin[0]), float(sec.origin[1])),
                (float(sec.row_step[0]), float(sec.row_step[1])),
                (float(sec.seat_step[0]), float(sec.seat_step[1])),
            )
        )
    if not ok:
        return None, []
    width = max(5, len(str(a.capacity)))
    existing = {d.id for d in devices}
    safe: dict[str, float | int | str] = dict(spec.safe.get(a.kind, DEFAULT_SAFE))
    if a.safe is not None:
        safe.update(a.safe)
    slots: dict[str, tuple[str, ...]] = {}
    out: list[Device] = []
    n = 0
    per, extra = divmod(a.capacity, len(pool_zones))
    for zi, zone in enumerate(pool_zones):
        ids = []
        for _ in range(per + (1 if zi < extra else 0)):
            n += 1
            dev_id = f"{a.prefix}{n:0{width}d}"
            if dev_id in existing:
                check.at(
                    ("audience", "prefix"),
                    f"audience slot '{dev_id}' has the id of a device of the venue",
                    "choose another prefix",
                )
                return None, []
            ids.append(dev_id)
            out.append(
                Device(
                    id=dev_id,
                    kind=a.kind,
                    zone=zone,
                    sync=Sync.APP,
                    ws=WsEndpoint(a.path),
                    attrs={"id": dev_id, "kind": a.kind, "zone": zone},
                    safe=safe,
                    interpolates=a.interpolates,
                    pooled=True,
                )
            )
        slots[zone] = tuple(ids)
    pool = AudiencePool(
        capacity=a.capacity,
        kind=a.kind,
        zones=tuple(pool_zones),
        slots=slots,
        sections=tuple(sections),
        path=a.path,
        prefix=a.prefix,
    )
    return pool, out


def _attr_text(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# --- groups -----------------------------------------------------------------------------------


def _refs(node: Node) -> Iterator[Name | Term]:
    if isinstance(node, Name | Term):
        yield node
    elif isinstance(node, Not):
        yield from _refs(node.operand)
    elif isinstance(node, And | Or):
        for o in node.operands:
            yield from _refs(o)


def _resolve_groups(
    check: _Check, venue: Venue, groups_src: Mapping[str, str | list[str]]
) -> dict[str, tuple[str, ...]]:
    """Parse, order (groups may use groups), and evaluate every group; report cycles and misses."""
    device_ids = set(venue.by_id) if venue.devices else set()
    parsed: dict[str, list[tuple[tuple[str | int, ...], Node, str]]] = {}
    deps: dict[str, set[str]] = {}
    for name, src in groups_src.items():
        if name in device_ids:
            check.at(
                ("groups", name), f"group '{name}' has the name of a device", "rename the group", key=True
            )
            continue
        texts: list[tuple[tuple[str | int, ...], str]] = (
            [(("groups", name), src)]
            if isinstance(src, str)
            else [(("groups", name, j), s) for j, s in enumerate(src)]
        )
        if not texts:
            check.at(("groups", name), f"group '{name}' is an empty list", "give it at least one selector")
            continue
        items: list[tuple[tuple[str | int, ...], Node, str]] = []
        for path, text in texts:
            try:
                sel = parse_selector(text, check.doc.text_mark(path))
            except SourceError as err:
                check.findings.append(err.finding)
                continue
            items.append((path, sel.node, text))
        if len(items) != len(texts):
            continue
        parsed[name] = items
        deps[name] = set()
        for _, node, _ in items:
            for ref in _refs(node):
                if isinstance(ref, Name) and ref.name in groups_src:
                    deps[name].add(ref.name)
                elif isinstance(ref, Term) and ref.key == "group" and ref.value in groups_src:
                    deps[name].add(ref.value)

    order = _topological(check, deps)
    live: dict[str, tuple[str, ...]] = {}
    index = SelectorIndex(
        Venue(venue.id, venue.name, venue.zones, venue.broker, venue.devices, live, venue.source),
        group_names=list(groups_src),
    )
    for name in order:
        if any(d not in live for d in deps[name]):
            continue  # depends on a broken group: already reported
        mask = 0
        ok = True
        for path, node, _text in parsed[name]:
            try:
                mask |= index.mask(node, check.doc.text_mark(path))
            except SourceError as err:
                check.findings.append(err.finding)
                ok = False
        if not ok:
            continue
        if not mask:
            shown = " | ".join(t for _, _, t in parsed[name])
            check.at(
                ("groups", name),
                f"group '{name}' selects no device ('{shown}')",
                "check the names and values",
            )
            continue
        live[name] = index.ids_of(mask)
    return {name: live[name] for name in groups_src if name in live}


def _topological(check: _Check, deps: Mapping[str, set[str]]) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done
    reported: set[frozenset[str]] = set()

    def visit(name: str, trail: list[str]) -> None:
        st = state.get(name)
        if st == 2:
            return
        if st == 1:
            cycle = [*trail[trail.index(name) :], name]
            key = frozenset(cycle)
            if key not in reported:
                reported.add(key)
                check.at(
                    ("groups", name),
                    f"groups form a cycle: {' -> '.join(cycle)}",
                    "a group cannot contain itself; break the chain",
                    key=True,
                )
            return
        state[name] = 1
        for d in sorted(deps.get(name, ())):
            if d in deps:
                visit(d, [*trail, name])
        state[name] = 2
        order.append(name)

    for name in deps:
        visit(name, [])
    return order
