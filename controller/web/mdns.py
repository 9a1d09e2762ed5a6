"""DNS-SD over multicast DNS: tell the venue's network where the OSCQuery server and the control
port are, so Chataigne, TouchOSC or Open Stage Control list Madang without typing an address.

Two services (RFC 6763 service types, as the OSCQuery proposal names them):

- ``_oscjson._tcp.local.``: the OSCQuery server (HTTP + WebSocket), its TCP port;
- ``_osc._udp.local.``: the control port, its UDP port (the classic OSC advertisement).

Both under one instance name (``Madang <show>``, made unique by zeroconf if a second controller on
the network uses it). Only addresses a client could use are announced: a control port that admits
loopback only (the default) is announced on loopback, where only this machine listens; one open to
a network on every interface (:func:`interfaces_for`). ``zeroconf`` owns the multicast socket and
its own thread; this module only registers and unregisters.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from ipaddress import ip_network
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncZeroconf

__all__ = ["OSCQUERY_SERVICE", "OSC_SERVICE", "Advertiser", "MdnsError", "interfaces_for"]

log = logging.getLogger(__name__)

OSCQUERY_SERVICE = "_oscjson._tcp.local."
OSC_SERVICE = "_osc._udp.local."
_LOOPBACK = (ip_network("127.0.0.0/8"), ip_network("::1/128"))


class MdnsError(OSError):
    """The advertisement could not be made (no multicast on this network); the server still runs."""


def interfaces_for(allow: Sequence[str]) -> list[str] | None:
    """Where to announce for the control port's allowlist ``allow``: ``["127.0.0.1"]`` when it
    admits loopback only, None (every interface) otherwise."""
    for a in allow:
        net = ip_network(a, strict=False)
        if not any(net.version == lo.version and net.subnet_of(lo) for lo in _LOOPBACK):  # type: ignore[arg-type]
            return None
    return ["127.0.0.1"]


def _label(text: str) -> str:
    """A DNS-SD instance label: at most 63 bytes of UTF-8, no dots (they separate labels)."""
    out = text.replace(".", "-").strip() or "Madang"
    while len(out.encode()) > 63:
        out = out[:-1]
    return out


class Advertiser:
    """Registers the two services; ``await start()``, ``await close()`` (both idempotent)."""

    def __init__(
        self, name: str, *, oscquery_port: int, osc_port: int, interfaces: list[str] | None
    ) -> None:
        self.name = _label(name)
        self.oscquery_port = oscquery_port
        self.osc_port = osc_port
        self.interfaces = interfaces
        self._zc: AsyncZeroconf | None = None
        self._infos: list[object] = []

    async def start(self) -> None:
        """Announce (raises :class:`MdnsError` when multicast DNS cannot be used here)."""
        import ifaddr
        from zeroconf import Error as ZeroconfError
        from zeroconf import InterfaceChoice, ServiceInfo
        from zeroconf.asyncio import AsyncZeroconf

        host = socket.gethostname().split(".")[0] or "madang"
        # The A records: the announced interfaces' addresses (a service without them resolves to
        # nowhere); every IPv4 address of the machine when announced everywhere.
        ips = self.interfaces
        if ips is None:
            ips = [str(ip.ip) for a in ifaddr.get_adapters() for ip in a.ips if ip.is_IPv4]
        addresses = [socket.inet_aton(a) for a in ips]
        try:
            zc = AsyncZeroconf(interfaces=self.interfaces or InterfaceChoice.All)
        except OSError as err:
            raise MdnsError(f"multicast DNS is not available here: {err}") from err
        self._zc = zc
        props = {"txtvers": "1", "app": "madang"}
        for service, port in ((OSCQUERY_SERVICE, self.oscquery_port), (OSC_SERVICE, self.osc_port)):
            info = ServiceInfo(
                service,
                f"{self.name}.{service}",
                port=port,
                properties=props,
                server=f"{_label(host)}.local.",
                addresses=addresses,
            )
            try:
                await zc.async_register_service(info, allow_name_change=True)
            except (OSError, ZeroconfError) as err:
                await self.close()
                raise MdnsError(f"could not announce {service}: {err}") from err
            self._infos.append(info)
        log.info(
            "announced over mDNS",
            extra={"name": self.name, "oscquery_port": self.oscquery_port, "osc_port": self.osc_port},
        )

    async def close(self) -> None:
        """Withdraw the services (a goodbye packet) and close the socket."""
        zc, self._zc = self._zc, None
        if zc is None:
            return
        try:
            await zc.async_unregister_all_services()
        finally:
            await zc.async_close()
        self._infos.clear()
