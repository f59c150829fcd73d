"""Test CRDT party: bounded history, short save debounce, and a record of on_load/on_save.

`GET {room}` answers `{"calls": [...]}`; `GET {room}/storage` answers, once every document
change so far is durable, every stored key with values as JSON or `{"base64": ...}` for bytes.
"""

import base64

from pycrdt import Text

from jupyter_party import YServer


class Journal(YServer):
    persistence = "history"
    history_max_updates = 5
    debounce_wait = 0.05
    debounce_max_wait = 0.2
    calls: list[str] = []

    def on_load(self):
        Journal.calls.append(f"load:{self.room.id}:{self.document.get('text', type=Text)!s}")

    async def on_save(self):
        Journal.calls.append(f"save:{self.room.id}:{self.document.get('text', type=Text)!s}")

    async def on_request(self, request):
        if request.path == "/storage":
            if self._persisting is not None:  # YServer's own (private) persistence task
                await self._persisting  # the last appends, and any compaction, are durable
            stored = await self.room.storage.list()
            return {key: _json(value) for key, value in stored.items()}
        return {"calls": Journal.calls}

    def on_custom_message(self, connection, message):
        self.send_custom_message(connection, f"echo:{message}")


def _json(value):
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    return value
