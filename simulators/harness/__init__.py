"""The integration harness: the real controller against a simulated venue, in real or virtual time.

- :mod:`simulators.harness.real`: :func:`play_real`, the asyncio runtime over real sockets and a
  real broker;
- :mod:`simulators.harness.virtual`: :func:`play_virtual`, the same core and player in seeded
  virtual time;
- :mod:`simulators.harness.shows`: the shipped shows and smaller subsets of them.

Only this package joins the two sides; simulated devices never import the controller. The
``madang`` command and the benchmarks that drive it live on the top floor (:mod:`madang`).
"""

from simulators.harness.real import FaultHook, play_real, show_reached
from simulators.harness.shows import expected_fires, limit_headsets, shipped_show, subset
from simulators.harness.virtual import VirtualResult, play_virtual

__all__ = [
    "FaultHook",
    "VirtualResult",
    "expected_fires",
    "limit_headsets",
    "play_real",
    "play_virtual",
    "shipped_show",
    "show_reached",
    "subset",
]
