"""`Connection`: one client's socket in a room, as party code sees it.

The socket itself lives with the server process (see outbox.py); a Connection hands what the
party sends to the session's uplink, which writes it to that socket, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..protocol.codes import CloseCode
from .outbox import Outgoing


class Sink(Protocol):
    """Where a connection's traffic goes: the session's uplink to the server process."""

    def send(self, conn: int, message: Outgoing) -> None: ...

    def close(self, conn: int, code: int, reason: str) -> None: ...


class Connection:
    """A client's connection to a room.

    `id` is the client's `_pk` query value (else random); connections are tracked per socket,
    so several may share an id while an old socket of a reconnecting client is closing.
    """

    def __init__(
        self,
        id: str,
        uri: str,
        sink: Sink,
        handle: int,
        access: str = "write",
        share_id: str | None = None,
        limited: bool = True,
    ) -> None:
        self.id = id
        self.uri = uri
        self.tags: tuple[str, ...] = ()
        self.access = access  # "read" for a read-only share link: the party must not obey it
        self.share_id = share_id  # the share grant it came with
        self._limited = limited  # a guest's: rate limits apply (see Limits.limit_owner)
        self._principal: str | None = None  # who holds the id: a user, a share link, nobody
        self._traffic: Any = None  # its room's Traffic, once it joined
        self.closed = False
        self._state: Any = None
        self._sink = sink
        self._handle = handle  # the socket's number on the wire

    def __repr__(self) -> str:
        return f"<Connection {self.id!r}{' closed' if self.closed else ''}>"

    @property
    def state(self) -> Any:
        """The value last set with `set_state` (None at first)."""
        return self._state

    def set_state(self, value: Any | Callable[[Any], Any]) -> Any:
        """Set the connection's state to `value`, or to `value(previous)` if it is callable."""
        self._state = value(self._state) if callable(value) else value
        return self._state

    def send(self, message: str | bytes | Any) -> None:
        """Queue a message: str as text, bytes as binary, any other value as JSON text. An
        `Outgoing` is sent as it is: one sent to several connections is encoded, crosses to
        the server process and is framed once."""
        if not self.closed:
            outgoing = message if isinstance(message, Outgoing) else Outgoing(message)
            self._sink.send(self._handle, outgoing)
            if self._traffic is not None:
                self._traffic.sent(1, len(outgoing.payload))

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the connection after sending what is already queued."""
        if not self.closed:
            self.closed = True
            self._sink.close(self._handle, code, reason)
