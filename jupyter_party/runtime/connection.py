"""`Connection`: one client's socket in a room, with a bounded, coalescing send queue.

Sending never blocks the room. Each connection queues outgoing messages and writes everything
queued during one loop turn as a single socket write. Bytes queued or still in flight are
counted; a client that stops reading fills its queue, and when the queue passes
`send_buffer_limit` the connection is closed with 1013 instead of letting memory grow or the
room stall (DESIGN §10).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from ..protocol.frames import BINARY, TEXT, encode_frame
from .http import dumps

OVERLOADED = 1013


class Outgoing:
    """One outgoing message, encoded once however many connections it goes to."""

    __slots__ = ("_frame", "data", "opcode", "payload")

    def __init__(self, message: Any) -> None:
        if isinstance(message, str):
            self.data: str | bytes = message
            self.payload, self.opcode = message.encode("utf-8"), TEXT
        elif isinstance(message, bytes | bytearray | memoryview):
            self.data = self.payload = bytes(message)
            self.opcode = BINARY
        else:
            self.data = dumps(message)
            self.payload, self.opcode = self.data.encode("utf-8"), TEXT
        self._frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        """The WebSocket frame, built on first use and shared by every recipient."""
        if self._frame is None:
            self._frame = encode_frame(self.payload, self.opcode)
        return self._frame


class Transport(Protocol):
    """Where a connection's messages go: a Tornado socket, or an in-process peer."""

    def write(self, batch: list[Outgoing]) -> asyncio.Future[Any] | None:
        """Write `batch` in order; return a future resolved once flushed, or None if done."""

    def close(self, code: int, reason: str) -> None:
        """Close the underlying socket with `code` and `reason`."""


class Connection:
    """A client's connection to a room (DESIGN §3).

    `id` is the client's `_pk` query value (else random); connections are tracked per socket,
    so several may share an id while an old socket of a reconnecting client is closing.
    """

    def __init__(self, id: str, uri: str, transport: Transport, send_buffer_limit: int) -> None:
        self.id = id
        self.uri = uri
        self.tags: tuple[str, ...] = ()
        self.access = "write"  # "read" for a read-only share link: the party must not obey it
        self.share_id: str | None = None  # the share grant it came with, for revocation
        self.closed = False
        self._state: Any = None
        self._transport = transport
        self._limit = send_buffer_limit
        self._loop = asyncio.get_running_loop()
        self._queue: list[Outgoing] = []
        self._pending = 0  # bytes queued plus bytes handed to the transport but not yet flushed
        self._queued = 0  # bytes in _queue
        self._in_flight = 0
        self._writing = False

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
        """Queue a message: str as text, bytes as binary, any other value as JSON text."""
        self._enqueue(Outgoing(message))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection after sending what is already queued."""
        if self.closed:
            return
        if self._queue:  # ahead of the close frame, even if a flush is already scheduled
            batch, self._queue, self._queued = self._queue, [], 0
            with contextlib.suppress(Exception):
                self._transport.write(batch)
        self._shut(code, reason)

    def _enqueue(self, message: Outgoing) -> None:
        if self.closed:
            return
        size = len(message.payload)
        if self._pending and self._pending + size > self._limit:  # one message always fits
            self._shut(OVERLOADED, "send buffer full: the client is not reading")
            return
        self._queue.append(message)
        self._queued += size
        self._pending += size
        if not self._writing:
            self._writing = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if self.closed or not batch:
            self._writing = False
            return
        self._in_flight, self._queued = self._queued, 0
        try:
            future = self._transport.write(batch)
        except Exception:  # the socket went away under us; its close event follows
            self._mark_closed()
            return
        if future is None:
            self._written(None)
        else:
            future.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[Any] | None) -> None:
        if future is not None and (future.cancelled() or future.exception() is not None):
            self._mark_closed()
            return
        self._pending -= self._in_flight
        if self._queue and not self.closed:
            self._flush()
        else:
            self._writing = False

    def _shut(self, code: int, reason: str) -> None:
        self._mark_closed()
        self._transport.close(code, reason)

    def _mark_closed(self) -> None:
        """Stop queueing: the socket is closing or closed. Drops what was not written."""
        self.closed = True
        self._queue = []
        self._pending = self._queued = 0
