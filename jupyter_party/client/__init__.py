"""Notebook-side clients of jupyter-party rooms."""

from ._socket import RoomRefused
from .admin import AdminError, parties, rooms, undeploy
from .deploy import DeployError, DeployResult, deploy
from .discovery import ServerInfo, ServerNotFound, find_server
from .hosting import HostedParty, HostError, host
from .logs import logs
from .room import BlockingRoomClient, RoomClient, RoomResponse, connect, connect_blocking
from .share import LocalShareLinkWarning, ShareLinkError, share_link
from .ydoc import Awareness, DocumentRecreated, RoomDoc, doc, doc_blocking

__all__ = [
    "AdminError",
    "Awareness",
    "BlockingRoomClient",
    "DeployError",
    "DeployResult",
    "DocumentRecreated",
    "HostError",
    "HostedParty",
    "LocalShareLinkWarning",
    "RoomClient",
    "RoomDoc",
    "RoomRefused",
    "RoomResponse",
    "ServerInfo",
    "ServerNotFound",
    "ShareLinkError",
    "connect",
    "connect_blocking",
    "deploy",
    "doc",
    "doc_blocking",
    "find_server",
    "host",
    "logs",
    "parties",
    "rooms",
    "share_link",
    "undeploy",
]
