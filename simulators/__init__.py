"""Simulated displays, headsets, networks and clocks, and the integration harness."""
