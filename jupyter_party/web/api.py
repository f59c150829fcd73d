"""Admin REST API under `{base}party-api/` (DESIGN §4): Jupyter authentication only."""

from __future__ import annotations

from urllib.parse import urlencode

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..protocol.names import InvalidName, split_room_path
from ..runtime.registry import DeployError
from ..runtime.shares import DEFAULT_EXPIRES_IN
from ..runtime.yserver import YServer
from ..widgets._uisource import party_ui_source
from .room_handler import HOST_SETTING, SHARE_PARAM


class _AdminHandler(APIHandler):
    auth_resource = "party"

    @property
    def host(self):
        return self.settings[HOST_SETTING]


class PartiesHandler(_AdminHandler):
    """`GET party-api/parties`: deployed parties, and those that failed to load with why."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        registry = self.host.registry
        parties = [
            {"name": n, "source": registry.source(n), "error": None, **_describe(registry.get(n))}
            for n in registry.names()
        ]
        parties += [
            {"name": n, "source": None, "error": error}
            for n, error in sorted(registry.errors.items())
            if n not in registry.names()
        ]
        self.finish({"parties": parties})


def _describe(server_class: type) -> dict:
    """What a notebook needs to show a party: its kind and its own front end, if any."""
    described = {"kind": "yserver" if issubclass(server_class, YServer) else "server"}
    try:
        described["ui"] = party_ui_source(server_class)
    except OSError as error:  # a `ui` file that is missing: say so instead of failing
        described.update(ui=None, ui_error=str(error))
    return described


class RoomsHandler(_AdminHandler):
    """`GET party-api/rooms`: live rooms with their connection counts."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        self.finish({"rooms": self.host.describe()})


class SharesHandler(_AdminHandler):
    """`POST party-api/share` issues a share link; `GET` lists live grants (never tokens)."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.get_json_body() or {}
        party, room = body.get("party"), body.get("room")
        if not isinstance(party, str) or not isinstance(room, str):
            raise web.HTTPError(400, "party and room (strings) are required")
        try:
            token, grant = await self.host.shares.create(
                party,
                room,
                access=body.get("access", "write"),
                expires_in=float(body.get("expires_in", DEFAULT_EXPIRES_IN)),
            )
        except (ValueError, TypeError) as error:
            raise web.HTTPError(400, str(error)) from None
        self.set_status(201)
        url = share_url(self.request, self.base_url, party, room, token)
        self.finish({"url": url, "token": token, **grant.public()})

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish({"shares": [grant.public() for grant in await self.host.shares.list()]})


class ShareHandler(_AdminHandler):
    """`DELETE party-api/share/{id}` revokes a grant and closes the sockets opened with it."""

    @web.authenticated
    @authorized
    async def delete(self, id: str) -> None:
        if not await self.host.revoke_share(id):
            raise web.HTTPError(404, "no such share link")
        self.set_status(204)
        self.finish()


def share_url(request, base_url: str, party: str, room: str, token: str) -> str:
    """The absolute URL of a room's share page, carrying `token`."""
    query = urlencode({SHARE_PARAM: token})
    return f"{request.protocol}://{request.host}{base_url}party-share/{party}/{room}?{query}"


class DeployHandler(_AdminHandler):
    """`POST party-api/parties/{name}` with `{"source": ...}`: deploy or hot-reload a party.

    A refused deploy answers 400 with the traceback; the running version keeps running.
    """

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        source = (self.get_json_body() or {}).get("source")
        if not isinstance(source, str):
            raise web.HTTPError(400, "a JSON body with the party's source is required")
        try:
            self.host.registry.deploy(name, source)
        except DeployError as error:
            self.set_status(400)
            self.finish({"error": str(error), "traceback": error.traceback})
            return
        closed = await self.host.reload(name)
        path = self.host.registry.source(name)
        self.finish({"name": name, "path": path, "reloaded": closed > 0, "closed": closed})


class LogsHandler(_AdminHandler):
    """`GET party-api/parties/{name}/logs?after=N&wait=S`: the party's output after record N,
    waiting up to S seconds (at most 60) for something new."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        try:
            after = int(self.get_query_argument("after", "0"))
            wait = min(float(self.get_query_argument("wait", "0")), 60.0)
        except ValueError:
            raise web.HTTPError(400, "after must be an integer and wait a number") from None
        log = self.host.logs[name]
        await log.wait(after, wait)
        self.finish({"records": log.after(after), "next": log.last})


class RoomHandler(_AdminHandler):
    """`DELETE party-api/rooms/{party}/{room}`: evict a live room now. Its connections are
    closed with 1012 (clients reconnect to a fresh instance); storage is kept."""

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        raw = self.request.path[len(f"{self.base_url}party-api/rooms/") :]
        try:
            where = split_room_path(f"parties/{raw}")
        except InvalidName as error:
            raise web.HTTPError(400, str(error)) from None
        if not await self.host.evict(where.party, where.room):
            raise web.HTTPError(404, "no such live room")
        self.set_status(204)
        self.finish()
