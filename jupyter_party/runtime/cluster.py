"""Relays between the nodes of a party cluster, through Redis.

A room has one owner in the cluster (its lease, see leases.py), but its clients may reach any
node. A node that gets an event for a room another node owns (a WebSocket, an HTTP request, a
room calling a room) relays it to the owner over a *link*: the worker wire protocol
(protocol/wire.py), carried by Redis pub/sub on the owner's channel ``jp:node:<name>``. On the
relaying node a link is one more downlink of the router, so its sockets, fan-out and flow
control are the router's usual ones; on the owner a `Peer` plays the link's session: it opens
the relayed sockets in the owner's router, as sockets whose frames go back over the link. The
party's gates (`on_before_*`) run where the client connected. A room's broadcast crosses to
each node once, and the frames of one link keep their order: every client gets every message
once, in per-sender order.

Pub/sub delivers at most once, so every message carries its link's id and a sequence number:
a duplicate (a publish retried after a broken connection) is dropped, and a gap ends the link.
So does a node that stops answering: a publish that reaches nobody, or nothing heard for
`lease_ttl` (idle links ping every `lease_ttl / 4`). An ended link closes its relayed sockets
with 1012, and their clients reconnect: a loss is reported, never skipped over.

Two more channels carry what every node must know: share grants revoked (their sockets close
on every node) and party log records (each node's log of a party shows the whole cluster's;
the last records of each party also stay in Redis for nodes that start later).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ..protocol.codes import CloseCode
from .channel import Channel, SessionLink, WorkerLink
from .errors import Overloaded
from .http import Response, request_from_wire, response_to_wire
from .leases import Leases
from .outbox import Outgoing
from .partylog import MAX_RECORDS
from .redis_storage import PREFIX, connect
from .router import Refused
from .tasks import spawn

if TYPE_CHECKING:
    from .router import Router, Socket

__all__ = ["Cluster"]

log = logging.getLogger("jupyter_party")

CHANNEL = PREFIX + "node:"  # + a node's name: what other nodes relay to it
REVOKED = PREFIX + "revoked"  # share grants revoked on one node, closed on every node
LOGS = PREFIX + "logs"  # each party log record, as it is made on any node
LOG = PREFIX + "log:"  # + a party's name: its most recent records (MAX_RECORDS)
RETRY = 1.0  # seconds before subscribing again after Redis was lost

_DOWN = b"D"  # from the relaying node's link, to the owner's peer
_UP = b"U"  # from the owner's peer, back to the link
_RESET = b"R"  # "that link is gone here": the other end ends too


class Cluster:
    """This node's relays: links to the owners of rooms it does not own, and peers for the
    nodes that relay to it."""

    def __init__(self, redis_url: str, node: str, ttl: float, router: Router) -> None:
        self.node = node
        self.router = router
        self._ttl = ttl
        self._redis = connect(redis_url)
        self._leases = Leases(self._redis, node, ttl)
        self._ends: dict[bytes, _End] = {}  # by link id: links from here, peers to here
        self._links: dict[str, _Link] = {}  # by owner node
        self._slots: dict[str, int] = {}  # owner node -> the router index of its links
        self._out: list[tuple[str, tuple[Any, ...], _End | None]] = []  # Redis commands
        self._pending = asyncio.Event()
        self._idle = asyncio.Event()  # nothing left to publish
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        router.cluster = self
        router.logs.node, router.logs.shared = node, self._shared_log

    def start(self) -> None:
        """Listen on this node's channel, publish what links send, keep links alive."""
        self._tasks = [spawn(self._subscribe()), spawn(self._publish()), spawn(self._keep())]

    async def close(self) -> None:
        """End every link (the other nodes are told), publish what is queued, disconnect."""
        for end in list(self._ends.values()):
            end.end("this node is stopping")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), 2)
        for task in self._tasks:
            task.cancel()
        await self._redis.aclose()

    async def owner(self, party: str, room: str) -> int | None:
        """The router index of the link to the node owning the room, or None when this node
        owns it, nobody does (this node will claim it), or Redis cannot tell (this node's
        worker then decides: a room live here keeps serving, a new one is refused)."""
        try:
            node = await self._leases.owner((party, room))
        except Exception:
            return None
        if node is None or node == self.node:
            return None
        link = self._links.get(node)
        if link is None or link.over:
            slot = self._slots.get(node)
            if slot is None:
                slot = self._slots[node] = self.router.add_relay()
            link = self._links[node] = _Link(self, node, slot)
        return link.index

    async def revoked(self, share_id: str) -> None:
        """Share grant `share_id` was revoked here: every node closes its sockets."""
        try:
            await self._redis.publish(REVOKED, share_id)
        except Exception as error:
            log.error(
                "could not tell the party cluster share link %s was revoked: %s", share_id, error
            )

    # -- publishing: one ordered writer, so each link's messages keep their order ----------

    def send(self, node: str, message: bytes, end: _End | None) -> None:
        self._command("publish", CHANNEL + node, message, end=end)

    def _shared_log(self, party: str, room: str | None, kind: str, text: str) -> None:
        """A party log record made here: to every node now, and to the party's bounded
        history in Redis (read by nodes that start later)."""
        record = json.dumps([self.node, party, room, kind, text])
        self._command("rpush", LOG + party, record)
        self._command("ltrim", LOG + party, -MAX_RECORDS, -1)
        self._command("publish", LOGS, record)

    def _command(self, name: str, *args: Any, end: _End | None = None) -> None:
        self._out.append((name, args, end))
        self._idle.clear()
        self._pending.set()

    async def _publish(self) -> None:
        while True:
            await self._pending.wait()
            self._pending.clear()
            batch, self._out = self._out, []
            await self._run(batch)
            if not self._out:
                self._idle.set()

    async def _run(self, batch: list[tuple[str, tuple[Any, ...], _End | None]]) -> None:
        """One pipeline, in order; a link whose message reached nobody, or could not be
        sent, ends."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name, args, _ in batch:
                    getattr(pipe, name)(*args)
                results = await pipe.execute()
        except Exception as error:
            for _, _, end in batch:
                if end is not None:
                    end.end(f"the party cluster's Redis cannot be reached ({error})")
            return
        for (_, _, end), listeners in zip(batch, results, strict=True):
            if end is not None and not listeners:
                end.end(f"node {end.node!r} does not answer")

    # -- receiving ------------------------------------------------------------------------

    async def _subscribe(self) -> None:
        history = True
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL + self.node, REVOKED, LOGS)
                    if history:  # the party logs so far, from every node, once
                        await self._read_logs()
                        history = False
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=1
                        )
                        if message is not None:
                            self._received(message["channel"].decode(), message["data"])
            except Exception as error:
                log.error(
                    "relays between the party cluster's nodes lost Redis (%s): "
                    "their sockets reconnect; listening again",
                    error,
                )
                for end in list(self._ends.values()):
                    end.end("the party cluster's Redis connection was lost")
                await asyncio.sleep(RETRY)

    async def _read_logs(self) -> None:
        async for key in self._redis.scan_iter(match=LOG + "*"):
            for record in await self._redis.lrange(key, 0, -1):
                self._log(record)

    def _log(self, record: bytes) -> None:
        node, party, room, kind, text = json.loads(record)
        if node != self.node:
            self.router.logs[party].append(kind, room, text, node)

    def _received(self, channel: str, data: bytes) -> None:
        if channel == REVOKED:
            self.router.revoked(data.decode())
            return
        if channel == LOGS:
            self._log(data)
            return
        head, _, frames = data.partition(b"\n")
        id, role, seq, sender = head.split(b" ", 3)
        end = self._ends.get(id)
        if role == _RESET:
            if end is not None:
                end.end(f"node {sender.decode()!r} ended the relay")
            return
        if end is None:
            if role == _DOWN and seq == b"1":
                end = _Peer(self, id, sender.decode())
            else:  # a link this node already ended, or never heard the start of
                self.reset(sender.decode(), id)
                return
        end.heard(int(seq), frames)

    async def _keep(self) -> None:
        """Ping idle links; end those not heard from for `lease_ttl` (their node paused, died,
        or lost messages)."""
        tick = self._ttl / 4
        while True:
            await asyncio.sleep(tick)
            silent = time.monotonic() - self._ttl
            for end in list(self._ends.values()):
                if end.heard_at < silent:
                    end.end(f"node {end.node!r} went silent")
                elif not end.sent:
                    end.write(b"")
                end.sent = False

    def reset(self, node: str, id: bytes) -> None:
        """Tell `node` that link `id` is over here."""
        self.send(node, b"%s %s 0 %s\n" % (id, _RESET, self.node.encode()), None)

    def forget(self, end: _End) -> None:
        self._ends.pop(end.id, None)
        if self._links.get(end.node) is end:
            del self._links[end.node]


class _End:
    """One end of a link between two nodes: the stream its channel writes to."""

    def __init__(
        self, cluster: Cluster, id: bytes, node: str, role: bytes, channel: Channel
    ) -> None:
        self.cluster = cluster
        self.id = id
        self.node = node
        self.channel = channel
        self.over = False
        self.sent = False  # since the last keep-alive tick
        self.heard_at = time.monotonic()
        self._head = b"%s %s " % (id, role)
        self._tail = b" %s\n" % cluster.node.encode()
        self._seq = 0  # of the last message sent
        self._expected = 1  # of the next message to receive
        cluster._ends[id] = self
        channel.connection_made(self)

    # Stream: what the channel writes to.
    def write(self, data: bytes) -> None:
        if self.over:
            return
        self._seq += 1
        self.sent = True
        self.cluster.send(self.node, b"%s%d%s%s" % (self._head, self._seq, self._tail, data), self)

    def close(self) -> None:
        self.end("closed")

    def is_closing(self) -> bool:
        return self.over

    def heard(self, seq: int, frames: bytes) -> None:
        if seq < self._expected:  # a duplicate: a publish retried on a new connection
            return
        if seq > self._expected:
            self.end(f"messages from node {self.node!r} were lost")
            return
        self._expected += 1
        self.heard_at = time.monotonic()
        if frames:
            self.channel.data_received(frames)

    def end(self, reason: str) -> None:
        """The link is over (on both nodes: the other end is told, if it can be)."""
        if self.over:
            return
        self.over = True
        self.cluster.forget(self)
        self.cluster.reset(self.node, self.id)
        log.warning("relay with node %r ended: %s", self.node, reason)
        self.channel.connection_lost(None)
        self.ended(reason)

    def ended(self, reason: str) -> None:
        """What ends with the link on this node (see the subclasses)."""


class _Link(_End):
    """This node's link to the owner of rooms it does not own: a downlink of its router."""

    def __init__(self, cluster: Cluster, node: str, index: int) -> None:
        self.index = index
        self.downlink = _Downlink(cluster.router, index, node)
        super().__init__(cluster, os.urandom(8).hex().encode(), node, _DOWN, self.downlink.channel)
        cluster.router.attach(index, self.downlink)

    def ended(self, reason: str) -> None:
        self.cluster.router.detach(
            self.index,
            f"the room's node {self.node!r} left the party cluster: reconnect",
            CloseCode.SERVICE_RESTART,
        )


