"""`Session`: the room side of the worker boundary. It owns admission, dispatch and release.

Whatever carries the traffic (a worker's channel to the server process, or direct calls when
`workers = 0`), every connection, message, HTTP request and admin operation for this process's
rooms enters here, and everything the rooms send leaves through the `Uplink`. So both modes run
the same lines: gates, room creation and limits, per-connection order, release, and calls to
other rooms (which go back up, to be routed to whichever process owns the target).

Flow control: each connection's inbound messages are acknowledged (ACK) as they are handed to
the room, in batches of ACK_EVERY bytes; the server stops reading a socket that is WINDOW bytes
ahead, so a party that is slow to handle messages never makes this process buffer without bound.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..protocol.codes import CloseCode
from .clock import Clock
from .connection import Connection
from .errors import Overloaded, RoomError, UnknownParty
from .host import Host
from .http import (
    Request,
    Response,
    request_from_wire,
    request_to_wire,
    response_from_wire,
    response_to_wire,
)
from .leases import RoomLeases
from .limits import Limits
from .metrics import STATS_INTERVAL
from .outbox import Outgoing
from .partylog import error_text
from .registry import RefusedDeploy, Registry
from .room import Lobby, Room
from .server import Server
from .stall import Steps
from .storage import Backend
from .storage_link import serve_storage
from .stubs import LocalSocket, Parties
from .tasks import spawn
from .ui import front_end

WINDOW = 1 << 20  # inbound bytes a connection may have in flight to its room
ACK_EVERY = WINDOW // 4
MESSAGE_COST = 64  # bytes each message counts for on top of its length
LOG_IN = "authentication required: use a Jupyter token"
REFUSED = "refused by the party"  # what guests hear when a gate or on_connect raised
GATE_ANSWERED = "the party's gate answered the request"  # with its own response: no upgrade


class Uplink(Protocol):
    """The session's way to the server process."""

    # What rooms do to sockets.
    def joined(self, conn: int, room: int) -> None: ...
    def opened(
        self, conn: int, code: int, reason: str, answer: dict[str, Any] | None, body: bytes
    ) -> None: ...
    def send(self, conn: int, message: Outgoing) -> None: ...
    def broadcast(self, room: int, message: Outgoing, without: list[str]) -> None: ...
    def close(self, conn: int, code: int, reason: str) -> None: ...
    def ack(self, conn: int, cost: int) -> None: ...
    def record(self, party: str, room: str | None, kind: str, text: str) -> None: ...
    def stats(self, rooms: int, commit_times: list[float]) -> None: ...

    # What party code does as a client of other rooms.
    async def call(self, op: str, args: dict[str, Any], payload: bytes = b"") -> Any: ...
    def message(self, conn: int, message: Outgoing) -> None: ...
    def closed(self, conn: int, code: int, reason: str) -> None: ...


#: Told `(event, room, connection id, detail)` of joins ("join"), messages ("message", the
#: data) and departures ("leave", the close code): a kernel hosting a party shows them.
Watch = Callable[[str, str, str, Any], None]


class _Member:
    """A socket admitted to one of this process's rooms."""

    __slots__ = ("backlog", "connection", "room", "since", "unacked", "user")

    def __init__(self, room: Room, connection: Connection, user: str | None) -> None:
        self.room = room
        self.connection = connection
        self.user = user  # for the inspector: who came, as Jupyter or the share link says
        self.since = time.time()
        self.backlog: deque[str | bytes] | None = None  # set while a handler is running
        self.unacked = 0


