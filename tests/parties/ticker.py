"""Test party with an alarm: `POST ?in_ms=N[&fail=K]` sets it; `GET` reports the runs."""

import time

from jupyter_party import Server


class Ticker(Server):
    async def on_request(self, request):
        if request.method == "POST":
            await self.room.storage.put("fail", int(request.query.get("fail", 0)))
            await self.room.storage.set_alarm(time.time() * 1000 + int(request.query["in_ms"]))
            return "set"
        return {
            "runs": await self.room.storage.get("runs") or [],
            "alarm": await self.room.storage.get_alarm(),
        }

    async def on_alarm(self):
        runs = await self.room.storage.get("runs") or []
        await self.room.storage.put("runs", [*runs, {"room": self.room.id, "at": time.time()}])
        fail = await self.room.storage.get("fail")
        if fail:
            await self.room.storage.put("fail", fail - 1)
            raise RuntimeError("alarm handler failed")
