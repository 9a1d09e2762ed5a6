"""Per-leaf bridge topics for a test topology: each leaf carries only its own devices' topics.

:func:`simulators.topology.start_topology` bridges the whole Madang tree by direction
(:data:`~simulators.topology.BRIDGE_TOPICS`): every device's pings and clock models reach every
leaf. A venue's generated leaf configuration (``madang broker-config --bridge``,
:mod:`controller.bridgeconf`) names each leaf's devices instead. :func:`narrow_topics` gives a
test topology the same lines, for the devices that :meth:`Topology.device_brokers` puts on each
leaf (zones in order of first appearance, round-robin over the leaves), so the tests and the fan-out
bench measure the layout a venue would run. It lives in the harness because it joins both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from controller.bridgeconf import leaf_routes
from simulators.topology import _PROBE_ROOT, BridgeTopic
from venues.model import Device

__all__ = ["leaf_devices", "narrow_topics"]

# Not in a venue's routes, but carried by every test bridge: the topology's readiness probe
# (hub -> leaf) and the audience's events (leaf -> hub).
_ALWAYS = (BridgeTopic(_PROBE_ROOT + "/#", "in", 0), BridgeTopic("madang/audience/#", "out", 1))


def leaf_devices(devices: Iterable[Device], leaves: int) -> list[list[Device]]:
    """The MQTT devices on each of ``leaves`` leaves, as ``Topology.device_brokers(by="zone")``
    assigns them: the zones in order of first appearance, round-robin over the leaves."""
    out: list[list[Device]] = [[] for _ in range(leaves)]
    zones: dict[str, int] = {}
    for d in devices:
        k = zones.setdefault(d.zone, len(zones))
        if d.mqtt is not None:
            out[k % leaves].append(d)
    return out


def narrow_topics(
    devices: Sequence[Device], leaves: int, *, events: Sequence[str] = ()
) -> Callable[[int], tuple[BridgeTopic, ...]]:
    """``start_topology(..., topics=narrow_topics(venue.devices, 3))``: leaf ``i``'s bridge lines
    (:func:`controller.bridgeconf.leaf_routes` of its devices, plus the probe and audience lines)."""
    per_leaf = leaf_devices(devices, leaves)

    def topics(i: int) -> tuple[BridgeTopic, ...]:
        r = leaf_routes(f"leaf-{i}", per_leaf[i], events=events)
        lines = [BridgeTopic(t, "in", q) for t, q in r.inbound]
        lines += [BridgeTopic(t, "out", q) for t, q in r.outbound]
        return (*lines, *_ALWAYS)

    return topics
