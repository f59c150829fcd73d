"""`Router`: the server process's side of the worker boundary.

It keeps what is shared and cheap: which worker owns which room (stable placement by
`(party, room)`), every client socket with its send queue, room membership, and the fan-out of
broadcasts: a room's broadcast arrives once, as one encoded message, and is written to each
member socket here. Everything else (gates, rooms, storage, alarms) happens in the session of
the worker that owns the room; `workers = 0` plugs an in-process session in as worker 0.

A kernel may host a party itself (`jupyter_party.host`): its link is one more worker, which
owns every room of that party; the party's storage stays with the worker that placement gives
each room, reached through `storage` calls.

Sockets are client sockets (Tornado WebSockets) or sockets that party code opened to another
room (`room.context.parties[...].socket()`): those are relayed between the caller's session
and the owner's, so a room is reached the same way from everywhere.

In a party cluster (cluster.py) a room another node owns is reached through a link to that
node, one more downlink here; on the owner, the sockets that node relays are sockets of its
router with a `peer`: they join the room as one member per node (a *span*), so a broadcast
crosses to each node once and is fanned out there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol.codes import CloseCode
from . import metrics
from .errors import Overloaded
from .http import Request, Response, request_from_wire, request_to_wire, response_from_wire
from .outbox import Flushes, Outbox, Outgoing, Passthrough, Transport
from .partylog import PartyLogs
from .session import MESSAGE_COST, WINDOW
from .tasks import spawn

if TYPE_CHECKING:
    from .cluster import Cluster

log = logging.getLogger("jupyter_party")

#: How long an event waits for a restarting worker before it is refused (1013 / 503).
READY_TIMEOUT = 30.0
#: How long after a redeploy the clients that were told to reconnect are counted.
RECONNECT_WINDOW = 10.0


def placement(party: str, room: str, workers: int) -> int:
    """The worker that owns `(party, room)`: stable for a given number of workers."""
    return zlib.crc32(f"{party}\0{room}".encode()) % max(workers, 1)


class Downlink(Protocol):
    """A session as the router sees it: in process (workers = 0), or a worker's channel (or
    another node's, in a party cluster)."""

    def open(
        self,
        conn: int,
        party: str,
        room: str,
        id: str,
        request: dict[str, Any],
        share_id: str | None,
        who: str | None,
    ) -> None: ...
    def message(self, conn: int, data: str | bytes) -> None: ...
    def closed(self, conn: int, code: int, reason: str) -> None: ...
    async def call(self, op: str, args: dict[str, Any], payload: bytes = b"") -> Any: ...
    def socket_opened(self, conn: int, code: int, reason: str) -> None: ...
    def socket_send(self, conn: int, message: Outgoing) -> None: ...
    def socket_close(self, conn: int, code: int, reason: str) -> None: ...


class Peer(Protocol):
    """The node that relayed a socket to this one (cluster.py), as the router sees it."""

    def joined(self, socket: Socket, span: int) -> None: ...
    def broadcast(self, span: int, message: Outgoing, without: list[str]) -> None: ...
    def ack(self, socket: Socket, cost: int) -> None: ...


class Refused(Exception):
    """The room refused a socket: close it with `code` and this message; or the party's gate
    answered the upgrade with its own `response` (send that instead of upgrading)."""

    def __init__(self, code: int, reason: str, response: Response | None = None) -> None:
        super().__init__(reason)
        self.code, self.response = code, response


