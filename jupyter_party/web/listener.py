"""How the Jupyter server takes room connections: a deep listen queue, upgrades read at once.

A reconnect storm (a redeploy, a restart) sends every client of a party back at the same
moment: the listening sockets queue `SOMAXCONN` connections instead of Tornado's 128, whose
overflow the kernel drops (clients retry a dropped SYN only after 1, 3, 7, 15 s: a 5,000-client
storm took 38 s with 128, 11 s with SOMAXCONN, benchmarks/README.md). And the kernel hands a
connection over once its first bytes have come (Linux's TCP_DEFER_ACCEPT), so that a
client's request is there to be read when its connection is accepted.

A WebSocket upgrade is a connection's first and only HTTP request. Tornado reads it with the
machinery for a keep-alive stream of requests (a serving loop, a message coroutine, a header
timeout, body framing): the largest step of a room connect in its profile. Here, when a new
connection's request is already in the kernel's buffer, complete, and a bodyless `GET` upgrade
to a room path, it is parsed by Tornado's own parsers and given to the application's router
like any request (same routing, X-headers, handlers, authentication); the handler answers the
upgrade and takes the socket, or refuses it with a response that closes the connection.

Everything else -- another path, a partial or unusual request, TLS, a request with a body --
is left in the buffer for Tornado's HTTP server, untouched: this path only ever picks a
request Tornado would have read the same way.
"""

from __future__ import annotations

import logging
import socket
from asyncio import Future
from collections.abc import Callable, Iterable
from typing import Any

from tornado import httputil
from tornado.httpserver import HTTPServer, _HTTPRequestContext
from tornado.iostream import IOStream, StreamClosedError

log = logging.getLogger("jupyter_party")

#: Only this much of a request is looked at; a longer one is Tornado's to read.
PEEK_BYTES = 8192
_PEEKED = bytearray(PEEK_BYTES)


def take_room_connections(server: HTTPServer, paths: Iterable[str]) -> None:
    """Deepen `server`'s listen queues, and let it read upgrade requests to `paths` (prefixes,
    such as its base_url's `parties/`) as they arrive; it reads the rest as before."""
    for sock in server._sockets.values():  # Tornado's listening sockets, by descriptor
        try:
            sock.listen(socket.SOMAXCONN)  # Linux takes a new depth, capped by somaxconn
            if hasattr(socket, "TCP_DEFER_ACCEPT") and sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
        except OSError as error:  # not a listening socket any more: nothing to tune
            log.debug("listening socket unchanged: %s", error)
    starts = tuple(f"GET {path}".encode() for path in paths)
    handle_stream = server.handle_stream

    def handle(stream: IOStream, address: Any) -> None:
        if not _read_upgrade(server, stream, address, starts):
            handle_stream(stream, address)

    server.handle_stream = handle  # type: ignore[method-assign]


def _read_upgrade(
    server: HTTPServer, stream: IOStream, address: Any, starts: tuple[bytes, ...]
) -> bool:
    """Dispatch the connection's request if it is a room upgrade already here: True if so."""
    if type(stream) is not IOStream:  # TLS: its bytes are not the request's
        return False
    sock: socket.socket = stream.socket  # type: ignore[assignment]
    size = min(PEEK_BYTES, server.conn_params.max_header_size)
    try:  # into one buffer: a fresh 8 KiB per connect, shrunk, would fragment the heap
        data = _PEEKED[: sock.recv_into(_PEEKED, size, socket.MSG_PEEK)]
    except OSError:  # nothing yet (or already reset): Tornado waits for it
        return False
    end = data.find(b"\r\n\r\n")
    if end < 0 or not data.startswith(starts):
        return False
    parsed = _parse(data[:end])
    if parsed is None:
        return False
    start_line, headers = parsed
    sock.recv(end + 4)  # the request leaves the buffer; anything behind it stays there
    context = _HTTPRequestContext(stream, address, server.protocol, server.trusted_downstream)
    try:
        delegate = server.start_request(None, _Answer(stream, context))
        delegate.headers_received(start_line, headers)
        delegate.finish()
    except Exception:  # as Tornado's serving loop does with what escapes a request
        log.error("uncaught exception reading a room upgrade", exc_info=True)
        stream.close()
    return True


def _parse(
    head: bytes | bytearray,
) -> tuple[httputil.RequestStartLine, httputil.HTTPHeaders] | None:
    """The start line and headers of an HTTP/1.1 upgrade request without a body, else None."""
    line, _, lines = head.decode("latin1").partition("\r\n")
    try:
        start_line = httputil.parse_request_start_line(line)
        headers = httputil.HTTPHeaders.parse(lines)
    except httputil.HTTPInputError:
        return None
    if (
        start_line.version != "HTTP/1.1"
        or headers.get("Upgrade", "").lower() != "websocket"
        or "Content-Length" in headers
        or "Transfer-Encoding" in headers
    ):
        return None
    return start_line, headers


class _Answer(httputil.HTTPConnection):
    """The connection a room upgrade's handler sees: it detaches the stream (and writes the
    101 itself), or answers once, after which the connection closes."""

    def __init__(self, stream: IOStream, context: _HTTPRequestContext) -> None:
        self.stream: IOStream | None = stream
        self.context = context

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        # Not watched: a room handler learns of a closed connection when it answers (its 101
        # or refusal fails), and watching the stream meanwhile costs two epoll calls a connect.
        pass

    def detach(self) -> IOStream:
        stream, self.stream = self.stream, None
        assert stream is not None, "a connection detaches once"
        return stream

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> Future[None]:
        assert isinstance(start_line, httputil.ResponseStartLine)
        headers["Connection"] = "close"  # the body ends where the connection does
        lines = [f"HTTP/1.1 {start_line.code} {start_line.reason}"]
        lines += [f"{name}: {value}" for name, value in headers.get_all()]
        return self.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin1") + (chunk or b""))

    def write(self, chunk: bytes) -> Future[None]:
        assert self.stream is not None, "a detached connection is written to by its taker"
        if self.stream.closed():  # as Tornado's connection does: a failed write, not a raise
            future: Future[None] = Future()
            future.set_exception(StreamClosedError())
            future.exception()  # retrieved: nobody has to
            return future
        return self.stream.write(chunk)

    def finish(self) -> None:
        stream = self.stream
        if stream is not None and not stream.closed():
            stream.write(b"").add_done_callback(lambda _: stream.close())  # once all is sent
