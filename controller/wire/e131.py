"""sACN (ANSI E1.31-2018) packets the controller sends: data, universe sync, stream termination.

Written from ANSI E1.31-2018 "Lightweight streaming protocol for transport of DMX512 using ACN".
A packet is three nested PDUs, each opening with a 16-bit "flags and length" word (flags 0x7,
length of that PDU from the word on):

* Root layer: preamble size 0x0010, post-amble 0, the 12-byte ACN packet identifier, flags and
  length, the vector (VECTOR_ROOT_E131_DATA 0x4, or VECTOR_ROOT_E131_EXTENDED 0x8 for sync),
  and the source's 16-byte CID (a UUID that stays the same for the life of the source).
* Framing layer (data): flags and length, vector VECTOR_E131_DATA_PACKET (0x2), the 64-byte
  UTF-8 source name (null padded), priority (0-200), the synchronisation address (the universe
  whose sync packets release this data, 0 = none), the sequence number (per universe), options
  (bit 6: stream terminated, bit 5: force synchronisation) and the universe (1-63999).
  Framing layer (sync): flags and length, vector VECTOR_E131_EXTENDED_SYNCHRONIZATION (0x1),
  its own sequence number, the sync address and two reserved bytes.
* DMP layer (data only): flags and length, vector 0x02, address and data type 0xA1, first
  property address 0, increment 1, the property count (1 + slots) and the values: the DMX start
  code (0 for dimmer data) then up to 512 slots.

Data packets are multicast to 239.255.<hi>.<lo> of their universe or unicast; port 5568.
Pure: no clock, no socket.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "ACN_PACKET_ID",
    "MAX_UNIVERSE",
    "OPT_FORCE_SYNC",
    "OPT_TERMINATED",
    "encode_data",
    "encode_sync",
    "multicast_group",
]

ACN_PACKET_ID: Final = b"ASC-E1.17\x00\x00\x00"
MAX_UNIVERSE: Final = 63999
OPT_TERMINATED: Final = 0x40
OPT_FORCE_SYNC: Final = 0x20
_VECTOR_ROOT_DATA: Final = 0x00000004
_VECTOR_ROOT_EXTENDED: Final = 0x00000008
_VECTOR_FRAMING_DATA: Final = 0x00000002
_VECTOR_FRAMING_SYNC: Final = 0x00000001
_DATA_HEADER: Final = 126  # bytes before the first slot
_SYNC_LENGTH: Final = 49


def _flags_len(n: int) -> bytes:
    return struct.pack(">H", 0x7000 | n)


def _root(total: int, vector: int, cid: bytes) -> bytes:
    return (
        struct.pack(">HH", 0x0010, 0)
        + ACN_PACKET_ID
        + _flags_len(total - 16)
        + struct.pack(">I", vector)
        + cid
    )


def multicast_group(universe: int) -> str:
    """The IPv4 multicast group of a universe: 239.255.<hi byte>.<lo byte>."""
    return f"239.255.{universe >> 8}.{universe & 0xFF}"


def _check(cid: bytes, universe: int, sequence: int) -> None:
    if len(cid) != 16:
        raise ValueError(f"an sACN CID is 16 bytes, got {len(cid)}")
    if not 1 <= universe <= MAX_UNIVERSE:
        raise ValueError(f"sACN universe must be 1-{MAX_UNIVERSE}, got {universe}")
    if not 0 <= sequence <= 255:
        raise ValueError(f"sACN sequence must be 0-255, got {sequence}")


def encode_data(
    cid: bytes,
    source_name: bytes,
    universe: int,
    sequence: int,
    data: bytes | bytearray,
    *,
    priority: int = 100,
    sync_universe: int = 0,
    options: int = 0,
    start_code: int = 0,
) -> bytes:
    """A data packet: ``data`` (up to 512 slots) on ``universe`` from source ``cid``.

    ``source_name`` is UTF-8, at most 63 bytes (it is null-terminated in its 64-byte field).
    """
    _check(cid, universe, sequence)
    if not 0 <= priority <= 200:
        raise ValueError(f"sACN priority must be 0-200, got {priority}")
    if len(source_name) > 63:
        raise ValueError(f"sACN source name is at most 63 bytes, got {len(source_name)}")
    if len(data) > 512:
        raise ValueError(f"a universe has at most 512 slots, got {len(data)}")
    total = _DATA_HEADER + len(data)
    return (
        _root(total, _VECTOR_ROOT_DATA, cid)
        + _flags_len(total - 38)
        + struct.pack(">I", _VECTOR_FRAMING_DATA)
        + source_name.ljust(64, b"\x00")
        + struct.pack(">BHBBH", priority, sync_universe, sequence, options, universe)
        + _flags_len(total - 115)
        + struct.pack(">BBHHH", 0x02, 0xA1, 0, 1, len(data) + 1)
        + bytes((start_code,))
        + bytes(data)
    )


def encode_sync(cid: bytes, sync_universe: int, sequence: int) -> bytes:
    """A universe synchronisation packet (49 bytes) on ``sync_universe``."""
    _check(cid, sync_universe, sequence)
    return (
        _root(_SYNC_LENGTH, _VECTOR_ROOT_EXTENDED, cid)
        + _flags_len(_SYNC_LENGTH - 38)
        + struct.pack(">I", _VECTOR_FRAMING_SYNC)
        + struct.pack(">BHH", sequence, sync_universe, 0)
    )
