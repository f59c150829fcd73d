"""`Server`: the base class of every party, with PartyKit's hooks.

Every hook may be a plain function or a coroutine. The room calls them; party code overrides
the ones it needs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .http import Request, Response

if TYPE_CHECKING:
    from .connection import Connection
    from .room import Lobby, Room

log = logging.getLogger("jupyter_party")


@dataclass
class ConnectionContext:
    """What `on_connect` and `get_connection_tags` learn about a new connection."""

    request: Request

    @property
    def user(self) -> Any:
        """The Jupyter identity of the client (`jupyter_server.auth.User`), or None."""
        return self.request.user

    @property
    def access(self) -> str:
        """ "write", or "read" for a client that came with a read-only share link."""
        return self.request.access


class Server:
    """Base class of a party: one instance per room, created on demand.

    Subclasses override hooks; `self.room` is the `Room` this instance serves.
    """

    #: Largest inbound WebSocket message for this party, in bytes (close 1009 past it);
    #: None means the server's `max_message_size`.
    max_message_size: ClassVar[int | None] = None
    #: Bytes queued for one slow client before it is closed with 1013; None means the
    #: server's `send_buffer_limit`.
    send_buffer_limit: ClassVar[int | None] = None
    #: Over the inbound rate limit, drop messages (then close after repeated strikes), or,
    #: if False, close at once: for protocols where a lost message corrupts state.
    rate_limit_drops: ClassVar[bool] = True
    #: Messages from read-only connections (`connection.access == "read"`) are dropped before
    #: `on_message`, unless this is True: then the party gets them and must check access.
    read_only_messages: ClassVar[bool] = False

    def __init__(self, room: Room) -> None:
        self.room = room

    def on_start(self) -> Awaitable[None] | None:
        """Called once per instance, before any other event of the room is delivered."""

    def on_connect(self, connection: Connection, ctx: ConnectionContext) -> Awaitable[None] | None:
        """A client connected; finishes before its first message is handled.

        Raising closes the connection with 1011 and the error text.
        """

    def on_message(self, message: str | bytes, sender: Connection) -> Awaitable[None] | None:
        """A message arrived: `str` for text frames, `bytes` for binary frames."""

    def on_close(self, connection: Connection, code: int, reason: str) -> Awaitable[None] | None:
        """A connection closed, whichever side closed it."""

    def on_error(
        self, connection: Connection | None, error: BaseException
    ) -> Awaitable[None] | None:
        """A hook raised (transport errors are not reported: the socket closes, `on_close`
        runs). `connection` is the connection for `on_connect`, `on_message` and `on_close`
        errors, None for `on_start`, `on_request` and `on_alarm` errors."""

    def on_request(self, request: Request) -> Any:
        """An HTTP request to the room URL or a sub-path; return a Response, str, bytes or JSON."""
        return Response("This party does not handle HTTP requests", 404)

    def on_alarm(self) -> Awaitable[None] | None:
        """The room's alarm fired."""

    def get_connection_tags(self, connection: Connection, ctx: ConnectionContext) -> Any:
        """Return the tags of a new connection, for `room.get_connections(tag)`."""
        return ()

    # -- the protocol layer --------------------------------------------------------------------
    # The room calls these; they call the hooks above. A class that speaks a protocol on top of
    # rooms (YServer) overrides them, handles its own frames, and passes the rest on.

    def _handle_start(self) -> Awaitable[None] | None:
        return self.on_start()

    def _handle_connect(self, connection: Connection, ctx: ConnectionContext) -> Any:
        return self.on_connect(connection, ctx)

    def _handle_message(self, message: str | bytes, sender: Connection) -> Any:
        return self.on_message(message, sender)

    def _handle_close(self, connection: Connection, code: int, reason: str) -> Any:
        return self.on_close(connection, code, reason)

    def _handle_stop(self) -> Awaitable[None] | None:
        """The room is going away (idle eviction or server shutdown): finish pending work."""

    @staticmethod
    def on_before_connect(request: Request, lobby: Lobby) -> Any:
        """Gate a WebSocket upgrade before the room is touched.

        Return None to allow, a modified Request to forward it, or a Response to reject.
        """

    @staticmethod
    def on_before_request(request: Request, lobby: Lobby) -> Any:
        """Gate an HTTP request before the room is touched (same contract as on_before_connect)."""
