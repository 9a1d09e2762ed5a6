"""Benchmarks that print JSON: ``madang bench lateness`` and ``madang bench osc`` (wired by the CLI).

Each module has ``run(...) -> dict`` returning the figures; the CLI prints them. Figures and the
commands that produced them are recorded in ``docs/benchmarks.md``.
"""
