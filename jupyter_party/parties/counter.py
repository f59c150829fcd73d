"""Demo party `counter`: a shared, durable counter over WebSocket and HTTP.

WebSocket: send `"increment"` (or `"decrement"`); every client receives the new count as text.
HTTP: `GET` returns `{"count": n}`; `POST` increments and returns the new count.
Read-only share links see the count but never change it.
"""

from jupyter_party import Server


class Counter(Server):
    async def on_start(self):
        self.count = await self.room.storage.get("count") or 0

    def on_connect(self, connection, ctx):
        connection.send(str(self.count))

    async def on_message(self, message, sender):
        if sender.access == "write" and message in ("increment", "decrement"):
            await self._add(1 if message == "increment" else -1)

    async def on_request(self, request):
        if request.method == "POST" and request.access == "write":
            await self._add(1)
        return {"count": self.count}

    async def _add(self, delta):
        self.count += delta
        await self.room.storage.put("count", self.count)
        self.room.broadcast(str(self.count))
