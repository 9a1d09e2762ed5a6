"""Device profiles: a device's vocabulary (its verbs) as data, loaded and checked like venues.

Theory of operation
-------------------
A media server speaks its own OSC address space: Resolume connects a clip with
``/composition/layers/2/clips/5/connect 1``, disguise fades a layer with another address again.
A *profile* (``config/profiles/<name>.yaml``) writes that address space down once, as *verbs*:
a verb has a name (``clip``), an OSC address with ``{param}`` placeholders, typed parameters
with ranges, and the OSC arguments it sends. A venue device names its profile
(``profile: resolume``); a show says ``do: {targets: media, clip: {layer: 2, column: 5}}`` and
the compiler (:mod:`cues.compiler`) turns the verb into the plain OSC message the profile names,
checking every value against it first. A ``dmx`` profile describes a fixture's channel layout
instead (parameters -> channel offsets, 8 or 16 bit): data that a venue's DMX output can read.

Loading a profile is :func:`load_profile`: positioned YAML (:mod:`venues.source`), the shape by
pydantic (:class:`ProfileSpec`), then the rules that cross fields (every placeholder of an
address is a parameter, every argument names a parameter or is a constant of a type that fits,
defaults within their ranges, DMX channels inside the footprint and not overlapping), each
problem a :class:`~venues.errors.Finding` at its line and column of the profile file.

:func:`find_profile` says where a profile name leads: the directories the venue lists under
``profiles:`` (relative to the venue file) first, then the shipped ``config/profiles/``.

:func:`check_value` checks one value a show gives a parameter; :func:`Verb.render` builds the
message. Everything here is pure except reading the profile files.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from venues.errors import Finding, Mark, SourceError, SourceErrors
from venues.names import osc_address_faults
from venues.source import Doc, load_yaml
from venues.validation import findings_from_pydantic

__all__ = [
    "MAX_PROFILE_BYTES",
    "ArgSpec",
    "Channel",
    "Param",
    "ParamSpec",
    "Profile",
    "ProfileSpec",
    "Verb",
    "VerbSpec",
    "check_value",
    "find_profile",
    "load_profile",
    "profile_from_doc",
    "profile_json_schema",
    "shipped_profiles",
]

MAX_PROFILE_BYTES: Final = 1024 * 1024
"""A profile is a page of verbs; a file larger than this is refused."""

_VERB_RE: Final = r"^[a-z][a-z0-9-]*$"
_PARAM_RE: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"
_ID_RE: Final = r"^[a-z0-9][a-z0-9_.-]*$"
_PLACEHOLDER_RE: Final = re.compile(r"\{([^{}]*)\}")
RESERVED_VERBS: Final = frozenset({"targets", "at", "note"})
"""Keys of a ``do:`` action that are not verbs."""

Scalar = int | float | str | bool
ParamType = Literal["int", "float", "string", "bool"]
OscTag = Literal["i", "f", "s", "T", "h", "d"]
_TAG_FITS: Final[Mapping[str, frozenset[str]]] = {
    # which OSC argument types can carry a parameter of each type
    "int": frozenset("ifhd"),
    "float": frozenset("fd"),
    "string": frozenset("s"),
    "bool": frozenset("Ti"),
}


_WHAT: Final[Mapping[str, str]] = {
    "int": "a whole number", "float": "a number", "string": "text", "bool": "true or false",
}
_CONST_TYPES: Final[Mapping[str, type | tuple[type, ...]]] = {
    "i": int, "h": int, "f": (int, float), "d": (int, float), "s": str, "T": bool,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SourceSpec(_Strict):
    """The vendor documentation a profile was written from."""

    url: str = Field(min_length=1, description="Where the vendor documents its OSC (or DMX) interface.")
    section: str = Field(min_length=1, description="The chapter or heading the verbs come from.")
    version: str | None = Field(None, description="The software version the page describes.")


class ParamSpec(_Strict):
    """One parameter of a verb: its type, range and default."""

    type: ParamType = Field(description="int, float, string or bool.")
    min: int | float | None = Field(None, description="Smallest value (int and float).")
    max: int | float | None = Field(None, description="Largest value (int and float).")
    choices: list[str | int] | None = Field(None, description="The only values allowed.")
    default: Scalar | None = Field(None, description="The value when a show leaves the parameter out.")
    doc: str | None = Field(None, description="What the parameter means, for the artist.")


class ArgSpec(_Strict):
    """One OSC argument of a verb: a parameter's value (``param``) or a constant (``value``)."""

    type: OscTag = Field(description="OSC type: i int32, f float32, s string, T bool, h int64, d float64.")
    param: str | None = Field(None, description="The parameter whose value this argument carries.")
    value: Scalar | None = Field(None, description="A constant sent every time.")
    scale: list[int | float] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="[lo, hi]: send the parameter's value mapped linearly from lo..hi to 0..1 (f or d).",
    )


