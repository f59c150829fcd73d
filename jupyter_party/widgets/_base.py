"""`RoomWidget`: what every jupyter-party widget shares, including the kernel relay.

The browser side connects to the room itself when the page is JupyterLab or Notebook 7 (it
finds `jupyter-config-data`). Elsewhere it asks the kernel to hold the connection, with
custom messages (the front-end half is `js/src/transport.js`):

    front end -> kernel  {"type": "relay-open", "id", "query"}, {"type": "relay-query", "query"}
                         {"type": "send", "data"} or {"type": "send", "binary": true} + buffer
                         {"type": "relay-close"}
    kernel -> front end  {"type": "open", "id", "url"}, {"type": "close", "code", "reason", "final"}
                         {"type": "message", "data"} or {"type": "message", "binary": true} + buffer

The kernel side is a `jupyter_party.client.room.RoomClient` (reconnecting, same `_pk`), made
on the kernel's event loop, or on the client's background loop where none runs. A widget can
also be attached to an existing client (`client=`): it then shows that client's traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..client._loop import client_loop
from ..client.admin import AdminError, admin_call
from ..protocol.codes import REFUSALS
from ..runtime.tasks import spawn

log = logging.getLogger("jupyter_party.widgets")

STATIC = Path(__file__).parent / "static"
POLL_SECONDS = 5.0


class RoomWidget(anywidget.AnyWidget):
    """Base class: a widget on one room of one party."""

    party = traitlets.Unicode("").tag(sync=True)
    room = traitlets.Unicode("").tag(sync=True)
    #: "connecting", "connected", "closed (code: reason)", ... as the active side reports it.
    status = traitlets.Unicode("").tag(sync=True)
    #: This widget's connection id (`_pk`); empty: the front end picks a random one.
    connection_id = traitlets.Unicode("").tag(sync=True)
    #: "auto" (direct from the page when it can, else the kernel relays), "direct", "relay".
    mode = traitlets.Enum(["auto", "direct", "relay"], default_value="auto").tag(sync=True)

    def __init__(
        self,
        party: str = "",
        room: str = "",
        *,
        server: str | None = None,
        token: str | None = None,
        client: Any = None,
        **kwargs: Any,
    ) -> None:
        if client is not None:  # attached to an existing kernel client: always relayed
            inner = getattr(client, "client", client)  # BlockingRoomClient -> RoomClient
            party, room = party or inner.party, room or inner.room
            kwargs.setdefault("connection_id", inner.id)
            kwargs["mode"] = "relay"
        super().__init__(party=party, room=room, **kwargs)
        self._server, self._token = server, token
        self._client: Any = None
        self._attached = client is not None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._relay_query: dict[str, str] = {}
        self._poller: asyncio.Task[None] | None = None
        self.on_msg(self._on_custom)
        if client is not None:
            self._attach(getattr(client, "client", client))

    # -- messages from the front end -----------------------------------------------------------

    def _on_custom(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "relay-open":
            self._relay_query = _query(content.get("query"))
            self._relay_open(str(content.get("id") or self.connection_id or ""))
        elif kind == "relay-query":
            self._relay_query = _query(content.get("query"))
            if content.get("reconnect") and self._client is not None and not self._attached:
                self._call(self._client.reconnect)
        elif kind == "send":
            if content.get("binary"):
                data: str | bytes = bytes(buffers[0]) if buffers else b""
            else:
                data = str(content.get("data", ""))
            self._relay_send(data)
        elif kind == "relay-close":
            self._relay_stop()
        else:
            self._on_other_message(content, buffers)

    def _on_other_message(self, content: dict, buffers: list[Any]) -> None:
        """Subclasses: custom messages that are not part of the relay protocol."""

    # -- the relay ------------------------------------------------------------------------------

    @property
    def relay_client(self) -> Any:
        """The kernel-side `RoomClient` relaying for the front end, or None."""
        return self._client

    def _relay_open(self, connection_id: str) -> None:
        if self._client is not None:
            if self._client.connected:  # a new view, or a handle already open: say so, count
                self._sent_open()
                self._start_poller()
            return
        from ..client.room import RoomClient

        if connection_id and connection_id != self.connection_id:
            self.connection_id = connection_id
        self._loop = client_loop()

        def start() -> None:
            try:
                client = RoomClient(
                    self.party,
                    self.room,
                    server=self._server,
                    token=self._token,
                    id=self.connection_id or None,
                    query=lambda: dict(self._relay_query),
                )
            except Exception as error:  # ServerNotFound and the like: say so in the widget
                self.status = f"closed (no connection: {error})"
                self._log("info", f"cannot connect from the kernel: {error}")
                self.send({"type": "close", "code": 0, "reason": str(error), "final": True})
                return
            self._attach(client)
            self.status = "connecting"
            client.start()
            spawn(self._watch(client))

        self._call(start)

    def _attach(self, client: Any) -> None:
        self._client = client
        if not self.connection_id:
            self.connection_id = client.id
        client.on_open(self._client_open)
        client.on_message(self._client_message)
        client.on_close(self._client_close)
        if client.connected:
            self.status = "connected"

    async def _watch(self, client: Any) -> None:
        with contextlib.suppress(Exception):
            await client.wait_closed()
        if client.error is not None:
            self.status = f"closed ({client.error})"
            self.send({"type": "close", "code": 0, "reason": str(client.error), "final": True})

    def _sent_open(self) -> None:
        self.send({"type": "open", "id": self.connection_id, "url": self._client.url})

    def _client_open(self) -> None:
        self.status = "connected"
        self._log("info", "connected (through the kernel)")
        self._sent_open()
        self._start_poller()

    def _client_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.send({"type": "message", "binary": True}, buffers=[message])
        else:
            self.send({"type": "message", "data": message})
        self._received(message)

    def _client_close(self, code: int | None, reason: str) -> None:
        final = code in REFUSALS
        self.status = f"closed ({code}{': ' + reason if reason else ''})" + (
            "" if final else ", reconnecting"
        )
        self._log("info", f"closed {code} {reason}")
        self.send({"type": "close", "code": code, "reason": reason, "final": final})
        if self._poller is not None:
            self._poller.cancel()

    def _relay_send(self, data: str | bytes) -> None:
        client = self._client
        if client is None or client.closed:
            self._log("info", "not sent: not connected")
            return

        def send() -> None:
            try:
                client.send_nowait(data)
            except ConnectionError as error:
                self._log("info", f"not sent: {error}")

        self._call(send)
        self._sent(data)

    def _relay_stop(self) -> None:
        """The last view went away: close the kernel's connection (unless it is the user's)."""
        if self._poller is not None:
            self._poller.cancel()
        client, self._client = self._client, None
        if client is None:
            return
        for callback in (self._client_open, self._client_message, self._client_close):
            client.off(callback)
        if not self._attached:
            self._call(lambda: spawn(client.close()))

    def close(self) -> None:
        self._relay_stop()
        super().close()

    def _call(self, function: Any) -> None:
        """Run `function()` on the client's loop (now, when this is that loop's thread)."""
        loop = self._loop or (getattr(self._client, "_loop", None))
        if loop is None:
            function()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            function()
        else:
            loop.call_soon_threadsafe(function)

    # -- presence: the room's connection count from the admin API ------------------------------

    def _start_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = spawn(self._poll())

    async def _poll(self) -> None:
        await asyncio.sleep(0.3)  # let the server finish accepting us before counting
        while self._client is not None and self._client.connected:
            count = await self._room_connections()
            if count is not None:
                self._connections(count)
            await asyncio.sleep(POLL_SECONDS)

    async def _room_connections(self) -> int | None:
        try:  # a blocking call: in a thread, not to stall the kernel's loop
            answer = await asyncio.to_thread(admin_call, self._client.server, "GET", "rooms")
            rooms = answer.get("rooms", [])
        except (AdminError, ConnectionError, ValueError):
            return None
        for entry in rooms:
            if entry.get("party") == self.party and entry.get("room") == self.room:
                return int(entry.get("connections", 0))
        return 0

    # -- hooks for subclasses --------------------------------------------------------------------

    def _received(self, message: str | bytes) -> None:
        """A message arrived through the relay."""

    def _sent(self, message: str | bytes) -> None:
        """A message from the front end was relayed to the room."""

    def _log(self, direction: str, text: str) -> None:
        """An event worth showing (the console logs it)."""

    def _connections(self, count: int) -> None:
        """The admin API says the room has `count` connections."""


def _query(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}
