"""Calls from one room to another: `room.context.parties[name].get(id)` (DESIGN §3).

Like PartyKit, these calls go straight to the target room, skipping its `on_before_*` gates:
they come from trusted party code in the same server. `socket()` opens an in-process
connection that the target room sees like any other.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tornado.httputil import HTTPHeaders

from .connection import Connection, Outgoing
from .http import Request, Response
from .tasks import spawn

if TYPE_CHECKING:
    from .host import Host

_CLOSED = object()


class Parties(Mapping[str, "PartyStub"]):
    """`room.context.parties`: every party of the server, by name."""

    def __init__(self, host: Host) -> None:
        self._host = host

    def __getitem__(self, name: str) -> PartyStub:
        self._host.registry.get(name)  # raises KeyError with a clear message
        return PartyStub(self._host, name)

    def __iter__(self):
        return iter(self._host.registry.names())

    def __len__(self) -> int:
        return len(self._host.registry.names())


class PartyStub:
    """One party; `get(id)` addresses one of its rooms (created on demand)."""

    def __init__(self, host: Host, name: str) -> None:
        self._host = host
        self.name = name

    def get(self, id: str) -> RoomStub:
        return RoomStub(self._host, self.name, id)


class RoomStub:
    """A handle on another room: HTTP with `fetch`, WebSocket with `socket`."""

    def __init__(self, host: Host, party: str, id: str) -> None:
        self._host = host
        self.party = party
        self.id = id

    async def fetch(
        self,
        path: str = "",
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: str | bytes = b"",
        query: Mapping[str, str] | None = None,
    ) -> Response:
        """Send an HTTP request to the room's `on_request` and return its Response."""
        path = "/" + path.lstrip("/") if path.strip("/") else ""
        request = Request(
            method=method.upper(),
            url=f"/parties/{self.party}/{self.id}{path}",
            path=path,
            query=dict(query or {}),
            headers=HTTPHeaders(dict(headers or {})),
            body=body.encode("utf-8") if isinstance(body, str) else body,
        )
        return await self._host.request(self.party, self.id, request)

    async def socket(self, path: str = "", *, id: str | None = None) -> LocalSocket:
        """Open an in-process connection to the room; returns once `on_connect` finished."""
        socket = LocalSocket()
        connection = Connection(
            id or uuid.uuid4().hex,
            f"/parties/{self.party}/{self.id}{path}",
            socket,
            self._host.registry.get(self.party).send_buffer_limit
            or self._host.limits.send_buffer_limit,
        )
        socket._room = room = self._host.acquire(self.party, self.id)
        socket._connection = connection
        try:
            await room.connect(connection, Request(url=connection.uri, path=path))
        except BaseException:
            self._host.release(room)
            raise
        return socket


class LocalSocket:
    """The client end of an in-process connection: `send`, `recv`, `async for`, `close`."""

    def __init__(self) -> None:
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._room: Any = None
        self._connection: Connection | None = None
        self.close_code: int | None = None
        self.close_reason = ""

    # Transport side: what the room's Connection calls.
    def write(self, batch: list[Outgoing]) -> None:
        for message in batch:
            self._inbox.put_nowait(message.data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (from either side); the room's `on_close` runs."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        self._inbox.put_nowait(_CLOSED)
        spawn(self._disconnect(code, reason))

    # Client side.
    async def send(self, message: str | bytes | Any) -> None:
        """Deliver a message to the room's `on_message`, in order; returns once handled."""
        if self.close_code is not None:
            raise ConnectionError("the socket is closed")
        result = self._room.deliver(self._connection, Outgoing(message).data)
        if result is not None:
            await result

    async def recv(self) -> str | bytes:
        """The next message from the room; raises ConnectionError once closed."""
        message = await self._inbox.get()
        if message is _CLOSED:
            self._inbox.put_nowait(_CLOSED)
            raise ConnectionError(f"closed with {self.close_code}: {self.close_reason}")
        return message

    def __aiter__(self) -> LocalSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.recv()
        except ConnectionError:
            raise StopAsyncIteration from None

    async def _disconnect(self, code: int, reason: str) -> None:
        try:
            await self._room.disconnect(self._connection, code, reason)
        finally:
            self._room._host.release(self._room)
