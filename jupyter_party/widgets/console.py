"""`RoomConsole`: a room's status, own id, presence, live message log and a send box."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import traitlets

from ..client._loop import client_loop
from ..runtime.tasks import spawn
from ._base import STATIC, RoomWidget

MAX_MESSAGES = 200


class RoomConsole(RoomWidget):
    """A console on any room: ``RoomConsole("chat", "lobby")``, or ``RoomConsole(client=room)``
    to show the traffic of a `connect()` handle.

    `messages` is the shared log, ``{"dir": "in" | "out" | "info", "text", "time"}`` (epoch
    ms), the last 200; `connections` the room's connection count (-1: unknown); `share` the
    last share link asked for, ``{"url", "access", "local"}`` or ``{"error"}``, shown as a
    clickable, copyable link.

    Live log entries travel as deltas, ``{"type": "log", "entries": [...]}``, from the side
    that holds the connection (the page in direct mode, in batches; the kernel in relay mode)
    to the other, which appends them: the whole log is synced only when Python assigns
    `messages` or a page loads the widget, never on every message.
    """

    _esm = STATIC / "console.js"

    messages = traitlets.List(traitlets.Dict()).tag(sync=True)
    connections = traitlets.Int(-1).tag(sync=True)
    share = traitlets.Dict().tag(sync=True)

    _appending = False  # `messages` grows by deltas the front end has (or sent) already

    @traitlets.validate("messages")
    def _bounded(self, proposal: dict[str, Any]) -> list[dict[str, Any]]:
        return list(proposal["value"])[-MAX_MESSAGES:]

    def _should_send_property(self, key: str, value: Any) -> bool:
        if key == "messages" and self._appending:
            return False
        return bool(super()._should_send_property(key, value))

    def _append(self, entries: list[dict[str, Any]]) -> None:
        """Add log entries without syncing the whole log to the front end."""
        self._appending = True
        try:
            self.messages = [*self.messages, *entries]
        finally:
            self._appending = False

    def _log(self, direction: str, text: str) -> None:
        entry = {"dir": direction, "text": text, "time": int(time.time() * 1000)}
        self._append([entry])
        self.send({"type": "log", "entries": [entry]})

    def _received(self, message: str | bytes) -> None:
        self._log("in", _summary(message))

    def _sent(self, message: str | bytes) -> None:
        self._log("out", _summary(message))

    def _connections(self, count: int) -> None:
        self.connections = count

    def _on_other_message(self, content: dict, buffers: list[Any]) -> None:
        if content.get("type") == "log":  # direct mode: the page's new entries, batched
            entries = content.get("entries")
            if isinstance(entries, list):
                self._append([_entry(e) for e in entries[-MAX_MESSAGES:] if isinstance(e, dict)])
        elif content.get("type") == "share":  # relay mode: the page cannot ask the server itself
            access = "read" if content.get("access") == "read" else "write"
            self._loop = self._loop or client_loop()
            self._call(lambda: spawn(self._make_share(access)))

    async def _make_share(self, access: str) -> None:
        from ..client.share import request_share

        try:
            answer = await asyncio.to_thread(
                request_share, self.party, self.room, access, server=self._server, token=self._token
            )
        except Exception as error:  # no server, refused: say so where the button was pressed
            self.share = {"error": f"no share link: {error}"}
            return
        self.share = {"url": answer["url"], "access": access, "local": bool(answer.get("local"))}


def _summary(message: str | bytes) -> str:
    if isinstance(message, bytes):
        return f"<{len(message)} bytes of binary data>"
    return message


def _entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A log entry from the front end, in the log's shape whatever it sent."""
    direction = entry.get("dir")
    time_ms = entry.get("time")
    return {
        "dir": direction if direction in ("in", "out", "info") else "info",
        "text": str(entry.get("text", "")),
        "time": time_ms if isinstance(time_ms, int) else 0,
    }