class Socket:
    """One socket in a room, as the server process keeps it.

    It is its outbox's transport: whoever closes the socket (the room, a limit, the router),
    the room hears of it at once, not when the client's close handshake ends.
    """

    __slots__ = (
        "access",
        "caller",
        "conn",
        "group",
        "id",
        "limits",
        "opened",
        "outbox",
        "peer",
        "received",
        "router",
        "sent",
        "share_id",
        "span",
        "transport",
        "unacked",
        "waiter",
        "worker",
    )

    def __init__(
        self,
        router: Router,
        conn: int,
        id: str,
        worker: int,
        transport: Transport,
        limit: int,
        share_id: str | None,
        peer: Peer | None = None,
    ) -> None:
        self.router = router
        self.conn = conn
        self.id = id
        self.worker = worker
        self.transport = transport
        kind = Outbox if peer is None else Passthrough
        self.outbox = kind(self, limit, router.flushes)
        self.share_id = share_id
        self.peer = peer  # the node that relayed this socket here, if any
        self.span: tuple[int, int] | None = None  # its room, if relayed
        self.group: dict[Socket, None] | None = None
        self.opened: asyncio.Future[tuple[int, str, dict[str, Any] | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self.limits: dict[str, Any] = _NO_LIMITS  # the party's own, once admitted through its gate
        self.unacked = 0
        self.waiter: asyncio.Future[None] | None = None
        self.caller: int | None = None  # the worker whose party code opened it, if any
        self.access: str | None = None  # once admitted: "write" or "read" (metrics)
        self.received = self.sent = 0  # messages, for the inspector

    def write(self, batch: list[Outgoing]) -> asyncio.Future[Any] | None:
        return self.transport.write(batch)

    def close(self, code: int, reason: str) -> None:
        self.transport.close(code, reason)
        # Not now: the outbox may be closing in the middle of a broadcast over this group.
        asyncio.get_running_loop().call_soon(self.router.closed, self, code, reason)


class Router:
    """Routes sockets, requests and admin operations to the session that owns each room."""

    def __init__(self, workers: int, logs: PartyLogs) -> None:
        self.logs = logs
        self._workers = max(workers, 1)  # worker processes (or the in-process session)
        self._links: list[Downlink | None] = [None] * self._workers  # then kernel-hosted parties
        self._ready = [asyncio.Event() for _ in self._links]
        self._hosted: dict[str, int] = {}  # party -> the link of the kernel that hosts it
        self._hosts: dict[int, str] = {}  # the same, the other way
        self._releases: dict[int, Callable[[str], None]] = {}  # how to let a kernel go
        self._unhosted: set[str] = set()  # parties a kernel hosted, and may host again
        self._sockets: dict[int, Socket] = {}
        self._groups: dict[tuple[int, int], dict[Socket, None]] = {}
        self._conns = 0
        self._shared: dict[str, int] = {}  # open sockets per share grant
        self._paused: dict[str, float] = {}  # party -> monotonic time it may run again
        self._reconnecting: dict[str, _Reconnects] = {}  # after a redeploy, by party
        self._relays: set[int] = set()  # links to other nodes of the party cluster
        self._spans: dict[tuple[int, int], dict[Peer, int]] = {}  # room -> relayed members
        self._limits: dict[tuple[Any, ...], dict[str, Any]] = {}  # parties' limits, shared
        self.flushes = Flushes()  # the sockets' writes of this loop turn
        #: The party cluster this node belongs to, if any (it sets itself here).
        self.cluster: Cluster | None = None
        #: Starts the workers on first use, if the host has not started them yet.
        self.starter: Callable[[], Awaitable[None]] | None = None

    # -- workers ----------------------------------------------------------------------------

    def attach(self, worker: int, link: Downlink) -> None:
        """Worker `worker` is ready: route its rooms' traffic to `link`."""
        self._links[worker] = link
        self._ready[worker].set()

    def detach(self, worker: int, reason: str, code: int = CloseCode.HANDLER_ERROR) -> None:
        """Worker `worker` is gone: its sockets close with `code` (1011) and `reason`."""
        self._links[worker] = None
        self._ready[worker].clear()
        if worker < self._workers:
            metrics.ROOMS.labels(str(worker)).set(0)
        for key in [key for key in self._groups if key[0] == worker]:
            del self._groups[key]
        for socket in list(self._sockets.values()):
            if socket.worker == worker:
                if not socket.opened.done():
                    socket.opened.set_result((code, reason, None))
                socket.outbox.close(code, reason)
            if socket.caller == worker:
                self.closed(socket, CloseCode.GOING_AWAY, "the calling room's worker is gone")

    def place(self, party: str, room: str) -> int:
        """The worker that owns `(party, room)`: the hosting kernel's, for a hosted party."""
        hosted = self._hosted.get(party)
        return hosted if hosted is not None else placement(party, room, self._workers)

    # -- parties hosted by kernels ----------------------------------------------------------

    async def why_not_host(self, party: str, replace: bool) -> str | None:
        """Why a kernel may not host `party` now, or None: a name is either deployed (a file
        or an entry point) or hosted by one kernel at a time."""
        if party in self._hosted and not replace:
            return (
                f"party {party!r} is already hosted by another kernel: "
                "pass replace=True to take it over"
            )
        described = await self.party(party)
        if party not in self._hosted and described["error"] is None:
            return (
                f"party {party!r} is deployed on this server ({described['source']}): "
                "choose another name, a party is either deployed or hosted by a kernel"
            )
        return None

    def claim(self, party: str, replace: bool, release: Callable[[str], None]) -> int | None:
        """Reserve `party` for a kernel: the index its link will be attached at, or None if
        another kernel hosts it and not `replace`. With `replace`, the kernel that hosted it
        is let go (`release`, with why): its clients reconnect (1012)."""
        held = self._hosted.get(party)
        if held is not None:
            if not replace:
                return None
            self.unhost(held, f"party {party!r} is now hosted by another kernel")
        index = self._add_link()
        self._hosted[party], self._hosts[index] = index, party
        self._releases[index] = release
        self._unhosted.discard(party)
        return index

    def add_relay(self) -> int:
        """A place for links to another node of the party cluster: its index."""
        index = self._add_link()
        self._relays.add(index)
        return index

    def _add_link(self) -> int:
        self._links.append(None)
        self._ready.append(asyncio.Event())
        return len(self._links) - 1

    def unhost(self, index: int, reason: str) -> None:
        """The kernel at `index` stopped hosting its party: the party's sockets close with
        1012, and its events are answered "try again" (1013 / 503) until it is hosted again."""
        party = self._hosts.pop(index, None)
        if party is None:
            return
        self._releases.pop(index)(reason)
        if self._hosted.get(party) == index:
            del self._hosted[party]
            self._unhosted.add(party)
        self.detach(index, reason, CloseCode.SERVICE_RESTART)
        self._ready[index].set()  # events waiting for this kernel: see `_link`

    async def party(self, name: str) -> dict[str, Any]:
        """What a party is (see `describe_party`), from whichever process runs it."""
        described: dict[str, Any] = await self.call(self._hosted.get(name, 0), "party", name=name)
        return described

    async def parties(self) -> list[dict[str, Any]]:
        """Every party: those of the workers, then those hosted by kernels."""
        hosted = [self.party(name) for name in sorted(self._hosted)]
        return [*await self.call(0, "parties"), *await asyncio.gather(*hosted)]

    async def rooms(self) -> list[dict[str, Any]]:
        """Every live room, in every worker and hosting kernel."""
        hosts = [i for i in self._hosts if self._links[i] is not None]
        live = [*range(self._workers), *hosts]
        found = await asyncio.gather(*(self.call(i, "rooms") for i in live))
        return sorted(
            (room for rooms in found for room in rooms),
            key=lambda room: (room["party"], room["room"]),
        )

    def pause(self, party: str, seconds: float) -> None:
        """Refuse events for `party` for a while (it keeps crashing its worker)."""
        self._paused[party] = time.monotonic() + seconds

    async def _route(self, party: str, room: str, relay: bool = True) -> tuple[int, Downlink]:
        """The worker that owns the room, and its link once it is ready; in a party cluster,
        the link to the node owning it (unless not `relay`: an event relayed here by another
        node, or a gate, runs here). Raises Overloaded."""
        until = self._paused.get(party)
        if until is not None:
            wait = until - time.monotonic()
            if wait > 0:
                raise Overloaded(
                    f"party {party!r} keeps crashing its worker: paused for {wait:.0f} s"
                )
            del self._paused[party]
        if party in self._unhosted:
            raise Overloaded(f"party {party!r} is hosted by a kernel, which stopped: try again")
        worker = self.place(party, room)
        if relay and self.cluster is not None and party not in self._hosted:
            owner = await self.cluster.owner(party, room)
            if owner is not None:
                worker = owner
        return worker, await self._link(worker)

    async def _link(self, worker: int) -> Downlink:
        link = self._links[worker]
        if link is not None:
            return link
        if worker in self._relays:
            raise Overloaded("the node owning this room is gone: try again")
        if worker >= self._workers and worker not in self._hosts:
            raise Overloaded("the kernel hosting this party stopped: try again")
        if self.starter is not None:
            await self.starter()
        try:
            await asyncio.wait_for(self._ready[worker].wait(), READY_TIMEOUT)
        except TimeoutError:
            raise Overloaded("the party worker is restarting: try again") from None
        return await self._link(worker)

    # -- client sockets ---------------------------------------------------------------------

    async def admit(
        self, party: str, room: str, request: Request, kind: str, who: str
    ) -> dict[str, Any]:
        """Run the party's gate for a socket (here, in the worker that placement gives the room,
        even if another node owns it): the answer holds the `request` to open with, the
        party's own `response`, or a `refuse` (see Session)."""
        answer: dict[str, Any] = await self._ask(
            "admit", party, room, request, relay=False, kind=kind, who=who
        )
        return answer

    async def _ask(
        self, op: str, party: str, room: str, request: Request, relay: bool = True, **args: Any
    ) -> Any:
        """Operation `op` about a request, in the worker (or node) that owns the room."""
        _, link = await self._route(party, room, relay)
        return await _about(link, op, party, room, request, **args)

    async def open(
        self,
        transport: Transport,
        party: str,
        room: str,
        id: str,
        request: dict[str, Any],
        *,
        share_id: str | None,
        who: str | None = None,
        send_buffer_limit: int = 1 << 62,
        peer: Peer | None = None,
    ) -> Socket:
        """Admit a socket to a room; returns once `on_connect` finished. Raises Refused.

        With `who` (see Session) the party's gate judges the socket first: in the owner's
        session, in the same round trip as the open; for a room another node owns, here, before
        the socket is relayed (as for HTTP requests). The socket's `limits` are then the
        party's. A socket relayed here by another node comes with its `peer` (its send buffer
        is that node's)."""
        relay, retried = peer is None, False
        while True:
            worker, link = await self._route(party, room, relay)
            gate, limits = who, None
            if who is not None and worker in self._relays:
                limits, request = await self._gate_here(party, room, request, who)
                gate = None
            self._conns += 1
            socket = Socket(
                self, self._conns, id, worker, transport, send_buffer_limit, share_id, peer
            )
            self._sockets[socket.conn] = socket
            if share_id is not None:
                self._shared[share_id] = self._shared.get(share_id, 0) + 1
            link.open(socket.conn, party, room, id, request, share_id, gate)
            code, reason, answer = await socket.opened
            if not code:
                break
            self._forget(socket)
            if answer is not None:  # the party's gate answered with its own response
                raise Refused(code, reason, answer["response"])
            if retried or not (code == CloseCode.OVERLOADED and self._raced(worker, relay)):
                raise Refused(code, reason)
            retried = True
        if limits is not None:  # gated here, relayed: the owner's session did not answer
            socket.limits = self._shared_limits(limits)
        if socket.limits is not _NO_LIMITS:
            socket.outbox.limit = socket.limits["send_buffer_limit"] or send_buffer_limit
        if self._sockets.get(socket.conn) is socket:
            socket.access = request["access"]
            metrics.CONNECTIONS.labels(socket.access).inc()
        waiting = self._reconnecting.get(party)
        if waiting is not None:
            waiting.came_back()
        return socket

    async def _gate_here(
        self, party: str, room: str, request: dict[str, Any], who: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The party's gate for a socket, run here: the party's limits and the request to open
        with. Raises Refused."""
        verdict = await self.admit(party, room, request_from_wire(request, b""), "connect", who)
        if "response" in verdict:
            raise Refused(CloseCode.FORBIDDEN, "", verdict["response"])
        if "refuse" in verdict:
            _, code, message = verdict["refuse"]
            raise Refused(code, message)
        return verdict["party"], verdict["request"]

    def _shared_limits(self, limits: dict[str, Any]) -> dict[str, Any]:
        """One dict per set of party limits, however many sockets hold it."""
        return self._limits.setdefault(tuple(limits.items()), limits)

    def _raced(self, worker: int, relay: bool) -> bool:
        """Whether a "try again" from local `worker` may come from another node having
        claimed the room since it was routed here: then the event is routed once more."""
        return relay and self.cluster is not None and worker not in self._relays

    def message(self, socket: Socket, data: str | bytes) -> asyncio.Future[None] | None:
        """A message from a socket; a future when the socket should not be read further until
        its room caught up (flow control)."""
        link = self._links[socket.worker]
        if link is None or socket.outbox.closed:
            return None
        link.message(socket.conn, data)
        socket.received += 1
        metrics.MESSAGES_IN.inc()
        metrics.BYTES_IN.inc(len(data))
        socket.unacked += len(data) + MESSAGE_COST
        if socket.unacked > WINDOW:
            socket.waiter = asyncio.get_running_loop().create_future()
            return socket.waiter
        return None

    def closed(self, socket: Socket, code: int, reason: str) -> None:
        """A socket closed (either side closed it): its room is told."""
        if self._sockets.get(socket.conn) is not socket:
            return
        self._forget(socket)
        metrics.CLOSES.labels(str(code)).inc()
        link = self._links[socket.worker]
        if link is not None and socket.opened.done():
            link.closed(socket.conn, code, reason)

    def shared(self, share_id: str) -> int:
        """How many sockets are open with share grant `share_id`."""
        return self._shared.get(share_id, 0)

    def _forget(self, socket: Socket) -> None:
        if self._sockets.pop(socket.conn, None) is not None and socket.share_id is not None:
            left = self._shared.pop(socket.share_id) - 1
            if left:
                self._shared[socket.share_id] = left
        socket.outbox.mark_closed()
        if socket.group is not None:
            socket.group.pop(socket, None)
        if socket.span is not None and socket.peer is not None:
            span = self._spans[socket.span]
            span[socket.peer] -= 1
            if not span[socket.peer]:
                del span[socket.peer]
                if not span:
                    del self._spans[socket.span]
            socket.span = None
        if socket.access is not None:
            metrics.CONNECTIONS.labels(socket.access).dec()
            socket.access = None
        if socket.waiter is not None and not socket.waiter.done():
            socket.waiter.set_result(None)

    def shutdown(self) -> None:
        """Close every socket with 1001: the server is stopping."""
        for socket in list(self._sockets.values()):
            socket.outbox.close(CloseCode.GOING_AWAY, "server shutting down")

    def revoked(self, share_id: str) -> None:
        """Share grant `share_id` was revoked: close every socket opened with it (4401)."""
        for socket in list(self._sockets.values()):
            if socket.share_id == share_id:
                socket.outbox.close(CloseCode.UNAUTHENTICATED, "share link revoked")

    # -- HTTP and admin operations ----------------------------------------------------------

    async def request(
        self,
        party: str,
        room: str,
        request: Request,
        who: str,
        gate: bool = True,
        relay: bool = True,
    ) -> Response:
        """An HTTP request to a room: its gate (unless `gate` is False), then `on_request`.
        For a room another node owns, the gate runs here and the request is relayed."""
        retried = False
        while True:
            worker, link = await self._route(party, room, relay)
            asked = request
            if gate and worker in self._relays:
                verdict = await self._ask(
                    "admit", party, room, request, relay=False, kind="request", who=who
                )
                if "request" not in verdict:
                    return _answer(verdict)
                asked = request_from_wire(verdict["request"], request.body)
            args = {"who": who, "gate": gate and worker not in self._relays}
            response = _answer(await _about(link, "request", party, room, asked, **args))
            if retried or not (response.status == 503 and self._raced(worker, relay)):
                return response
            retried = True

    async def call(self, worker: int, op: str, **args: Any) -> Any:
        """Admin operation `op` in one worker; returns its result."""
        result, _ = await (await self._link(worker)).call(op, args)
        return result

    async def inspect(self, party: str, room: str) -> dict[str, Any]:
        """What a room holds (see Session), with each connection's message counts."""
        inspected: dict[str, Any] = await self.call(
            self.place(party, room), "inspect", party=party, room=room
        )
        for connection in inspected["connections"]:
            socket = self._sockets.get(connection.pop("conn"))
            connection["messages_in"] = socket.received if socket else 0
            connection["messages_out"] = socket.sent if socket else 0
        return inspected

    async def evict(self, party: str, room: str) -> bool:
        evicted: bool = await self.call(self.place(party, room), "evict", party=party, room=room)
        return evicted

    async def deploy(self, name: str, source: str) -> dict[str, Any]:
        """Deploy in worker 0 (which validates the source); the others then reload it."""
        if name in self._hosted:
            return _hosted_elsewhere(name)
        result: dict[str, Any] = await self.call(0, "deploy", name=name, source=source)
        if "error" not in result:
            await self._spread(name, result, "deploy")
        return result

    async def load(self, name: str) -> dict[str, Any]:
        """Party `name`'s file in parties_dir changed: load it as a deploy would (worker 0
        imports it, or refuses it with the traceback; the others then reload it)."""
        if name in self._hosted:
            return _hosted_elsewhere(name)
        result: dict[str, Any] = await self.call(0, "load", name=name)
        if "error" not in result and "unchanged" not in result:
            await self._spread(name, result, "reload")
        return result

    async def unload(self, name: str) -> int:
        """Party `name`'s file left parties_dir: every worker forgets it and closes its
        rooms' clients with 1012. Returns how many were closed."""
        workers = range(self._workers)
        results = await asyncio.gather(*(self.call(w, "unload", name=name) for w in workers))
        closed: int = sum(result["closed"] for result in results)
        if any(result["removed"] for result in results):
            self.logs.record(name, None, "log", f"removed: {closed} client(s) closed")
        return closed

    async def _spread(self, name: str, result: dict[str, Any], what: str) -> None:
        """A new version of party `name` runs in worker 0: the other workers reload it. The
        party's log tells the deploying cell how many rooms restarted, and then how many of
        the clients told to reconnect (1012) came back within RECONNECT_WINDOW seconds."""
        self._unhosted.discard(name)
        for worker in range(1, self._workers):
            reloaded = await self.call(worker, "reload", name=name)
            result["rooms"] += reloaded["rooms"]
            result["closed"] += reloaded["closed"]
        rooms, closed = result["rooms"], result["closed"]
        self.logs.record(
            name, None, "log", f"{what}: {rooms} room(s) restarted, {closed} client(s) reconnecting"
        )
        if closed:
            self._reconnecting[name] = waiting = _Reconnects(closed)
            spawn(self._report_reconnects(name, waiting, what))

    async def _report_reconnects(self, name: str, waiting: _Reconnects, what: str) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiting.done.wait(), RECONNECT_WINDOW)
        if self._reconnecting.get(name) is waiting:
            del self._reconnecting[name]
        back = min(waiting.back, waiting.expected)
        self.logs.record(
            name, None, "log", f"{what}: {back} of {waiting.expected} client(s) reconnected"
        )

    # -- what sessions do: `uplink(worker)` is worker `worker`'s view of these ---------------

    def joined(self, worker: int, conn: int, room: int) -> None:
        socket = self._sockets.get(conn)
        if socket is None:
            return
        if socket.peer is None:
            socket.group = self._groups.setdefault((worker, room), {})
            socket.group[socket] = None
            return
        socket.span = (worker, room)  # one member per node: its peer
        span = self._spans.setdefault(socket.span, {})
        span[socket.peer] = span.get(socket.peer, 0) + 1
        socket.peer.joined(socket, _span(worker, room))

    def opened(
        self,
        worker: int,
        conn: int,
        code: int,
        reason: str,
        answer: dict[str, Any] | None,
        body: bytes,
    ) -> None:
        socket = self._sockets.get(conn)
        if socket is not None and not socket.opened.done():
            if code and socket.group is not None:
                socket.group.pop(socket, None)
            if code:
                if answer is not None:  # the party's gate answered instead
                    answer = {"response": response_from_wire(answer["response"], body)}
                socket.opened.set_result((code, reason, answer))
                return
            if answer is not None:
                socket.limits = self._shared_limits(answer["party"])
            socket.opened.set_result(_ADMITTED)  # what an open socket keeps: nothing new

    def send(self, worker: int, conn: int, message: Outgoing) -> None:
        socket = self._sockets.get(conn)
        if socket is not None:
            socket.outbox.put(message)
            socket.sent += 1
            metrics.MESSAGES_OUT.inc()
            metrics.BYTES_OUT.inc(len(message.payload))

    def broadcast(self, worker: int, room: int, message: Outgoing, without: list[str]) -> None:
        span = self._spans.get((worker, room))
        if span:
            for peer in span:
                peer.broadcast(_span(worker, room), message, without)
        group = self._groups.get((worker, room))
        if not group:
            return
        sent = len(group)
        if without:
            skip = set(without)
            for socket in group:
                if socket.id not in skip:
                    socket.outbox.put(message)
                    socket.sent += 1
                else:
                    sent -= 1
        else:
            for socket in group:
                socket.outbox.put(message)
                socket.sent += 1
        metrics.MESSAGES_OUT.inc(sent)
        metrics.BYTES_OUT.inc(sent * len(message.payload))

    def close(self, worker: int, conn: int, code: int, reason: str) -> None:
        socket = self._sockets.get(conn)
        if socket is not None:
            socket.outbox.close(code, reason)

    def ack(self, worker: int, conn: int, cost: int) -> None:
        socket = self._sockets.get(conn)
        if socket is not None:
            socket.unacked -= cost
            waiter = socket.waiter
            if waiter is not None and socket.unacked <= WINDOW and not waiter.done():
                waiter.set_result(None)
            if socket.peer is not None:  # the relaying node holds the flow control
                socket.peer.ack(socket, cost)

    def record(self, worker: int, party: str, room: str | None, kind: str, text: str) -> None:
        self.logs.record(party, room, kind, text)
        if kind == "error":
            metrics.HANDLER_ERRORS.labels(party).inc()

    def stats(self, worker: int, rooms: int, commit_times: list[float]) -> None:
        metrics.ROOMS.labels(str(worker)).set(rooms)
        for seconds in commit_times:
            metrics.COMMIT_SECONDS.observe(seconds)

    async def relay_call(
        self, worker: int, op: str, args: dict[str, Any], payload: bytes = b""
    ) -> Any:
        """Party code in `worker` calls another room (`fetch` or `socket`); or a hosting
        kernel reads or writes its party's storage (`storage`)."""
        party, room = args["party"], args["room"]
        if op == "storage":
            return await self._storage(worker, party, room, args, payload)
        if op == "fetch":
            args = {**args, "who": "owner", "gate": False}
            return await (await self._route(party, room))[1].call("request", args, payload)
        if op != "socket":
            raise ValueError(f"unknown call {op!r}")
        self._conns += 1
        conn = self._conns
        spawn(self._relay_open(worker, conn, party, room, args))
        return {"conn": conn}, b""

    async def _storage(
        self, worker: int, party: str, room: str, args: dict[str, Any], payload: bytes
    ) -> Any:
        """A hosting kernel reads or writes its party's storage, which stays in the worker
        that placement gives the room (so it outlives the kernel). Alarms: from every worker."""
        if self._hosts.get(worker) != party:
            hosting = self._hosts.get(worker)
            raise PermissionError(f"the kernel hosting {hosting!r} asked for {party!r}'s storage")
        if args["do"] == "alarms":
            links = [await self._link(w) for w in range(self._workers)]
            found = await asyncio.gather(*(link.call("storage", args) for link in links))
            unique = {tuple(alarm) for result, _ in found for alarm in result}
            return sorted(unique), b""
        return await (await self._link(placement(party, room, self._workers))).call(
            "storage", args, payload
        )

    async def _relay_open(
        self, caller: int, conn: int, party: str, room: str, args: dict[str, Any]
    ) -> None:
        # The reply with `conn` goes out first, so the caller knows the socket before anything
        # arrives for it.
        path = args["path"]
        request = Request(url=f"/parties/{party}/{room}{path}", path=path)
        try:
            worker, link = await self._route(party, room)
        except Overloaded as error:
            return self._to_caller(caller).socket_opened(conn, CloseCode.OVERLOADED, str(error))
        relay = _Relay(self, caller, conn)
        socket = Socket(self, conn, args["id"], worker, relay, 1 << 62, None)  # no reader lags
        socket.caller = caller
        self._sockets[conn] = socket
        link.open(conn, party, room, args["id"], request_to_wire(request), None, None)
        code, reason, _ = await socket.opened
        if code:
            self._forget(socket)
        self._to_caller(caller).socket_opened(conn, code, reason)

    def relay_message(self, worker: int, conn: int, message: Outgoing) -> None:
        socket = self._sockets.get(conn)
        if socket is not None:
            self.message(socket, message.data)

    def relay_closed(self, worker: int, conn: int, code: int, reason: str) -> None:
        socket = self._sockets.get(conn)
        if socket is not None:
            self.closed(socket, code, reason)

    def _to_caller(self, worker: int) -> Downlink:
        link = self._links[worker]
        return link if link is not None else _NOWHERE

    def uplink(self, worker: int) -> Uplink:
        """Worker `worker`'s uplink, for an in-process session (`workers = 0`)."""
        return Uplink(self, worker)


_NO_LIMITS: dict[str, Any] = {}  # a socket not judged by its party's gate: the server's
_ADMITTED = (0, "", None)


def _span(worker: int, room: int) -> int:
    """How a room is named to the other nodes its relayed sockets came from."""
    return worker << 32 | room


async def _about(
    link: Downlink, op: str, party: str, room: str, request: Request, **args: Any
) -> Any:
    """Operation `op` about a request, on `link`: its result, with a `response` decoded."""
    args.update(party=party, room=room, request=request_to_wire(request))
    result, body = await link.call(op, args, request.body)
    if "response" in result:
        result["response"] = response_from_wire(result["response"], body)
    return result


def _answer(result: dict[str, Any]) -> Response:
    """The response a room's gate or `on_request` gave (see Session)."""
    if "refuse" in result:
        status, _, message = result["refuse"]
        return Response.json({"error": message}, status)
    response: Response = result["response"]
    return response


def _hosted_elsewhere(name: str) -> dict[str, Any]:
    error = f"party {name!r} is hosted by a kernel: stop it there first (.stop())"
    return {"error": error, "traceback": ""}


class _Reconnects:
    """The clients a redeploy told to reconnect, and how many came back."""

    __slots__ = ("back", "done", "expected")

    def __init__(self, expected: int) -> None:
        self.expected, self.back, self.done = expected, 0, asyncio.Event()

    def came_back(self) -> None:
        self.back += 1
        if self.back >= self.expected:
            self.done.set()


class _Relay:
    """The transport of a socket that party code opened: frames go back to its session."""

    __slots__ = ("caller", "conn", "router")

    def __init__(self, router: Router, caller: int, conn: int) -> None:
        self.router, self.caller, self.conn = router, caller, conn

    def write(self, batch: list[Outgoing]) -> None:
        link = self.router._to_caller(self.caller)
        for message in batch:
            link.socket_send(self.conn, message)

    def close(self, code: int, reason: str) -> None:
        self.router._to_caller(self.caller).socket_close(self.conn, code, reason)


class _Nowhere:
    """Where relayed frames go when the calling worker is gone: nowhere."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args: None


_NOWHERE: Any = _Nowhere()


class Uplink:
    """A session's uplink straight into the router (the in-process session of workers = 0)."""

    __slots__ = ("_router", "_worker")

    def __init__(self, router: Router, worker: int) -> None:
        self._router, self._worker = router, worker

    def joined(self, conn: int, room: int) -> None:
        self._router.joined(self._worker, conn, room)

    def opened(
        self, conn: int, code: int, reason: str, answer: dict[str, Any] | None, body: bytes
    ) -> None:
        self._router.opened(self._worker, conn, code, reason, answer, body)

    def send(self, conn: int, message: Outgoing) -> None:
        self._router.send(self._worker, conn, message)

    def broadcast(self, room: int, message: Outgoing, without: list[str]) -> None:
        self._router.broadcast(self._worker, room, message, without)

    def close(self, conn: int, code: int, reason: str) -> None:
        self._router.close(self._worker, conn, code, reason)

    def ack(self, conn: int, cost: int) -> None:
        self._router.ack(self._worker, conn, cost)

    def record(self, party: str, room: str | None, kind: str, text: str) -> None:
        self._router.record(self._worker, party, room, kind, text)

    def stats(self, rooms: int, commit_times: list[float]) -> None:
        self._router.stats(self._worker, rooms, commit_times)

    async def call(self, op: str, args: dict[str, Any], payload: bytes = b"") -> Any:
        return await self._router.relay_call(self._worker, op, args, payload)

    def message(self, conn: int, message: Outgoing) -> None:
        self._router.relay_message(self._worker, conn, message)

    def closed(self, conn: int, code: int, reason: str) -> None:
        self._router.relay_closed(self._worker, conn, code, reason)