class VerbSpec(_Strict):
    """One verb: the OSC message it sends and the parameters it takes."""

    address: str = Field(description="OSC address; {param} placeholders are filled from the parameters.")
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    args: list[ArgSpec] = Field(default_factory=list, description="The OSC arguments, in order.")
    value: str | None = Field(
        None,
        description="The parameter a plain value fills (opacity: 0.4); default: 'value', or the only one.",
    )
    doc: str | None = Field(None, description="What the verb does, for the artist.")
    replay: bool = Field(
        True,
        description=(
            "false for an event (start a cue, trigger a clip): not sent again when a device catches up "
            "after a seek, a late join or a restart; true (default) for a state (an opacity)."
        ),
    )


class ChannelSpec(_Strict):
    """One parameter of a DMX fixture: where it sits in the fixture's footprint."""

    offset: int = Field(ge=1, le=512, description="Channel within the fixture, from 1 (its start address).")
    bits: Literal[8, 16] = Field(8, description="8: one channel; 16: two, coarse then fine.")
    min: float = Field(0.0, description="The parameter value sent as DMX 0.")
    max: float = Field(1.0, description="The parameter value sent as full (255 or 65535).")
    default: float = Field(0.0, description="The value at rest, and the safe value.")
    doc: str | None = None


class ProfileSpec(_Strict):
    """A device profile file."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, title="Madang device profile",
        json_schema_extra={"$comment": "Generated from venues.profiles; see docs/profiles.md"},
    )

    profile: Annotated[str, Field(pattern=_ID_RE)] = Field(description="The profile id (its file name).")
    name: str = Field(min_length=1, description="The product, as its vendor names it.")
    protocol: Literal["osc", "dmx"] = Field(description="osc: verbs sent as OSC; dmx: a channel layout.")
    sources: list[SourceSpec] = Field(min_length=1, description="The vendor documentation it follows.")
    notes: str | None = Field(None, description="What the author was unsure of, and setup hints.")
    port: int | None = Field(None, ge=1, le=65535, description="The device's usual OSC input port.")
    verbs: dict[str, VerbSpec] = Field(default_factory=dict, description="Verb name -> its message.")
    footprint: int | None = Field(None, ge=1, le=512, description="DMX: channels the fixture takes.")
    channels: dict[str, ChannelSpec] = Field(default_factory=dict, description="DMX: parameter -> channel.")


def profile_json_schema() -> dict[str, Any]:
    """The JSON Schema of device profile files (``madang schema profile``, for editors)."""
    schema = ProfileSpec.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


# --- the loaded profile -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    """A verb's parameter, checked."""

    name: str
    type: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str | int, ...] | None = None
    default: Scalar | None = None
    doc: str = ""

    def describe(self) -> str:
        """``layer: int 1..999`` as the artist reads it in a hint."""
        out = f"{self.name}: {self.type}"
        if self.choices is not None:
            out += " (" + " | ".join(str(c) for c in self.choices) + ")"
        elif self.min is not None or self.max is not None:
            lo = "" if self.min is None else f"{self.min:g}"
            hi = "" if self.max is None else f"{self.max:g}"
            out += f" {lo}..{hi}"
        if self.default is not None:
            out += f", default {self.default}"
        return out


@dataclass(frozen=True, slots=True)
class Verb:
    """A checked verb: its address template, parameters and arguments."""

    name: str
    address: str
    params: Mapping[str, Param]
    args: tuple[tuple[str, str | None, Scalar | None], ...]  # (tag, param, constant)
    value: str | None  # the parameter a plain value fills
    doc: str = ""
    mark: Mark | None = None  # where the profile defines it
    replay: bool = True  # a state (sent again on catch-up), or False: an event
    scales: tuple[tuple[float, float] | None, ...] = ()  # per argument: lo..hi mapped to 0..1

    @property
    def address_params(self) -> frozenset[str]:
        """The parameters that appear in the address."""
        return frozenset(_PLACEHOLDER_RE.findall(self.address))

    def signature(self) -> str:
        """``clip {layer, column}`` for messages."""
        if not self.params:
            return self.name
        return f"{self.name} {{{', '.join(self.params)}}}"


