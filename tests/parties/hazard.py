"""Test party whose handlers block, crash or kill their worker on demand.

Text commands: `put:K:V` (durable write, then "ok"), `get:K`, `sleep:S` (blocks the event loop,
then reports when it slept), `spin` (an endless loop), `segv` (reads address 0), `exit`
(`os._exit(3)`), and anything else is echoed with the instance number. Rooms whose id starts
with `crash-start` segfault in `on_start`; `raise-start` rooms raise there.
"""

import ctypes
import json
import os
import time

from jupyter_party import Server

instances = 0


def _segfault():
    ctypes.string_at(0)


class Hazard(Server):
    async def on_start(self):
        global instances
        if self.room.id.startswith("crash-start"):
            _segfault()
        if self.room.id.startswith("raise-start"):
            raise RuntimeError("this room never starts")
        instances += 1
        self.instance = instances

    def on_connect(self, connection, ctx):
        connection.send(json.dumps({"instance": self.instance, "pid": os.getpid()}))

    async def on_message(self, message, sender):
        op, _, arg = message.partition(":")
        if op == "put":
            key, _, value = arg.partition(":")
            await self.room.storage.put(key, value)
            sender.send("ok")
        elif op == "get":
            sender.send(json.dumps(await self.room.storage.get(arg)))
        elif op == "sleep":
            start = time.time()
            time.sleep(float(arg))
            sender.send(json.dumps({"slept": [start, time.time()]}))
        elif op == "spin":
            while True:
                pass
        elif op == "segv":
            _segfault()
        elif op == "exit":
            os._exit(3)
        else:
            sender.send(f"{self.instance}:{message}")
