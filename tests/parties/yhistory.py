"""Test CRDT party: bounded history, short save debounce, and a record of on_load/on_save."""

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

    def on_request(self, request):
        return {"calls": Journal.calls}

    def on_custom_message(self, connection, message):
        self.send_custom_message(connection, f"echo:{message}")
