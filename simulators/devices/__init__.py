"""Simulated devices: sans-I/O cores (OSC display, app headset / WebXR client), their real-time
adapters (UDP, MQTT, WebSocket), the virtual-time driver and the whole-venue simulator.

Devices speak only the public wire protocols of ``docs/protocol.md``; nothing here imports the
controller.
"""

from simulators.devices.app import AppDevice, ClockModel, Ramp
from simulators.devices.messages import Datagram, DeviceCore, Publish
from simulators.devices.osc_display import OscDisplay
from simulators.devices.realtime import MqttApp, UdpDisplay, WsApp
from simulators.devices.venue import SimulatedVenue, SimulatorError
from simulators.devices.virtual import CONTROLLER, VirtualController, VirtualDriver

Headset = AppDevice  # an MQTT headset app: the app core over MQTT (MqttApp)
WebXRClient = AppDevice  # a WebXR client: the same core over a WebSocket (WsApp)

__all__ = [
    "CONTROLLER",
    "AppDevice",
    "ClockModel",
    "Datagram",
    "DeviceCore",
    "Headset",
    "MqttApp",
    "OscDisplay",
    "Publish",
    "Ramp",
    "SimulatedVenue",
    "SimulatorError",
    "UdpDisplay",
    "VirtualController",
    "VirtualDriver",
    "WebXRClient",
    "WsApp",
]
