"""A small Art-Net receiver's parser, written from the Art-Net 4 specification for the tests.

Independent of :mod:`controller.wire.artnet` on purpose: it reads fields at the offsets the
spec's ArtDmx and ArtSync tables give, and checks what a node would check.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArtDmx:
    sequence: int
    physical: int
    port_address: int  # Net << 8 | SubUni (15 bits)
    data: bytes


@dataclass(frozen=True)
class ArtSync:
    pass


def parse(packet: bytes) -> ArtDmx | ArtSync:
    """Parse an ArtDmx or ArtSync packet; ``ValueError`` for anything a node would reject."""
    if len(packet) < 12 or packet[:8] != b"Art-Net\x00":
        raise ValueError("not Art-Net")
    opcode = packet[8] | packet[9] << 8  # OpCode: low byte first
    version = packet[10] << 8 | packet[11]  # ProtVerHi, ProtVerLo
    if version < 14:
        raise ValueError(f"protocol version {version}")
    if opcode == 0x5200:
        if len(packet) < 14:
            raise ValueError("short ArtSync")
        return ArtSync()
    if opcode != 0x5000:
        raise ValueError(f"opcode {opcode:#06x}")
    if len(packet) < 18:
        raise ValueError("short ArtDmx")
    sequence, physical, sub_uni, net = packet[12], packet[13], packet[14], packet[15]
    length = packet[16] << 8 | packet[17]  # LengthHi, Length
    if length % 2 or not 2 <= length <= 512 or len(packet) < 18 + length:
        raise ValueError(f"bad length {length}")
    return ArtDmx(sequence, physical, (net & 0x7F) << 8 | sub_uni, packet[18 : 18 + length])
