"""A venue's broker policy: the Mosquitto configuration, password file and ACL that let each
device publish only its own reports and read only its own and its groups' commands, and let only
the controller (and its standby) drive (``madang broker-config``; docs/security.md).

Theory of operation
-------------------
Every identity is a Mosquitto user with a password of its own:

* ``madang-controller`` and ``madang-standby`` (:data:`CONTROLLER_USERS`), the two controllers of
  a hot-standby pair, may read and write every topic: they publish the cues, pings, clock models,
  the retained controller state and a show's own MQTT actions (any topic a show names), and read
  every device's reports and the show's event triggers. Two users, not one, because the broker
  forces each client id to its user name (``use_username_as_clientid``): a pair sharing one name
  would knock each other off.
* each MQTT device of the venue is the user named by its id. It may **write** only its reports
  (:func:`controller.topics.device_report_topics`: ``{root}/pong``, ``{root}/status`` with the
  ``ready``/``alive`` heartbeat and its ``offline`` will, ``{root}/fired``) and the show's event
  topics that name it (see below), and **read** only the topics it subscribes to
  (:func:`controller.topics.device_topics`: the cues for all, for its zone, its kind and itself,
  its pings and clock model, the controller state) and its parameter publishes
  (``{root}/param/#``). So a stolen headset's password cannot publish a cue, a clock model,
  another device's pong or the controller state, and cannot read another device's commands.
* no anonymous client: ``allow_anonymous false``; and the forced client id means a device's
  password cannot knock another device off by reusing its client id.

Event topics: a show may wait for devices' own events (``on: {mqtt: "xr/+/ready"}``). Given the
show files (``--show``), each ``+`` level of each trigger filter is granted, in turn, to every
device as its own id: ``xr/+/ready`` lets ``xr-0001`` write ``xr/xr-0001/ready`` and nothing
else there. Filters without a ``+`` name no device: only the controllers may publish them.

The topic strings all come from :mod:`controller.wire` and :mod:`controller.topics`, the same
definitions the controller publishes and subscribes with: the ACL cannot drift from the protocol.

Passwords: each identity gets a random one (:func:`secrets.token_urlsafe`, 144 bits), hashed for
Mosquitto 2 as PBKDF2-SHA512 (the ``$7$`` format of ``mosquitto_passwd``: iterations, salt and
hash in base64). The clear passwords go to a separate ``secrets`` file, mode 0600, and the two
controllers' to a file each for ``--broker-password-file``; an existing ``secrets`` file in the
output folder is read first and its passwords kept for the identities still in the venue (a
venue edit does not re-provision every headset).

:func:`broker_policy` is pure (the venue and the passwords in, the files' texts out);
:func:`write_broker_config` does the file I/O.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from controller import wire
from controller.bridgeconf import BRIDGE_USER_PREFIX, LeafRoutes, bridge_acl, bridge_plan
from controller.topics import device_report_topics, device_topics, validate_filter
from venues.errors import MadangError
from venues.model import Device, Venue

__all__ = [
    "CONTROLLER_USER",
    "CONTROLLER_USERS",
    "STANDBY_USER",
    "BrokerConfigError",
    "BrokerPolicy",
    "BrokerTlsFiles",
    "broker_policy",
    "device_identities",
    "event_grants",
    "hash_password",
    "read_secrets",
    "verify_password",
    "write_broker_config",
    "ws_identities",
]

CONTROLLER_USER = "madang-controller"
"""The live controller's broker identity."""
STANDBY_USER = "madang-standby"
"""The hot standby's broker identity (docs/standby.md): the same rights as the controller's."""
CONTROLLER_USERS = (CONTROLLER_USER, STANDBY_USER)

PBKDF2_ITERATIONS = 101
"""Mosquitto 2's ``mosquitto_passwd`` default for the ``$7$`` (PBKDF2-SHA512) format."""
_SALT_BYTES = 12
_USER_RE = re.compile(r"[^\s:#+/]+\Z")  # a password-file name: no ':' (the separator), no blanks

