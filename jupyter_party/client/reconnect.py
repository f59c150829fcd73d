"""The reconnecting core of the kernel's room clients (`connect()`'s `RoomClient` and `doc()`'s
provider): open the socket, serve it until it closes, wait with exponential backoff and
jitter, open it again; stop on `close()`, on a refusal, or after `max_retries` failures in a
row. What differs between the clients is a few hooks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection

from ..protocol.codes import REFUSALS
from ..runtime.tasks import spawn
from ._socket import BACKOFF_MAX, BACKOFF_MIN, RoomRefused, open_socket

log = logging.getLogger("jupyter_party.client")


class Reconnecting:
    """A client that keeps one room socket open; subclasses provide the hooks.

    `error` says why it stopped, if it stopped on an error (`RoomRefused`, `ConnectionError`
    after `max_retries`, or what `_final` returned); `last_failure` why the last attempt or
    connection ended; `close_code` / `close_reason` how the last connection closed.
    """

    def __init__(
        self,
        url: str,
        *,
        min_delay: float = BACKOFF_MIN,
        max_delay: float = BACKOFF_MAX,
        max_retries: int | None = None,
    ) -> None:
        self.url = url
        self.error: BaseException | None = None
        self.last_failure = ""
        self.close_code: int | None = None
        self.close_reason = ""
        self._min_delay, self._max_delay = min_delay, max_delay
        self._max_retries = max_retries
        self._closing = asyncio.Event()
        self._connecting = False  # a handshake is under way
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start connecting (and reconnecting) in the background."""
        self._task = spawn(self._run())  # held until done: asyncio keeps only weak references

    async def _shut(self, ws: WebSocketClientConnection | None, code: int, reason: str) -> None:
        """Stop for good: close `ws` (the open socket) with `code`, or cancel a handshake under
        way rather than wait for it to time out; returns once the loop ended."""
        self._closing.set()
        if ws is not None:
            ws.close(code, reason)
        elif self._connecting and self._task is not None:
            self._task.cancel()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise

    # -- hooks --------------------------------------------------------------------------------

    async def _request(self) -> HTTPRequest:
        """The handshake request of the next connection."""
        raise NotImplementedError

    async def _session(self, ws: WebSocketClientConnection) -> bool:
        """Serve one connection until it closes; True if it went well enough that the
        backoff starts over (the next failure waits `min_delay` again)."""
        raise NotImplementedError

    def _closed(self, code: int | None, reason: str) -> None:
        """A connection closed (`close_code` and `close_reason` are set)."""

    def _final(self, code: int | None, reason: str) -> BaseException | None:
        """The error to stop on after a close with `code`, or None to reconnect."""
        return RoomRefused(self.url, code, reason) if code in REFUSALS else None

    def _at_once(self, code: int | None) -> bool:
        """Reconnect without backoff after a close with `code`."""
        return False

    def _stopped(self) -> None:
        """The client stopped for good (closed, refused, out of retries)."""

    # -- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        delay, failures = self._min_delay, 0
        try:
            while not self._closing.is_set():
                wait: float | None = None
                try:
                    request = await self._request()
                    self._connecting = True
                    try:
                        ws = await open_socket(request, self.url)
                    finally:
                        self._connecting = False
                except RoomRefused as error:
                    self.error = error
                    return
                except Exception as error:  # refused, unreachable, TLS, timeout: try again
                    self.last_failure = f"{type(error).__name__}: {error}"
                else:
                    healthy = await self._session(ws)
                    code, reason = ws.close_code, ws.close_reason or ""
                    self.close_code, self.close_reason = code, reason
                    self._closed(code, reason)
                    if self._closing.is_set():
                        return
                    final = self._final(code, reason)
                    if final is not None:
                        self.error = final
                        log.warning("%s", final)
                        return
                    self.last_failure = f"connection closed ({code}): {reason}"
                    if healthy:
                        delay, failures = self._min_delay, 0
                    if self._at_once(code):
                        wait = random.uniform(0, self._min_delay / 2)
                failures += 1
                if self._max_retries is not None and failures > self._max_retries:
                    self.error = ConnectionError(
                        f"{self.url}: gave up after {self._max_retries} retries "
                        f"(last failure: {self.last_failure})"
                    )
                    return
                if wait is None:
                    wait = delay * random.uniform(0.5, 1.0)
                    delay = min(delay * 2, self._max_delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), wait)
        finally:
            self._stopped()
