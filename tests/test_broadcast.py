"""Broadcast, sends and the send queue, at the runtime level with recording transports.

The rooms run in an in-process session (`workers = 0`) behind a real router: the same path as
in a server, without sockets.
"""

from __future__ import annotations

import asyncio

from jupyter_party import Server
from jupyter_party.protocol import wire
from jupyter_party.runtime.channel import Channel
from jupyter_party.runtime.http import Request, request_to_wire
from jupyter_party.runtime.limits import Limits
from jupyter_party.runtime.outbox import Outgoing
from jupyter_party.runtime.partylog import PartyLogs
from jupyter_party.runtime.registry import Registry
from jupyter_party.runtime.router import Router
from jupyter_party.runtime.session import Session
from jupyter_party.runtime.storage import MemoryBackend


class Recorder:
    """A transport that records what it is asked to write, and can stall like a dead reader."""

    def __init__(self, stalled: bool = False) -> None:
        self.batches: list[list] = []
        self.closed: tuple[int, str] | None = None
        self.stalled = stalled

    def write(self, batch):
        self.batches.append(batch)
        return asyncio.get_running_loop().create_future() if self.stalled else None

    def close(self, code, reason):
        self.closed = (code, reason)


class Quiet(Server):
    pass


class Rooms:
    """A router with one in-process session hosting party `quiet`."""

    def __init__(self) -> None:
        registry = Registry()
        registry.add("quiet", Quiet, "test")
        self.router = Router(0, PartyLogs())
        self.session = Session(self.router.uplink(0), registry, MemoryBackend(), Limits())
        self.router.attach(0, self.session)

    async def join(self, transport, id, limit=1 << 20):
        request = request_to_wire(Request(url="/parties/quiet/r"))
        return await self.router.open(
            transport, "quiet", "r", id, request, share_id=None, send_buffer_limit=limit
        )

    @property
    def room(self):
        return self.session.host.rooms["quiet", "r"]

    async def close(self):
        await self.session.close()


async def test_broadcast_encodes_once_for_all_recipients():
    rooms = Rooms()
    transports = [Recorder() for _ in range(5)]
    for i, transport in enumerate(transports):
        await rooms.join(transport, f"c{i}")
    rooms.room.broadcast({"hello": "world"}, without=["c4"])
    await asyncio.sleep(0)  # the queue flushes on the next loop turn
    sent = [t.batches[0][0] for t in transports[:4]]
    assert all(message is sent[0] for message in sent)  # one message object, shared
    assert sent[0].frame is sent[0].frame  # framed once, then reused
    assert sent[0].frame == b'\x81\x11{"hello":"world"}'
    assert transports[4].batches == []
    await rooms.close()


async def test_sends_in_one_loop_turn_leave_in_one_write():
    rooms = Rooms()
    transport = Recorder()
    await rooms.join(transport, "c")
    connection = rooms.room.get_connection("c")
    for n in range(10):
        connection.send(str(n))
    await asyncio.sleep(0)
    assert [[m.data for m in batch] for batch in transport.batches] == [[str(n) for n in range(10)]]
    await rooms.close()


async def test_stalled_reader_is_closed_with_1013_and_others_keep_receiving():
    rooms = Rooms()
    stalled, healthy = Recorder(stalled=True), Recorder()
    slow = await rooms.join(stalled, "slow", limit=10_000)
    await rooms.join(healthy, "ok", limit=10_000)
    for _ in range(30):
        rooms.room.broadcast("x" * 1000)
        await asyncio.sleep(0)
    assert stalled.closed == (1013, "send buffer full: the client is not reading")
    assert slow.outbox.closed
    received = sum(len(batch) for batch in healthy.batches)
    assert received == 30
    assert slow.outbox._pending == 0  # its queue was dropped, not kept
    await rooms.close()


async def test_close_sends_what_was_queued_first():
    rooms = Rooms()
    transport = Recorder()
    await rooms.join(transport, "c")
    connection = rooms.room.get_connection("c")
    connection.send("last words")
    connection.close(4000, "bye")
    assert [m.data for m in transport.batches[0]] == ["last words"]
    assert transport.closed == (4000, "bye")
    await rooms.close()


class Kept:
    """A stream that keeps what a channel writes to it."""

    def __init__(self) -> None:
        self.data = b""
        self.closing = False

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing


async def test_the_same_message_to_several_sockets_crosses_once_in_each_ones_order():
    stream = Kept()
    channel = Channel(lambda frame: None)
    channel.connection_made(stream)
    answer, other = Outgoing(b"answer"), Outgoing("other")
    channel.send_to(1, answer)
    channel.send_to(2, answer)  # joins 1's SEND
    channel.send_to(3, other)
    channel.send_to(3, answer)  # 3 got `other` since: a SEND of its own, after `other`
    channel.send_to(4, answer)  # joins 3's
    channel.send_to(1, answer)  # 1 again, after its first: joins 3's too
    channel.send(wire.BROADCAST, [5, False, []], b"update")
    channel.send_to(2, answer)  # nothing moves past the broadcast
    channel.close()  # writes the turn's frames
    frames = [(f.kind, f.header, f.payload) for f in wire.Decoder().feed(stream.data)]
    assert frames == [
        (wire.SEND, [1, 2, False], b"answer"),
        (wire.SEND, [3, True], b"other"),
        (wire.SEND, [3, 4, 1, False], b"answer"),
        (wire.BROADCAST, [5, False, []], b"update"),
        (wire.SEND, [2, False], b"answer"),
    ]
