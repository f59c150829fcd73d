"""The kit's Yjs client (jupyter_party.testing.YClient) over a real server's WebSocket."""

from __future__ import annotations

from pycrdt import Map, Text

from jupyter_party.protocol.ysync import CUSTOM_PREFIX
from jupyter_party.testing import YClient as KitYClient


class YClient(KitYClient):
    """Wraps a test WebSocket `Client` (conftest.py); `text` and `map` read the document's
    shared types of those names."""

    @property
    def ws(self):
        return self.socket

    @property
    def text(self) -> str:
        return str(self.doc.get("text", type=Text))

    @property
    def map(self) -> dict:
        return self.doc.get("map", type=Map).to_py()

    async def settled(self) -> None:
        """Wait until the server has handled everything sent so far (the `ydoc` test party
        echoes custom messages, in order with everything else)."""
        self._marks = getattr(self, "_marks", 0) + 1
        mark = f"mark-{self._marks}"
        await self.ws.send(CUSTOM_PREFIX + mark)
        await self.until(lambda: f"echo:{mark}" in self.custom)
