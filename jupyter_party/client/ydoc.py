"""`doc(party, room)`: a `pycrdt.Doc` kept in sync with a `YServer` room.

In a kernel or any async code::

    d = await jupyter_party.doc("notes", "r1")      # returns once the first sync is done
    text = d.get("text", type=Text)
    text += "hello"                                 # reaches everyone in the room
    d.awareness.set_local_state({"user": "kernel"})
    await d.close()

In a plain script, `doc_blocking(...)` runs the client on a background thread instead.

The client speaks the y-websocket protocol (protocol/ysync.py): it answers the server's STEP1
with a STEP2, sends its own STEP1, and is synced at the first STEP2. It reconnects with
exponential backoff (same `_pk`), resyncs, and sends edits made while offline. It remembers
the document's epoch: if the server recreated the document (close code 4409), it stops
instead of merging old state into the new document.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from pycrdt import Doc
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection

from ..protocol.codes import CloseCode
from ..protocol.ysession import (
    AwarenessQuery,
    AwarenessUpdate,
    CustomMessage,
    Update,
    YSyncSession,
)
from ..protocol.ysync import (
    UPDATE,
    AwarenessEntry,
    awareness_frame,
    decode_awareness,
    encode_awareness,
    sync_frame,
)
from ._loop import background_loop, wait_first
from ._socket import BACKOFF_MAX, BACKOFF_MIN, until_ready
from .discovery import find_server
from .reconnect import Reconnecting

log = logging.getLogger("jupyter_party.client")

#: Yjs peers drop awareness states not renewed for 30 s; renew ours twice as often.
AWARENESS_RENEW = 15.0


class DocumentRecreated(ConnectionError):
    """The room's document was recreated (new epoch): this copy must not be merged into it.

    Open the room again with `doc(...)` to get the new document.
    """


class Awareness:
    """Presence: every client's JSON state in the room (the Yjs awareness protocol).

    `states` maps Yjs client ids (ours is `client_id`, the document's) to states, ours included
    once set. `observe(callback)` calls `callback(topic, (changes, origin))` like pycrdt's
    Awareness: topic "change", changes `{"added": [...], "updated": [...], "removed": [...]}`,
    origin "local" (our own state) or "remote".
    """

    def __init__(self, client_id: int, send: Callable[[bytes], None]) -> None:
        self.client_id = client_id
        self._send = send
        self._clock = 0
        self._local: Any = None
        self._remote: dict[int, Any] = {}
        self._clocks: dict[int, int] = {}
        self._observers: dict[int, Callable[[str, tuple[dict[str, list[int]], Any]], Any]] = {}
        self._next_id = 0

    @property
    def states(self) -> dict[int, Any]:
        """Client id → state, for every client present (ours included once set)."""
        states = dict(self._remote)
        if self._local is not None:
            states[self.client_id] = self._local
        return states

    def get_local_state(self) -> Any:
        """Our state, or None when not set."""
        return self._local

    def set_local_state(self, state: dict[str, Any] | None) -> None:
        """Set (or with None, remove) our state; it is sent now, and again after reconnects."""
        json.dumps(state)  # fail here, not on the loop, if it is not JSON
        previous, self._local = self._local, state
        self._clock += 1
        self._send(self._encode_local())
        if previous is None and state is not None:
            self._emit(added=[self.client_id], origin="local")
        elif state is None and previous is not None:
            self._emit(removed=[self.client_id], origin="local")
        elif state != previous:
            self._emit(updated=[self.client_id], origin="local")

    def set_local_state_field(self, field: str, value: Any) -> None:
        """Set one field of our state."""
        self.set_local_state({**(self._local or {}), field: value})

    def observe(self, callback: Callable[[str, tuple[dict[str, list[int]], Any]], Any]) -> int:
        """Call `callback(topic, (changes, origin))` on every change; returns an id."""
        self._next_id += 1
        self._observers[self._next_id] = callback
        return self._next_id

    def unobserve(self, subscription: int) -> None:
        """Stop calling the callback registered under `subscription`."""
        self._observers.pop(subscription, None)

    # -- used by the provider -----------------------------------------------------------------

    def _encode_local(self, bump: int = 0) -> bytes:
        self._clock += bump
        state = "null" if self._local is None else json.dumps(self._local)
        return awareness_frame(
            encode_awareness([AwarenessEntry(self.client_id, self._clock, state)])
        )

    def _apply(self, entries: list[AwarenessEntry]) -> None:
        added, updated, removed = [], [], []
        for entry in entries:
            if entry.client == self.client_id:
                continue  # the server's echo of our own state
            if entry.clock < self._clocks.get(entry.client, 0):
                continue  # outdated
            self._clocks[entry.client] = entry.clock
            if entry.removed:
                if self._remote.pop(entry.client, None) is not None:
                    removed.append(entry.client)
                continue
            state = json.loads(entry.state)
            if entry.client not in self._remote:
                added.append(entry.client)
            elif self._remote[entry.client] != state:
                updated.append(entry.client)
            self._remote[entry.client] = state
        self._emit(added=added, updated=updated, removed=removed)

    def _clear_remote(self) -> None:
        """Forget the others' states (disconnected: the server resends them on reconnect)."""
        removed = list(self._remote)
        self._remote.clear()
        self._emit(removed=removed)

    def _emit(self, added=(), updated=(), removed=(), origin: str = "remote") -> None:
        if not (added or updated or removed):
            return
        changes = {"added": list(added), "updated": list(updated), "removed": list(removed)}
        for callback in list(self._observers.values()):
            try:
                callback("change", (changes, origin))
            except Exception:
                log.exception("awareness observer failed")


class RoomDoc(Doc):
    """A `pycrdt.Doc` kept in sync with a `YServer` room; made by `doc()` / `doc_blocking()`.

    Create one yourself only to choose Doc options (e.g. `RoomDoc(client_id=...)`), then pass
    it as `doc(..., document=...)`.
    """

    _provider: _Provider | None = None

    def _p(self) -> _Provider:
        if self._provider is None:
            raise RuntimeError("this RoomDoc is not connected: use jupyter_party.doc(...)")
        return self._provider

    @property
    def url(self) -> str:
        """The room's WebSocket URL (without query)."""
        return self._p().url

    @property
    def connection_id(self) -> str:
        """Our connection id (`_pk`), the same across reconnects."""
        return self._p().connection_id

    @property
    def awareness(self) -> Awareness:
        """Presence states of the room's clients (see `Awareness`)."""
        return self._p().awareness

    @property
    def synced(self) -> bool:
        """True while connected and in sync with the room."""
        return self._p().synced.is_set()

    @property
    def connected(self) -> bool:
        """True while the WebSocket is open."""
        return self._p().ws is not None

    @property
    def epoch(self) -> str:
        """The document incarnation the server announced ("" before the first connection)."""
        return self._p().epoch

    @property
    def error(self) -> BaseException | None:
        """Why the client stopped, if it stopped on an error (refusal, `DocumentRecreated`)."""
        return self._p().error

    @property
    def stale(self) -> bool:
        """True once the room's document was recreated: this copy no longer syncs."""
        return isinstance(self._p().error, DocumentRecreated)

    @property
    def closed(self) -> bool:
        """True once the client stopped (closed, refused or stale)."""
        return self._p().done.is_set()

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until in sync (again, after a reconnect); raise the error if the client stopped."""
        await self._p().wait_synced(timeout)

    async def wait_closed(self) -> None:
        """Wait until the client stops; raises its error if it stopped on one."""
        provider = self._p()
        await provider.done.wait()
        if provider.error is not None:
            raise provider.error

    async def close(self) -> None:
        """Disconnect for good (the server drops our awareness state). The Doc stays usable."""
        await self._p().close()

    def close_blocking(self, timeout: float = 10.0) -> None:
        """`close()` from another thread than the client's loop (e.g. after `doc_blocking`)."""
        provider = self._p()
        future = asyncio.run_coroutine_threadsafe(provider.close(), provider.loop)
        future.result(timeout)


class _Provider(Reconnecting):
    """The connection of one RoomDoc: sync, awareness, reconnects, epoch."""

    def __init__(
        self,
        doc: RoomDoc,
        url: str,
        auth: dict[str, str],
        connection_id: str,
        params: dict[str, str],
        **backoff: Any,
    ) -> None:
        super().__init__(url, **backoff)
        self.doc, self.connection_id = doc, connection_id
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self.awareness = Awareness(doc.client_id, self._send_threadsafe)
        self.epoch = ""
        self.ws: WebSocketClientConnection | None = None
        self.synced = asyncio.Event()
        self.done = asyncio.Event()
        self._headers = auth
        self._params = params
        self._sync = YSyncSession(doc)  # the sync state of the current connection
        self._applying: int | None = None  # the thread applying a remote update
        self._subscription = doc.observe(self._on_change)

    async def wait_synced(self, timeout: float | None) -> None:
        async with asyncio.timeout(timeout):
            while not self.synced.is_set():
                if self.done.is_set():
                    raise self.error or ConnectionError(f"{self.url}: the client was closed")
                await wait_first(self.synced, self.done)

    async def close(self) -> None:
        await self._shut(self.ws, CloseCode.NORMAL, "client closed")

    # -- the connection loop ------------------------------------------------------------------

    async def _request(self) -> HTTPRequest:
        query = {**self._params, "_pk": self.connection_id, "epoch": self.epoch}
        return HTTPRequest(
            f"{self.url}?{urlencode(query)}",
            headers=self._headers,
            connect_timeout=10.0,
            request_timeout=10.0,
        )

    def _final(self, code: int | None, reason: str) -> BaseException | None:
        if code == CloseCode.EPOCH_CHANGED:
            return DocumentRecreated(
                f"{self.url}: the room's document was recreated ({reason}); this "
                "copy no longer syncs: open the room again with doc(...)"
            )
        return super()._final(code, reason)

    def _stopped(self) -> None:
        self.doc.unobserve(self._subscription)
        self.done.set()

    async def _session(self, ws: WebSocketClientConnection) -> bool:
        """Serve one connection until it closes; True if it got in sync (the backoff starts
        over)."""
        if self._closing.is_set():
            ws.close(CloseCode.NORMAL, "client closed")
            return False
        self.ws, self._sync = ws, YSyncSession(self.doc)
        was_synced = False
        renew = self.loop.create_task(self._renew_awareness())
        try:
            self._sync.start()
            self._flush()
            if self.awareness.get_local_state() is not None:
                # The server removed our state (clock + 1) when the last connection closed.
                self._send(self.awareness._encode_local(bump=2))
            while True:
                message = await ws.read_message()
                if message is None:
                    break
                try:
                    self._receive(message)
                except Exception as error:
                    self._malformed(ws, error)
                except BaseException as error:  # pycrdt's PanicException is not an Exception
                    if type(error).__name__ != "PanicException":
                        raise
                    self._malformed(ws, error)
                was_synced = was_synced or self.synced.is_set()
        finally:
            renew.cancel()
            self.ws = None
            self.synced.clear()
            self.awareness._clear_remote()
        return was_synced

    def _malformed(self, ws: WebSocketClientConnection, error: BaseException) -> None:
        log.warning("%s: bad message from the server, reconnecting: %s", self.url, error)
        ws.close(CloseCode.INVALID_DATA, "malformed frame")

    def _receive(self, message: str | bytes) -> None:
        try:
            for event in self._sync.receive(message):
                if isinstance(event, CustomMessage):
                    self._custom(event.text)
                elif isinstance(event, Update):
                    self._apply(event.payload)
                    if self._sync.synced:
                        self.synced.set()
                elif isinstance(event, AwarenessUpdate):
                    self.awareness._apply(decode_awareness(event.update))
                elif isinstance(event, AwarenessQuery):
                    self._answer_awareness_query()
        finally:
            self._flush()  # our step 2, answering the server's step 1

    def _answer_awareness_query(self) -> None:
        if self.awareness.get_local_state() is not None:
            self._send(self.awareness._encode_local())

    def _custom(self, text: str) -> None:
        try:
            body = json.loads(text)
        except ValueError:
            return  # another custom message: not ours to interpret
        if isinstance(body, dict) and isinstance(body.get("epoch"), str):
            self.epoch = body["epoch"]

    def _flush(self) -> None:
        for frame in self._sync.data_to_send():
            self._send(frame)

    def _apply(self, update: bytes) -> None:
        self._applying = threading.get_ident()
        try:
            if self.doc._allow_multithreading:  # the user's thread may be in a transaction
                with self.doc.new_transaction():
                    self.doc.apply_update(update)
            else:
                self.doc.apply_update(update)
        finally:
            self._applying = None

    async def _renew_awareness(self) -> None:
        while True:
            await asyncio.sleep(AWARENESS_RENEW)
            if self.awareness.get_local_state() is not None:
                self._send(self.awareness._encode_local(bump=1))

    # -- sending ------------------------------------------------------------------------------

    def _on_change(self, event: Any) -> None:
        """Doc observer: send local changes (not the remote ones we are applying)."""
        if self._applying == threading.get_ident():
            return
        self._send_threadsafe(bytes(event.update), update=True)

    def _send_threadsafe(self, frame: bytes, update: bool = False) -> None:
        if update:
            frame = sync_frame(UPDATE, frame)
        if threading.get_ident() == self.thread:
            self._send(frame, update)
        else:
            with contextlib.suppress(RuntimeError):  # the loop was closed: nothing to send to
                self.loop.call_soon_threadsafe(self._send, frame, update)

    def _send(self, frame: bytes, update: bool = False) -> None:
        ws = self.ws
        # Before the server's STEP1 it may still refuse our epoch: edits wait for our STEP2.
        if ws is None or (update and not self._sync.handshaken):
            return
        try:
            future = ws.write_message(frame, binary=True)
        except Exception:  # closed under us: the read loop sees it; the reconnect resyncs
            return  # the document and resends our awareness state
        future.add_done_callback(_ignore_failure)


def _ignore_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def doc(
    party: str,
    room: str,
    *,
    server: str | None = None,
    token: str | None = None,
    document: RoomDoc | None = None,
    id: str | None = None,
    params: dict[str, str] | None = None,
    timeout: float = 10.0,
    min_delay: float = BACKOFF_MIN,
    max_delay: float = BACKOFF_MAX,
    max_retries: int | None = None,
) -> RoomDoc:
    """Open `room` of the CRDT party `party`: a `RoomDoc` (a `pycrdt.Doc`) kept in sync.

    Returns once the first sync is done. `server`/`token` default to this kernel's Jupyter
    server (see `find_server`); `id` is the connection id (`_pk`, random by default; the
    document's `connection_id`, not to be confused with Yjs's own `client_id`);
    `params` are extra query parameters; `min_delay` / `max_delay` (seconds) bound the backoff
    between reconnects, `max_retries` the failed attempts in a row before it stops (None:
    never), as in `connect()`. Raises `RoomRefused` if the server refuses (bad
    token, unknown party) and `TimeoutError` if no sync happened within `timeout` seconds.
    """
    info = find_server(server, token)
    if document is None:
        document = RoomDoc()
    elif not isinstance(document, RoomDoc):
        raise TypeError("document must be a RoomDoc (a pycrdt.Doc subclass): RoomDoc(...)")
    previous = document._provider
    if previous is not None and not previous.done.is_set():
        raise RuntimeError("this RoomDoc is already connected")
    if previous is not None and isinstance(previous.error, DocumentRecreated):
        raise previous.error  # reopening would merge the old document into the new one
    provider = _Provider(
        document,
        info.room_url(party, room),
        info.auth,
        id or uuid.uuid4().hex,
        {k: str(v) for k, v in (params or {}).items()},
        min_delay=min_delay,
        max_delay=max_delay,
        max_retries=max_retries,
    )
    if previous is not None and previous.url == provider.url:
        provider.epoch = previous.epoch  # the server refuses it if the document was recreated
    document._provider = provider
    provider.start()
    await until_ready(provider, provider.wait_synced(timeout), timeout, "synced")
    return document


# -- blocking use, from code without a running event loop -------------------------------------


def doc_blocking(party: str, room: str, **kwargs: Any) -> RoomDoc:
    """`doc()` for code without an event loop (plain scripts): returns a synced `RoomDoc`.

    The client runs on a daemon thread with its own loop; the document is created with
    `allow_multithreading=True`. Make edits inside `with d.new_transaction(): ...` so they
    never overlap remote updates, and call `d.close_blocking()` when done.
    """
    kwargs.setdefault("document", RoomDoc(allow_multithreading=True))
    timeout = kwargs.get("timeout", 10.0)
    future = asyncio.run_coroutine_threadsafe(doc(party, room, **kwargs), background_loop())
    return future.result(timeout + 5)