SECRETS_FILE = "secrets"
PASSWD_FILE = "passwd"
ACL_FILE = "acl"
CONF_FILE = "mosquitto.conf"


@dataclass
class BrokerConfigError(MadangError, ValueError):
    """The venue (or an option) cannot be turned into a broker policy: what, and what to do."""

    what: str
    hint: str = ""

    def __post_init__(self) -> None:
        Exception.__init__(self, self.what)

    def __str__(self) -> str:
        return f"broker config: {self.what}" + (f"; {self.hint}" if self.hint else "")


@dataclass(frozen=True, slots=True)
class BrokerTlsFiles:
    """The broker's TLS listener: its certificate and key, and the CA file (which signs the
    broker's certificate for clients, and clients' certificates when ``require_certificate``)."""

    cert: str
    key: str
    ca: str | None = None
    require_certificate: bool = False


@dataclass(frozen=True)
class BrokerPolicy:
    """The texts of the broker's files and the identities' clear passwords."""

    conf: str
    passwd: str
    acl: str
    passwords: Mapping[str, str] = field(repr=False)

    def secrets_text(self) -> str:
        """The clear passwords, ``name password`` a line (the file is kept mode 0600)."""
        head = "# Madang broker identities: user password (keep this file secret, mode 0600)\n"
        return head + "".join(f"{name} {pw}\n" for name, pw in self.passwords.items())


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto 2's ``$7$`` hash of ``password``: ``$7$ITER$SALT$HASH``, PBKDF2-HMAC-SHA512,
    salt and 64-byte hash in standard base64 (as ``mosquitto_passwd`` writes them)."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``hashed`` (a ``$7$`` line's hash, ours or ``mosquitto_passwd``'s) is ``password``'s."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        want = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return secrets.compare_digest(got, want)


def device_identities(venue: Venue) -> list[Device]:
    """The devices that log in to the broker: those with an MQTT endpoint (WebSocket devices and
    audience slots reach the controller, not the broker; OSC devices neither)."""
    return [d for d in venue.devices if d.mqtt is not None and not d.pooled]


def ws_identities(venue: Venue) -> list[Device]:
    """The devices that present a key to the controller's WebSocket server (docs/protocol.md):
    those with a WebSocket endpoint and no MQTT one, audience slots excepted (rejoin tokens)."""
    return [d for d in venue.devices if d.ws is not None and d.mqtt is None and not d.pooled]


def event_grants(device: Device, filters: Iterable[str]) -> list[str]:
    """The event topics ``device`` may write: each trigger filter with one ``+`` level in turn
    made the device's id (other ``+`` levels and a final ``#`` stay wildcards). A filter without
    ``+`` names no device and grants nothing."""
    out: dict[str, None] = {}
    for f in filters:
        levels = f.split("/")
        for i, level in enumerate(levels):
            if level == "+":
                out["/".join([*levels[:i], device.id, *levels[i + 1 :]])] = None
    return list(out)


def _check_names(devices: Sequence[Device]) -> None:
    for d in devices:
        if d.id in CONTROLLER_USERS:
            raise BrokerConfigError(
                f"device {d.id!r} has the name of a controller identity",
                f"rename it: {', '.join(CONTROLLER_USERS)} are reserved for the controllers",
            )
        if not _USER_RE.match(d.id):
            raise BrokerConfigError(
                f"device id {d.id!r} cannot be a broker user name (no blanks, ':', '#', '+', '/')",
                "rename the device",
            )


