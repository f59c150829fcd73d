"""Party "bcast": relays every message to every connection of the room, the sender included.

The same semantics as each baseline server (naive Tornado, Node `ws`, PartyKit dev), so the
fan-out scenarios compare like with like.
"""

from jupyter_party import Server


class Bcast(Server):
    def on_message(self, message, sender):
        self.room.broadcast(message)
