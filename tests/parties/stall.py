"""Test party that blocks the event loop: synchronously in a sync hook and inside async hooks."""

import asyncio
import time

from jupyter_party import Server


class Stall(Server):
    async def on_start(self):
        await asyncio.sleep(0)
        time.sleep(0.15)  # a blocking step after an await, inside an async hook

    def on_message(self, message, sender):
        if message == "sync":
            time.sleep(0.3)
        sender.send("done:" + message)

    async def on_request(self, request):
        await asyncio.sleep(0.01)
        time.sleep(0.2)
        await asyncio.sleep(0.01)
        return {"ok": True}
