"""The controller on the web: one HTTP + WebSocket server (:mod:`controller.web.server`), the
WebSocket hub that makes a device on a socket the equal of an MQTT device
(:mod:`controller.web.hub`), the audience pool's desk (:mod:`controller.web.audience`) and the
front that puts them together for the runtime (:mod:`controller.web.front`).

An adapter: it moves bytes between sockets and the core; every decision about the show stays in
:class:`~controller.core.ControllerCore`.
"""

from controller.web.audience import AudienceDesk, Slot
from controller.web.front import STATIC, WELCOME_TOPIC, WebFront
from controller.web.hub import HubStats, Peer, RateLimit, Session, WsHub, device_topics, envelope, text_frame
from controller.web.server import Route, SocketHandler, WebServer

__all__ = [
    "STATIC",
    "WELCOME_TOPIC",
    "AudienceDesk",
    "HubStats",
    "Peer",
    "RateLimit",
    "Route",
    "Session",
    "Slot",
    "SocketHandler",
    "WebFront",
    "WebServer",
    "WsHub",
    "device_topics",
    "envelope",
    "text_frame",
]
