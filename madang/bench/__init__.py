"""Every benchmark, one module each; ``madang bench NAME --json`` prints its figures (:mod:`madang.cli`).

* :mod:`~madang.bench.lateness`: emission lateness of the firing edge vs ``loop.call_at``
* :mod:`~madang.bench.osc`: OSC messages encoded and sent per second vs python-osc
* :mod:`~madang.bench.estimator`: the batch clock estimator, Numba kernel vs its reference
* :mod:`~madang.bench.sync_tick`: CPU per ping of the controller's clock-sync service
* :mod:`~madang.bench.sync`: fire-instant spread across simulated headsets, virtual or real time
* :mod:`~madang.bench.mqtt`: MQTT publish throughput and round trip, ``TCP_NODELAY`` on vs off
* :mod:`~madang.bench.check`: time to check a generated show of N cues
* :mod:`~madang.bench.devices`: the simulators' own speed (``madang bench devices vtime|virtual|mqtt``)
* :mod:`~madang.bench.console`: the browser console at 1,200 devices: bytes, CPU, the page's render
* :mod:`~madang.bench.timecode`: chasing Art-Net TimeCode on loopback: lock, clock error, a dropout
* :mod:`~madang.bench.failover`: ``kill -9`` the live controller mid-show, N times: takeover time,
  lost, missed and duplicated cues, spread (real processes; its venue is in ``data/``)

Each module has a function returning the figures as a dict (``run(...)``; ``bench_check`` in
:mod:`~madang.bench.check`); the CLI prints them, and all but ``sync`` and ``failover`` also run as
``python3 -m madang.bench.NAME``. Figures and the commands that produced them are recorded in
``docs/benchmarks.md``.
"""
