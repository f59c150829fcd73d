"""The worker boundary over a byte stream: both ends of protocol/wire.py on asyncio.

`Channel` turns a stream into frames and back, writing everything sent during one loop turn
at once; the same message sent to several sockets in that turn crosses once, as one SEND.
`WorkerLink` is the server process's end (a `Downlink` to one worker: it forwards the
router's calls as frames, and frames from the worker as calls on the router);
`SessionLink` is the worker's end (the `Uplink` of its session, and the dispatcher of frames
from the server). A kernel that hosts a party speaks the same protocol over a WebSocket
(`WebSocketStream`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from tornado.websocket import WebSocketClosedError

from ..protocol import wire
from ..protocol.wire import Frame
from .outbox import Outgoing

if TYPE_CHECKING:
    from .router import Downlink, Router

log = logging.getLogger("jupyter_party")


class Stream(Protocol):
    """What a channel writes its frames to: an asyncio transport, or a `WebSocketStream`."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def is_closing(self) -> bool: ...


class ChannelLost(ConnectionError):
    """The other end of the channel is gone (its process died or stopped)."""


class _Send:
    """A SEND being gathered during a loop turn: one message, the sockets it goes to."""

    __slots__ = ("at", "conns", "message")

    def __init__(self, at: int, conn: int, message: Outgoing) -> None:
        self.at, self.conns, self.message = at, [conn], message

    def encode(self) -> bytes:
        message = self.message
        return wire.encode(wire.SEND, [*self.conns, message.text], message.payload)


class Channel(asyncio.Protocol):
    """Frames over a stream transport, with calls that await a reply."""

    def __init__(self, on_frame: Callable[[Frame], None]) -> None:
        self._on_frame = on_frame
        self._decoder = wire.Decoder()
        self._transport: Stream | None = None
        self._out: list[bytes | _Send] = []  # this turn's frames, in order
        self._sends: dict[Outgoing, _Send] = {}  # SENDs of this turn that more sockets may join
        self._last: dict[int, int] = {}  # socket -> where in _out its latest SEND is
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport | Stream) -> None:
        self._transport = cast(Stream, transport)  # asyncio gives a Transport: it writes

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except wire.ProtocolError as error:
            log.error("party worker channel: %s", error)
            if self._transport is not None:
                self._transport.close()
            return
        for frame in frames:
            if frame.kind == wire.REPLY:
                self._replied(frame)
            else:
                self._on_frame(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ChannelLost("the other end of the worker channel is gone"))
        if not self.lost.done():
            self.lost.set_result(None)

    # sending
    def send(self, kind: int, header: list[Any], payload: bytes = b"") -> None:
        if self._queue():
            self._out.append(wire.encode(kind, header, payload))
            if self._sends:  # SENDs queued before this frame must not move past it
                self._sends.clear()
                self._last.clear()

    def send_to(self, conn: int, message: Outgoing) -> None:
        """Queue `message` for socket `conn`. The same `Outgoing` sent to several sockets in
        one loop turn crosses once: this socket joins the SEND of that message already
        queued, unless a later SEND for this socket, or any frame other than a SEND, was
        queued since (the message would overtake it). So each socket's order is kept."""
        if not self._queue():
            return
        send = self._sends.get(message)
        if send is not None and self._last.get(conn, -1) < send.at:
            send.conns.append(conn)
        else:
            send = self._sends[message] = _Send(len(self._out), conn, message)
            self._out.append(send)
        self._last[conn] = send.at

    def _queue(self) -> bool:
        """Whether frames can be sent; the first of a loop turn schedules the write."""
        if self._transport is None or self._transport.is_closing():
            return False
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        return True

    def _flush(self) -> None:
        out, self._out = self._out, []
        self._sends.clear()
        self._last.clear()
        if out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(
                b"".join(frame if isinstance(frame, bytes) else frame.encode() for frame in out)
            )

    async def call(self, op: str, args: dict[str, Any], payload: bytes = b"") -> Any:
        """Run `op` on the other end; returns its `(result, payload)`."""
        if self.lost.done():
            raise ChannelLost("the party worker is gone")
        call = next(self._ids)
        future = self._calls[call] = asyncio.get_running_loop().create_future()
        self.send(wire.CALL, [call, op, args], payload)
        try:
            return await future
        finally:
            self._calls.pop(call, None)

    def reply(self, call: int, work: asyncio.Future[Any]) -> None:
        """Send the outcome of `work` (a call from the other end) when it is done."""

        def done(work: asyncio.Future[Any]) -> None:
            if work.cancelled():
                return self.send(wire.REPLY, [call, "cancelled", None])
            error = work.exception()
            if error is not None:
                return self.send(wire.REPLY, [call, f"{type(error).__name__}: {error}", None])
            result, payload = work.result()
            self.send(wire.REPLY, [call, None, result], payload)

        work.add_done_callback(done)

    def _replied(self, frame: Frame) -> None:
        call, error, result = frame.header
        future = self._calls.get(call)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(RuntimeError(error))
        else:
            future.set_result((result, frame.payload))

    def fail(self, error: BaseException) -> None:
        """Fail every call still waiting for a reply."""
        for future in self._calls.values():
            if not future.done():
                future.set_exception(error)

    def close(self) -> None:
        if self._transport is not None:
            self._flush()
            self._transport.close()


