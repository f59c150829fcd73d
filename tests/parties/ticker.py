"""Test party with an alarm: `POST ?in_ms=N[&fail=K][&hold_ms=H]` sets it; `GET` reports the
runs. `fail=K` makes the next K runs raise; `hold_ms=H` makes each run last H ms (the room stays
awake meanwhile, long enough for a test to see it in the admin API's list of live rooms)."""

import asyncio
import time

from jupyter_party import Server


class Ticker(Server):
    async def on_request(self, request):
        if request.method == "POST":
            await self.room.storage.put(
                {
                    "fail": int(request.query.get("fail", 0)),
                    "hold_ms": int(request.query.get("hold_ms", 0)),
                }
            )
            await self.room.storage.set_alarm(time.time() * 1000 + int(request.query["in_ms"]))
            return "set"
        return {
            "runs": await self.room.storage.get("runs") or [],
            "alarm": await self.room.storage.get_alarm(),
        }

    async def on_alarm(self):
        runs = await self.room.storage.get("runs") or []
        await self.room.storage.put("runs", [*runs, {"room": self.room.id, "at": time.time()}])
        hold_ms = await self.room.storage.get("hold_ms")
        if hold_ms:
            await asyncio.sleep(hold_ms / 1000)
        fail = await self.room.storage.get("fail")
        if fail:
            await self.room.storage.put("fail", fail - 1)
            raise RuntimeError("alarm handler failed")
