"""Naive Tornado baseline: rooms by URL path; `write_message` once per recipient.

Usage: python tornado_naive.py PORT
"""

import asyncio
import sys

import tornado.web
import tornado.websocket

ROOMS: dict[str, set["Relay"]] = {}


class Relay(tornado.websocket.WebSocketHandler):
    def check_origin(self, origin):
        return True

    def open(self, *args):
        self.room = ROOMS.setdefault(self.request.path, set())
        self.room.add(self)

    def on_message(self, message):
        binary = isinstance(message, bytes)
        for peer in self.room:
            peer.write_message(message, binary=binary)

    def on_close(self):
        self.room.discard(self)
        if not self.room:
            ROOMS.pop(self.request.path, None)


async def main(port: int) -> None:
    app = tornado.web.Application([(r"/.*", Relay)])
    app.listen(port, address="127.0.0.1")
    print(f"listening on {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