def _acl(venue: Venue, devices: Sequence[Device], events: Sequence[str]) -> str:
    lines = [
        f"# Mosquitto ACL for venue {venue.id}, generated by `madang broker-config` (docs/security.md).",
        "# No topic line precedes the first user: an anonymous client may read and write nothing.",
        "",
    ]
    for user in CONTROLLER_USERS:
        lines += [f"user {user}", "topic readwrite #", ""]
    for d in devices:
        lines.append(f"user {d.id}")
        lines += [f"topic write {t}" for t in device_report_topics(d)]
        lines += [f"topic write {t}" for t in event_grants(d, events)]
        lines += [f"topic read {t}" for t in device_topics(d)]
        lines.append(f"topic read {d.topic_root}/{wire.PARAM_LEVEL}/#")
        lines.append("")
    return "\n".join(lines)


def _conf(
    venue: Venue,
    folder: Path,
    port: int | None,
    bind: str | None,
    tls: BrokerTlsFiles | None,
    *,
    bridged: bool = False,
) -> str:
    listen = port if port is not None else (8883 if tls is not None else 1883)
    lines = [
        f"# Mosquitto 2 configuration for venue {venue.id}, generated by `madang broker-config`.",
        "# Every client logs in (no anonymous access); the ACL confines each device to its own topics",
        "# (docs/security.md). When mosquitto starts as root it runs as the user 'mosquitto', which must",
        "# be able to read the passwd and acl files (and the TLS key) of this folder.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {folder / PASSWD_FILE}",
        f"acl_file {folder / ACL_FILE}",
        "# Cue messages are small and on a deadline: no Nagle delay (docs/mqtt.md).",
        "set_tcp_nodelay true",
        "max_queued_messages 100000",
    ]
    if bridged:
        lines += [
            "# Leaf brokers bridge to this hub (madang broker-config --bridge): persisted, a restarted hub",
            "# gives each bridge its session back, and what was published meanwhile reaches the leaves.",
            "persistence true",
            f"persistence_location {folder}/",
            "autosave_interval 10",
        ]
    lines += [
        "",
        f"listener {listen}" + (f" {bind}" if bind else ""),
        # A listener's setting (before any listener it would open a default one on 1883).
        "# A client's id is its user name: a device's password cannot knock another device off.",
        "use_username_as_clientid true",
    ]
    if tls is not None:
        lines += [f"certfile {tls.cert}", f"keyfile {tls.key}", "tls_version tlsv1.2"]
        if tls.ca:
            lines.append(f"cafile {tls.ca}")
        if tls.require_certificate:
            lines.append("require_certificate true")
    else:
        lines.insert(
            lines.index(f"listener {listen}" + (f" {bind}" if bind else "")),
            "# No TLS: passwords cross the network in clear. Give --tls-cert/--tls-key for a TLS listener.",
        )
    return "\n".join(lines) + "\n"


def broker_policy(
    venue: Venue,
    folder: Path,
    *,
    passwords: Mapping[str, str] | None = None,
    events: Sequence[str] = (),
    port: int | None = None,
    bind: str | None = None,
    tls: BrokerTlsFiles | None = None,
    bridges: Sequence[LeafRoutes] = (),
) -> BrokerPolicy:
    """The broker files for ``venue``, with their paths under ``folder`` (absolute in the
    config). ``passwords`` keeps known identities' passwords (others get new random ones);
    ``events`` are the shows' MQTT trigger filters (:func:`event_grants`); ``bridges``: the leaf
    brokers bridged to this one (:mod:`controller.bridgeconf`), each logging in as
    ``madang-bridge-{leaf}`` and allowed exactly the topics it bridges. Raises
    :class:`BrokerConfigError` for a device id that cannot be a user name, or a bad filter."""
    devices = device_identities(venue)
    _check_names(devices)
    for f in events:
        validate_filter(f)
    known = dict(passwords or {})
    names = [*CONTROLLER_USERS, *(d.id for d in devices), *(BRIDGE_USER_PREFIX + r.leaf for r in bridges)]
    clear = {name: known.get(name) or secrets.token_urlsafe(18) for name in names}
    passwd = "".join(f"{name}:{hash_password(pw)}\n" for name, pw in clear.items())
    # WebSocket devices never log in to the broker, but present a key to the controller
    # (controller.web.devkeys): the same file holds theirs, not the broker's passwd.
    for d in ws_identities(venue):
        clear.setdefault(d.id, known.get(d.id) or secrets.token_urlsafe(18))
    folder = folder.resolve()
    acl = _acl(venue, devices, events) + ("\n" + bridge_acl(bridges) if bridges else "")
    conf = _conf(venue, folder, port, bind, tls, bridged=bool(bridges))
    return BrokerPolicy(conf, passwd, acl, clear)


