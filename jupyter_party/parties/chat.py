"""Demo party `chat`: a chat room whose history lives in the room's storage.

Clients send text; everyone in the room receives `{"type": "message", "from", "text"}`.
`from` is decided by the server, never by the client: the Jupyter user's name, or the guest
identity of the share link a guest came with. Read-only links read, never post.
A new client first gets `{"type": "history", "messages": [...]}` (the last 100 messages).
`GET` on the room URL returns the history as JSON.
"""

from jupyter_party import Server

HISTORY = 100


class Chat(Server):
    async def on_start(self):
        self.messages = await self.room.storage.get("messages") or []

    def on_connect(self, connection, ctx):
        user = ctx.user  # None only in a public room (this party has no gate that opens one)
        connection.set_state({"from": user.username if user else f"guest-{connection.id[:8]}"})
        connection.send({"type": "history", "messages": self.messages})

    async def on_message(self, message, sender):
        if not isinstance(message, str) or sender.access != "write":
            return
        entry = {"type": "message", "from": sender.state["from"], "text": message}
        self.messages = [*self.messages, entry][-HISTORY:]
        await self.room.storage.put("messages", self.messages)
        self.room.broadcast(entry)

    def on_request(self, request):
        return {"messages": self.messages}
