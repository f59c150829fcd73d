"""pycrdt-websocket baseline: `WebsocketServer` behind the `websockets` server, room = path.

Usage: python pycrdt_ws.py PORT

Two adapters the library needs here (see benchmarks/README.md): `websockets` >= 14 has no
`.path` on its connections, and pycrdt-websocket 0.16.5 hangs when several clients open a new
room at once (the second `start_room` waits forever), so each room is started once, under a
lock, before it serves any client.
"""

import asyncio
import contextlib
import logging
import sys

from pycrdt import Channel
from pycrdt.websocket import WebsocketServer
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


class Adapter(Channel):
    def __init__(self, websocket) -> None:
        self._websocket = websocket
        self._path = websocket.request.path.split("?")[0]

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._websocket.recv()
        except ConnectionClosed:
            raise StopAsyncIteration() from None

    async def send(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._websocket.send(message)

    async def recv(self) -> bytes:
        return await self._websocket.recv()


async def main(port: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    server = WebsocketServer(auto_clean_rooms=False)
    lock = asyncio.Lock()

    async def handler(websocket) -> None:
        channel = Adapter(websocket)
        async with lock:
            room = await server.get_room(channel.path)
        await room.serve(channel)

    async with server, serve(handler, "127.0.0.1", port, compression=None, max_size=None):
        print(f"listening on {port}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
