"""Where the MQTT broker is and how to log in to it: the ``--broker`` URL and the TLS and
password settings a command line or a venue file gives (docs/security.md).

Theory of operation
-------------------
A broker URL is ``mqtt://[USER@]HOST[:PORT]`` (plain TCP, port 1883 by default) or
``mqtts://[USER@]HOST[:PORT]`` (TLS, port 8883 by default); ``tcp://`` and ``ssl://`` are
accepted as their synonyms, and a bare ``HOST[:PORT]`` is ``mqtt://``. The user name may sit in
the URL; the password never does: a URL is printed in logs, shown by ``ps`` and kept in shell
histories, so :func:`parse_broker_url` refuses one that holds a password and says where it goes
instead (a file, ``--broker-password-file``, or the environment, ``MADANG_BROKER_PASSWORD``).

:class:`BrokerLogin` carries what a client needs besides the address: the password (never in its
``repr``) and the TLS files (the CA that signs the broker's certificate, and the client's own
certificate and key when the broker asks for one). The controller resolves it from its options
(:func:`controller.mqtt.broker_login`); the simulated devices get one per device from the
secrets file of ``madang broker-config``.

This module is pure: it reads no file and no environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from venues.errors import MadangError

__all__ = [
    "PASSWORD_ENV",
    "BrokerAddress",
    "BrokerFiles",
    "BrokerLogin",
    "BrokerUrlError",
    "parse_broker_url",
]

PASSWORD_ENV = "MADANG_BROKER_PASSWORD"
"""The environment variable that may hold the broker password (``--broker-password-file`` wins)."""

_PLAIN = ("mqtt", "tcp")
_TLS = ("mqtts", "ssl")


class BrokerUrlError(MadangError, ValueError):
    """A broker URL that Madang cannot use: ``reason`` says why, the message what to write."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return f"broker URL {self.url!r}: {self.reason}; use mqtt://[USER@]HOST[:PORT] or mqtts://[USER@]HOST[:PORT]"


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """A parsed broker URL: ``host``, ``port``, whether to speak TLS, and the user name (if any)."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None

    @property
    def url(self) -> str:
        """The URL again, normalised (``mqtts://user@host:8883``); it never holds a password."""
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://[USER@]HOST[:PORT]`` or ``mqtts://...`` -> :class:`BrokerAddress`.

    Raises :class:`BrokerUrlError` for an unknown scheme, a missing host, a bad port, and a
    password in the URL (which belongs in a file or the environment, never on a command line).
    """
    text = url if "://" in url else f"mqtt://{url}"
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("ws", "wss"):
        raise BrokerUrlError(url, f"MQTT over WebSocket ({scheme}://) is not supported")
    if scheme not in _PLAIN + _TLS:
        raise BrokerUrlError(url, f"unknown scheme {parts.scheme!r}")
    if parts.password is not None:
        raise BrokerUrlError(
            url.replace(f":{parts.password}@", ":***@"),
            "it holds a password, which would show in logs and process lists; give the password "
            f"with --broker-password-file FILE or in the environment variable {PASSWORD_ENV}",
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise BrokerUrlError(url, "the port is not a number in 1-65535") from exc
    if not parts.hostname:
        raise BrokerUrlError(url, "there is no host name")
    tls = scheme in _TLS
    username = unquote(parts.username) if parts.username else None
    return BrokerAddress(parts.hostname, port or (8883 if tls else 1883), tls, username)


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """The broker's login files as a venue file or the command line names them (paths, not
    contents): ``ca`` (the CA certificate that signed the broker's), ``cert`` and ``key`` (this
    client's certificate and private key, for a broker that requires one), ``password_file``."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    password_file: str | None = None

    def merged(self, over: BrokerFiles) -> BrokerFiles:
        """These files with every one that ``over`` names replacing ours (the command line over
        the venue file)."""
        return BrokerFiles(
            over.ca or self.ca,
            over.cert or self.cert,
            over.key or self.key,
            over.password_file or self.password_file,
        )


@dataclass(frozen=True, slots=True)
class BrokerLogin:
    """What a client presents to the broker besides its address: the user name and password (the
    password is left out of ``repr`` and so of any log line or traceback that prints this), and
    the TLS files: ``ca`` to verify the broker, ``cert``/``key`` for a client certificate."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    def with_user(self, username: str, password: str | None) -> BrokerLogin:
        """The same TLS files with another identity (a simulated device's)."""
        return BrokerLogin(username, password, self.ca, self.cert, self.key)
