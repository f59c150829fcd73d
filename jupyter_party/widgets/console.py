"""`RoomConsole`: a room's status, own id, presence, live message log and a send box."""

from __future__ import annotations

import time
from typing import Any

import traitlets

from ._base import STATIC, RoomWidget

MAX_MESSAGES = 200


class RoomConsole(RoomWidget):
    """A console on any room: ``RoomConsole("chat", "lobby")``, or ``RoomConsole(client=room)``
    to show the traffic of a `connect()` handle.

    `messages` is the shared log, ``{"dir": "in" | "out" | "info", "text", "time"}`` (epoch
    ms), the last 200; `connections` the room's connection count (-1: unknown).
    """

    _esm = STATIC / "console.js"

    messages = traitlets.List(traitlets.Dict()).tag(sync=True)
    connections = traitlets.Int(-1).tag(sync=True)

    @traitlets.validate("messages")
    def _bounded(self, proposal: dict[str, Any]) -> list[dict[str, Any]]:
        return list(proposal["value"])[-MAX_MESSAGES:]

    def _log(self, direction: str, text: str) -> None:
        entry = {"dir": direction, "text": text, "time": int(time.time() * 1000)}
        self.messages = [*self.messages, entry]

    def _received(self, message: str | bytes) -> None:
        self._log("in", _describe(message))

    def _sent(self, message: str | bytes) -> None:
        self._log("out", _describe(message))

    def _connections(self, count: int) -> None:
        self.connections = count


def _describe(message: str | bytes) -> str:
    if isinstance(message, bytes):
        return f"<{len(message)} bytes of binary data>"
    return message
