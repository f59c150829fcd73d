"""`DocView`: the live shared document of a `YServer` room, editable in the notebook."""

from __future__ import annotations

import traitlets

from ._base import STATIC, RoomWidget


class DocView(RoomWidget):
    """The Map "map" (key/value rows) and the Text "text" (an editable textarea) of a YServer
    room, with presence from awareness: ``DocView("notes", "r1")``.

    The front end holds the Yjs document; the kernel relays its frames where the page cannot
    reach the server. `synced` turns true after the first sync; `presence` lists the awareness
    states the front end sees (``{"client", "state", "self"}``); `user` is the name it shows.
    """

    _esm = STATIC / "doc.js"

    user = traitlets.Unicode("").tag(sync=True)
    synced = traitlets.Bool(False).tag(sync=True)
    presence = traitlets.List(traitlets.Dict()).tag(sync=True)
