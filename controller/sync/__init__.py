"""Clock synchronisation: ping samples, the batch estimator, per-device clock models.

Pure maths, no I/O and no clock reads (``now`` is passed in). Call :func:`warm` once at start-up,
before a show is armed: it compiles the Numba kernels (or loads them from Numba's on-disk cache),
so that no JIT pause can ever land on a cue.

Typical use by the runtime::

    models, planner = ClockModels(), PingPlanner()
    planner.join(models.add_device("xr-0001"), now)
    rows, seqs = planner.due_at(now)                    # send a ping to each, t1 = show clock
    if planner.receive_pong(row, seq, t4):              # on each pong
        models.add_sample(row, t1, t2, t3, t4)
    models.estimate(now)                                # after a batch of pongs
    models.clock_message(row); models.lead_ns(row); models.to_device_many(rows, instants)
"""

from controller.sync.clockmodel import (
    ClockModel,
    ClockModels,
    NoClockModelError,
    PingPlanner,
    UnknownDeviceError,
    material_change,
)
from controller.sync.estimator import (
    Estimate,
    EstimateArrays,
    estimate_batch,
    estimate_one_reference,
    estimate_samples,
    naive_offset_ns,
    warm,
)
from controller.sync.samples import PingSamples, SampleError

__all__ = [
    "ClockModel",
    "ClockModels",
    "Estimate",
    "EstimateArrays",
    "NoClockModelError",
    "PingPlanner",
    "PingSamples",
    "SampleError",
    "UnknownDeviceError",
    "estimate_batch",
    "estimate_one_reference",
    "estimate_samples",
    "material_change",
    "naive_offset_ns",
    "warm",
]
