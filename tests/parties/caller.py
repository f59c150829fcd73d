"""Test party that calls other parties' rooms through `room.context.parties`."""

from jupyter_party import Server


class Caller(Server):
    async def on_request(self, request):
        target = self.room.context.parties["counter"].get(request.query["room"])
        if request.path == "/socket":
            socket = await target.socket()
            first = await socket.recv()  # the counter sends its count on connect
            await socket.send("increment")
            second = await socket.recv()
            socket.close()
            return {"first": first, "second": second}
        response = await target.fetch(method="POST")
        return {"status": response.status, "body": response.body_bytes().decode()}
