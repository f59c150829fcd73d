"""`HostView`: the widget of a party this kernel hosts (`jupyter_party.host`).

It shows the party's status, its live rooms with their guests, the latest events, a share
link for any room (clickable and copyable), and a stop button. The kernel pushes each change
(at most every 0.2 s); the browser never polls.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets

from ._base import STATIC

#: Events the widget shows (the newest).
SHOWN_EVENTS = 20


class HostView(anywidget.AnyWidget):
    """The view of one `HostedParty`; make it with `hosted.widget()` or by displaying it."""

    _esm = STATIC / "host.js"

    name = traitlets.Unicode("").tag(sync=True)
    url = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    #: Live rooms: {"room", "connections"}.
    rooms = traitlets.List(traitlets.Dict()).tag(sync=True)
    #: The newest events: {"time" (epoch s), "kind", "room", "connection", "text"}.
    events = traitlets.List(traitlets.Dict()).tag(sync=True)
    #: The last share link asked for: {"room", "url"} or {"room", "error"}.
    share = traitlets.Dict().tag(sync=True)

    def __init__(self, hosted: Any) -> None:
        super().__init__(name=hosted.name, url=hosted.url)
        self._hosted = hosted
        self.on_msg(self._on_message)

    def show(self, status: str, rooms: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        """The hosted party's state now."""
        with self.hold_sync():
            self.status = status
            self.rooms = [{"room": r["room"], "connections": r["connections"]} for r in rooms]
            self.events = events[-SHOWN_EVENTS:]

    def _on_message(self, _widget: Any, content: Any, _buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "share":
            room = str(content.get("room") or "")
            try:
                self.share = {"room": room, "url": self._hosted.share_link(room)}
            except Exception as error:  # shown in the widget: a bad room name, a refusal
                self.share = {"room": room, "error": str(error)}
        elif content.get("type") == "stop":
            self._hosted.stop()
