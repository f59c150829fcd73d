"""An open WebSocket as an `asyncio.Protocol` on the raw socket, once the handshake is done.

Tornado keeps, for each open WebSocket, its handler, request, IOStream and a suspended
coroutine chain: about half of an idle connection's memory. Here the handler answers the
handshake, hands the socket to asyncio (`take_over`) and returns; what stays per socket is one
`WebSocket` (with `__slots__`), its asyncio transport and its frame `Reader`. Pings are one
loop-wide sweep (`Pinger`), not a timer per socket.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import socket as _socket
from collections.abc import Callable
from typing import Any, cast

from tornado.iostream import IOStream, SSLIOStream, StreamClosedError

from ..protocol.codes import CloseCode
from ..protocol.frames import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    FrameError,
    Reader,
    encode_close,
    encode_frame,
)
from ..protocol.frames import unmask as _pure_unmask
from ..runtime.outbox import Outgoing

_unmask: Callable[[bytes, bytes], bytes]
try:  # Tornado's C unmasking, 7-70x faster than the pure one (where Tornado was compiled)
    from tornado.speedups import websocket_mask as _unmask
except ImportError:  # pragma: no cover
    _unmask = _pure_unmask

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: How long a closing socket waits for the client's close frame before dropping the TCP
#: connection (Tornado's figure).
CLOSE_TIMEOUT = 5.0
_EARLY, _OPEN, _CLOSING, _CLOSED = range(4)
#: An empty context, for what an open socket schedules: not the handler's (see take_over).
CLEAN = contextvars.Context()


def accept_value(key: str) -> str:
    """The Sec-WebSocket-Accept answering a client's Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode()


def switching_protocols(key: str) -> bytes:
    """The 101 response: no subprotocol, no extension (nothing negotiates compression)."""
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_value(key)}\r\n\r\n"
    ).encode("ascii")


