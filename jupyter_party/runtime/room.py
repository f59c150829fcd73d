"""`Room`: one live instance of a party, and the order in which its events are delivered.

A room runs `on_start` before anything else, then delivers events as they come. The session
hands each connection's messages over in order (waiting for a message's handler before the
next). `block_concurrency_while` closes the room's gate, so no new event starts until the work
is done. Handler errors stay inside the room: they are logged with the party and room, passed
to `on_error`, and never reach other rooms or the transport.

Party code sees the public names; the session drives the room through the `_`-prefixed ones.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..protocol.codes import CloseCode
from .clock import Clock
from .connection import Connection
from .errors import Overloaded, RoomError
from .http import Request, Response, to_response
from .limits import Limits
from .outbox import Outgoing
from .partylog import LogSink, current_room, error_text
from .server import ConnectionContext, Server
from .stall import Steps
from .storage import Backend, Storage

if TYPE_CHECKING:
    from .leases import RoomLeases
    from .stubs import Parties

log = logging.getLogger("jupyter_party")
T = TypeVar("T")

MAX_TAGS = 9
MAX_TAG_LENGTH = 256


class Members(Protocol):
    """Where the room's membership and broadcasts go: the session's uplink."""

    def joined(self, conn: int, room: int) -> None: ...

    def broadcast(self, room: int, message: Outgoing, without: list[str]) -> None: ...


@dataclass
class RoomServices:
    """What a room needs from the process that hosts it, and nothing more."""

    env: Callable[[str], dict[str, Any]]  # a party's environment (env.py)
    backend: Backend
    limits: Limits
    logs: LogSink
    steps: Steps
    members: Members
    parties: Parties
    alarm_watcher: Callable[[str, str], Callable[[float | None], None]]
    discard: Callable[[Room], None]
    clock: Clock
    leases: RoomLeases | None = None  # in a party cluster: the room's lease, before on_start


@dataclass
class Lobby:
    """What `on_before_connect` / `on_before_request` know: the room is not touched yet."""

    id: str
    party: str
    env: dict[str, Any]
    parties: Parties


class Context:
    """`room.context`: calls to other parties' rooms."""

    def __init__(self, parties: Parties) -> None:
        self.parties = parties


