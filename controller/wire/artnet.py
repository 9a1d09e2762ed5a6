"""Art-Net 4 packets the controller sends: ArtDmx (OpOutput) and ArtSync, encoded from the spec.

Written from "Art-Net 4 Specification" (Artistic Licence, protocol version 14). Every Art-Net
packet starts with the same header: the 8-byte ID ``"Art-Net\\0"``, the OpCode as a
*little-endian* 16-bit word, then (for most packets) the protocol version as a *big-endian*
16-bit word (14). :func:`header` builds it, so other Art-Net packets (OpTimeCode, for timecode)
can share it.

ArtDmx (OpCode 0x5000) then carries: Sequence (1-255, wrapping past 0, which would mean "no
sequencing"), Physical (the input port, informational), SubUni (the low byte of the 15-bit
Port-Address: sub-net and universe), Net (its high 7 bits), the data length as a big-endian
word (an even number 2-512) and the channel data. ArtSync (OpCode 0x5200) is the header and two
zero Aux bytes: a node that has seen it outputs the ArtDmx frames it holds when the next one
arrives, so that several universes change on the same instant.

Pure: no clock, no socket.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "ARTNET_ID",
    "MAX_PORT_ADDRESS",
    "OP_DMX",
    "OP_SYNC",
    "PROTOCOL_VERSION",
    "encode_artdmx",
    "encode_artsync",
    "header",
    "next_sequence",
]

ARTNET_ID: Final = b"Art-Net\x00"
PROTOCOL_VERSION: Final = 14
OP_DMX: Final = 0x5000
OP_SYNC: Final = 0x5200
MAX_PORT_ADDRESS: Final = 0x7FFF  # 15 bits: Net (7) | Sub-Net (4) | Universe (4)


def header(opcode: int) -> bytes:
    """ID, OpCode (little-endian) and protocol version (big-endian): the first 12 bytes."""
    return ARTNET_ID + struct.pack("<H", opcode) + struct.pack(">H", PROTOCOL_VERSION)


_DMX_HEADER: Final = header(OP_DMX)
_SYNC: Final = header(OP_SYNC) + b"\x00\x00"


def next_sequence(seq: int) -> int:
    """The ArtDmx sequence after ``seq``: 1..255, then 1 again (0 disables sequencing)."""
    return seq % 255 + 1


def encode_artdmx(port_address: int, sequence: int, data: bytes | bytearray, physical: int = 0) -> bytes:
    """An ArtDmx packet for a 15-bit ``port_address`` (0-32767) and 2-512 bytes of channel data.

    Odd lengths are padded with one zero channel (the spec asks for an even length).
    """
    if not 0 <= port_address <= MAX_PORT_ADDRESS:
        raise ValueError(f"Art-Net port-address must be 0-{MAX_PORT_ADDRESS}, got {port_address}")
    if not 0 <= sequence <= 255:
        raise ValueError(f"ArtDmx sequence must be 0-255, got {sequence}")
    n = len(data)
    if not 1 <= n <= 512:
        raise ValueError(f"ArtDmx carries 2-512 channels, got {n}")
    body = bytes(data) + (b"\x00" if n % 2 else b"")
    return (
        _DMX_HEADER
        + bytes((sequence, physical & 0xFF, port_address & 0xFF, port_address >> 8))
        + struct.pack(">H", len(body))
        + body
    )


def encode_artsync() -> bytes:
    """An ArtSync packet (14 bytes)."""
    return _SYNC
