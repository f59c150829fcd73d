"""Test a party in-process: no Jupyter server, no sockets, no worker processes.

`party_room(Chat, "lobby")` runs the server's own runtime with `workers = 0` (the router, the
in-process session, the host, storage, alarms), so admission, gates, ordering, tags, state,
broadcast fan-out, close codes and YServer's protocol are the production code. Only the web
layer is left out: authentication, the message size check (done here the same way) and rate
limits. The runtime's timers run on a `ManualClock`: `room.clock.advance(3600)` fires an
hour of alarms, retries, idle evictions and debounced saves at once. docs/testing.md shows how.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

from jupyter_server.auth import User
from pycrdt import Doc
from tornado.httputil import HTTPHeaders

from .protocol.codes import CloseCode
from .protocol.names import InvalidName, check_party_name, check_room_id
from .protocol.ysession import AwarenessUpdate, CustomMessage, TextMessage, Update, YSyncSession
from .protocol.ysync import (
    UPDATE,
    AwarenessEntry,
    awareness_frame,
    decode_awareness,
    encode_awareness,
    sync_frame,
)
from .runtime import partylog
from .runtime.clock import ManualClock
from .runtime.errors import Overloaded
from .runtime.http import Request, Response, dumps, request_to_wire
from .runtime.limits import Limits
from .runtime.outbox import Outgoing
from .runtime.partylog import PartyLogs, Record
from .runtime.registry import Registry
from .runtime.router import Refused, Router, Socket
from .runtime.server import Server
from .runtime.session import Session
from .runtime.storage import Backend, MemoryBackend, Storage, open_backend

__all__ = [
    "ConnectionClosed",
    "HandshakeRejected",
    "ManualClock",
    "PartyHost",
    "PartyRoom",
    "TestConnection",
    "TestResponse",
    "YClient",
    "party_host",
    "party_room",
]

#: Seconds `recv` and friends wait before failing the test.
TIMEOUT = 5.0
HOST = "party.test"


class ConnectionClosed(ConnectionError):
    """The connection is closed (by the room, the runtime or the test) and nothing is left
    to read."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"connection closed with {code}" + (f": {reason}" if reason else ""))
        self.code, self.reason = code, reason


class HandshakeRejected(Exception):
    """The party's `on_before_connect` answered the upgrade with an HTTP response."""

    def __init__(self, response: TestResponse) -> None:
        super().__init__(f"the party's gate answered the upgrade with HTTP {response.status}")
        self.response = response


@dataclass
class TestResponse:
    """What `fetch` got back."""

    status: int
    headers: dict[str, str]
    body: bytes

    __test__ = False  # not a pytest test class

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return jsonlib.loads(self.body)


