"""Test party driven by JSON commands; it records every hook call in `self.events`.

Besides its WebSocket commands, it shows (and changes) the room from outside over HTTP, as a
party author could, for tests against a live server:
  `GET {room}/connections[?tag=T]`   `{"instance": n, "ids": [...]}`: the open connections
  `POST {room}/close?code=C&reason=R[&tag=T]`   closes them (a tag or an id selects some);
                                     answers `{"closed": [ids]}`
  `GET {room}/stored?key=K`          `{"value": v}`: storage read now (the inspector edits it)
Instances are numbered in start order (`instance`, per server process), and each loads the
texts its room's storage remembers (`op: remember`) in `on_start`.
"""

import asyncio
import json

from jupyter_party import Server


class Probe(Server):
    starts = 0

    async def on_start(self):
        await asyncio.sleep(0.05)  # a slow start: events arriving meanwhile must wait for it
        Probe.starts += 1
        self.instance = Probe.starts
        self.events = ["on_start"]
        self.remembered = await self.room.storage.get("remembered") or []

    def get_connection_tags(self, connection, ctx):
        return [t for t in ctx.request.query.get("tags", "").split(",") if t]

    async def on_connect(self, connection, ctx):
        await asyncio.sleep(0.01)  # a slow connect: the client's first message must wait
        self.events.append(f"on_connect:{connection.id}")
        connection.send(
            {
                "type": "welcome",
                "id": connection.id,
                "instance": self.instance,
                "remembered": self.remembered,
                "tags": list(connection.tags),
                "user": ctx.user.username if ctx.user else None,
                "header": ctx.request.headers.get("X-Gate"),
                "headers": sorted({name.lower() for name in ctx.request.headers}),
            }
        )

    async def on_message(self, message, sender):
        if isinstance(message, bytes):
            sender.send(message[::-1])
            return
        command = json.loads(message)
        op = command["op"]
        if op == "echo":
            if command["n"] % 3 == 0:
                await asyncio.sleep(0)  # interleave with other work; order must hold
            sender.send({"type": "echo", "n": command["n"]})
        elif op == "broadcast":
            self.room.broadcast(command["message"], without=command.get("without", ()))
        elif op == "blast":
            for i in range(command["count"]):
                self.room.broadcast(f"{i}:" + "x" * command["size"])
            sender.send({"type": "blasted"})
        elif op == "connections":
            ids = [c.id for c in self.room.get_connections(command.get("tag"))]
            sender.send({"type": "connections", "ids": ids})
        elif op == "get_connection":
            found = self.room.get_connection(command["id"])
            if found is not None:
                found.send({"type": "found", "by": sender.id})
        elif op == "state":
            state = sender.set_state(lambda previous: (previous or 0) + command["add"])
            sender.send({"type": "state", "state": state, "read": sender.state})
        elif op == "raise":
            raise RuntimeError(command.get("text", "boom"))
        elif op == "close":
            sender.close(command["code"], command["reason"])
        elif op == "events":
            sender.send({"type": "events", "events": self.events})
        elif op == "remember":  # answered once the text is durable
            self.remembered = [*self.remembered, command["text"]]
            await self.room.storage.put("remembered", self.remembered)
            sender.send({"type": "remembered", "texts": self.remembered})

    def on_close(self, connection, code, reason):
        self.events.append(f"on_close:{connection.id}:{code}")
        self.room.broadcast({"type": "left", "id": connection.id, "code": code})

    def on_error(self, connection, error):
        self.events.append(f"on_error:{error}")
        if connection is not None:
            connection.send({"type": "error", "error": str(error)})

    def on_request(self, request):
        if request.path == "/stored":  # read now, from storage: what the inspector may edit
            return self._stored(request.query["key"])
        if request.path == "/connections":
            ids = [c.id for c in self.room.get_connections(request.query.get("tag"))]
            return {"instance": self.instance, "ids": ids}
        if request.path == "/close" and request.method == "POST":
            chosen = self.room.get_connections(request.query.get("tag"))
            for connection in chosen:
                connection.close(int(request.query["code"]), request.query.get("reason", ""))
            return {"closed": [c.id for c in chosen]}
        self.events.append(f"on_request:{request.method}")
        return {
            "instance": self.instance,
            "room": self.room.id,
            "events": self.events,
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "body": request.text(),
            "user": request.user.username if request.user else None,
            "headers": sorted({name.lower() for name in request.headers}),
        }

    async def _stored(self, key):
        return {"value": await self.room.storage.get(key)}
