"""Test party `alarmclock`: an alarm that must fire across server restarts.

`POST {room}/set?in_ms=N` sets the alarm N ms from now. `on_alarm` appends `self.room.id` to
the stored list "fired". `GET {room}` returns `{"fired": [...], "alarm": get_alarm()}`.
"""

import time

from jupyter_party import Server


class AlarmClock(Server):
    async def on_request(self, request):
        if request.method == "POST" and request.path == "/set":
            at_ms = time.time() * 1000 + float(request.query["in_ms"])
            await self.room.storage.set_alarm(at_ms)
            return {"alarm": at_ms}
        return {
            "fired": await self.room.storage.get("fired") or [],
            "alarm": await self.room.storage.get_alarm(),
        }

    async def on_alarm(self):
        fired = await self.room.storage.get("fired") or []
        await self.room.storage.put("fired", [*fired, self.room.id])