def read_secrets(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``name password`` lines of a secrets file written by :func:`write_broker_config`.
    Raises :class:`BrokerConfigError` for a line that is not ``name password``."""
    out: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BrokerConfigError(
            f"cannot read the secrets file {path} ({exc.strerror or exc})",
            "give the secrets file `madang broker-config` wrote",
        ) from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise BrokerConfigError(f"{path}:{n}: expected 'name password'", "regenerate the file")
        out[parts[0]] = parts[1]
    return out


def _write(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` created with ``mode`` from the start (a secret is never readable
    by others, not even for an instant), replacing what was there."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)  # the umask may have narrowed it further; set exactly
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_broker_config(
    venue: Venue,
    folder: str | os.PathLike[str],
    *,
    events: Sequence[str] = (),
    port: int | None = None,
    bind: str | None = None,
    tls: BrokerTlsFiles | None = None,
    bridge_hub: str | None = None,
    leaves: Mapping[str, Sequence[str]] | None = None,
    leaf_port: int = 1883,
) -> BrokerPolicy:
    """Write ``mosquitto.conf``, ``passwd`` (hashes), ``acl``, ``secrets`` (clear passwords, 0600)
    and ``madang-controller.password`` / ``madang-standby.password`` (0600) into ``folder``;
    keeps the passwords of an existing ``secrets`` file there. Returns the policy written.

    ``bridge_hub`` (``HOST:PORT`` of this broker as the leaves reach it): also write
    ``leaf-{name}.conf`` (0600: it holds the bridge's password) for each leaf broker of ``leaves``
    (leaf -> zones; default one leaf per zone), listening on ``leaf_port``, with the same
    ``passwd`` and ``acl`` (copy the folder to each leaf host)."""
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BrokerConfigError(
            f"cannot create the folder {out} ({exc.strerror})", "choose another -o"
        ) from None
    old = read_secrets(out / SECRETS_FILE) if (out / SECRETS_FILE).exists() else {}
    plan = None
    if bridge_hub is not None:
        plan = bridge_plan(venue, bridge_hub, leaves=leaves, port=leaf_port, events=events)
    bridges = tuple(plan.routes.values()) if plan is not None else ()
    policy = broker_policy(
        venue, out, passwords=old, events=events, port=port, bind=bind, tls=tls, bridges=bridges
    )
    if plan is not None:
        plan = bridge_plan(
            venue,
            bridge_hub or "",
            leaves=leaves,
            port=leaf_port,
            events=events,
            secured=True,
            folder=str(out.resolve()),
            passwords=policy.passwords,
        )
    try:
        _write(out / SECRETS_FILE, policy.secrets_text(), 0o600)
        for user in CONTROLLER_USERS:
            _write(out / f"{user}.password", policy.passwords[user] + "\n", 0o600)
        _write(out / PASSWD_FILE, policy.passwd, 0o640)
        _write(out / ACL_FILE, policy.acl, 0o640)
        _write(out / CONF_FILE, policy.conf, 0o644)
        for leaf, text in plan.confs.items() if plan is not None else ():
            _write(out / f"leaf-{leaf}.conf", text, 0o600)
    except OSError as exc:
        raise BrokerConfigError(
            f"cannot write into {out} ({exc.strerror or exc})", "choose another -o"
        ) from None
    return policy
