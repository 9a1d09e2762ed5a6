"""The top floor: the ``madang`` command and the benchmarks.

Everything here stands on the four packages below and wires them together: the command line
(:mod:`madang.cli`) compiles shows with :mod:`cues`, plays them with :mod:`controller`, and
brings venues to life with :mod:`simulators`; the benchmarks (:mod:`madang.bench`) measure all
of them. Nothing imports this package (an import-linter contract in ``pyproject.toml``), so the
layers below stay free of one another: the controller never depends on the simulators.
"""
