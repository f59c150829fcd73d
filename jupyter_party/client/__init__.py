"""Notebook-side clients of jupyter-party rooms (DESIGN §9)."""

from .discovery import ServerInfo, ServerNotFound, find_server
from .share import ShareLinkError, share_link
from .ydoc import Awareness, DocumentRecreated, RoomDoc, RoomRefused, doc, doc_blocking

__all__ = [
    "Awareness",
    "DocumentRecreated",
    "RoomDoc",
    "RoomRefused",
    "ServerInfo",
    "ServerNotFound",
    "ShareLinkError",
    "doc",
    "doc_blocking",
    "find_server",
    "share_link",
]
