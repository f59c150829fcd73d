"""jupyter-party: PartyKit's programming model, hosted by your Jupyter server."""

from .client import doc, share_link
from .runtime.connection import Connection
from .runtime.http import Request, Response
from .runtime.room import Lobby, Room
from .runtime.server import ConnectionContext, Server
from .runtime.yserver import YServer

__version__ = "0.1.0"

__all__ = [
    "Connection",
    "ConnectionContext",
    "Lobby",
    "Request",
    "Response",
    "Room",
    "Server",
    "YServer",
    "doc",
    "share_link",
]


def _jupyter_server_extension_points() -> list[dict]:
    from .extension import PartyApp

    return [{"module": "jupyter_party", "app": PartyApp}]
