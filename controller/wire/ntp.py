"""NTP timestamps (RFC 5905 section 6), as OSC 1.0 bundle timetags carry them.

A timestamp is 64-bit fixed point: seconds since 1900-01-01 in the high 32 bits, the binary
fraction of a second in the low 32. Inside Madang an instant is integer nanoseconds since the Unix
epoch; these two functions are the only conversion, at the edge.
"""

from __future__ import annotations

__all__ = ["NTP_IMMEDIATELY", "NTP_UNIX_DELTA_S", "ns_to_ntp", "ntp_to_ns"]

NS_PER_S = 1_000_000_000
#: Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01), RFC 868 / RFC 5905.
NTP_UNIX_DELTA_S = 2_208_988_800
_NTP_UNIX_DELTA_NS = NTP_UNIX_DELTA_S * NS_PER_S
_ERA_NS = (1 << 32) * NS_PER_S
_U64 = (1 << 64) - 1
#: The OSC 1.0 timetag that means "immediately" (63 zero bits then a one).
NTP_IMMEDIATELY = 1


def ns_to_ntp(ns_since_unix: int) -> int:
    """Nanoseconds since the Unix epoch as a 64-bit NTP timestamp (RFC 5905), rounded to nearest.

    The fraction is rounded to the nearest 2**-32 s (about 0.23 ns, ties away from zero), so
    :func:`ntp_to_ns` gives back exactly the same nanosecond. Instants from 2036-02-07T06:28:16Z
    on fall in NTP era 1 and wrap modulo 2**64, as RFC 5905 prescribes. Raises ``ValueError`` for
    instants before 1900.
    """
    total = ns_since_unix + _NTP_UNIX_DELTA_NS
    if total < 0:
        raise ValueError(f"{ns_since_unix} ns since the Unix epoch is before 1900: no NTP timestamp for it")
    q, r = divmod(total << 32, NS_PER_S)
    if 2 * r >= NS_PER_S:
        q += 1
    return q & _U64


def ntp_to_ns(ntp: int) -> int:
    """A 64-bit NTP timestamp as nanoseconds since the Unix epoch, rounded to nearest.

    The era is resolved as RFC 4330 section 3 suggests: a timestamp whose most significant bit is
    clear is taken to be in era 1 (2036-2104), otherwise era 0 (1968-2036). The OSC timetag
    ``1`` ("immediately", :data:`NTP_IMMEDIATELY`) is not an instant: check for it first.
    """
    if not 0 <= ntp <= _U64:
        raise ValueError(f"NTP timestamp {ntp} does not fit in 64 unsigned bits")
    ns = ((ntp * NS_PER_S) + (1 << 31)) >> 32
    if not ntp >> 63:
        ns += _ERA_NS
    return ns - _NTP_UNIX_DELTA_NS
