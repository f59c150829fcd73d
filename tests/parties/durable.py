"""Test party `durable`: acknowledged writes, for the kill -9 test.

`POST {room}/put?key=K` (body = value text) stores the value and answers "ok" only once the
write is durable; `POST {room}/batch` (body = JSON object) stores every pair in one put;
`GET {room}/get?key=K` returns the value, or 404 if it is missing; `GET {room}/list` returns
every key and value as a JSON object.
"""

from jupyter_party import Response, Server


class Durable(Server):
    async def on_request(self, request):
        if request.method == "POST" and request.path == "/put":
            await self.room.storage.put(request.query["key"], request.text())
            return "ok"
        if request.method == "POST" and request.path == "/batch":
            await self.room.storage.put(request.json())
            return "ok"
        if request.method == "GET" and request.path == "/get":
            value = await self.room.storage.get(request.query["key"])
            if value is None:
                return Response("missing", 404)
            return value
        if request.method == "GET" and request.path == "/list":
            return await self.room.storage.list()
        return Response("not found", 404)
