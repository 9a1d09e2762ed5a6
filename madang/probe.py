"""``madang check --probe``: check a show's OSC against what the venue's devices really expose.

Theory of operation
-------------------
A device that serves OSCQuery (github.com/Vidvox/OSCQueryProposal: ``GET /`` answers its whole
address space as a JSON tree) names it in the venue (``osc: {host, port, oscquery: 5678}`` or
``oscquery: http://host:port``; :func:`venues.loader.oscquery_url`). :func:`fetch_tree` reads each
such server once (bounded: :data:`MAX_TREE_BYTES`, :data:`TIMEOUT_S`); :func:`probe_findings`
is pure: the compiled timeline, the venue and the trees in, positioned findings out. For every OSC
message the show sends to a probed device (an ``osc:`` action with its placeholders filled in for
that device, and each frame of a ``fade:``, one float to its address) it asks:

- does the device's tree hold that address, as a method (a node with a ``TYPE``) it may be sent
  to (``ACCESS`` 2 or 3, when given)? If not: an error at the action's file:line:col, with the
  addresses the device offers that are nearest to it;
- do the arguments' OSC type tags match the node's ``TYPE``? ``T`` and ``F`` are one type (a
  bool); a number of another numeric type (``i`` for ``f``) is a warning, since most receivers
  convert it; anything else an error;
- is a number inside the node's ``RANGE`` (``MIN``/``MAX``, or ``VALS``)? A warning if not.

The same problem on several devices is one finding that names them. A server that cannot be read
is an error (the probe was asked for and could not be made), naming the device and what to do.
Safe states and catch-up state are not probed (they use the same addresses as the show's fades).
"""

from __future__ import annotations

import difflib
import http.client
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from controller.delivery import substitute
from controller.osc import OscDecodeError, OscEncodeError, OscMessage, decode_packet, encode_message
from cues.timeline import Fade, OscSend, Timeline
from venues.errors import Finding, Mark
from venues.model import Device, Venue

__all__ = ["MAX_TREE_BYTES", "TIMEOUT_S", "Tree", "fetch_tree", "probe", "probe_findings"]

MAX_TREE_BYTES = 8 * 1024 * 1024
"""The largest tree read from a device (a media server's whole namespace is well under this)."""
TIMEOUT_S = 3.0
"""How long one device's OSCQuery server has to connect and answer."""
_NUMERIC = frozenset("ifhd")
_MAX_OFFERED = 8


@dataclass(frozen=True, slots=True)
class Tree:
    """What one OSCQuery server answered: its ``root`` node, or the ``error`` why there is none."""

    url: str
    root: Mapping[str, Any] | None = None
    error: str | None = None