@dataclass(frozen=True, slots=True)
class Channel:
    """A DMX fixture parameter: offset in the footprint (from 1), 8 or 16 bits, value range."""

    name: str
    offset: int
    bits: int
    min: float
    max: float
    default: float


@dataclass(frozen=True)
class Profile:
    """A loaded device profile."""

    id: str
    name: str
    protocol: str
    source: str  # the file, for messages
    verbs: Mapping[str, Verb] = field(default_factory=dict)
    footprint: int | None = None
    channels: Mapping[str, Channel] = field(default_factory=dict)
    port: int | None = None
    references: tuple[str, ...] = ()  # "url (section)" of each vendor page


# --- values -----------------------------------------------------------------------------------


def check_value(param: Param, value: object) -> tuple[Scalar | None, str]:
    """A value a show gives ``param``: ``(value, "")`` when it fits, else ``(None, problem)``.

    The problem says what was expected (type, range or choices).
    """
    t = param.type
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                return None, f"expected a whole number for {param.name}; got {value!r}"
    elif t == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"expected a number for {param.name}; got {value!r}"
        if not math.isfinite(value):
            return None, f"{param.name} must be a finite number"
        value = float(value)
    elif t == "string":
        if not isinstance(value, str):
            return None, f"expected text for {param.name}; got {value!r} (quote it)"
    elif not isinstance(value, bool):
        return None, f"expected true or false for {param.name}; got {value!r}"
    if param.choices is not None and value not in param.choices:
        return None, f"{param.name} {value!r} is not one of: {', '.join(str(c) for c in param.choices)}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if param.min is not None and value < param.min:
            return None, f"{param.name} {value:g} is below its minimum {param.min:g}"
        if param.max is not None and value > param.max:
            return None, f"{param.name} {value:g} is above its maximum {param.max:g}"
    assert isinstance(value, int | float | str | bool)
    return value, ""


# --- finding and loading ----------------------------------------------------------------------


def _config_profiles() -> Path:
    env = os.environ.get("MADANG_CONFIG")
    base = Path(env) if env else Path(__file__).resolve().parent.parent / "config"
    return base / "profiles"


def shipped_profiles() -> list[str]:
    """The names of the profiles shipped in ``config/profiles/``."""
    return sorted(p.stem for p in _config_profiles().glob("*.yaml"))