class WebSocket(asyncio.Protocol):
    """One server-side WebSocket: frames in (`on_message`, `on_close`), pre-framed messages
    out (`write`, the router's `Transport`).

    Created before the handshake is answered, so a room may send (or close) before the 101:
    what it sends waits in `_early` until `take_over`, and follows the 101 in order.
    """

    __slots__ = (
        "_code",
        "_drained",
        "_early",
        "_pinger",
        "_reader",
        "_reason",
        "_state",
        "_timer",
        "_transport",
        "_waiting",
        "pinged",
    )

    def __init__(self, max_message_size: int, pinger: Pinger | None) -> None:
        self._reader = Reader(max_message_size, _unmask)
        self._pinger = pinger
        self._state = _EARLY
        self._early: list[bytes | tuple[int, str]] | None = []  # None once open
        self._transport: asyncio.Transport | None = None
        self._drained: asyncio.Future[None] | None = None  # while the kernel's buffer is full
        self._waiting: asyncio.Future[Any] | None = None  # while the room catches up
        self._code: int = CloseCode.ABNORMAL  # what on_close reports, with _reason
        self._reason = ""
        self._timer: asyncio.TimerHandle | None = None  # the close handshake's deadline
        self.pinged = False  # a ping is unanswered

    @property
    def max_message_size(self) -> int:
        return self._reader.max_size

    @max_message_size.setter
    def max_message_size(self, size: int) -> None:
        self._reader.max_size = size

    # -- what a subclass does with the socket's events ---------------------------------------

    def on_message(self, message: str | bytes) -> asyncio.Future[Any] | None:
        """A message; a future to stop reading until it is done (flow control)."""
        return None

    def on_close(self, code: int, reason: str) -> None:
        """The socket closed: the client's close code (1005 if none, 1006 if it just dropped),
        or ours when we closed it for breaking a rule."""

    # -- handshake --------------------------------------------------------------------------

    async def take_over(self, stream: IOStream, handshake: bytes) -> None:
        """Take the detached `stream`'s socket from Tornado (with the bytes it already read),
        send `handshake` (the 101) and what the room sent meanwhile, and read frames."""
        if stream.closed():
            self._lost()
            return
        self._early = [handshake, *(self._early or ())]
        # What follows runs in an empty context, not the handler's: Jupyter keeps the handler
        # in a context variable, and the transport's callbacks would keep it alive.
        if isinstance(stream, SSLIOStream):
            CLEAN.run(StreamTransport, stream, self)
            return
        sock: _socket.socket = stream.socket  # type: ignore[assignment]
        # A client may send frames right behind its upgrade request: Tornado read them too.
        self._reader.feed(stream._read_buffer[: stream._read_buffer_size])
        stream.io_loop.remove_handler(sock)  # the IOStream is dropped, the socket kept open
        await CLEAN.run(asyncio.ensure_future, self._attach(sock))

    async def _attach(self, sock: _socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: self, sock)
        except OSError:
            sock.close()
            self._lost()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, hence a cast, not a check.
        self._transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(0)  # pause_writing as soon as the kernel is full
        early, self._early = self._early or [], None
        self._state = _OPEN
        # The 101 and the room's first messages in one write, up to a close if the room sent one.
        end = next((i for i, item in enumerate(early) if isinstance(item, tuple)), len(early))
        transport.write(b"".join(early[:end]))  # type: ignore[arg-type]
        if end < len(early):
            self.close(*early[end])  # type: ignore[misc]
            return
        if self._pinger is not None:
            self._pinger.add(self)
        self._read()  # what came behind the upgrade request

    # -- out --------------------------------------------------------------------------------

    def write(self, batch: list[Outgoing]) -> asyncio.Future[None] | None:
        """Write pre-framed messages; a future while they wait for the kernel's buffer."""
        data = batch[0].frame if len(batch) == 1 else b"".join([m.frame for m in batch])
        if self._early is not None:
            self._early.append(data)
            return None
        if self._state != _OPEN:
            raise ConnectionError("the WebSocket is closing")
        assert self._transport is not None
        self._transport.write(data)
        return self._drained

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def ping(self) -> None:
        if self._state == _OPEN:
            assert self._transport is not None
            self.pinged = True
            self._transport.write(_PING)

    def close(self, code: int, reason: str) -> None:
        """Start the close handshake with `code` and `reason`: the TCP connection ends when
        the client answers, or after CLOSE_TIMEOUT."""
        if self._early is not None:
            self._early.append((code, reason))
            return
        if self._state != _OPEN:
            return
        assert self._transport is not None
        self._state = _CLOSING
        self._code, self._reason = code, reason
        self._transport.write(encode_close(code, reason))
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(CLOSE_TIMEOUT, self._transport.abort)

    def abort(self, reason: str) -> None:
        """Drop the TCP connection without a close handshake (a dead peer): 1006."""
        if self._transport is not None and self._state < _CLOSED:
            self._state = _CLOSED
            self._code, self._reason = CloseCode.ABNORMAL, reason
            self._transport.abort()

    # -- in ---------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._state >= _CLOSED:
            return
        self._reader.feed(data)
        if self._waiting is None:
            self._read()

    def _read(self) -> None:
        """Hand over the events buffered, until the room asks to wait (flow control)."""
        reader = self._reader
        try:
            while (event := reader.next()) is not None:
                opcode, data = event
                if opcode in (TEXT, BINARY):  # a message
                    if self._state != _OPEN:
                        continue  # we are closing: the room has let this socket go
                    waiting = self.on_message(data)  # type: ignore[arg-type]
                    if waiting is not None and not waiting.done():
                        self._wait(waiting)
                        return
                elif opcode == PING:
                    if self._state == _OPEN:
                        assert self._transport is not None
                        self._transport.write(encode_frame(data, PONG))  # type: ignore[arg-type]
                elif opcode == PONG:
                    self.pinged = False
                else:  # CLOSE
                    self._closed_by_client(*data)  # type: ignore[misc]
                    return
        except FrameError as error:  # fail the connection: close frame, then TCP close
            assert self._transport is not None
            if self._state == _OPEN:
                self._transport.write(encode_close(error.code, str(error)))
            self._state = _CLOSED
            self._code, self._reason = error.code, str(error)
            self._transport.close()

    def _wait(self, waiting: asyncio.Future[Any]) -> None:
        assert self._transport is not None
        self._waiting = waiting
        self._transport.pause_reading()
        waiting.add_done_callback(self._resume)

    def _resume(self, _: object) -> None:
        self._waiting = None
        if self._state < _CLOSED and self._transport is not None:
            self._transport.resume_reading()
            self._read()

    def _closed_by_client(self, code: int, reason: str) -> None:
        assert self._transport is not None
        if self._state == _OPEN:  # echo it, as RFC 6455 asks
            echo = _EMPTY_CLOSE if code == CloseCode.NO_STATUS else encode_close(code, "")
            self._transport.write(echo)
        self._state = _CLOSED
        self._code, self._reason = code, reason
        self._transport.close()  # the server ends the TCP connection (RFC 6455 §7.1.1)

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = _CLOSED
        if self._timer is not None:
            self._timer.cancel()
        if self._pinger is not None:
            self._pinger.discard(self)
        if self._drained is not None and not self._drained.done():
            self._drained.cancel()
        self.on_close(self._code, self._reason)

    def _lost(self) -> None:
        """The connection ended before the handshake was answered."""
        self._state = _CLOSED
        self.on_close(CloseCode.ABNORMAL, "the handshake failed")