class TestConnection:
    """A client's WebSocket to a room, as a test drives it: `send`, `recv`, `close`.

    It is the transport of a real router socket, so what it receives went through the same
    send queue as a browser's frames.
    """

    __test__ = False

    def __init__(self, host: PartyHost, party: str, room: str, id: str) -> None:
        self.id, self.party, self.room = id, party, room
        self.close_code: int | None = None
        self.close_reason = ""
        self._host = host
        self._socket: Socket | None = None
        self._inbox: deque[str | bytes] = deque()
        self._changed = asyncio.Event()
        self._max_size = host.limits.max_message_size

    def __repr__(self) -> str:
        return f"<TestConnection {self.id!r} to {self.party}/{self.room}>"

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    async def send(self, message: str | bytes | Any) -> None:
        """Send a frame: str as text, bytes as binary, anything else as JSON text. Waits
        while the room is a full window behind (flow control), as a real socket would."""
        if self._socket is None or self.closed:
            raise ConnectionClosed(self.close_code or CloseCode.ABNORMAL, self.close_reason)
        data = message if isinstance(message, str | bytes) else dumps(message)
        size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
        if size > self._max_size:  # what the web layer does: no room sees it
            self._socket.outbox.close(CloseCode.TOO_BIG, "message too big")
            return
        waiter = self._host.router.message(self._socket, data)
        if waiter is not None:
            await waiter

    async def recv(self, timeout: float = TIMEOUT) -> str | bytes:
        """The next message (str for text, bytes for binary). Raises ConnectionClosed once
        the connection is closed and read out, TimeoutError if nothing came."""
        await self._wait(lambda: bool(self._inbox) or self.closed, timeout, "a message")
        if self._inbox:
            return self._inbox.popleft()
        raise ConnectionClosed(self.close_code or CloseCode.ABNORMAL, self.close_reason)

    async def recv_json(self, timeout: float = TIMEOUT) -> Any:
        """The next message, parsed as JSON."""
        message = await self.recv(timeout)
        if not isinstance(message, str):
            raise AssertionError(f"{self!r}: expected a JSON text message, got {message!r}")
        return jsonlib.loads(message)

    def received(self) -> list[str | bytes]:
        """Take every message already received, without waiting."""
        messages, self._inbox = list(self._inbox), deque()
        return messages

    async def closed_with(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        """Wait until the room closes this connection; returns (code, reason). Messages that
        arrived before stay readable."""
        await self._wait(lambda: self.closed, timeout, "the connection to close")
        return self.close_code or CloseCode.ABNORMAL, self.close_reason

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close from the client side; returns once the room ran `on_close`."""
        if self.closed or self._socket is None:
            return
        self._closed(code, reason)
        await self._host._leave(self._socket, code, reason)

    def _receive(self, batch: list[Outgoing]) -> None:
        self._inbox.extend(message.data for message in batch)
        self._changed.set()

    def _closed(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self._changed.set()

    async def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ready():
            self._changed.clear()
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise TimeoutError
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                raise TimeoutError(
                    f"{self!r}: waited {timeout} s for {what}; nothing came"
                ) from None


class _Transport:
    """Adapts a TestConnection to the router's Transport protocol (`write`, `close`)."""

    __slots__ = ("connection",)

    def __init__(self, connection: TestConnection) -> None:
        self.connection = connection

    def write(self, batch: list[Outgoing]) -> None:
        self.connection._receive(batch)

    def close(self, code: int, reason: str) -> None:
        self.connection._closed(code, reason)


class PartyHost:
    """Parties served in-process by the server's runtime (`workers = 0`).

    `parties` maps names to Server classes; `parties_dir` adds `*.py` party files as a server
    loads them. `limits` are `Limits` fields (for example `room_idle_timeout=5`).
    """

    def __init__(
        self,
        parties: Mapping[str, type[Server]] | None = None,
        *,
        parties_dir: str | Path | None = None,
        storage: str = "memory://",
        env: dict[str, Any] | None = None,
        **limits: Any,
    ) -> None:
        self.limits = Limits(**limits)
        self.clock = ManualClock()
        self.logs = PartyLogs()
        self.storage_url = storage
        self._parties = dict(parties or {})
        self._parties_dir = parties_dir
        self._env = env
        self._session: Session | None = None
        self._backend: Backend | None = None
        self.router = Router(0, self.logs)

    async def __aenter__(self) -> PartyHost:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Load the parties and start the session (alarms persisted earlier are re-armed)."""
        if self._session is not None:
            return
        if self._backend is None:
            self._backend = open_backend(self.storage_url)
        partylog.install()  # party code's log records reach its log, as on a server
        registry = Registry(self._parties_dir)
        for name, server_class in self._parties.items():
            registry.add(name, server_class, f"{server_class.__module__}.{server_class.__name__}")
        self._session = Session(
            self.router.uplink(0),
            registry,
            self._backend,
            self.limits,
            env=self._env,
            clock=self.clock,
        )
        await self._session.start()
        self.router.attach(0, self._session)

    async def close(self) -> None:
        """Stop as a server stops: sockets close with 1001, rooms finish, storage flushes."""
        session, self._session = self._session, None
        if session is not None:
            self.router.shutdown()
            await session.close()  # closes the backend too: memory keeps its data for a restart
            if not isinstance(self._backend, MemoryBackend):
                self._backend = None

    async def restart(self) -> None:
        """Stop and start again on the same storage, like a server restart: clients are
        closed with 1001, the next event makes new room instances (`on_start` again) and
        persisted alarms are re-armed."""
        await self.close()
        await self.start()

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("the party host is not running: use `async with`")
        return self._session

    def room(self, party: str, room: str) -> PartyRoom:
        """Room `room` of `party`, to connect to, fetch from, and inspect."""
        return PartyRoom(self, party, room)

    async def connect(
        self,
        party: str,
        room: str,
        id: str | None = None,
        query: Mapping[str, str] | None = None,
        *,
        path: str = "",
        headers: Mapping[str, str] | None = None,
        user: str | None = "user",
        share: Literal["read", "write"] | None = None,
    ) -> TestConnection:
        """Open a connection, as a client that sends `_pk=id` (a random id if None).

        Returns once `on_connect` finished. A connection the room refused is returned closed,
        with its close code (as a WebSocket client sees it); a gate that answers with HTTP
        raises HandshakeRejected. `user` is the Jupyter user name (None: an anonymous client,
        whom only a gate returning a Request admits); `share` connects as the holder of a
        share link with that access instead.
        """
        query = {**(query or {}), **({"_pk": id} if id is not None else {})}
        id = query.get("_pk") or secrets.token_hex(16)
        request, who, share_id = self._request(party, room, path, query, headers, user, share)
        connection = TestConnection(self, party, room, id)
        try:
            connection._socket = await self.router.open(
                _Transport(connection),
                party,
                room,
                id,
                request_to_wire(request),
                share_id=share_id,
                who=who,
                send_buffer_limit=self.limits.send_buffer_limit,
            )
            limits = connection._socket.limits
            connection._max_size = limits.get("max_message_size") or connection._max_size
        except Refused as refused:
            if refused.response is not None:
                raise HandshakeRejected(_test_response(refused.response)) from None
            connection._closed(refused.code, str(refused))
        except Overloaded as error:
            connection._closed(CloseCode.OVERLOADED, str(error))
        return connection

    async def fetch(
        self,
        party: str,
        room: str,
        path: str = "",
        *,
        method: str = "GET",
        json: Any = None,
        body: str | bytes = b"",
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        user: str | None = "user",
        share: Literal["read", "write"] | None = None,
    ) -> TestResponse:
        """An HTTP request to the room (its gate, then `on_request`); `json` sends a JSON
        body."""
        request, who, _ = self._request(party, room, path, query, headers, user, share, "http")
        request.method = method.upper()
        if json is not None:
            body = dumps(json)
            request.headers["Content-Type"] = "application/json"
        request.body = body.encode("utf-8") if isinstance(body, str) else body
        if share == "read" and request.method not in ("GET", "HEAD", "OPTIONS"):
            return _test_response(Response.json({"error": "this share link is read-only"}, 403))
        try:
            response = await self.router.request(party, room, request, who)
        except Overloaded as error:
            response = Response.json({"error": str(error)}, 503)
        return _test_response(response)

    def log(self, party: str) -> list[Record]:
        """Party `party`'s log: its log records and handler errors (with tracebacks), and the
        prints of parties loaded from files."""
        return list(self.logs[party].records)

    def _request(
        self,
        party: str,
        room: str,
        path: str,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        user: str | None,
        share: str | None,
        scheme: str = "ws",
    ) -> tuple[Request, str, str | None]:
        check_room_id(room)
        if path and not path.startswith("/"):
            path = "/" + path
        query = dict(query or {})
        url = f"{scheme}://{HOST}/parties/{party}/{quote(room, safe='')}{path}"
        request = Request(
            url=url + (f"?{urlencode(query)}" if query else ""),
            path=path,
            query=query,
            headers=HTTPHeaders(dict(headers or {})),
            access=share or "write",
        )
        if share is not None:
            request.user = User(username=f"share-{share}", name=f"Guest ({share})")
            return request, "guest", f"test-share-{share}"
        request.user = User(username=user) if user is not None else None
        return request, "owner" if user is not None else "anonymous", None

    async def _leave(self, socket: Socket, code: int, reason: str) -> None:
        """A client closed `socket`: tell the room, and wait until `on_close` ran."""
        member = self.session._members.get(socket.conn)
        self.router.closed(socket, code, reason)
        if member is None:
            return
        room, connection = member.room, member.connection
        for _ in range(1000):  # the session hands the close to the room on its next turns
            if connection not in room._connections:
                break
            await asyncio.sleep(0)
        await asyncio.gather(*room._closing)


class PartyRoom:
    """One room of a PartyHost: what a test does to it and sees of it."""

    def __init__(self, host: PartyHost, party: str, room: str) -> None:
        self.host, self.party, self.id = host, party, room

    def __repr__(self) -> str:
        return f"<PartyRoom {self.party}/{self.id}>"

    @property
    def clock(self) -> ManualClock:
        """The runtime's clock: `advance(seconds)` fires alarms, idle eviction and retries."""
        return self.host.clock

    async def connect(
        self, id: str | None = None, query: Mapping[str, str] | None = None, **options: Any
    ) -> TestConnection:
        """Open a connection (see `PartyHost.connect`)."""
        return await self.host.connect(self.party, self.id, id, query, **options)

    async def fetch(self, path: str = "", **options: Any) -> TestResponse:
        """An HTTP request to this room (see `PartyHost.fetch`)."""
        return await self.host.fetch(self.party, self.id, path, **options)

    async def run_alarm(self) -> None:
        """Fire the room's pending alarm now, as its timer would, and wait for `on_alarm`
        (waking the room if it was evicted). Raises LookupError if no alarm is set."""
        if not await self.host.session.host.alarms.run_now(self.party, self.id):
            raise LookupError(f"room {self.party}/{self.id} has no alarm set")

    async def restart(self) -> None:
        """Restart the host (see `PartyHost.restart`): a new instance on the same storage."""
        await self.host.restart()

    @property
    def live(self) -> bool:
        """Whether an instance of the room is in memory (not yet created, or evicted)."""
        return (self.party, self.id) in self.host.session.host.rooms

    @property
    def server(self) -> Server | None:
        """The live instance of the party (None before it exists or after eviction)."""
        room = self.host.session.host.rooms.get((self.party, self.id))
        return room.server if room is not None else None

    @property
    def storage(self) -> Storage:
        """The room's storage, as the room sees it (reads and writes go to the same backend)."""
        session = self.host.session
        watcher = session.host.alarms.watcher(self.party, self.id)
        return Storage(session.host.backend, self.party, self.id, watcher)

    @property
    def log(self) -> list[Record]:
        """The party's log of this room (see `PartyHost.log`)."""
        return [r for r in self.host.log(self.party) if r.room == self.id]


def party_host(parties: Mapping[str, type[Server]] | None = None, **options: Any) -> PartyHost:
    """A PartyHost for several parties (rooms calling each other); use with `async with`."""
    return PartyHost(parties, **options)


@asynccontextmanager
async def party_room(
    party_class: type[Server], room: str = "room", *, party: str | None = None, **options: Any
) -> AsyncIterator[PartyRoom]:
    """Room `room` of `party_class`, served in-process for the duration of the block.

    The party is named `party`, by default its class name in lower case. `options` are
    PartyHost's (`storage`, `env`, limits such as `room_idle_timeout`).
    """
    name = party or party_class.__name__.lower()
    try:
        check_party_name(name)
    except InvalidName:
        raise ValueError(
            f"{party_class.__name__!r} does not make a party name: pass party='...'"
        ) from None
    async with PartyHost({name: party_class}, **options) as host:
        yield host.room(name, room)


def _test_response(response: Response) -> TestResponse:
    return TestResponse(response.status, dict(response.headers or {}), response.body_bytes())


@dataclass(eq=False)
class YClient:
    """A Yjs client for tests: keeps `doc` (a pycrdt Doc) in sync with a YServer room through
    a socket with async `send(data)` and `recv(timeout)`, and `close_code` and `close_reason`
    (a TestConnection, or any WebSocket client wrapped so).

    Local edits (`await client.edit(lambda doc: ...)`) are sent as updates; awareness states
    of other clients are kept in `states`, custom messages in `custom`.
    """

    socket: Any
    doc: Doc = field(default_factory=Doc)
    synced: bool = False
    states: dict[int, Any] = field(default_factory=dict)
    custom: list[str] = field(default_factory=list)
    text_messages: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._outbox: list[bytes] = []
        self._applying = False
        self._session = YSyncSession(self.doc)
        self.doc.observe(self._local_change)

    async def sync(self, timeout: float = TIMEOUT) -> YClient:
        """Run the sync handshake; returns once the server's document was applied."""
        self._session.start()
        await self._flush()
        await self.until(lambda: self.synced, timeout)
        return self

    async def edit(self, change: Callable[[Doc], Any]) -> None:
        """Run `change(doc)` and send the resulting update."""
        change(self.doc)
        outbox, self._outbox = self._outbox, []
        for update in outbox:
            await self.socket.send(sync_frame(UPDATE, update))

    async def set_awareness(self, client: int, clock: int, state: Any) -> None:
        """Send an awareness state (None removes it)."""
        entry = AwarenessEntry(client, clock, jsonlib.dumps(state))
        await self.socket.send(awareness_frame(encode_awareness([entry])))

    async def until(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Handle incoming frames until `predicate()` holds."""
        while not predicate():
            message = await self.socket.recv(timeout)
            if message is None:  # a WebSocket client's way of saying it was closed
                socket = self.socket
                raise ConnectionError(f"closed: {socket.close_code} {socket.close_reason}")
            await self.handle(message)

    async def handle(self, message: str | bytes) -> None:
        """Apply one frame from the server."""
        for event in self._session.receive(message):
            if isinstance(event, CustomMessage):
                self.custom.append(event.text)
            elif isinstance(event, TextMessage):
                self.text_messages.append(event.text)
            elif isinstance(event, Update):
                self._applying = True
                try:
                    self.doc.apply_update(event.payload)
                finally:
                    self._applying = False
                self.synced = self._session.synced
            elif isinstance(event, AwarenessUpdate):
                for entry in decode_awareness(event.update):
                    if entry.removed:
                        self.states.pop(entry.client, None)
                    else:
                        self.states[entry.client] = jsonlib.loads(entry.state)
        await self._flush()  # our step 2, answering the server's step 1

    async def _flush(self) -> None:
        for frame in self._session.data_to_send():
            await self.socket.send(frame)

    def _local_change(self, event: Any) -> None:
        if not self._applying:
            self._outbox.append(event.update)