def find_profile(name: str, dirs: Sequence[Path] = ()) -> Path:
    """The file of profile ``name``: a path (with ``/`` or ``.yaml``) as given, else
    ``<dir>/<name>.yaml`` in each of ``dirs`` in order, then the shipped ``config/profiles/``.

    Raises :class:`~venues.errors.SourceError` (no mark) listing the profiles there are.
    """
    if "/" in name or os.sep in name or name.endswith((".yaml", ".yml")):
        p = Path(name)
        if p.is_file():
            return p
        raise SourceError(None, f"profile file '{name}' not found", f"looked for {p.resolve()}")
    candidates = [d / f"{name}.yaml" for d in (*dirs, _config_profiles())]
    for c in candidates:
        if c.is_file():
            return c
    known = sorted({p.stem for d in (*dirs, _config_profiles()) if d.is_dir() for p in d.glob("*.yaml")})
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise SourceError(
        None,
        f"profile '{name}' not found",
        f"{hint}profiles there are: {', '.join(known) or 'none'} "
        f"(looked in {', '.join(str(c.parent) for c in candidates)})",
    )


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Load and check a profile file (a path, or the name of a shipped profile).

    Raises :class:`~venues.errors.SourceErrors` with every finding of the file.
    """
    p = os.fspath(path)
    if not Path(p).exists() and "/" not in p and not p.endswith((".yaml", ".yml")):
        try:
            p = os.fspath(find_profile(p))
        except SourceError as e:
            raise SourceErrors([e.finding]) from None
    return profile_from_doc(load_yaml(p, max_bytes=MAX_PROFILE_BYTES))


def profile_from_doc(doc: Doc) -> Profile:
    """Check a loaded profile document and build the :class:`Profile`.

    Raises :class:`~venues.errors.SourceErrors` with every finding (positions and hints).
    """
    if not isinstance(doc.data, Mapping):
        raise SourceErrors(
            [Finding(doc.mark(()), "a profile file is a mapping", "start with 'profile: <id>', then name")]
        )
    try:
        spec = ProfileSpec.model_validate(doc.data)
    except pydantic.ValidationError as err:
        raise SourceErrors.of(findings_from_pydantic(err, doc, what="profile", model=ProfileSpec)) from None
    findings: list[Finding] = []
    verbs = {name: _verb(doc, name, v, findings) for name, v in spec.verbs.items()}
    findings.extend(
        Finding(doc.key_mark(("verbs", name)), f"'{name}' cannot be a verb name",
                f"{', '.join(sorted(RESERVED_VERBS))} are keys of a do: action; rename the verb")
        for name in spec.verbs
        if name in RESERVED_VERBS
    )
    findings.extend(
        Finding(doc.key_mark(("verbs", name)), f"'{name}' is not a verb name",
                "lower-case letters, digits and -, starting with a letter (layer-opacity)")
        for name in spec.verbs
        if re.fullmatch(_VERB_RE, name) is None
    )
    findings.extend(
        Finding(doc.key_mark(("channels", name)), f"'{name}' is not a parameter name",
                "letters, digits and _, not starting with a digit (red, dimmer, pan_fine)")
        for name in spec.channels
        if re.fullmatch(_PARAM_RE, name) is None
    )
    channels = _channels(doc, spec, findings)
    if spec.protocol == "osc" and not spec.verbs:
        findings.append(Finding(doc.mark(("protocol",)), "an osc profile needs verbs", "add 'verbs: {...}'"))
    if spec.protocol == "dmx" and not spec.channels:
        findings.append(
            Finding(doc.mark(("protocol",)), "a dmx profile needs channels and a footprint",
                    "add 'footprint: N' and 'channels: {dimmer: {offset: 1}, ...}'")
        )
    if spec.protocol == "dmx" and spec.verbs:
        findings.append(
            Finding(doc.key_mark(("verbs",)), "a dmx profile describes channels, not verbs",
                    "move the verbs to an osc profile, or remove them")
        )
    if findings:
        raise SourceErrors.of(findings)
    return Profile(
        id=spec.profile,
        name=spec.name,
        protocol=spec.protocol,
        source=doc.file,
        verbs={k: v for k, v in verbs.items() if v is not None},
        footprint=spec.footprint,
        channels=channels,
        port=spec.port,
        references=tuple(f"{s.url} ({s.section})" for s in spec.sources),
    )


def _verb(doc: Doc, name: str, v: VerbSpec, findings: list[Finding]) -> Verb | None:
    at = ("verbs", name)
    n = len(findings)
    params: dict[str, Param] = {}
    for pname, ps in v.params.items():
        ppath = (*at, "params", pname)
        if re.fullmatch(_PARAM_RE, pname) is None:
            findings.append(Finding(doc.key_mark(ppath), f"'{pname}' is not a parameter name",
                                    "letters, digits and _, not starting with a digit"))
            continue
        if (ps.min is not None or ps.max is not None) and ps.type not in ("int", "float"):
            findings.append(Finding(doc.mark((*ppath, "type")), f"{pname}: min and max go with int or float",
                                    f"remove them, or make the type int or float (it is {ps.type})"))
        if ps.min is not None and ps.max is not None and ps.min > ps.max:
            findings.append(Finding(doc.mark((*ppath, "min")), f"{pname}: min {ps.min} is above max {ps.max}",
                                    "swap them"))
        param = Param(pname, ps.type, ps.min, ps.max,
                      tuple(ps.choices) if ps.choices is not None else None, ps.default, ps.doc or "")
        if ps.choices is not None:
            for i, c in enumerate(ps.choices):
                if check_value(Param(pname, ps.type), c)[1]:
                    findings.append(Finding(doc.mark((*ppath, "choices", i)),
                                            f"{pname}: choice {c!r} is not {_WHAT[ps.type]}",
                                            "fix the choice"))
        if ps.default is not None:
            problem = check_value(param, ps.default)[1]
            if problem:
                findings.append(Finding(doc.mark((*ppath, "default")), f"default of {problem}",
                                        "give a default that fits the type and range, or none"))
        params[pname] = param
    faults = osc_address_faults(_PLACEHOLDER_RE.sub("x", v.address))
    if faults:
        findings.append(Finding(doc.mark((*at, "address")), f"'{v.address}' is not an OSC address",
                                "an OSC 1.0 address: /printable/ascii, {param} placeholders allowed"))
    used: set[str] = set()
    for ph in _PLACEHOLDER_RE.findall(v.address):
        used.add(ph)
        if ph not in v.params:
            findings.append(Finding(doc.mark((*at, "address")),
                                    f"placeholder {{{ph}}} of verb '{name}' is not one of its params",
                                    f"add '{ph}' under params (its params: {', '.join(v.params) or 'none'})"))
    args: list[tuple[str, str | None, Scalar | None]] = []
    scales: list[tuple[float, float] | None] = []
    for i, a in enumerate(v.args):
        apath = (*at, "args", i)
        if (a.param is None) == (a.value is None):
            findings.append(Finding(doc.mark(apath),
                                    f"argument {i + 1} of verb '{name}' needs exactly one of param or value",
                                    "param: <name> sends a parameter; value: <x> a constant"))
            continue
        if a.param is not None:
            used.add(a.param)
            aps = v.params.get(a.param)
            if aps is None:
                findings.append(Finding(doc.mark((*apath, "param")),
                                        f"argument {i + 1} of verb '{name}' sends unknown param '{a.param}'",
                                        f"its params: {', '.join(v.params) or 'none'}"))
            elif a.type not in _TAG_FITS[aps.type]:
                findings.append(Finding(doc.mark((*apath, "type")),
                                        f"OSC type '{a.type}' cannot carry {aps.type} param '{a.param}'",
                                        f"use one of: {', '.join(sorted(_TAG_FITS[aps.type]))}"))
        else:
            want = _CONST_TYPES[a.type]
            if isinstance(a.value, bool) != (a.type == "T") or not isinstance(a.value, want):
                findings.append(Finding(doc.mark((*apath, "value")),
                                        f"constant {a.value!r} does not fit OSC type '{a.type}'",
                                        "i/h take whole numbers, f/d numbers, s text, T true/false"))
        if a.scale is not None:
            lo, hi = a.scale
            if a.param is None or a.type not in ("f", "d") or lo == hi:
                findings.append(Finding(doc.mark((*apath, "scale")),
                                        f"argument {i + 1} of verb '{name}': scale maps a parameter "
                                        "to a float",
                                        "give it with param: and type f or d, and lo different from hi"))
        args.append((a.type, a.param, a.value))
        scales.append(None if a.scale is None else (float(a.scale[0]), float(a.scale[1])))
    findings.extend(
        Finding(doc.key_mark((*at, "params", pname)),
                f"param '{pname}' of verb '{name}' is neither in the address nor an argument",
                "send it (address placeholder or args: [{param: ...}]) or remove it")
        for pname in v.params
        if pname not in used
    )
    value = v.value
    if value is None and "value" in v.params:
        value = "value"
    elif value is None and len(v.params) == 1:
        value = next(iter(v.params))
    elif value is not None and value not in v.params:
        findings.append(Finding(doc.mark((*at, "value")), f"value: '{value}' is not a param of verb '{name}'",
                                f"its params: {', '.join(v.params) or 'none'}"))
    if len(findings) > n:
        return None
    return Verb(
        name, v.address, params, tuple(args), value, v.doc or "", doc.key_mark(at), v.replay, tuple(scales)
    )


def _channels(doc: Doc, spec: ProfileSpec, findings: list[Finding]) -> dict[str, Channel]:
    out: dict[str, Channel] = {}
    if spec.channels and spec.footprint is None:
        findings.append(Finding(doc.key_mark(("channels",)), "channels need a footprint",
                                "add 'footprint: N', the channels the fixture takes"))
        return out
    taken: dict[int, str] = {}
    for name, c in spec.channels.items():
        width = c.bits // 8
        path = ("channels", name)
        last = c.offset + width - 1
        if spec.footprint is not None and last > spec.footprint:
            findings.append(Finding(doc.mark((*path, "offset")),
                                    f"channel '{name}' ({c.bits}-bit at {c.offset}) ends at {last}, past the "
                                    f"footprint {spec.footprint}", "raise the footprint or move the channel"))
        for ch in range(c.offset, last + 1):
            other = taken.get(ch)
            if other is not None:
                findings.append(Finding(doc.mark((*path, "offset")),
                                        f"channel '{name}' overlaps '{other}' at offset {ch}",
                                        "each channel of a fixture carries one parameter"))
                break
            taken[ch] = name
        if c.min == c.max:
            findings.append(Finding(doc.mark((*path, "max")), f"channel '{name}': min equals max",
                                    "give the value range the channel spans"))
        lo, hi = min(c.min, c.max), max(c.min, c.max)
        if not lo <= c.default <= hi:
            findings.append(Finding(doc.mark((*path, "default")),
                                    f"channel '{name}': default {c.default:g} is outside "
                                    f"{c.min:g}..{c.max:g}",
                                    "give a default inside the range"))
        out[name] = Channel(name, c.offset, c.bits, c.min, c.max, c.default)
    return out
