"""``do:`` actions: a verb of the targets' device profile, checked and turned into OSC.

Theory of operation
-------------------
A venue device may name a profile (:mod:`venues.profiles`); a show then writes
``do: {targets: media, clip: {layer: 2, column: 5}}`` instead of the raw address. For each
profile among the targets (devices of different profiles may share a verb name), :func:`expand`

1. finds the verb, or reports the verb at its key with the profile's verbs (and a "did you mean");
2. takes the values: a mapping names parameters, a plain value fills the verb's ``value``
   parameter (``opacity: 0.4``), ``{}`` or nothing is for verbs without parameters; each value is
   checked against the parameter's type, range and choices (:func:`venues.profiles.check_value`);
3. fills what is left out: the parameter's default, else, for a parameter of the address, the
   device attribute of the same name (``layer: 2`` in the venue), checked against the parameter
   on every device, and left as a ``{layer}`` placeholder that the controller fills per device;
4. builds the :class:`~cues.timeline.OscSend`: the address with the given values substituted, the
   arguments typed as the profile says (``i``, ``f``, ``s``, ``T``, ``h``, ``d``).

The compiler then checks the address like any ``osc:`` address (OSC 1.0 rules, placeholders).
Everything here is pure.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from cues.timeline import OscArg, OscSend, OscTyped
from venues.model import Venue
from venues.profiles import Param, Profile, Verb, check_value

__all__ = ["VerbProblem", "expand"]


@dataclass(frozen=True, slots=True)
class VerbProblem:
    """A problem of a ``do:`` action: ``sub`` is the path below ``do`` (``key`` True: point at the
    key there rather than its value)."""

    sub: tuple[str | int, ...]
    message: str
    hint: str
    key: bool = False


def expand(
    venue: Venue, devices: tuple[str, ...], verb_name: str, value: object
) -> tuple[list[tuple[tuple[str, ...], OscSend]], list[VerbProblem]]:
    """The OSC messages of one ``do:`` verb on ``devices``, one per profile among them, and the
    problems (when there is any, the messages are not to be used)."""
    by_profile: dict[str, list[str]] = {}
    bare: list[str] = []
    for d in devices:
        name = venue.by_id[d].profile
        if name is None:
            bare.append(d)
        else:
            by_profile.setdefault(name, []).append(d)
    problems: list[VerbProblem] = []
    if bare:
        problems.append(
            VerbProblem(
                ("targets",),
                f"{len(bare):,} of {len(devices):,} targets have no device profile (e.g. {bare[0]!r}), "
                f"so verb '{verb_name}' means nothing to them",
                "name a profile on the device in the venue (profile: resolume), or narrow the targets",
            )
        )
    out: list[tuple[tuple[str, ...], OscSend]] = []
    for pname, devs in by_profile.items():
        profile = venue.profiles.get(pname)
        if profile is None:  # the venue loader reported it
            continue
        got = _one(venue, profile, tuple(devs), verb_name, value, problems)
        if got is not None:
            out.append((tuple(devs), got))
    return out, problems


def _one(
    venue: Venue,
    profile: Profile,
    devs: tuple[str, ...],
    verb_name: str,
    value: object,
    problems: list[VerbProblem],
) -> OscSend | None:
    if profile.protocol != "osc":
        problems.append(
            VerbProblem(
                (verb_name,),
                f"profile '{profile.id}' of {devs[0]!r} is a {profile.protocol} channel layout, "
                "without verbs",
                "fade its parameters instead (fade: {param: dimmer, ...}), "
                "or target devices of an osc profile",
                key=True,
            )
        )
        return None
    verb = profile.verbs.get(verb_name)
    if verb is None:
        close = difflib.get_close_matches(verb_name, list(profile.verbs), n=1)
        mean = f"did you mean '{close[0]}'? " if close else ""
        problems.append(
            VerbProblem(
                (verb_name,),
                f"'{verb_name}' is not a verb of profile '{profile.id}' (device {devs[0]!r})",
                f"{mean}its verbs: {', '.join(profile.verbs)}",
                key=True,
            )
        )
        return None
    n = len(problems)
    given = _given(verb, value, problems)
    if given is None:
        return None
    values: dict[str, object] = {}
    for pname, v in given.items():
        param = verb.params.get(pname)
        if param is None:
            close = difflib.get_close_matches(pname, list(verb.params), n=1)
            mean = f"did you mean '{close[0]}'? " if close else ""
            problems.append(
                VerbProblem(
                    (verb_name, pname),
                    f"verb '{verb_name}' of profile '{profile.id}' has no parameter '{pname}'",
                    f"{mean}its parameters: {_params(verb)}",
                    key=True,
                )
            )
            continue
        checked, problem = check_value(param, _as_text(param, v))
        if problem:
            sub = (verb_name, pname) if isinstance(value, Mapping) else (verb_name,)
            problems.append(VerbProblem(sub, f"{problem} (verb '{verb_name}' of profile '{profile.id}')",
                                        f"{param.describe()}"))
            continue
        values[pname] = checked
    if len(problems) > n:  # a misspelt parameter would also be reported missing: say it once
        return None
    from_devices: list[str] = []
    for pname, param in verb.params.items():
        if pname in values or pname in given:
            continue
        if param.default is not None:
            values[pname] = param.default
        elif pname in verb.address_params:
            from_devices.append(pname)
        else:
            problems.append(
                VerbProblem(
                    (verb_name,),
                    f"verb '{verb_name}' of profile '{profile.id}' needs '{pname}'",
                    f"its parameters: {_params(verb)}",
                )
            )
    for pname in from_devices:
        _device_values(venue, devs, verb, verb.params[pname], problems)
    if len(problems) > n:
        return None
    address = verb.address
    for pname, v in values.items():
        address = address.replace("{" + pname + "}", _text(v))
    args: list[OscArg] = []
    for n_arg, (tag, arg_param, const) in enumerate(verb.args):
        v = const if arg_param is None else values.get(arg_param)
        scale = verb.scales[n_arg] if n_arg < len(verb.scales) else None
        if scale is not None and isinstance(v, int | float) and not isinstance(v, bool):
            v = (v - scale[0]) / (scale[1] - scale[0])
        if v is None:
            problems.append(
                VerbProblem(
                    (verb_name,), f"verb '{verb_name}' needs '{arg_param}'", f"parameters: {_params(verb)}"
                )
            )
            return None
        arg = _arg(tag, v)
        if tag == "i" and isinstance(arg, int) and not -(2**31) <= arg < 2**31:
            problems.append(
                VerbProblem((verb_name,), f"{arg} does not fit the OSC int32 of verb '{verb_name}'",
                            "give a smaller number")
            )
            return None
        args.append(arg)
    return OscSend(address, tuple(args), replay=verb.replay)


def _given(verb: Verb, value: object, problems: list[VerbProblem]) -> Mapping[str, object] | None:
    name = verb.name
    if isinstance(value, Mapping):
        return value
    if value is None or (value is True and not verb.params):
        return {}
    if verb.value is None:
        inner = ", ".join(f"{p}: ..." for p in verb.params)
        want = f"{name}: {{{inner}}}"
        problems.append(
            VerbProblem((name,), f"verb '{name}' takes no single value", f"write {want} ({_params(verb)})")
        )
        return None
    return {verb.value: value}


def _device_values(
    venue: Venue,
    devs: tuple[str, ...],
    verb: Verb,
    param: Param,
    problems: list[VerbProblem],
    *,
    sub: tuple[str | int, ...] | None = None,
) -> None:
    """A parameter left out of the show comes from each device's attribute of that name
    (``sub``: where a fade reports it; a verb's problems sit at the verb)."""
    for d in devs:
        text = venue.by_id[d].attrs.get(param.name)
        if text is None:
            if sub is None:
                message = f"verb '{verb.name}' needs '{param.name}': give it here, or as attribute"
                hint = f"write {verb.name}: {{{param.name}: ..., ...}} ({_params(verb)})"
            else:
                message = f"a fade of verb '{verb.name}' needs '{param.name}' as attribute"
                hint = f"give the devices attrs: {{{param.name}: ...}} in the venue, or the fade an address:"
            problems.append(
                VerbProblem(
                    sub or (verb.name,),
                    f"{message} '{param.name}' of every target ({d!r} has none)",
                    hint,
                )
            )
            return
        _, problem = check_value(param, _from_text(param, text))
        if problem:
            problems.append(
                VerbProblem(sub or (verb.name,), f"device {d!r} attribute {problem}", param.describe())
            )
            return


def _params(verb: Verb) -> str:
    return "; ".join(p.describe() for p in verb.params.values()) or "none"


def _as_text(param: Param, v: object) -> object:
    """A whole number given for a text parameter (a QLab cue number, ``start: 12``) is its text."""
    if param.type == "string" and isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return v


def _from_text(param: Param, text: str) -> object:
    """A device attribute (always text in the venue model) read as the parameter's type."""
    try:
        if param.type == "int":
            return int(text)
        if param.type == "float":
            return float(text)
    except ValueError:
        return text
    if param.type == "bool":
        return {"true": True, "false": False}.get(text.lower(), text)
    return text


def _text(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _arg(tag: str, v: object) -> OscArg:
    assert isinstance(v, int | float | str | bool)
    if tag == "i":
        return int(v) if not isinstance(v, str) else int(float(v))
    if tag == "f":
        return float(v)
    if tag == "s":
        return _text(v)
    if tag == "T":
        return bool(v)
    if tag == "h":
        return OscTyped("h", int(v))
    return OscTyped("d", float(v))


def fade_address(
    venue: Venue, devices: tuple[str, ...], param: str, values: Mapping[str, float | None]
) -> tuple[str | None, list[VerbProblem]]:
    """The OSC address of a ``fade`` of ``param`` (without its own ``address``) on devices whose
    profile has a verb of that name taking one number: ``fade: {param: opacity, ...}`` on a
    Resolume moves ``/composition/layers/{layer}/video/opacity``. ``None`` when no target's
    profile has such a verb (the fade goes to ``/{param}`` as always). ``values`` are the fade's
    ``from`` and ``to`` (None: not given), checked against the verb's range."""
    osc = [venue.by_id[d] for d in devices if venue.by_id[d].osc is not None]
    names = {d.profile for d in osc}
    verbs = {
        n: venue.profiles[n].verbs[param]
        for n in names
        if n is not None and n in venue.profiles and param in venue.profiles[n].verbs
    }
    if not verbs:
        return None, []
    if len(names) > 1:
        shown = ", ".join(sorted(str(n) if n is not None else "no profile" for n in names))
        return None, [
            VerbProblem(
                ("targets",),
                f"a fade of '{param}' on devices of different profiles ({shown}): each has its own address",
                "split the fade by profile, or give it an address:",
            )
        ]
    ((pname, verb),) = verbs.items()
    value = verb.params.get(verb.value) if verb.value is not None else None
    if value is None or value.type != "float" or [a[:2] for a in verb.args] not in ([("f", value.name)],
                                                                                    [("d", value.name)]):
        return None, [
            VerbProblem(
                ("param",),
                f"verb '{param}' of profile '{pname}' is not a number that can be faded",
                "fade a verb that sends one float, or give the fade an address:",
            )
        ]
    if any(s is not None for s in verb.scales):
        return None, [
            VerbProblem(
                ("param",),
                f"verb '{param}' of profile '{pname}' sends its value rescaled, which a fade cannot do",
                "set it with do: at the instants you need, or give the fade an address: and values",
            )
        ]
    problems: list[VerbProblem] = []
    for key, v in values.items():
        if v is not None:
            _, problem = check_value(value, v)
            if problem:
                problems.append(VerbProblem((key,), f"{problem} (verb '{param}' of profile '{pname}')",
                                            value.describe()))
    address = verb.address
    for p in verb.params.values():
        if p is value:
            continue
        if p.default is not None:
            address = address.replace("{" + p.name + "}", _text(p.default))
        else:
            _device_values(venue, tuple(d.id for d in osc), verb, p, problems, sub=("param",))
    return address, problems