class Session:
    """Rooms of one process, driven by messages from the server process."""

    def __init__(
        self,
        uplink: Uplink,
        registry: Registry,
        backend: Backend,
        limits: Limits,
        *,
        steps: Steps | None = None,
        env: dict[str, Any] | None = None,
        owns: Callable[[str, str], bool] = lambda party, room: True,
        watch: Watch | None = None,
        clock: Clock | None = None,
        leases: RoomLeases | None = None,
    ) -> None:
        self._uplink = uplink
        self._watch = watch
        self._members: dict[int, _Member] = {}
        self._sockets: dict[int, LocalSocket] = {}  # party code's own sockets to other rooms
        self._reporting: asyncio.Task[None] | None = None
        self.registry = registry
        self.host = Host(
            registry,
            backend,
            limits,
            members=uplink,
            logs=uplink,
            parties=Parties(registry, self),
            steps=steps,
            env=env,
            owns=owns,
            clock=clock,
            leases=leases,
        )

    async def start(self) -> None:
        await self.host.start()
        self._reporting = spawn(self._report())

    async def close(
        self, code: int = CloseCode.GOING_AWAY, reason: str = "server shutting down"
    ) -> None:
        """Close every room: their sockets with `code` and `reason`."""
        if self._reporting is not None:
            self._reporting.cancel()
        await self.host.close(code, reason)

    async def _report(self) -> None:
        """Tell the server process (its metrics) how many rooms live here and how long
        storage commits took, about once a second, when there is news."""
        rooms = -1
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            times = self.host.backend.take_commit_times()
            if times or len(self.host.rooms) != rooms:
                rooms = len(self.host.rooms)
                self._uplink.stats(rooms, times)

    # -- sockets ----------------------------------------------------------------------------

    def open(
        self,
        conn: int,
        party: str,
        room: str,
        id: str,
        request: dict[str, Any],
        share_id: str | None,
        who: str | None,
    ) -> None:
        """Socket `conn` (connection `id`) wants into `(party, room)`: judged by the party's
        gate first if `who` is given (see `_admit`), then admitted; OPENED says how that went
        (one round trip for a client's upgrade)."""
        spawn(self._open(conn, party, room, id, request_from_wire(request, b""), share_id, who))

    async def _open(
        self,
        conn: int,
        party: str,
        room_id: str,
        id: str,
        request: Request,
        share_id: str | None,
        who: str | None,
    ) -> None:
        opened = self._uplink.opened
        answer = None
        if who is not None:
            verdict = await self._admit(party, room_id, request, "connect", who)
            if isinstance(verdict, Response):  # the gate answered: no upgrade
                fields, body = response_to_wire(verdict)
                return opened(conn, CloseCode.FORBIDDEN, GATE_ANSWERED, {"response": fields}, body)
            if not isinstance(verdict, Request):
                _, code, message = verdict  # the HTTP status is for requests
                return opened(conn, code, message, None, b"")
            limits = _limits(self.registry.get(party))
            if limits != _SERVER_LIMITS:  # else the server process's own apply: no answer
                answer = {"party": limits}
            request = verdict
        host = self.host
        try:
            room = host.acquire(party, room_id)
        except UnknownParty as error:
            return opened(conn, CloseCode.UNKNOWN_PARTY, str(error), None, b"")
        except Overloaded as error:
            return opened(conn, CloseCode.OVERLOADED, str(error), None, b"")
        except RoomError as error:
            return opened(conn, CloseCode.HANDLER_ERROR, str(error), None, b"")
        if room._full(host.limits.max_connections_per_room):
            host.release(room)
            return opened(conn, CloseCode.OVERLOADED, "room is full", None, b"")
        # Who holds an id: the owner (any Jupyter-authenticated user), one share link, or,
        # for an anonymous client, nobody it could prove again.
        principal = f"share:{share_id}" if share_id else "owner" if request.user else None
        held = room.get_connection(id)
        if held is not None and (held._principal is None or held._principal != principal):
            host.release(room)  # another user's, or another link's: not this client's to take
            message = f"connection id {id!r} is in use"
            return opened(conn, CloseCode.FORBIDDEN, message, None, b"")
        guest = share_id is not None or request.user is None
        connection = Connection(
            id,
            request.url,
            self._uplink,
            conn,
            request.access,
            share_id,
            limited=guest or host.limits.limit_owner,
        )
        connection._principal = principal
        user = request.user.username if request.user else None
        member = self._members[conn] = _Member(room, connection, user)
        try:
            await room._connect(connection, request)
        except Overloaded as error:  # the room did not start here (party cluster): try again
            self._members.pop(conn, None)
            host.release(room)
            return opened(conn, CloseCode.OVERLOADED, str(error), None, b"")
        except RoomError as error:
            self._members.pop(conn, None)
            host.release(room)
            reason = REFUSED if guest else str(error)  # the party's log has the traceback
            return opened(conn, CloseCode.HANDLER_ERROR, reason, None, b"")
        if self._members.get(conn) is member:
            opened(conn, 0, "", answer, b"")
            if self._watch is not None:
                self._watch("join", room_id, id, None)

    def message(self, conn: int, data: str | bytes) -> None:
        """A message from socket `conn`, delivered after every earlier one of that socket."""
        member = self._members.get(conn)
        if member is None:
            return
        if member.backlog is not None:
            member.backlog.append(data)
        else:
            self._deliver(conn, member, data)

    def _deliver(self, conn: int, member: _Member, data: str | bytes) -> None:
        self._count(conn, member, data)
        result = member.room._deliver(member.connection, data)
        if result is not None:  # later messages of this socket wait for this one
            member.backlog = deque()
            spawn(self._drain(conn, member, result))

    async def _drain(self, conn: int, member: _Member, running: Awaitable[None]) -> None:
        await running
        while member.backlog:
            data = member.backlog.popleft()
            self._count(conn, member, data)
            handling = member.room._deliver(member.connection, data)
            if handling is not None:
                await handling
        member.backlog = None

    def _count(self, conn: int, member: _Member, data: str | bytes) -> None:
        """Count a message as handed to the room; acknowledge a batch of them (flow control)."""
        if self._watch is not None:
            self._watch("message", member.room.id, member.connection.id, data)
        member.unacked += len(data) + MESSAGE_COST
        if member.unacked >= ACK_EVERY:
            self._uplink.ack(conn, member.unacked)
            member.unacked = 0

    def closed(self, conn: int, code: int, reason: str) -> None:
        """Socket `conn` closed: the room forgets it (`on_close`), and lets go of the room."""
        member = self._members.pop(conn, None)
        if member is not None:
            if self._watch is not None:
                self._watch("leave", member.room.id, member.connection.id, code)
            if member.backlog is not None:
                member.backlog.clear()  # the socket is gone: its unread messages with it
            spawn(self._leave(member, code, reason))

    async def _leave(self, member: _Member, code: int, reason: str) -> None:
        try:
            await member.room._disconnect(member.connection, code, reason)
        finally:
            self.host.release(member.room)

    # -- requests and admin operations ------------------------------------------------------

    async def call(self, op: str, args: dict[str, Any], payload: bytes = b"") -> Any:
        """Run operation `op` for the server process; returns `(result, payload)`."""
        return await getattr(self, f"_op_{op}")(payload=payload, **args)

    async def _op_admit(
        self, party: str, room: str, request: dict[str, Any], kind: str, who: str, payload: bytes
    ) -> Any:
        """Run the party's gate for a WebSocket upgrade (see `_admit`)."""
        verdict = await self._admit(party, room, request_from_wire(request, payload), kind, who)
        if isinstance(verdict, Request):
            server_class = self.registry.get(party)
            return {"request": request_to_wire(verdict), "party": _limits(server_class)}, b""
        return _refusal_to_wire(verdict)

    async def _op_request(
        self,
        party: str,
        room: str,
        request: dict[str, Any],
        who: str,
        gate: bool,
        payload: bytes,
    ) -> Any:
        """An HTTP request: the party's gate (unless a room calls a room), then `on_request`."""
        verdict: Any = request_from_wire(request, payload)
        if gate:
            verdict = await self._admit(party, room, verdict, "request", who)
        if not isinstance(verdict, Request):
            return _refusal_to_wire(verdict)
        try:
            held = self.host.acquire(party, room)
        except UnknownParty as error:
            response = Response.json({"error": str(error)}, 404)
        except Overloaded as error:
            response = Response.json({"error": str(error)}, 503)
        except RoomError as error:
            response = Response.json({"error": str(error)}, 500)
        else:
            try:
                response = await held._request(verdict)
            except Overloaded as error:
                response = Response.json({"error": str(error)}, 503)
            except RoomError:
                response = Response.json({"error": "the room failed to start"}, 500)
            finally:
                self.host.release(held)
        fields, body = response_to_wire(response)
        return {"response": fields}, body

    async def _admit(
        self, party: str, room: str, request: Request, kind: str, who: str
    ) -> Request | Response | tuple[int, int, str]:
        """The party's `on_before_*` gate, run before the room is touched.

        Returns the request to forward, the party's own Response, or a refusal
        `(status, close code, message)`. `who` is "owner" (the Jupyter user), "guest" (a share
        link) or "anonymous". Strangers learn nothing about which parties exist, only a gate
        that returns a Request opens a room to them, and guests never see party errors.
        """
        try:
            server_class = self.registry.get(party)
        except UnknownParty as error:
            if who == "anonymous":
                return 401, CloseCode.UNAUTHENTICATED, LOG_IN
            message = str(error) if who == "owner" else f"Party {party!r} not found"
            return 404, CloseCode.UNKNOWN_PARTY, message
        hook = "on_before_connect" if kind == "connect" else "on_before_request"
        gate = getattr(server_class, hook)
        verdict = None  # what the default gate says, without a call (a connect's hot path)
        if gate is not getattr(Server, hook):
            services = self.host._services
            lobby = Lobby(room, party, services.env(party), services.parties)
            try:
                verdict = await services.steps.run(party, room, hook, gate, request, lobby)
            except Exception as error:  # PartyKit: a gate that throws refuses with 401
                services.logs.record(party, room, "error", error_text(hook, error))
                message = str(error) or type(error).__name__
                return 401, CloseCode.UNAUTHENTICATED, message if who == "owner" else REFUSED
        if isinstance(verdict, Response):
            return verdict
        if who == "anonymous" and not isinstance(verdict, Request):
            return 401, CloseCode.UNAUTHENTICATED, LOG_IN
        return verdict if isinstance(verdict, Request) else request

    async def _op_parties(self, payload: bytes) -> Any:
        registry = self.registry
        parties = [describe_party(name, registry) for name in registry.names()]
        parties += [
            {"name": name, "source": None, "error": error}
            for name, error in sorted(registry.errors.items())
            if name not in registry.names()
        ]
        return parties, b""

    async def _op_party(self, name: str, payload: bytes) -> Any:
        try:
            return describe_party(name, self.registry), b""
        except UnknownParty as error:
            return {"name": name, "error": str(error)}, b""

    async def _op_deploy(self, name: str, source: str, payload: bytes) -> Any:
        """Import a new version in this process (the deploy is refused if that fails), store
        it, and restart the party's rooms here; the deploying cell sees each step."""
        start = time.monotonic()
        try:
            self.registry.deploy(name, source)
        except RefusedDeploy as error:
            return {"error": str(error), "traceback": error.traceback}, b""
        self._uplink.record(
            name, None, "log", f"deploy: staged and imported in {time.monotonic() - start:.2f} s"
        )
        return {"path": self.registry.source(name), **await self._reload(name)}, b""

    async def _op_reload(self, name: str, payload: bytes) -> Any:
        self.registry.reload(name)
        return await self._reload(name), b""

    async def _op_load(self, name: str, payload: bytes) -> Any:
        """Party `name`'s file changed: import it (refused like a deploy if that fails) and
        restart the party's rooms here, unless the content is what runs already."""
        try:
            if not self.registry.load(name):
                return {"unchanged": True}, b""
        except RefusedDeploy as error:
            return {"error": str(error), "traceback": error.traceback}, b""
        return {"path": self.registry.source(name), **await self._reload(name)}, b""

    async def _op_unload(self, name: str, payload: bytes) -> Any:
        """Party `name`'s file is gone: forget it and stop its rooms here."""
        if not self.registry.unload(name):
            return {"removed": False, "closed": 0}, b""
        return {"removed": True, "closed": await self.host.reload(name, "party removed")}, b""

    async def _reload(self, name: str) -> dict[str, int]:
        rooms = sum(1 for party, _ in self.host.rooms if party == name)
        return {"rooms": rooms, "closed": await self.host.reload(name)}

    async def _op_evict(self, party: str, room: str, payload: bytes) -> Any:
        return await self.host.evict(party, room), b""

    async def _op_rooms(self, payload: bytes) -> Any:
        return self.host.describe(), b""

    async def _op_inspect(self, party: str, room: str, payload: bytes) -> Any:
        """What a room holds: its storage (the first INSPECT_KEYS keys), its alarm and, if it
        is live, its connections and (for a YServer) its document. Storage is read from the
        backend: a room need not be live to be inspected."""
        backend, scope = self.host.backend, (party, room)
        entries = await backend.list(scope, limit=INSPECT_KEYS)
        live = self.host.rooms.get(scope)
        members = [(c, m) for c, m in self._members.items() if m.room is live]
        connections = [
            {
                "conn": conn,
                "id": m.connection.id,
                "user": m.user,
                "guest": m.connection.share_id is not None or m.user is None,
                "access": m.connection.access,
                "tags": list(m.connection.tags),
                "since": m.since,
            }
            for conn, m in members
            if not m.connection.closed
        ]
        inspected = {
            "live": live is not None,
            "storage": [_entry(key, value) for key, value in entries.items()],
            "truncated": len(entries) == INSPECT_KEYS,
            "alarm": await backend.get_alarm(scope),
            "connections": connections,
            "document": _document(live.server) if live is not None else None,
        }
        return inspected, b""

    async def _op_put_key(self, party: str, room: str, key: str, value: Any, payload: bytes) -> Any:
        """The owner edits a stored value (JSON), as the room itself would."""
        await self.host.backend.put((party, room), {key: value})
        return None, b""

    async def _op_delete_key(self, party: str, room: str, key: str, payload: bytes) -> Any:
        return await self.host.backend.delete((party, room), [key]) == 1, b""

    async def _op_storage(self, payload: bytes, **args: Any) -> Any:
        """A kernel-hosted party's storage primitive, run on this process's backend."""
        return await serve_storage(self.host.backend, payload=payload, **args)

    # -- party code as a client of other rooms (see stubs.py) --------------------------------

    async def fetch(self, party: str, room: str, request: Request) -> Response:
        args = {"party": party, "room": room, "request": request_to_wire(request)}
        result, body = await self._uplink.call("fetch", args, request.body)
        return response_from_wire(result["response"], body)

    async def socket(self, party: str, room: str, path: str, id: str | None) -> LocalSocket:
        args = {"party": party, "room": room, "path": path, "id": id or uuid.uuid4().hex}
        result, _ = await self._uplink.call("socket", args)
        socket = self._sockets[result["conn"]] = LocalSocket(self, result["conn"])
        await socket.opened
        return socket

    def send_to_room(self, conn: int, message: Outgoing) -> None:
        self._uplink.message(conn, message)

    def close_to_room(self, conn: int, code: int, reason: str) -> None:
        self._sockets.pop(conn, None)
        self._uplink.closed(conn, code, reason)

    # What the target room does to those sockets (relayed by the server process).
    def socket_opened(self, conn: int, code: int, reason: str) -> None:
        socket = self._sockets.get(conn)
        if socket is None or socket.opened.done():
            return
        if code:
            self._sockets.pop(conn, None)
            socket._closed(code, reason)
            socket.opened.set_exception(ConnectionError(f"refused with {code}: {reason}"))
        else:
            socket.opened.set_result(None)

    def socket_send(self, conn: int, message: Outgoing) -> None:
        socket = self._sockets.get(conn)
        if socket is not None:
            socket._receive(message)

    def socket_close(self, conn: int, code: int, reason: str) -> None:
        socket = self._sockets.pop(conn, None)
        if socket is not None:
            socket._closed(code, reason)
            self._uplink.closed(conn, code, reason)