class WebSocketStream:
    """A Tornado WebSocket (either end) as the stream a `Channel` writes to: the frames of
    one loop turn go as one binary message, and each message received is fed to
    `Channel.data_received` by the socket's owner."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket
        self._closing = False

    def write(self, data: bytes) -> None:
        try:
            sent = self._socket.write_message(data, binary=True)
        except WebSocketClosedError:
            self._closing = True
            return
        sent.add_done_callback(_ignore_closed)

    def close(self) -> None:
        self._closing = True
        self._socket.close()

    def is_closing(self) -> bool:
        return self._closing


def _ignore_closed(sent: asyncio.Future[None]) -> None:
    """A message that could not be sent because the socket closed: the channel hears of the
    close itself (connection_lost), so the failure is only consumed here."""
    if not sent.cancelled():
        sent.exception()


def _data(frame: Frame) -> str | bytes:
    return frame.payload.decode("utf-8") if frame.header[1] else frame.payload


class WorkerLink:
    """The server process's end of one worker's channel: a `Downlink` for the router."""

    def __init__(self, router: Router, worker: int) -> None:
        self.router = router
        self.worker = worker
        self.channel = Channel(self._received)
        self.hello: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    # Downlink: what the router asks of the worker's session.
    def open(
        self,
        conn: int,
        party: str,
        room: str,
        id: str,
        request: dict[str, Any],
        share_id: str | None,
        who: str | None,
    ) -> None:
        self.channel.send(wire.OPEN, [conn, party, room, id, request, share_id, who])

    def message(self, conn: int, data: str | bytes) -> None:
        if isinstance(data, str):
            self.channel.send(wire.MESSAGE, [conn, True], data.encode("utf-8"))
        else:
            self.channel.send(wire.MESSAGE, [conn, False], data)

    def closed(self, conn: int, code: int, reason: str) -> None:
        self.channel.send(wire.CLOSED, [conn, code, reason])

    async def call(self, op: str, args: dict[str, Any], payload: bytes = b"") -> Any:
        return await self.channel.call(op, args, payload)

    def socket_opened(self, conn: int, code: int, reason: str) -> None:
        if code == 0:
            self.channel.send(wire.ADMITTED, [conn])
        else:
            self.channel.send(wire.OPENED, [conn, code, reason, None])

    def socket_send(self, conn: int, message: Outgoing) -> None:
        self.channel.send_to(conn, message)

    def socket_close(self, conn: int, code: int, reason: str) -> None:
        self.channel.send(wire.CLOSE, [conn, code, reason])

    # Frames from the worker: its session's uplink calls.
    def _received(self, frame: Frame) -> None:
        router, worker, h = self.router, self.worker, frame.header
        kind = frame.kind
        if kind == wire.BROADCAST:
            router.broadcast(worker, h[0], Outgoing.raw(frame.payload, h[1]), h[2])
        elif kind == wire.SEND:  # one message, however many sockets: framed once
            message = Outgoing.raw(frame.payload, h[-1])
            for conn in h[:-1]:
                router.send(worker, conn, message)
        elif kind == wire.ACK:
            router.ack(worker, h[0], h[1])
        elif kind == wire.JOINED:
            router.joined(worker, h[0], h[1])
        elif kind == wire.ADMITTED:
            router.opened(worker, h[0], 0, "", None, b"")
        elif kind == wire.OPENED:
            router.opened(worker, h[0], h[1], h[2], h[3], frame.payload)
        elif kind == wire.CLOSE:
            router.close(worker, h[0], h[1], h[2])
        elif kind == wire.LOG:
            router.record(worker, *h)
        elif kind == wire.STATS:
            router.stats(worker, *h)
        elif kind == wire.RECORD:
            name, level, message, exc_text = h
            record = logging.makeLogRecord(
                {
                    "name": name,
                    "levelno": level,
                    "levelname": logging.getLevelName(level),
                    "msg": message,
                    "exc_text": exc_text,
                }
            )
            logging.getLogger(name).handle(record)
        elif kind == wire.MESSAGE:
            router.relay_message(worker, h[0], Outgoing.raw(frame.payload, h[1]))
        elif kind == wire.CLOSED:
            router.relay_closed(worker, h[0], h[1], h[2])
        elif kind == wire.CALL:
            call, op, args = h
            work = asyncio.ensure_future(router.relay_call(worker, op, args, frame.payload))
            self.channel.reply(call, work)
        elif kind == wire.HELLO and not self.hello.done():
            self.hello.set_result(h)
        else:
            log.error("party worker %d sent an unexpected frame %d", worker, kind)


class SessionLink:
    """The worker's end of its channel: its session's `Uplink`, and the dispatcher of frames
    from the server process to that session."""

    def __init__(self) -> None:
        self.session: Downlink | None = None  # a Session, or a cluster's peer
        self.channel = Channel(self._received)
        self.hello: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    # Uplink: what the session's rooms do.
    def joined(self, conn: int, room: int) -> None:
        self.channel.send(wire.JOINED, [conn, room])

    def opened(
        self, conn: int, code: int, reason: str, answer: dict[str, Any] | None, body: bytes
    ) -> None:
        if code == 0 and answer is None:
            self.channel.send(wire.ADMITTED, [conn])
        else:
            self.channel.send(wire.OPENED, [conn, code, reason, answer], body)

    def send(self, conn: int, message: Outgoing) -> None:
        self.channel.send_to(conn, message)

    def broadcast(self, room: int, message: Outgoing, without: list[str]) -> None:
        self.channel.send(wire.BROADCAST, [room, message.text, without], message.payload)

    def close(self, conn: int, code: int, reason: str) -> None:
        self.channel.send(wire.CLOSE, [conn, code, reason])

    def ack(self, conn: int, cost: int) -> None:
        self.channel.send(wire.ACK, [conn, cost])

    def record(self, party: str, room: str | None, kind: str, text: str) -> None:
        self.channel.send(wire.LOG, [party, room, kind, text])

    def stats(self, rooms: int, commit_times: list[float]) -> None:
        self.channel.send(wire.STATS, [rooms, commit_times])

    async def call(self, op: str, args: dict[str, Any], payload: bytes = b"") -> Any:
        return await self.channel.call(op, args, payload)

    def message(self, conn: int, message: Outgoing) -> None:
        self.channel.send(wire.MESSAGE, [conn, message.text], message.payload)

    def closed(self, conn: int, code: int, reason: str) -> None:
        self.channel.send(wire.CLOSED, [conn, code, reason])

    # Frames from the server process.
    def _received(self, frame: Frame) -> None:
        session, h, kind = self.session, frame.header, frame.kind
        if kind == wire.HELLO and not self.hello.done():
            self.hello.set_result(h)
        elif session is None:  # the server speaks only after our HELLO, sent with a session
            log.error("frame %d from the server process before the session", kind)
        elif kind == wire.MESSAGE:
            session.message(h[0], _data(frame))
        elif kind == wire.OPEN:
            session.open(*h)
        elif kind == wire.CLOSED:
            session.closed(*h)
        elif kind == wire.CALL:
            call, op, args = h
            self.channel.reply(call, asyncio.ensure_future(session.call(op, args, frame.payload)))
        elif kind == wire.SEND:
            message = Outgoing.raw(frame.payload, h[-1])
            for conn in h[:-1]:
                session.socket_send(conn, message)
        elif kind == wire.ADMITTED:
            session.socket_opened(h[0], 0, "")
        elif kind == wire.OPENED:
            session.socket_opened(h[0], h[1], h[2])
        elif kind == wire.CLOSE:
            session.socket_close(*h)
        else:
            log.error("unexpected frame %d from the server process", kind)
