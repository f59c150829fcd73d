"""Demo party `chat`: a chat room whose history lives in the room's storage.

Clients send text; everyone in the room receives `{"type": "message", "from", "text"}`.
A new client first gets `{"type": "history", "messages": [...]}` (the last 100 messages).
`GET` on the room URL returns the history as JSON.
"""

from jupyter_party import Server

HISTORY = 100


class Chat(Server):
    async def on_start(self):
        self.messages = await self.room.storage.get("messages") or []

    def on_connect(self, connection, ctx):
        connection.send({"type": "history", "messages": self.messages})

    async def on_message(self, message, sender):
        if not isinstance(message, str):
            return
        entry = {"type": "message", "from": sender.id, "text": message}
        self.messages = [*self.messages, entry][-HISTORY:]
        await self.room.storage.put("messages", self.messages)
        self.room.broadcast(entry)

    def on_request(self, request):
        return {"messages": self.messages}