INSPECT_KEYS = 1000
_PREVIEW = 64  # bytes of a binary value shown by the inspector


def _entry(key: str, value: Any) -> dict[str, Any]:
    """A stored value as the inspector shows it: JSON pretty-printed, bytes as hex."""
    if isinstance(value, bytes):
        hex_ = value[:_PREVIEW].hex(" ") + (" …" if len(value) > _PREVIEW else "")
        return {"key": key, "size": len(value), "bytes": hex_}
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return {"key": key, "size": len(text.encode()), "json": text}


def _document(server: Server | None) -> dict[str, Any] | None:
    """A YServer room's document: its shared types (with their kind, where known) and size."""
    from .yserver import YServer

    if not isinstance(server, YServer):
        return None
    document = server.document
    types = {name: type(value).__name__ for name, value in document.items()}
    return {
        "types": {name: kind if kind != "NoneType" else None for name, kind in types.items()},
        "bytes": len(document.get_update()),
    }


def describe_party(name: str, registry: Registry) -> dict[str, Any]:
    """What the server process needs to know of a party: where it came from, its kind, its
    own front end, and the limits it sets for its sockets."""
    server_class = registry.get(name)
    return {
        "name": name,
        "source": registry.source(name),
        "error": None,
        **front_end(server_class),
        **_limits(server_class),
    }


def _limits(server_class: type[Server]) -> dict[str, Any]:
    return {
        "max_message_size": server_class.max_message_size,
        "send_buffer_limit": server_class.send_buffer_limit,
        "rate_limit_drops": server_class.rate_limit_drops,
    }


_SERVER_LIMITS = _limits(Server)  # a party's limits when it sets none


def _refusal_to_wire(verdict: Response | tuple[int, int, str]) -> Any:
    if isinstance(verdict, Response):
        fields, body = response_to_wire(verdict)
        return {"response": fields}, body
    return {"refuse": list(verdict)}, b""
