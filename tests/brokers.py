"""Helpers for the tests of an ACL'd, TLS broker: certificates made by the test (``cryptography``),
a venue's generated broker config running in a real Mosquitto, and a plain paho client that
reports what the broker did (CONNACK code, messages received).

Nothing here stands in for the broker: every check goes through a real Mosquitto and real sockets.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from controller.brokerconf import BrokerTlsFiles, write_broker_config
from simulators.broker import BrokerNotFound, MosquittoBroker
from venues.model import Venue

WAIT_S = 15.0


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Pki:
    """A CA and certificates it signed, as PEM files: the broker's (for 127.0.0.1 and localhost)
    and a client's; ``other_ca`` signed nothing here (a client trusting it must refuse the broker)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def make_pki(folder: Path) -> Pki:
    """Generate a throwaway CA, a server certificate and a client certificate into ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    folder.mkdir(parents=True, exist_ok=True)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(k: ec.EllipticCurvePrivateKey, path: Path) -> Path:
        path.write_bytes(
            k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
        return path

    def write_cert(c: x509.Certificate, path: Path) -> Path:
        path.write_bytes(c.public_bytes(serialization.Encoding.PEM))
        return path

    def ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        k = key()
        c = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
            .sign(k, hashes.SHA256())
        )
        return k, c

    def leaf(
        cn: str, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, server: bool
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        k = key()
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca_cert.subject)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if server:
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return k, b.sign(ca_key, hashes.SHA256())

    ca_key, ca_cert = ca("Madang test CA")
    _, other_cert = ca("Someone else's CA")
    s_key, s_cert = leaf("madang-broker", ca_key, ca_cert, server=True)
    c_key, c_cert = leaf("madang-controller", ca_key, ca_cert, server=False)
    return Pki(
        ca=write_cert(ca_cert, folder / "ca.pem"),
        server_cert=write_cert(s_cert, folder / "broker.pem"),
        server_key=write_key(s_key, folder / "broker.key"),
        client_cert=write_cert(c_cert, folder / "controller.pem"),
        client_key=write_key(c_key, folder / "controller.key"),
        other_ca=write_cert(other_cert, folder / "other-ca.pem"),
    )


def venue_broker(
    venue: Venue,
    folder: Path,
    *,
    pki: Pki | None = None,
    require_certificate: bool = False,
    events: tuple[str, ...] = (),
) -> Iterator[MosquittoBroker]:
    """Generate ``venue``'s broker config into ``folder`` (TLS with ``pki``) on a free loopback
    port and run it in a real Mosquitto; yields the running broker, stops it after."""
    tls = None
    if pki is not None:
        tls = BrokerTlsFiles(str(pki.server_cert), str(pki.server_key), str(pki.ca), require_certificate)
    port = free_port()
    write_broker_config(venue, folder, events=events, port=port, bind="127.0.0.1", tls=tls)
    broker = MosquittoBroker(config=folder / "mosquitto.conf", port=port, tls=pki is not None)
    try:
        broker.start()
    except BrokerNotFound as exc:
        pytest.skip(str(exc))
    try:
        yield broker
    finally:
        broker.close()


class Client:
    """A paho MQTT 3.1.1 client on its own network thread: :meth:`connect` returns the CONNACK
    code (0 accepted, 4 bad user name or password, 5 not authorised) or raises for a TLS
    failure; :attr:`got` is every ``(topic, payload, retain)`` received, in order."""

    def __init__(self, port: int, *, client_id: str = "", tls: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.got: list[tuple[str, bytes, bool]] = []
        self._c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
        self._connack = threading.Event()
        self._subacked = threading.Event()
        self._lock = threading.Condition()
        self.rc: int | None = None
        self.disconnected = threading.Event()
        if tls is not None:
            self._c.tls_set_context(tls)
        self._c.on_connect = self._on_connect
        self._c.on_message = self._on_message
        self._c.on_subscribe = lambda *a: self._subacked.set()
        self._c.on_disconnect = lambda *a: self.disconnected.set()

    def _on_connect(self, client: object, userdata: object, flags: object, rc: object, props: object) -> None:
        value = getattr(rc, "value", rc)
        # paho 2 reports MQTT 3.1.1 refusals as MQTT 5 reason codes: 134 bad login, 135 not authorised.
        self.rc = {134: 4, 135: 5}.get(int(value), int(value))  # type: ignore[call-overload]
        self._connack.set()

    def _on_message(self, client: object, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.got.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._lock.notify_all()

    def connect(self, user: str | None = None, password: str | None = None) -> int:
        """Connect and wait for the CONNACK; returns its code."""
        if user is not None:
            self._c.username_pw_set(user, password)
        self._c.connect("127.0.0.1", self.port, keepalive=30)
        self._c.loop_start()
        if not self._connack.wait(WAIT_S):
            raise AssertionError("no CONNACK")
        assert self.rc is not None
        return self.rc

    def subscribe(self, topic_filter: str) -> None:
        """Subscribe (QoS 1) and wait for the SUBACK."""
        self._subacked.clear()
        self._c.subscribe(topic_filter, qos=1)
        if not self._subacked.wait(WAIT_S):
            raise AssertionError(f"no SUBACK for {topic_filter}")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1 and wait until the broker acknowledged it (a denied publish is
        acknowledged too, and dropped: MQTT 3.1.1 has no way to refuse it)."""
        info = self._c.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT_S)

    def wait_for(self, topic: str, payload: bytes) -> list[tuple[str, bytes, bool]]:
        """Wait until ``(topic, payload)`` arrived; returns everything received before it."""
        with self._lock:
            ok = self._lock.wait_for(
                lambda: any(t == topic and p == payload for t, p, _ in self.got), timeout=WAIT_S
            )
            if not ok:
                raise AssertionError(f"{topic} {payload!r} never arrived; got {self.got}")
            i = next(i for i, (t, p, _) in enumerate(self.got) if t == topic and p == payload)
            return list(self.got[:i])

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._c.disconnect()
        self._c.loop_stop()
