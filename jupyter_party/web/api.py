"""Admin REST API under `{base}party-api/`: Jupyter authentication only."""

from __future__ import annotations

from urllib.parse import unquote, urlencode

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..protocol.names import InvalidName, RoomPath, split_room_path
from ..runtime import metrics
from ..runtime.channel import ChannelLost
from ..runtime.errors import Overloaded
from ..runtime.shares import DEFAULT_EXPIRES_IN
from .public_url import is_local, public_base
from .room_handler import SHARE_PARAM
from .services import SETTING, PartyServices


class _AdminHandler(APIHandler):
    auth_resource = "party"

    @property
    def parties(self) -> PartyServices:
        return self.settings[SETTING]

    def write_error(self, status_code: int, **kwargs) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        if isinstance(error, Overloaded | ChannelLost):  # a worker restarting: try again
            self.set_status(503)
            self.finish({"message": str(error)})
            return
        super().write_error(status_code, **kwargs)


class PartiesHandler(_AdminHandler):
    """`GET party-api/parties`: deployed parties, and those that failed to load with why."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish({"parties": await self.parties.router.parties()})


class RoomsHandler(_AdminHandler):
    """`GET party-api/rooms`: live rooms with their connection counts, and the workers."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        rooms = await self.parties.router.rooms()
        self.finish({"rooms": rooms, "workers": self.parties.workers()})


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
            token, grant = await self.parties.shares.create(
                party,
                room,
                access=body.get("access", "write"),
                expires_in=float(body.get("expires_in", DEFAULT_EXPIRES_IN)),
            )
        except (ValueError, TypeError) as error:
            raise web.HTTPError(400, str(error)) from None
        metrics.SHARE_LINKS.labels("issued").inc()
        self.set_status(201)
        base = public_base(self.request, self.base_url, self.parties.public_url)
        url = f"{base}party-share/{party}/{room}?{urlencode({SHARE_PARAM: token})}"
        self.finish({"url": url, "local": is_local(url), "token": token, **grant.public()})

    @web.authenticated
    @authorized
    async def get(self) -> None:
        grants = await self.parties.shares.list()
        self.finish({"shares": [grant.public() for grant in grants]})


class ShareHandler(_AdminHandler):
    """`DELETE party-api/share/{id}` revokes a grant and closes the sockets opened with it."""

    @web.authenticated
    @authorized
    async def delete(self, id: str) -> None:
        if not await self.parties.shares.revoke(id):
            raise web.HTTPError(404, "no such share link")
        self.parties.router.revoked(id)
        if self.parties.router.cluster is not None:  # and on every other node
            await self.parties.router.cluster.revoked(id)
        metrics.SHARE_LINKS.labels("revoked").inc()
        self.set_status(204)
        self.finish()


class DeployHandler(_AdminHandler):
    """`POST party-api/parties/{name}` with `{"source": ...}`: deploy or hot-reload a party;
    `DELETE`: undeploy it.

    The source is imported in a worker first. A refused deploy answers 400 with the traceback;
    the running version keeps running.
    """

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        source = (self.get_json_body() or {}).get("source")
        if not isinstance(source, str):
            raise web.HTTPError(400, "a JSON body with the party's source is required")
        try:
            result = await self.parties.router.deploy(name, source)
        except ChannelLost:
            result = {"error": "importing the party crashed its worker", "traceback": ""}
        if "error" in result:
            self.set_status(400)
            self.finish(result)
            return
        if self.parties.sources is not None:
            await self.parties.sources.publish(name, source)
        closed = result["closed"]
        self.finish(
            {
                "name": name,
                "path": result["path"],
                "reloaded": closed > 0,
                "rooms": result["rooms"],
                "closed": closed,
            }
        )

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        """Undeploy: remove the party's file from parties_dir and unload it everywhere (its
        clients are closed with 1012); storage is kept."""
        path = self.parties.parties_dir / f"{name}.py"
        if not path.is_file():
            raise web.HTTPError(
                404, f"party {name!r} has no file in parties_dir: only deployed parties can go"
            )
        path.unlink()
        if self.parties.sources is not None:
            await self.parties.sources.publish(name, None)
        closed = await self.parties.router.unload(name)
        self.finish({"name": name, "path": str(path), "closed": closed})


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
        log = self.parties.router.logs[name]
        await log.wait(after, wait)
        self.finish({"records": log.after(after), "next": log.last})


class RoomAdminHandler(_AdminHandler):
    """`GET party-api/rooms/{party}/{room}`: what the room holds (storage, alarm, connections,
    document). `DELETE`: evict the live room now; its connections are closed with 1012
    (clients reconnect to a fresh instance), storage is kept."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        where = self._where()
        self.finish(await self.parties.router.inspect(where.party, where.room))

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        where = self._where()
        if not await self.parties.router.evict(where.party, where.room):
            raise web.HTTPError(404, "no such live room")
        self.set_status(204)
        self.finish()

    def _where(self) -> RoomPath:
        return _room(self.request.path[len(f"{self.base_url}party-api/rooms/") :])


def _room(raw: str) -> RoomPath:
    """`{party}/{room}` of an admin URL; 400 unless both are valid."""
    try:
        return split_room_path(f"parties/{raw}")
    except InvalidName as error:
        raise web.HTTPError(400, str(error)) from None


class StorageKeyHandler(_AdminHandler):
    """`PUT party-api/rooms/{party}/{room}/storage/{key}` with JSON `{"value": ...}` stores a
    value in the room's storage; `DELETE` removes the key. The owner's inspector edits."""

    @web.authenticated
    @authorized
    async def put(self) -> None:
        where, key = self._where_key()
        body = self.get_json_body()
        if not isinstance(body, dict) or "value" not in body:
            raise web.HTTPError(400, 'a JSON body {"value": ...} is required')
        args = {"party": where.party, "room": where.room, "key": key, "value": body["value"]}
        try:
            await self.parties.router.call(
                self.parties.router.place(where.party, where.room), "put_key", **args
            )
        except RuntimeError as error:  # the storage refused it (key or value too large)
            raise web.HTTPError(400, str(error)) from None
        self.set_status(204)
        self.finish()

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        where, key = self._where_key()
        router = self.parties.router
        worker = router.place(where.party, where.room)
        found = await router.call(worker, "delete_key", party=where.party, room=where.room, key=key)
        if not found:
            raise web.HTTPError(404, "no such key")
        self.set_status(204)
        self.finish()

    def _where_key(self) -> tuple[RoomPath, str]:
        raw = self.request.path[len(f"{self.base_url}party-api/rooms/") :]
        room, _, key = raw.partition("/storage/")
        return _room(room), unquote(key)
