"""Test party for rate limits: counts messages per sender; `ping:N` is answered `pong:N`."""

from jupyter_party import Server


class Flood(Server):
    def on_start(self):
        self.counts = {}
        self.closed = []

    def on_message(self, message, sender):
        if isinstance(message, str) and message.startswith("ping:"):
            sender.send("pong:" + message[5:])
        elif message == "count":
            sender.send(dict(self.counts))
        else:
            self.counts[sender.id] = self.counts.get(sender.id, 0) + 1

    def on_close(self, connection, code, reason):
        self.closed.append([connection.id, code])
