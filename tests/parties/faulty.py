"""Test party whose hooks fail on demand."""

from jupyter_party import Server


class Faulty(Server):
    def on_start(self):
        if self.room.id.startswith("broken"):
            raise RuntimeError("cannot start this room")

    def on_connect(self, connection, ctx):
        if "fail" in ctx.request.query:
            raise ValueError("connect refused by the party")
        connection.send("hello")

    def on_message(self, message, sender):
        if message == "boom":
            raise RuntimeError("message handler failed")
        sender.send(f"ok:{message}")
