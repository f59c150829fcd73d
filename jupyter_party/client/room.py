"""`connect(party, room)`: a reconnecting room client with partysocket's semantics.

In a kernel or any async code::

    room = await jupyter_party.connect("chat", "lobby")   # returns once connected
    await room.send({"type": "hello"})                    # dict/list -> JSON text
    async for message in room:                            # str (text) or bytes (binary)
        ...
    room.on_message(print)                                # sync or async callbacks
    response = await room.fetch("/items", method="POST", body="x")   # the room's HTTP
    await room.close()

In a plain script, `connect_blocking(...)` runs the client on a background thread and returns
a `BlockingRoomClient` whose `send`/`recv`/`fetch`/`close` block.

Like partysocket: the connection id (`_pk`) stays the same across reconnects; reconnects back
off exponentially (0.1 s doubling to 5 s, with jitter); messages sent while offline are
buffered and sent in order once connected again; `query` may be a callable re-evaluated on
every (re)connect. The client reconnects after any close except the server's refusals (4400,
4401, 4403, 4404: `RoomRefused`) and its own `close()`. A redeploy of the party (close code
1012) reconnects at once, to the new code.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError

from ..protocol.codes import CloseCode
from ..runtime.tasks import spawn
from ._loop import background_loop, wait_first
from ._socket import BACKOFF_MAX, BACKOFF_MIN, until_ready
from .discovery import find_server
from .reconnect import Reconnecting

log = logging.getLogger("jupyter_party.client")

#: A connection that lasted this long resets the backoff.
STABLE_AFTER = 1.0

Message = str | bytes
Query = Mapping[str, Any] | Callable[[], Any] | None
_OPTIONS = ("path", "headers", "min_delay", "max_delay", "max_retries", "max_queue")


@dataclass
class RoomResponse:
    """The answer of `RoomClient.fetch`: unpacks as `status, headers, body` too."""

    status: int
    headers: dict[str, str]
    body: bytes

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _End:
    """Queued after the last message once the client stopped."""


_END = _End()


class RoomClient(Reconnecting):
    """A reconnecting WebSocket client of one room; made by `connect()`.

    `id` is the connection id (`_pk`), the same across reconnects; `url` the room's WebSocket
    URL (without query); `server` the Jupyter server it reached (`ServerInfo`); `connected` is
    True while a socket is open. `error` says why the client stopped, if it stopped on an
    error (`RoomRefused`, or `ConnectionError` after `max_retries`).
    """

    def __init__(
        self,
        party: str,
        room: str,
        *,
        server: str | None = None,
        token: str | None = None,
        id: str | None = None,
        query: Query = None,
        path: str = "",
        headers: Mapping[str, str] | None = None,
        min_delay: float = BACKOFF_MIN,
        max_delay: float = BACKOFF_MAX,
        max_retries: int | None = None,
        max_queue: int = 10_000,
    ) -> None:
        info = find_server(server, token)
        suffix = "/" + path.lstrip("/") if path.strip("/") else ""
        super().__init__(
            info.room_url(party, room) + suffix,
            min_delay=min_delay,
            max_delay=max_delay,
            max_retries=max_retries,
        )
        self.party, self.room = party, room
        self.id = id or uuid.uuid4().hex
        self.http_url = f"{info.url}parties/{quote(party, safe='')}/{quote(room, safe='')}"
        self.reconnects = 0
        self.server = info
        self._headers = {**(headers or {}), **info.auth}
        self._query = query
        self._ws: WebSocketClientConnection | None = None
        self._outbox: deque[tuple[Message, bool]] = deque()
        self._inbox: asyncio.Queue[Message | _End] = asyncio.Queue()
        self._max_queue = max_queue
        self._dropped = 0
        self._callbacks: dict[str, list[Callable[..., Any]]] = {
            "message": [],
            "open": [],
            "close": [],
        }
        self._loop = asyncio.get_running_loop()
        self._opened = asyncio.Event()
        self._done = asyncio.Event()
        self._view: Any = None

    # -- state --------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the WebSocket is open."""
        return self._ws is not None

    @property
    def closed(self) -> bool:
        """True once the client stopped for good (closed, refused, out of retries)."""
        return self._done.is_set()

    @property
    def buffered(self) -> int:
        """How many sent messages wait for the next connection."""
        return len(self._outbox)

    def __repr__(self) -> str:
        if self.closed:
            state = f"closed: {self.error}" if self.error else "closed"
        else:
            state = "connected" if self.connected else "connecting"
        return f"<RoomClient {self.party}/{self.room} id={self.id} {state}>"

    #: What a handle displays as in a notebook, made once per handle: set by
    #: `jupyter_party.widgets` (a live room console), so the client does not depend on it.
    view_factory: ClassVar[Callable[[RoomClient], Any] | None] = None

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """In a notebook, a handle displays as its view (see `view_factory`)."""
        if self._view is None and RoomClient.view_factory is not None:
            self._view = RoomClient.view_factory(self)
        return None if self._view is None else self._view._repr_mimebundle_(**kwargs)

    # -- callbacks ----------------------------------------------------------------------------

    def on_message(self, callback: Callable[[Message], Any]) -> Callable[[Message], Any]:
        """Call `callback(message)` (sync or async) for every message; usable as a decorator.

        Messages also stay available to `recv()` and `async for`.
        """
        self._callbacks["message"].append(callback)
        return callback

    def on_open(self, callback: Callable[[], Any]) -> Callable[[], Any]:
        """Call `callback()` on every (re)connection."""
        self._callbacks["open"].append(callback)
        return callback

    def on_close(self, callback: Callable[[int | None, str], Any]) -> Callable[..., Any]:
        """Call `callback(code, reason)` whenever a socket closes (the client may reconnect)."""
        self._callbacks["close"].append(callback)
        return callback

    def off(self, callback: Callable[..., Any]) -> None:
        """Remove a callback registered with `on_message`, `on_open` or `on_close`."""
        for callbacks in self._callbacks.values():
            with contextlib.suppress(ValueError):
                callbacks.remove(callback)

    def _emit(self, event: str, *args: Any) -> None:
        for callback in list(self._callbacks[event]):
            try:
                result = callback(*args)
                if inspect.isawaitable(result):
                    spawn(_logged(result, event))
            except Exception:
                log.exception("%s: %s callback failed", self.url, event)

    # -- sending and receiving ----------------------------------------------------------------

    async def send(self, message: Message | Any) -> None:
        """Send `message`: str → text frame, bytes → binary, anything else → JSON text.

        While offline the message is buffered and sent, in order, once connected again.
        Raises `ConnectionError` once the client is closed.
        """
        future = self.send_nowait(message)
        if future is not None:  # written: wait until the socket took it (backpressure)
            with contextlib.suppress(Exception):  # a failed write is seen by the read loop
                await future

    def send_nowait(self, message: Message | Any) -> asyncio.Future[None] | None:
        """`send()` without waiting for the socket; call it on the client's loop. Returns the
        write's future, or None when the message was buffered."""
        if self._closing.is_set() or self._done.is_set():
            raise ConnectionError(f"{self.url}: the client is closed")
        if isinstance(message, bytearray | memoryview):
            message = bytes(message)
        if not isinstance(message, str | bytes):
            message = json.dumps(message)
        binary = isinstance(message, bytes)
        future = None
        if self._ws is not None and not self._outbox:
            future = self._write(self._ws, message, binary)
        if future is None:
            self._outbox.append((message, binary))
        return future

    def _write(
        self, ws: WebSocketClientConnection, message: Message, binary: bool
    ) -> asyncio.Future[None] | None:
        try:
            future = ws.write_message(message, binary=binary)
        except WebSocketClosedError:
            return None
        future.add_done_callback(_ignore_failure)
        return future

    async def recv(self, timeout: float | None = None) -> Message:
        """The next message (str or bytes). Raises `TimeoutError` after `timeout` seconds, and
        the client's error (or `ConnectionError`) once it stopped and every message was read."""
        item = await asyncio.wait_for(self._inbox.get(), timeout)
        if isinstance(item, _End):
            self._inbox.put_nowait(item)  # for every later reader
            raise self.error or ConnectionError(f"{self.url}: the client was closed")
        return item

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        """Messages until the client stops (after `close()`; a refusal raises its error)."""
        while True:
            item = await self._inbox.get()
            if isinstance(item, _End):
                self._inbox.put_nowait(item)
                if self.error is not None:
                    raise self.error
                return
            yield item

    def _deliver(self, message: Message) -> None:
        if self._inbox.qsize() >= self._max_queue:
            with contextlib.suppress(asyncio.QueueEmpty):
                self._inbox.get_nowait()
            if not self._dropped:
                log.warning(
                    "%s: more than %d unread messages: dropping the oldest (read them with "
                    "recv()/async for, or pass max_queue=...)",
                    self.url,
                    self._max_queue,
                )
            self._dropped += 1
        self._inbox.put_nowait(message)
        self._emit("message", message)

    # -- HTTP ---------------------------------------------------------------------------------

    async def fetch(
        self,
        path: str = "",
        method: str = "GET",
        body: str | bytes | Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        query: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> RoomResponse:
        """An HTTP request to the room (its `on_request`): `path` below the room, e.g.
        "/items?x=1". A body that is not str/bytes is sent as JSON. Never raises on HTTP
        errors: check `response.status`."""
        url = self.http_url + ("/" + path.lstrip("/") if path.strip("/") else "")
        if query:
            url += ("&" if "?" in url else "?") + urlencode({k: str(v) for k, v in query.items()})
        all_headers = {**(headers or {}), **self.server.auth}
        if body is not None and not isinstance(body, str | bytes):
            body = json.dumps(body)
            all_headers.setdefault("Content-Type", "application/json")
        if body is None and method.upper() in ("POST", "PUT", "PATCH"):
            body = b""
        request = HTTPRequest(
            url,
            method=method.upper(),
            body=body,
            headers=all_headers,
            request_timeout=timeout,
            connect_timeout=min(timeout, 10.0),
            allow_nonstandard_methods=True,
        )
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code == 599:
            raise ConnectionError(f"{url}: {response.error}")
        return RoomResponse(response.code, dict(response.headers.get_all()), response.body or b"")

    # -- lifetime -----------------------------------------------------------------------------

    def reconnect(self) -> None:
        """Close the current socket, if any, so the client connects again at once (with its
        query evaluated again)."""
        if self._ws is not None:
            self._ws.close(CloseCode.NORMAL, "reconnect")

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until a socket is open (again); raise the error if the client stopped."""
        async with asyncio.timeout(timeout):
            while self._ws is None:
                if self._done.is_set():
                    raise self.error or ConnectionError(f"{self.url}: the client was closed")
                await wait_first(self._opened, self._done)

    async def wait_closed(self) -> None:
        """Wait until the client stops; raises its error if it stopped on one."""
        await self._done.wait()
        if self.error is not None:
            raise self.error

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close for good: no reconnect; buffered messages are dropped."""
        await self._shut(self._ws, code, reason or "client closed")

    async def __aenter__(self) -> RoomClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the connection loop ------------------------------------------------------------------

    async def _request(self) -> HTTPRequest:
        query = self._query
        if callable(query):
            query = query()
            if inspect.isawaitable(query):
                query = await query
        params = {k: str(v) for k, v in dict(query or {}).items()}
        params["_pk"] = self.id
        return HTTPRequest(
            f"{self.url}?{urlencode(params)}",
            headers=dict(self._headers),
            connect_timeout=10.0,
            request_timeout=10.0,
        )

    def _closed(self, code: int | None, reason: str) -> None:
        self._emit("close", code, reason)

    def _at_once(self, code: int | None) -> bool:
        return code == CloseCode.SERVICE_RESTART  # redeployed: reconnect now, to the new code

    def _stopped(self) -> None:
        self._ws = None
        self._outbox.clear()
        self._done.set()
        self._inbox.put_nowait(_END)

    async def _session(self, ws: WebSocketClientConnection) -> bool:
        """Serve one connection until it closes; True if it lasted STABLE_AFTER seconds or
        was closed for a redeploy (1012)."""
        if self._closing.is_set():
            ws.close(CloseCode.NORMAL, "client closed")
            return False
        started = time.monotonic()
        # Flush the offline buffer before anyone else can write: no await in between.
        while self._outbox:
            message, binary = self._outbox[0]
            if self._write(ws, message, binary) is None:
                break
            self._outbox.popleft()
        self._ws = ws
        self._opened.set()
        self._emit("open")
        try:
            while True:
                received = await ws.read_message()
                if received is None:
                    break
                self._deliver(received)
        finally:
            self._ws = None
            self._opened.clear()
            self.reconnects += 1
        stable = time.monotonic() - started >= STABLE_AFTER
        return stable or ws.close_code == CloseCode.SERVICE_RESTART


async def _logged(awaitable: Awaitable[Any], event: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("async %s callback failed", event)


def _ignore_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"connect() got unknown options {unknown}; known: {list(_OPTIONS)}")


async def connect(
    party: str,
    room: str,
    *,
    server: str | None = None,
    token: str | None = None,
    id: str | None = None,
    query: Query = None,
    timeout: float = 10.0,
    **options: Any,
) -> RoomClient:
    """Join `room` of `party`: a `RoomClient`, returned once its WebSocket is open.

    `server`/`token` default to this kernel's Jupyter server (see `find_server`); `id` is the
    connection id (`_pk`, random by default, kept across reconnects); `query` is a dict of
    query parameters or a (sync or async) callable returning one, called on every
    (re)connect. Options: `path` (a sub-path below the room), `headers`, `min_delay` /
    `max_delay` (backoff, seconds), `max_retries` (None: forever), `max_queue` (unread
    messages kept for `recv`; the oldest are dropped beyond it).

    Raises `RoomRefused` when the server refuses (bad token: 4401, unknown party: 4404, ...),
    `ServerNotFound` when no server is known, and `TimeoutError` when no connection opened
    within `timeout` seconds.
    """
    _check_options(options)
    client = RoomClient(party, room, server=server, token=token, id=id, query=query, **options)
    client.start()
    await until_ready(client, client.wait_connected(timeout), timeout, "connected")
    return client


# -- blocking use, from code without a running event loop -------------------------------------


class BlockingRoomClient:
    """A `RoomClient` running on a background thread, for plain scripts: every call blocks.

    `send(message)`, `recv(timeout=None)`, `fetch(...)`, `close()`, iteration (`for message
    in room`), `on_message(callback)` (called on the background thread). `client` is the
    underlying `RoomClient` (use it only from its loop, `loop`).
    """

    def __init__(self, client: RoomClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client, self.loop = client, loop

    def _call(self, coroutine: Awaitable[Any], timeout: float | None = None) -> Any:
        future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(
            coroutine,  # type: ignore[arg-type]
            self.loop,
        )
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    @property
    def id(self) -> str:
        return self.client.id

    @property
    def url(self) -> str:
        return self.client.url

    @property
    def connected(self) -> bool:
        return self.client.connected

    @property
    def closed(self) -> bool:
        return self.client.closed

    @property
    def error(self) -> BaseException | None:
        return self.client.error

    def __repr__(self) -> str:
        return repr(self.client).replace("<RoomClient", "<BlockingRoomClient", 1)

    def send(self, message: Message | Any) -> None:
        """Send (or buffer while offline); see `RoomClient.send`."""
        self._call(self.client.send(message), 30.0)

    def recv(self, timeout: float | None = None) -> Message:
        """The next message; `TimeoutError` after `timeout` seconds."""
        return self._call(self.client.recv(timeout))

    def fetch(self, path: str = "", method: str = "GET", body: Any = None, **kwargs: Any):
        """The room's HTTP; see `RoomClient.fetch`."""
        return self._call(self.client.fetch(path, method, body, **kwargs))

    def on_message(self, callback: Callable[[Message], Any]) -> Callable[[Message], Any]:
        """Call `callback(message)` on the client's background thread for every message."""
        return self.client.on_message(callback)

    def __iter__(self):
        while True:
            try:
                yield self.recv()
            except ConnectionError:
                if self.client.error is not None:
                    raise
                return

    def close(self, timeout: float = 10.0) -> None:
        """Close for good."""
        self._call(self.client.close(), timeout)

    def __enter__(self) -> BlockingRoomClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_blocking(party: str, room: str, **kwargs: Any) -> BlockingRoomClient:
    """`connect()` for code without an event loop (plain scripts): a `BlockingRoomClient`."""
    loop = background_loop()
    timeout = kwargs.get("timeout", 10.0)
    future = asyncio.run_coroutine_threadsafe(connect(party, room, **kwargs), loop)
    return BlockingRoomClient(future.result(timeout + 5), loop)
