"""The wire: every byte format the controller speaks with devices, in one place.

- :mod:`controller.wire.protocol`: the messages of docs/protocol.md (ping, pong, status, fired,
  clock, cue, state), encoded and decoded, each command stamped with the controller's term;
- :mod:`controller.wire.ntp`: NTP timestamps (RFC 5905), as OSC bundle timetags carry them.

The MQTT topic and OSC address rules, with the one topic matcher, are in :mod:`venues.names`,
the lowest layer of all, so that the show compiler and the simulated broker share them too.

It sits at the bottom of ``controller/`` (adapters above the core above sync above the wire): it
reads no clock, opens no socket and imports nothing above it.
"""

from controller.wire.ntp import NTP_IMMEDIATELY, ns_to_ntp, ntp_to_ns
from controller.wire.protocol import (
    CUE_TOPIC,
    DEVICE_REPORTS,
    MAX_JSON_DEPTH,
    MAX_PAYLOAD,
    MAX_TERM,
    OFFLINE_STATE,
    OSC_FIRED,
    OSC_KEY,
    OSC_PING,
    OSC_PONG,
    STATE_TOPIC,
    ControllerState,
    Fired,
    Malformed,
    Pong,
    Report,
    Status,
    check_term,
    clock_json,
    controller_state_json,
    cue_json,
    decode_controller_state,
    decode_osc_report,
    decode_report,
    json_depth_ok,
    json_value,
    key_osc,
    offline_state_json,
    param_json,
    ping_json,
    ping_osc,
)

__all__ = [
    "CUE_TOPIC",
    "DEVICE_REPORTS",
    "MAX_JSON_DEPTH",
    "MAX_PAYLOAD",
    "MAX_TERM",
    "NTP_IMMEDIATELY",
    "OFFLINE_STATE",
    "OSC_FIRED",
    "OSC_KEY",
    "OSC_PING",
    "OSC_PONG",
    "STATE_TOPIC",
    "ControllerState",
    "Fired",
    "Malformed",
    "Pong",
    "Report",
    "Status",
    "check_term",
    "clock_json",
    "controller_state_json",
    "cue_json",
    "decode_controller_state",
    "decode_osc_report",
    "decode_report",
    "json_depth_ok",
    "json_value",
    "key_osc",
    "ns_to_ntp",
    "ntp_to_ns",
    "offline_state_json",
    "param_json",
    "ping_json",
    "ping_osc",
]
