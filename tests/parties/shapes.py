"""Test party: `on_request` returns a different kind of value per sub-path."""

from jupyter_party import Response, Server


class Shapes(Server):
    async def on_request(self, request):
        kind = request.path.strip("/")
        if kind == "text":
            return "plain text"
        if kind == "bytes":
            return b"\x00\x01binary"
        if kind == "json":
            return {"list": [1, 2, 3], "path": request.path}
        if kind == "none":
            return None
        if kind == "response":
            return Response("created", 201, {"X-Custom": "yes"})
        if kind == "raise":
            raise ValueError("secret detail that must not leak")
        if kind == "deep/sub/path":
            return request.path
        return Response("no such shape", 404)
