"""Party "store": each message is a key; `await storage.put` (durable when it returns), then ack.

Used by the storage put scenario: the ack reaches the client only once the write is durable.
"""

from jupyter_party import Server


class Store(Server):
    async def on_message(self, message, sender):
        await self.room.storage.put(message, {"key": message, "pad": "x" * 48})
        sender.send(message)