class Traffic:
    """A room's messages and bytes, in (handed to `on_message`) and out (sent to clients), since
    the instance started: the admin API turns them into rates."""

    __slots__ = ("bytes_in", "bytes_out", "messages_in", "messages_out")

    def __init__(self) -> None:
        self.messages_in = self.messages_out = self.bytes_in = self.bytes_out = 0

    def sent(self, messages: int, size: int) -> None:
        self.messages_out += messages
        self.bytes_out += messages * size

    def public(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Room:
    """A live instance of a party, addressed by `(party, id)`."""

    def __init__(
        self, services: RoomServices, party: str, server_class: type[Server], id: str, handle: int
    ) -> None:
        self.id = id
        self.party = party
        self.env = services.env(party)
        self.storage = Storage(services.backend, party, id, services.alarm_watcher(party, id))
        self.context = Context(services.parties)
        self.server: Server | None = None
        self._services = services
        self._handle = handle  # the room's number on the wire
        self._server_class = server_class
        self._connections: dict[Connection, None] = {}  # insertion-ordered set, keyed by socket
        self._by_id: dict[str, list[Connection]] = {}  # the same connections by id, in order
        self._gate = asyncio.Event()  # set while events may start
        self._block = asyncio.Lock()
        self._failure: BaseException | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._leases = 0  # events and connections in progress; an idle room has none
        self._claimed = False  # holds its lease in the party cluster (RoomLeases)
        self._last_activity = time.time()  # of the last event: shown by the admin API
        self._traffic = Traffic()
        self._started = self._start()

    def __repr__(self) -> str:
        return f"<Room {self.party}/{self.id}>"

    # -- the API party code uses ------------------------------------------------------------

    def broadcast(self, message: Any, without: Iterable[str] = ()) -> None:
        """Send `message` to every connection whose id is not in `without`.

        The message is encoded once and crosses to the server process once, whatever the
        number of recipients; the server process writes it to each socket.
        """
        if self._connections:
            outgoing, skip = Outgoing(message), list(without)
            self._services.members.broadcast(self._handle, outgoing, skip)
            recipients = len(self._connections)
            if skip:
                recipients = sum(1 for c in self._connections if c.id not in skip)
            self._traffic.sent(recipients, len(outgoing.payload))

    def discard(self) -> None:
        """Forget this instance: the next event creates a new one (storage is kept)."""
        self._services.discard(self)

    def get_connection(self, id: str) -> Connection | None:
        """The newest open connection with this id, or None."""
        for connection in reversed(self._by_id.get(id, ())):
            if not connection.closed:
                return connection
        return None

    def get_connections(self, tag: str | None = None) -> list[Connection]:
        """Open connections, all of them or those carrying `tag`."""
        return [
            c
            for c in self._connections
            if not c.closed and (tag is None or tag in c.tags or tag == c.id)
        ]

    def _full(self, limit: int) -> bool:
        """Whether `limit` connections are open: counted only when as many are known (some
        may be closed, not yet forgotten), so a join costs O(1), not a scan of the room."""
        return len(self._connections) >= limit and len(self.get_connections()) >= limit

    def _add(self, connection: Connection) -> None:
        self._connections[connection] = None
        self._by_id.setdefault(connection.id, []).append(connection)

    def _forget(self, connection: Connection) -> bool:
        """Remove a connection; False if it was not there."""
        if connection not in self._connections:
            return False
        del self._connections[connection]
        same = self._by_id[connection.id]
        same.remove(connection)
        if not same:
            del self._by_id[connection.id]
        return True

    async def block_concurrency_while(self, work: Callable[[], Awaitable[T]] | Awaitable[T]) -> T:
        """Run `work` (a coroutine function or awaitable) while no other event starts."""
        async with self._block:
            was_open = self._gate.is_set()  # closed while on_start runs: keep it so
            self._gate.clear()
            try:
                return await (work() if callable(work) else work)
            finally:
                if was_open:
                    self._gate.set()

    @property
    def _instance(self) -> Server:
        """The party's instance: every event waits at the start gate (`_open`), so it exists."""
        if self.server is None:
            raise RoomError(f"party {self.party!r} room {self.id!r} has no running instance")
        return self.server

    # -- events, called by the session ------------------------------------------------------

    async def _connect(self, connection: Connection, request: Request) -> None:
        """Admit a connection: tags, then `on_connect`. Raises RoomError if that fails."""
        await self._open()
        self._last_activity = time.time()
        server = self._instance
        ctx = ConnectionContext(request)
        self._add(connection)
        connection._traffic = self._traffic
        self._services.members.joined(connection._handle, self._handle)
        try:
            if not _left_alone(server, "get_connection_tags"):
                tags = await self._run(
                    "get_connection_tags", server.get_connection_tags, connection, ctx
                )
                connection.tags = _check_tags(tags)
            if not _left_alone(server, "_handle_connect", "on_connect"):
                await self._run("on_connect", server._handle_connect, connection, ctx)
        except Exception as error:
            self._forget(connection)
            connection.closed = True
            await self._report_error("on_connect", connection, error)
            raise RoomError(f"{type(error).__name__}: {error}") from error

    def _deliver(self, connection: Connection, message: str | bytes) -> Awaitable[None] | None:
        """Hand a message to `on_message`; returns an awaitable only when there is waiting to do.

        This is the hot path: a synchronous handler in an open room costs one call.
        """
        if connection.closed:  # the server closed it: frames still in flight are dropped
            return None
        if connection.access == "read" and not self._server_class.read_only_messages:
            return None  # a read-only link cannot change anything
        self._last_activity = time.time()
        traffic = self._traffic
        traffic.messages_in += 1
        traffic.bytes_in += len(message)
        if not self._gate.is_set():
            return self._deliver_later(connection, message)
        steps = self._services.steps
        context = current_room.set((self._services.logs, self.party, self.id))
        start = steps.begin(self.party, self.id, "on_message")
        try:
            result = self._instance._handle_message(message, connection)
        except Exception as error:
            return self._report_error("on_message", connection, error)
        finally:
            steps.end(start, self.party, self.id, "on_message")
            current_room.reset(context)
        if result is not None and inspect.isawaitable(result):
            return self._await_handler("on_message", connection, result)
        return None

    async def _disconnect(self, connection: Connection, code: int, reason: str) -> None:
        """Forget a closed connection and tell the party."""
        connection.closed = True
        if not self._forget(connection):
            return
        if self.server is not None and _left_alone(self.server, "_handle_close", "on_close"):
            return
        task = asyncio.ensure_future(self._close_hook(connection, code, reason))
        self._closing.add(task)  # `_stop` waits for these: they may still use storage
        task.add_done_callback(self._closing.discard)
        await task

    async def _close_hook(self, connection: Connection, code: int, reason: str) -> None:
        try:
            await self._run("on_close", self._instance._handle_close, connection, code, reason)
        except Exception as error:
            await self._report_error("on_close", connection, error)

    async def _request(self, request: Request) -> Response:
        """Answer an HTTP request with `on_request`; a handler error becomes a bare 500."""
        await self._open()
        self._last_activity = time.time()
        try:
            return to_response(await self._run("on_request", self._instance.on_request, request))
        except Exception as error:
            await self._report_error("on_request", None, error)
            return Response("Internal Server Error: the party's handler failed", 500)

    async def _alarm(self) -> None:
        """Run `on_alarm`; errors are reported and re-raised so the alarm is retried."""
        await self._open()
        self._last_activity = time.time()
        try:
            await self._run("on_alarm", self._instance.on_alarm)
        except Exception as error:
            await self._report_error("on_alarm", None, error)
            raise

    async def _stop(self, code: int = CloseCode.GOING_AWAY, reason: str = "room stopped") -> None:
        """Close every connection (running `on_close` now, not when the socket is gone), then
        let the party finish pending work: the instance is going away."""
        for connection in list(self._connections):
            connection.close(code, reason)
            await self._disconnect(connection, code, reason)
        await asyncio.gather(*self._closing)
        if self.server is not None and self._failure is None:
            try:
                await self._run("stop", self.server._handle_stop)
            except Exception as error:
                await self._report_error("stop", None, error)
        await self._release_lease()

    # -- internals --------------------------------------------------------------------------

    def _start(self) -> asyncio.Future[None]:
        """Make the party's instance and run its `on_start`; events wait at the gate until then.
        With nothing to wait for (no lease to claim in a party cluster, no `on_start` of the
        party's own) the room starts at once, without a task: a cold start's hot path."""
        server = None
        if self._services.leases is None:
            try:
                server = self._server_class(self)
            except Exception as error:
                return asyncio.ensure_future(self._failed_to_start(error))
            if _left_alone(server, "_handle_start", "on_start"):
                self.server = server
                self._gate.set()
                started = asyncio.get_running_loop().create_future()
                started.set_result(None)
                return started
        return asyncio.ensure_future(self._start_in_task(server))

    async def _start_in_task(self, server: Server | None) -> None:
        """The rest of `_start`: claim the lease and make the instance, unless `_start` made
        it (`server`), then run `on_start`."""
        try:
            if server is None:
                if not await self._claim_lease():
                    return
                server = self._server_class(self)
            self.server = server
            if not _left_alone(server, "_handle_start", "on_start"):
                await self._run("on_start", server._handle_start)
        except Exception as error:
            await self._failed_to_start(error)
        finally:
            self._gate.set()

    async def _failed_to_start(self, error: Exception) -> None:
        self._failure = error
        try:
            await self._report_error("on_start", None, error)
            self._services.discard(self)
            await self._release_lease()
        finally:
            self._gate.set()

    async def _claim_lease(self) -> bool:
        """In a party cluster, own the room before it starts: False (and the room refuses its
        events with 1013 / 503) while another node owns it or Redis cannot be reached."""
        leases = self._services.leases
        if leases is None:
            return True
        try:
            await leases.claim(self.party, self.id)
            self._claimed = True
        except Overloaded as error:
            self._failure = error
        except Exception as error:
            log.error("cannot claim the lease of %s/%s in Redis: %s", self.party, self.id, error)
            self._failure = Overloaded("the party cluster's Redis cannot be reached: try again")
        else:
            return True
        self._services.discard(self)
        return False

    async def _release_lease(self) -> None:
        """Give the lease up once every write of the room is done (later ones would fail)."""
        if self._claimed:
            self._claimed = False
            try:
                await self.storage.sync()
            except Exception as error:  # those writes failed in their callers already
                log.warning("room %s/%s stopped, writes failing: %s", self.party, self.id, error)
            leases = self._services.leases
            if leases is not None:  # claimed: there are leases
                await leases.release(self.party, self.id)

    async def _open(self) -> None:
        """Wait until events may start; raise RoomError if the room failed to start."""
        while not self._gate.is_set():
            await self._gate.wait()
        if isinstance(self._failure, Overloaded):  # not started here: try again later
            raise Overloaded(str(self._failure))
        if self._failure is not None:
            raise RoomError(f"the room failed to start: {self._failure}")

    async def _deliver_later(self, connection: Connection, message: str | bytes) -> None:
        await self._open()
        result = self._deliver(connection, message)
        if result is not None:
            await result

    async def _run(self, hook: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call hook `fn(*args)` as this room's code (its output goes to the party's log),
        await its result if need be, timing every step."""
        context = current_room.set((self._services.logs, self.party, self.id))
        try:
            return await self._services.steps.run(self.party, self.id, hook, fn, *args)
        finally:
            current_room.reset(context)

    async def _await_handler(self, hook: str, connection: Connection | None, result: Any) -> None:
        context = current_room.set((self._services.logs, self.party, self.id))
        try:
            await maybe_await(self._services.steps.timed(result, self.party, self.id, hook))
        except Exception as error:
            await self._report_error(hook, connection, error)
        finally:
            current_room.reset(context)

    async def _report_error(
        self, hook: str, connection: Connection | None, error: BaseException
    ) -> None:
        """Log a handler error with its party and room (also in the party's own log, for the
        notebook that deployed it), then pass it to `on_error`."""
        log.error("party %r room %r: %s raised", self.party, self.id, hook, exc_info=error)
        self._services.logs.record(self.party, self.id, "error", error_text(hook, error))
        if self.server is None or hook == "on_error":
            return
        try:
            await maybe_await(self.server.on_error(connection, error))
        except Exception as again:
            log.error("party %r room %r: on_error raised", self.party, self.id, exc_info=again)


async def maybe_await(value: Any) -> Any:
    """Await `value` if it is awaitable: hooks may be plain functions or coroutines."""
    if inspect.isawaitable(value):
        return await value
    return value


def _left_alone(server: Server, *hooks: str) -> bool:
    """Whether each of these hooks is `Server`'s own, which does nothing: then the room does
    not run it (no step, no await; a connect's hot path)."""
    for hook in hooks:
        if getattr(getattr(server, hook), "__func__", None) is not getattr(Server, hook):
            return False
    return True


def _check_tags(returned: Any) -> tuple[str, ...]:
    tags: tuple[str, ...] = tuple(returned or ())
    if len(tags) > MAX_TAGS:
        raise ValueError(f"get_connection_tags returned {len(tags)} tags; at most {MAX_TAGS}")
    for tag in tags:
        if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_LENGTH:
            raise ValueError(f"invalid tag {tag!r}: tags are non-empty strings of ≤256 chars")
    return tags
