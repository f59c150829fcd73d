"""Test party whose static gates reject, rewrite or allow requests before the room is touched."""

from jupyter_party import Response, Server


def _gate(request, lobby):
    if "deny" in request.query:
        return Response(f"denied by the gate of room {lobby.id}", 403)
    if "explode" in request.query:
        raise PermissionError("gate says no")
    if "as" in request.query:
        return request.copy(headers={**request.headers, "X-Gate": request.query["as"]})
    return None


class Gated(Server):
    on_before_connect = staticmethod(_gate)
    on_before_request = staticmethod(_gate)

    def on_connect(self, connection, ctx):
        connection.send({"header": ctx.request.headers.get("X-Gate")})

    def on_request(self, request):
        return {"header": request.headers.get("X-Gate")}
