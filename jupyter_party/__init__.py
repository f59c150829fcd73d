"""jupyter-party: PartyKit's programming model, hosted by your Jupyter server."""

from .runtime.connection import Connection
from .runtime.http import Request, Response
from .runtime.room import Lobby, Room
from .runtime.server import ConnectionContext, Server

__version__ = "0.1.0"

__all__ = ["Connection", "ConnectionContext", "Lobby", "Request", "Response", "Room", "Server"]


def _jupyter_server_extension_points() -> list[dict]:
    from .extension import PartyApp

    return [{"module": "jupyter_party", "app": PartyApp}]
