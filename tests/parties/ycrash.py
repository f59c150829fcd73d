"""Test CRDT party for crash tests: snapshot persistence, and a durable acknowledgement.

A custom message is echoed only once every update its connection sent before it is durable
in storage (the `ydoc` party's echo only says the update was applied).
"""

from pycrdt import Text

from jupyter_party import YServer


class CrashNotes(YServer):
    persistence = "snapshot"

    async def on_custom_message(self, connection, message):
        if self._persisting is not None:  # the append of every update applied so far
            await self._persisting
        await self.room.storage.sync()
        self.send_custom_message(connection, f"echo:{message}")

    def on_request(self, request):
        return {"text": str(self.document.get("text", type=Text))}
