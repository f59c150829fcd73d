"""`PartyUI`: a party's own front-end module, rendered in the notebook."""

from __future__ import annotations

import traitlets

from ._base import STATIC, RoomWidget


class PartyUI(RoomWidget):
    """Runs `ui_esm`, an anywidget module, with a `room` handle on the room's connection.

    The module's `render({model, el, room})` may use `room.send(data)`, `room.on("message" |
    "open" | "close", callback)`, `room.id`, `room.url`, `room.connected`, and the model's
    `party`, `room`, `url` and `status`. See `js/src/ui.js`.
    """

    _esm = STATIC / "ui.js"

    ui_esm = traitlets.Unicode("").tag(sync=True)
    #: Set by the front end (locally) to the room's WebSocket URL.
    url = traitlets.Unicode("").tag(sync=True)
