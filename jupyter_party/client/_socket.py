"""What every kernel-side room client shares: opening a room's socket, and which refusals
are final (retrying cannot help)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

#: The refusals (REFUSALS), when a server answers the handshake with an HTTP status instead.
_REFUSED_STATUSES = (400, 401, 403, 404)
#: Reconnect delays: from BACKOFF_MIN, doubling, to BACKOFF_MAX seconds.
BACKOFF_MIN, BACKOFF_MAX = 0.1, 5.0
MAX_MESSAGE_SIZE = 64 << 20


class RoomRefused(ConnectionError):
    """The server refused the connection (auth, unknown party, bad name): `code`, `reason`."""

    def __init__(self, url: str, code: int, reason: str) -> None:
        super().__init__(f"{url} refused the connection ({code}): {reason or 'no reason given'}")
        self.url, self.code, self.reason = url, code, reason


async def open_socket(request: HTTPRequest, url: str) -> WebSocketClientConnection:
    """Open a room's WebSocket. A handshake refused with 400/401/403/404 raises RoomRefused
    (final); any other failure propagates for the caller to retry."""
    try:
        return await websocket_connect(request, max_message_size=MAX_MESSAGE_SIZE, ping_interval=30)
    except HTTPClientError as error:
        if error.code not in _REFUSED_STATUSES:
            raise
        body = error.response.body if error.response is not None else b""
        reason = (body or b"").decode("utf-8", "replace") or error.message or ""
        raise RoomRefused(url, error.code, reason) from None


async def until_ready(
    client: Any, ready: Awaitable[None], timeout: float | None, what: str
) -> None:
    """Await `ready` (a client's first connection or sync); on failure close the client and
    raise, naming its URL and last failure, so a caller never gets a half-started client."""
    try:
        await ready
    except TimeoutError:
        await client.close()
        why = f" (last failure: {client.last_failure})" if client.last_failure else ""
        raise TimeoutError(f"{client.url}: not {what} within {timeout} s{why}") from None
    except BaseException:
        await client.close()
        raise