_PING = encode_frame(b"", PING)
_EMPTY_CLOSE = encode_frame(b"", CLOSE)


class Pinger:
    """Pings every open socket each `interval` seconds, in one sweep, and drops those that
    did not answer within `timeout` (at most `interval`): one timer for all the sockets."""

    __slots__ = ("_handle", "_sockets", "interval", "timeout")

    def __init__(self, interval: float, timeout: float) -> None:
        self.interval, self.timeout = interval, min(timeout, interval)
        self._sockets: dict[WebSocket, None] = {}
        self._handle: asyncio.TimerHandle | None = None

    def add(self, socket: WebSocket) -> None:
        self._sockets[socket] = None
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self.interval, self._ping)

    def discard(self, socket: WebSocket) -> None:
        self._sockets.pop(socket, None)
        if not self._sockets and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _ping(self) -> None:
        for socket in self._sockets:
            socket.ping()
        self._handle = asyncio.get_running_loop().call_later(self.timeout, self._reap)

    def _reap(self) -> None:
        for socket in [s for s in self._sockets if s.pinged]:
            socket.abort("no answer to ping")
        wait = self.interval - self.timeout
        self._handle = asyncio.get_running_loop().call_later(wait, self._ping)


class StreamTransport(asyncio.Transport):
    """The transport of a TLS connection, where the IOStream stays: asyncio cannot adopt the
    TLS session of Tornado's socket. One task reads it; only what `WebSocket` uses. Created
    in an empty context (see `WebSocket.take_over`)."""

    def __init__(self, stream: IOStream, protocol: WebSocket) -> None:
        super().__init__()
        self._stream, self._protocol = stream, protocol
        self._readable = asyncio.Event()
        self._readable.set()
        self._last: asyncio.Future[None] | None = None  # the last write's
        self._paused = False
        protocol.connection_made(self)
        self._reading = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while True:
                await self._readable.wait()
                self._protocol.data_received(await self._stream.read_bytes(1 << 16, True))
        except StreamClosedError:
            pass
        self._protocol.connection_lost(None)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._stream.closed():
            return
        self._last = future = self._stream.write(memoryview(data))
        future.add_done_callback(_retrieved)
        if not future.done() and not self._paused:
            self._paused = True
            self._protocol.pause_writing()
            future.add_done_callback(self._flushed)

    def _flushed(self, future: asyncio.Future[None]) -> None:
        last = self._last
        if last is not None and not last.done():  # written since: wait for that too
            last.add_done_callback(self._flushed)
            return
        self._paused = False
        self._protocol.resume_writing()

    def close(self) -> None:
        """Close once what was written is flushed."""
        if self._last is not None and not self._last.done():
            self._last.add_done_callback(lambda _: self._stream.close())
        else:
            self._stream.close()

    def abort(self) -> None:
        self._stream.close()

    def pause_reading(self) -> None:
        self._readable.clear()

    def resume_reading(self) -> None:
        self._readable.set()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # writes are flushed by the IOStream, which says when


def _retrieved(future: asyncio.Future[None]) -> None:
    """A write that failed: the stream closed, and its close ends the socket."""
    if not future.cancelled():
        future.exception()
