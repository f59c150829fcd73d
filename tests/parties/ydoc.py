"""Test CRDT party: snapshot persistence, read-only by query, custom message echo.

Over HTTP it shows (and changes) the room from outside, as a party author could, for tests
against a live server:
  `GET {room}`                 `{"text", "map"}`: the document's `text` and `map` roots
  `POST {room}`                appends the body to `text`
  `GET {room}/instance`        `{"instance": n, "epoch": e}`: instances numbered in start order
                               (per server process), and the document's epoch
  `GET {room}/connections`     `{"ids": [...]}`: the open connections
  `POST {room}/close?code=C&reason=R[&tag=T]`   closes them (a tag or an id selects some)
  `GET {room}/storage`         every stored key, values as JSON or `{"base64": ...}` for bytes
  `GET {room}/bookkeeping`     what YServer keeps per connection that outlived the connection:
                               `batches` and `awareness` of connections no longer open, and
                               awareness `owners` that are closed (lists of connection ids)
  `POST {room}/recreate`       recreates the document: wipes the room's storage, drops this
                               instance and closes its connections with 1012, so the next
                               event starts a fresh instance with a new epoch
"""

import base64

from pycrdt import Map, Text

from jupyter_party import Response, YServer


class Notes(YServer):
    persistence = "snapshot"
    starts = 0

    def on_start(self):
        Notes.starts += 1
        self.instance = Notes.starts

    def is_read_only(self, connection):
        return "readonly=1" in connection.uri

    def on_custom_message(self, connection, message):
        self.send_custom_message(connection, f"echo:{message}")

    async def on_request(self, request):
        """GET: the document's `text` and `map` roots; POST: append the body to `text`."""
        if request.path:
            return await self._inspect(request)
        text = self.document.get("text", type=Text)
        if request.method == "POST":
            text += request.text()
        return {"text": str(text), "map": self.document.get("map", type=Map).to_py()}

    async def _inspect(self, request):
        path, query = request.path, request.query
        if path == "/instance":
            return {"instance": self.instance, "epoch": self.epoch}
        if path == "/connections":
            return {"ids": [c.id for c in self.room.get_connections()]}
        if path == "/close" and request.method == "POST":
            chosen = self.room.get_connections(query.get("tag"))
            for connection in chosen:
                connection.close(int(query["code"]), query.get("reason", ""))
            return {"closed": [c.id for c in chosen]}
        if path == "/storage":
            return {key: _json(value) for key, value in (await self.room.storage.list()).items()}
        if path == "/bookkeeping":
            # YServer's own per-connection state (private to it; this test party inspects it).
            live = set(self.room.get_connections())
            return {
                "connections": [c.id for c in live],
                "sessions": [c.id for c in self._sessions if c not in live],
                "awareness": [
                    self._owners[client].id
                    for client in self._awareness
                    if self._owners[client] not in live
                ],
                "owners": [c.id for c in [*self._owners.values(), *self._owned] if c.closed],
            }
        if path == "/recreate" and request.method == "POST":
            self.persistence = None  # this instance writes nothing more (not even on close)
            self.room.discard()  # the next event starts a fresh instance...
            await self.room.storage.delete_all()  # ...from empty storage: a new epoch
            for connection in self.room.get_connections():
                connection.close(1012, "document recreated")
            return {"recreated": self.epoch}
        return Response(f"no such path {path!r}", 404)


def _json(value):
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    return value
