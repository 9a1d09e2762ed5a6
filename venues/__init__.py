"""Venue files: devices, groups, zones, endpoints and capabilities; and the project's error tree.

Public API (what ``cues``, ``controller`` and ``simulators`` call):

- :func:`load_yaml` / :func:`parse_yaml` -> :class:`Doc`: positioned YAML 1.2 loading.
- :func:`findings_from_pydantic`: pydantic errors -> positioned, artist-readable findings.
- :func:`parse_duration_ns`: venue-level durations (``250ms``, ``2s``) in integer ns.
- :func:`parse_selector` / :func:`resolve`: target expressions -> device ids.
- :func:`load_venue` / :func:`venue_from_doc` / :func:`find_venue` / :func:`venue_json_schema`;
  :func:`venue_yaml` writes a venue back out as a venue file (its inverse).
- :func:`topic_faults` / :func:`filter_faults` / :func:`osc_address_faults` / :func:`osc_pattern_faults`
  (the MQTT 3.1.1 and OSC 1.0 name rules, as :class:`venues.names.Fault` values) and the matchers
  :func:`topic_matches` / :func:`osc_address_matches`: :mod:`venues.names`.
"""

from venues.errors import Finding, MadangError, Mark, SourceError, SourceErrors, VenueFileError
from venues.loader import expand_ids, find_venue, load_venue, venue_from_doc
from venues.model import Device, MqttEndpoint, OscEndpoint, Sync, Venue, WsEndpoint
from venues.names import (
    filter_faults,
    osc_address_faults,
    osc_address_matches,
    osc_pattern_faults,
    topic_faults,
    topic_matches,
)
from venues.schema import venue_json_schema
from venues.selector import Selector, SelectorIndex, parse_selector, resolve
from venues.source import Doc, load_yaml, parse_yaml
from venues.units import format_duration_ns, parse_duration_ns
from venues.validation import findings_from_pydantic
from venues.writer import venue_yaml

__all__ = [
    "Device",
    "Doc",
    "Finding",
    "MadangError",
    "Mark",
    "MqttEndpoint",
    "OscEndpoint",
    "Selector",
    "SelectorIndex",
    "SourceError",
    "SourceErrors",
    "Sync",
    "Venue",
    "VenueFileError",
    "WsEndpoint",
    "expand_ids",
    "filter_faults",
    "find_venue",
    "findings_from_pydantic",
    "format_duration_ns",
    "load_venue",
    "load_yaml",
    "osc_address_faults",
    "osc_address_matches",
    "osc_pattern_faults",
    "parse_duration_ns",
    "parse_selector",
    "parse_yaml",
    "resolve",
    "topic_faults",
    "topic_matches",
    "venue_from_doc",
    "venue_json_schema",
    "venue_yaml",
]