class _Downlink(WorkerLink):
    """A worker link whose other end is another node: a lost node is a 'try again'."""

    def __init__(self, router: Router, index: int, node: str) -> None:
        super().__init__(router, index)
        self.node = node

    async def call(self, op: str, args: dict[str, Any], payload: bytes = b"") -> Any:
        try:
            return await super().call(op, args, payload)
        except ConnectionError:
            raise Overloaded(
                f"node {self.node!r} of the party cluster is gone: try again"
            ) from None


class _Peer(_End):
    """A node relaying events to this one: its sockets live in this node's router, their
    frames go back over the link."""

    def __init__(self, cluster: Cluster, id: bytes, node: str) -> None:
        self.uplink = SessionLink()
        self.uplink.session = self
        self.sockets: dict[int, Socket] = {}  # by the relaying node's connection number
        super().__init__(cluster, id, node, _UP, self.uplink.channel)

    # What the relaying node asks (dispatched by the SessionLink).
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
        # `who` is always None: the relaying node ran the party's gate (see Router.open).
        spawn(self._open(conn, party, room, id, request, share_id))

    async def _open(
        self,
        conn: int,
        party: str,
        room: str,
        id: str,
        request: dict[str, Any],
        share_id: str | None,
    ) -> None:
        router = self.cluster.router
        try:
            socket = await router.open(
                _Relayed(self, conn), party, room, id, request, share_id=share_id, peer=self
            )
        except Refused as refused:
            return self.uplink.opened(conn, refused.code, str(refused), None, b"")
        except Overloaded as error:
            return self.uplink.opened(conn, CloseCode.OVERLOADED, str(error), None, b"")
        if self.over:
            return router.closed(socket, CloseCode.GOING_AWAY, f"node {self.node!r} left")
        self.sockets[conn] = socket
        self.uplink.opened(conn, 0, "", None, b"")

    def message(self, conn: int, data: str | bytes) -> None:
        socket = self.sockets.get(conn)
        if socket is not None:
            self.cluster.router.message(socket, data)

    def closed(self, conn: int, code: int, reason: str) -> None:
        socket = self.sockets.pop(conn, None)
        if socket is not None:
            self.cluster.router.closed(socket, code, reason)

    async def call(self, op: str, args: dict[str, Any], payload: bytes = b"") -> Any:
        """An HTTP request to a room owned here (its gate already ran on the relaying node)."""
        if op != "request":
            raise ValueError(f"a node relays requests, not {op!r}")
        request = request_from_wire(args["request"], payload)
        party, room, who, gate = args["party"], args["room"], args["who"], args["gate"]
        try:
            response = await self.cluster.router.request(
                party, room, request, who, gate, relay=False
            )
        except Overloaded as error:
            response = Response.json({"error": str(error)}, 503)
        fields, body = response_to_wire(response)
        return {"response": fields}, body

    # A room's own sockets (`context.parties[...].socket()`) are relayed the other way only.
    def socket_opened(self, conn: int, code: int, reason: str) -> None:
        self._unexpected()

    def socket_send(self, conn: int, message: Outgoing) -> None:
        self._unexpected()

    def socket_close(self, conn: int, code: int, reason: str) -> None:
        self._unexpected()

    def _unexpected(self) -> None:
        log.error("node %r sent a frame for a room's own socket to its owner", self.node)

    # What this node's router asks of the relayed sockets.
    def joined(self, socket: Socket, span: int) -> None:
        self.uplink.joined(_conn(socket), span)

    def broadcast(self, span: int, message: Outgoing, without: list[str]) -> None:
        self.uplink.broadcast(span, message, without)

    def ack(self, socket: Socket, cost: int) -> None:
        self.uplink.ack(_conn(socket), cost)

    def ended(self, reason: str) -> None:
        sockets, self.sockets = self.sockets, {}
        for socket in sockets.values():
            self.cluster.router.closed(socket, CloseCode.GOING_AWAY, reason)


def _conn(socket: Socket) -> int:
    transport: _Relayed = socket.transport  # type: ignore[assignment]
    return transport.conn


class _Relayed:
    """The transport of a relayed socket: its frames go back to the relaying node, at once
    (a coalescing queue here would let the room's broadcasts overtake them)."""

    __slots__ = ("conn", "peer")

    def __init__(self, peer: _Peer, conn: int) -> None:
        self.peer, self.conn = peer, conn

    def write(self, batch: list[Outgoing]) -> None:
        for message in batch:
            self.peer.uplink.send(self.conn, message)

    def close(self, code: int, reason: str) -> None:
        self.peer.sockets.pop(self.conn, None)
        self.peer.uplink.close(self.conn, code, reason)
