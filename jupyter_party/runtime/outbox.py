"""Outgoing messages and the server side's bounded, coalescing send queue of one socket.

Sending never blocks a room. Each socket queues outgoing messages and writes everything queued
during one loop turn as a single socket write. Bytes queued or still in flight are counted; a
client that stops reading fills its queue, and when the queue passes `send_buffer_limit` the
socket is closed with 1013 instead of letting memory grow or the room stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from ..protocol.codes import CloseCode
from ..protocol.frames import BINARY, TEXT, encode_frame
from .http import dumps

log = logging.getLogger("jupyter_party")


class Outgoing:
    """One outgoing message, encoded once however many sockets it goes to."""

    __slots__ = ("_frame", "opcode", "payload")

    def __init__(self, message: Any) -> None:
        if isinstance(message, str):
            self.payload, self.opcode = message.encode("utf-8"), TEXT
        elif isinstance(message, bytes | bytearray | memoryview):
            self.payload, self.opcode = bytes(message), BINARY
        else:
            self.payload, self.opcode = dumps(message).encode("utf-8"), TEXT
        self._frame: bytes | None = None

    @classmethod
    def raw(cls, payload: bytes, text: bool) -> Outgoing:
        """A message already encoded: `payload` as UTF-8 text if `text`, else binary."""
        outgoing = cls.__new__(cls)
        outgoing.payload, outgoing.opcode, outgoing._frame = payload, TEXT if text else BINARY, None
        return outgoing

    @property
    def text(self) -> bool:
        return self.opcode == TEXT

    @property
    def data(self) -> str | bytes:
        """The message as a client receives it: str for text, bytes for binary."""
        return self.payload.decode("utf-8") if self.opcode == TEXT else self.payload

    @property
    def frame(self) -> bytes:
        """The WebSocket frame, built on first use and shared by every recipient."""
        if self._frame is None:
            self._frame = encode_frame(self.payload, self.opcode)
        return self._frame


class Transport(Protocol):
    """Where a socket's messages go: a Tornado socket, or a worker calling another room."""

    def write(self, batch: list[Outgoing]) -> asyncio.Future[Any] | None:
        """Write `batch` in order; return a future resolved once flushed, or None if done."""

    def close(self, code: int, reason: str) -> None:
        """Close the underlying socket with `code` and `reason`."""


class Flushes:
    """The outboxes that queued messages during this loop turn, each written once at its end,
    all in one callback: a broadcast to 5,000 sockets scheduled 5,000 callbacks before."""

    __slots__ = ("_outboxes",)

    def __init__(self) -> None:
        self._outboxes: list[Outbox] = []

    def add(self, outbox: Outbox) -> None:
        if not self._outboxes:
            asyncio.get_running_loop().call_soon(self._run)
        self._outboxes.append(outbox)

    def _run(self) -> None:
        outboxes, self._outboxes = self._outboxes, []
        for outbox in outboxes:
            try:
                outbox._flush()
            except Exception:  # as the loop would for a callback: the other sockets still go
                log.exception("writing to a socket failed")


class Outbox:
    """The send queue of one socket: coalesced per loop turn, bounded by `limit` bytes."""

    __slots__ = (
        "_flushes",
        "_in_flight",
        "_pending",
        "_queue",
        "_queued",
        "_transport",
        "_writing",
        "closed",
        "limit",
    )

    def __init__(self, transport: Transport, limit: int, flushes: Flushes) -> None:
        self.closed = False
        self._transport = transport
        self.limit = limit  # bytes queued or in flight before the client is closed
        self._flushes = flushes
        self._queue: list[Outgoing] = []
        self._pending = 0  # bytes queued plus bytes handed to the transport but not yet flushed
        self._queued = 0  # bytes in _queue
        self._in_flight = 0
        self._writing = False

    def put(self, message: Outgoing) -> None:
        """Queue a message; a client too far behind is closed with 1013."""
        if self.closed:
            return
        size = len(message.payload)
        if self._pending and self._pending + size > self.limit:  # one message always fits
            self.shut(CloseCode.OVERLOADED, "send buffer full: the client is not reading")
            return
        self._queue.append(message)
        self._queued += size
        self._pending += size
        if not self._writing:
            self._writing = True
            self._flushes.add(self)

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the socket after sending what is already queued."""
        if self.closed:
            return
        if self._queue:  # ahead of the close frame, even if a flush is already scheduled
            batch, self._queue, self._queued = self._queue, [], 0
            with contextlib.suppress(Exception):
                self._transport.write(batch)
        self.shut(code, reason)

    def shut(self, code: int, reason: str) -> None:
        """Close the socket now, dropping what was not written."""
        transport = self._transport
        self.mark_closed()
        transport.close(code, reason)

    def mark_closed(self) -> None:
        """Stop queueing: the socket is closing or closed. Drops what was not written, and
        the socket: the two would otherwise stay in a cycle for the garbage collector."""
        self.closed = True
        self._transport = _CLOSED
        self._queue = []
        self._pending = self._queued = 0

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if self.closed or not batch:
            self._writing = False
            return
        self._in_flight, self._queued = self._queued, 0
        try:
            future = self._transport.write(batch)
        except Exception:  # the socket went away under us; its close event follows
            self.mark_closed()
            return
        if future is None:
            self._written(None)
        else:
            future.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[Any] | None) -> None:
        if future is not None and (future.cancelled() or future.exception() is not None):
            self.mark_closed()
            return
        self._pending -= self._in_flight
        if self._queue and not self.closed:
            self._flush()
        else:
            self._writing = False


class _Closed:
    """The transport of a closed outbox: nothing is written any more."""

    def write(self, batch: list[Outgoing]) -> None:
        return None

    def close(self, code: int, reason: str) -> None:
        return None


_CLOSED = _Closed()


class Passthrough(Outbox):
    """The send queue of a socket relayed from another node of a party cluster: each message
    goes to that node at once, in the order of the room's broadcasts (which cross at once
    too); the queue and its limit are that node's."""

    __slots__ = ()

    def put(self, message: Outgoing) -> None:
        if not self.closed:
            self._transport.write([message])
