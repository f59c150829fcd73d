"""Calls from one room to another: `room.context.parties[name].get(id)`.

Like PartyKit, these calls go straight to the target room, skipping its `on_before_*` gates:
they come from trusted party code of the same server. They travel through the server process,
which routes them to the worker that owns the target room (maybe this one), so a room is
reached the same way from everywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

from tornado.httputil import HTTPHeaders

from ..protocol.codes import CloseCode
from .http import Request, Response
from .outbox import Outgoing

if TYPE_CHECKING:
    from .registry import Registry

_CLOSED = object()


class Calls(Protocol):
    """How stubs reach other rooms: the session."""

    async def fetch(self, party: str, room: str, request: Request) -> Response: ...

    async def socket(self, party: str, room: str, path: str, id: str | None) -> LocalSocket: ...

    def send_to_room(self, conn: int, message: Outgoing) -> None: ...

    def close_to_room(self, conn: int, code: int, reason: str) -> None: ...


class Parties(Mapping[str, "PartyStub"]):
    """`room.context.parties`: every party of the server, by name."""

    def __init__(self, registry: Registry, calls: Calls) -> None:
        self._registry = registry
        self._calls = calls

    def __getitem__(self, name: str) -> PartyStub:
        self._registry.get(name)  # raises KeyError with a clear message
        return PartyStub(self._calls, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry.names())

    def __len__(self) -> int:
        return len(self._registry.names())


class PartyStub:
    """One party; `get(id)` addresses one of its rooms (created on demand)."""

    def __init__(self, calls: Calls, name: str) -> None:
        self._calls = calls
        self.name = name

    def get(self, id: str) -> RoomStub:
        return RoomStub(self._calls, self.name, id)


class RoomStub:
    """A handle on another room: HTTP with `fetch`, WebSocket with `socket`."""

    def __init__(self, calls: Calls, party: str, id: str) -> None:
        self._calls = calls
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
        return await self._calls.fetch(self.party, self.id, request)

    async def socket(self, path: str = "", *, id: str | None = None) -> LocalSocket:
        """Open a connection to the room; returns once its `on_connect` finished."""
        return await self._calls.socket(self.party, self.id, path, id)


class LocalSocket:
    """The client end of a connection from party code: `send`, `recv`, `async for`, `close`."""

    def __init__(self, calls: Calls, conn: int) -> None:
        self._calls = calls
        self._conn = conn
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.close_reason = ""

    # What the room's side does to it.
    def _receive(self, message: Outgoing) -> None:
        if self.close_code is None:
            self._inbox.put_nowait(message.data)

    def _closed(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self._inbox.put_nowait(_CLOSED)

    # The client's side.
    async def send(self, message: str | bytes | Any) -> None:
        """Send a message to the room's `on_message` (messages arrive in order)."""
        if self.close_code is not None:
            raise ConnectionError("the socket is closed")
        self._calls.send_to_room(self._conn, Outgoing(message))

    async def recv(self) -> str | bytes:
        """The next message from the room; raises ConnectionError once closed."""
        message = await self._inbox.get()
        if message is _CLOSED:
            self._inbox.put_nowait(_CLOSED)
            raise ConnectionError(f"closed with {self.close_code}: {self.close_reason}")
        return cast(str | bytes, message)

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the connection; the room's `on_close` runs."""
        if self.close_code is None:
            self._closed(code, reason)
            self._calls.close_to_room(self._conn, code, reason)

    def __aiter__(self) -> LocalSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.recv()
        except ConnectionError:
            raise StopAsyncIteration from None