def fetch_tree(url: str, timeout: float = TIMEOUT_S) -> Tree:
    """``GET /`` of the OSCQuery server at ``url`` (``http://host:port``), bounded."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        return Tree(url, error="is not http://host:port")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Accept": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            return Tree(url, error=f"answered HTTP {resp.status} {resp.reason} to GET /")
        raw = resp.read(MAX_TREE_BYTES + 1)
    except (OSError, http.client.HTTPException) as err:
        return Tree(url, error=f"did not answer ({err or type(err).__name__})")
    finally:
        conn.close()
    if len(raw) > MAX_TREE_BYTES:
        return Tree(url, error=f"answered more than {MAX_TREE_BYTES:,} bytes")
    try:
        root = json.loads(raw)
    except ValueError as err:
        return Tree(url, error=f"answered GET / with something that is not JSON ({err})")
    except RecursionError:
        return Tree(url, error="answered GET / with JSON nested too deep to read")
    if not isinstance(root, dict) or not ("CONTENTS" in root or "FULL_PATH" in root):
        return Tree(url, error="answered GET / with JSON that is not an OSCQuery node")
    return Tree(url, root=root)


def _find(root: Mapping[str, Any], address: str) -> Mapping[str, Any] | None:
    node: Any = root
    for part in (p for p in address.split("/") if p):
        contents = node.get("CONTENTS") if isinstance(node, Mapping) else None
        if not isinstance(contents, Mapping) or not isinstance(contents.get(part), Mapping):
            return None
        node = contents[part]
    return node if isinstance(node, Mapping) else None


def _methods(node: Mapping[str, Any], path: str = "", depth: int = 0) -> Iterator[str]:
    """Every address under ``node`` that has a TYPE (bounded depth: the tree is the device's)."""
    if depth > 64:
        return
    if "TYPE" in node and path:
        yield path
    contents = node.get("CONTENTS")
    if isinstance(contents, Mapping):
        for name, child in contents.items():
            if isinstance(child, Mapping):
                yield from _methods(child, f"{path}/{name}", depth + 1)


def _offered(root: Mapping[str, Any], address: str) -> str:
    every = list(_methods(root))
    near = difflib.get_close_matches(address, every, n=_MAX_OFFERED, cutoff=0.5)
    if not near:
        parent = address.rsplit("/", 1)[0]
        near = [m for m in every if m.startswith(parent + "/")][:_MAX_OFFERED] or every[:_MAX_OFFERED]
    more = "" if len(every) <= len(near) else f" ({len(every):,} addresses in all)"
    return ("it offers " + ", ".join(near) + more) if near else "its tree holds no addresses"


def _norm(tags: str) -> str:
    return tags.replace("F", "T")


def _type_problem(sent: str, node: Mapping[str, Any]) -> tuple[str, str] | None:
    """(severity, what) when the sent type tags do not fit the node's TYPE."""
    want = node.get("TYPE")
    if not isinstance(want, str):
        return None
    want = want.replace("[", "").replace("]", "")
    if sent == want or _norm(sent) == _norm(want):
        return None
    if not sent and want in ("N", "I"):  # a trigger: no argument is how most surfaces send it
        return None
    if len(sent) == len(want) and all(
        a == b or (a in _NUMERIC and b in _NUMERIC) for a, b in zip(_norm(sent), _norm(want), strict=True)
    ):
        return "warning", f"the types {sent!r}; the device takes {want!r} (it may convert them)"
    return "error", f"the types {sent or 'none'!r}; the device takes {want!r}"


def _range_problem(args: Sequence[Any], node: Mapping[str, Any]) -> str | None:
    ranges = node.get("RANGE")
    if not isinstance(ranges, list):
        return None
    for value, rng in zip(args, ranges, strict=False):
        if not isinstance(rng, Mapping) or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        lo, hi, vals = rng.get("MIN"), rng.get("MAX"), rng.get("VALS")
        if isinstance(vals, list) and vals and value not in vals:
            return f"{value:g}, not one of the values the device takes, {vals}"
        if isinstance(lo, int | float) and value < lo:
            return f"{value:g}, below the device's RANGE minimum {lo:g}"
        if isinstance(hi, int | float) and value > hi:
            return f"{value:g}, above the device's RANGE maximum {hi:g}"
    return None


def _attrs(dev: Device) -> dict[str, str]:
    return {"id": dev.id, "device": dev.id, "kind": dev.kind, "zone": dev.zone, **dev.attrs}


def _messages(op: OscSend | Fade, dev: Device) -> list[tuple[str, str, tuple[Any, ...]] | str]:
    """The messages ``op`` sends ``dev``: (address, type tags, args), or why it cannot be encoded."""
    if isinstance(op, Fade):
        address = substitute(op.address or f"/{op.param}", _attrs(dev))
        ends = [v for v in (op.start, op.end) if v is not None]
        return [(address, "f", (float(v),)) for v in ends] or [(address, "f", ())]
    a = _attrs(dev)
    address = substitute(op.address, a)
    args = [substitute(x, a) if isinstance(x, str) else x for x in op.args]
    try:
        decoded = decode_packet(encode_message(address, args))
    except (OscEncodeError, OscDecodeError) as err:
        return [f"cannot be encoded as OSC: {err}"]
    assert isinstance(decoded, OscMessage)
    return [(decoded.address, decoded.tags, tuple(decoded.args))]


def probe_findings(timeline: Timeline, venue: Venue, trees: Mapping[str, Tree]) -> list[Finding]:
    """The findings of the probe (module docstring); ``trees`` by OSCQuery URL."""
    findings: list[Finding] = []
    for url, tree in trees.items():
        if tree.error is not None:
            names = [d.id for d in venue.devices if d.osc is not None and d.osc.oscquery == url]
            findings.append(
                Finding(
                    None,
                    f"the OSCQuery server {url} of {_list(names)} {tree.error}",
                    "start the device, correct its osc.oscquery in the venue, or leave out --probe",
                )
            )
    # (mark, severity, message, hint) -> devices: the same problem on many devices is one finding
    grouped: dict[tuple[Mark | None, str, str, str], list[str]] = {}
    for action in timeline.actions:
        op = action.op
        if not isinstance(op, OscSend | Fade):
            continue
        for did in action.devices:
            dev = venue.device(did)
            if dev.osc is None or dev.osc.oscquery is None:
                continue
            root = trees.get(dev.osc.oscquery, Tree(dev.osc.oscquery)).root
            if root is None:
                continue
            for problem in _check(action.cue, op, dev, root):
                grouped.setdefault((action.mark, *problem), []).append(did)
    for (mark, severity, message, hint), devices in grouped.items():
        findings.append(Finding(mark, message.replace("{devices}", _list(devices)), hint, severity))
    return findings


def _check(
    cue: str, op: OscSend | Fade, dev: Device, root: Mapping[str, Any]
) -> Iterator[tuple[str, str, str]]:
    assert dev.osc is not None
    url = dev.osc.oscquery
    what = "fades" if isinstance(op, Fade) else "sends"
    for msg in _messages(op, dev):
        if isinstance(msg, str):
            yield "error", f"cue '{cue}' {what} to {{devices}} an OSC message that {msg}", ""
            continue
        address, tags, args = msg
        node = _find(root, address)
        if node is None or "TYPE" not in node:
            there = "has no such address" if node is None else "holds it as a container, not a method"
            yield (
                "error",
                f"cue '{cue}' {what} {address} to {{devices}}: the device's OSCQuery tree ({url}) {there}",
                _offered(root, address),
            )
            continue
        access = node.get("ACCESS")
        if isinstance(access, int) and not access & 2:
            yield "error", f"cue '{cue}' {what} {address} to {{devices}}: the device says it is read-only " \
                f"(ACCESS {access}) in {url}", "send to an address it lets you write"
        found = _type_problem(tags, node)
        if found is not None:
            severity, text = found
            yield severity, f"cue '{cue}' {what} {address} to {{devices}} with {text} ({url})", \
                "match the argument types the device declares"
        out = _range_problem(args, node)
        if out is not None:
            yield "warning", f"cue '{cue}' {what} {address} to {{devices}} with {out} ({url})", \
                "the device may clip or ignore it"


def _list(names: Sequence[str]) -> str:
    if not names:
        return "no device"
    shown = ", ".join(f"'{n}'" for n in names[:4])
    more = f" and {len(names) - 4:,} more" if len(names) > 4 else ""
    return ("device " if len(names) == 1 else "devices ") + shown + more


def probe(
    timeline: Timeline, venue: Venue, fetch: Callable[[str], Tree] = fetch_tree
) -> tuple[list[Finding], int]:
    """Read every OSCQuery server the venue's devices name (once each) and check the show
    against them; returns the findings and how many servers were read."""
    urls = sorted({d.osc.oscquery for d in venue.devices if d.osc is not None and d.osc.oscquery})
    if not urls:
        return [
            Finding(
                None,
                f"--probe: no device of venue '{venue.id}' names an OSCQuery server",
                "give a device's osc.oscquery (a TCP port on its OSC host, or http://host:port)",
                "warning",
            )
        ], 0
    trees = {url: fetch(url) for url in urls}
    return probe_findings(timeline, venue, trees), len(urls)
