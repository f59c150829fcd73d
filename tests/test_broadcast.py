"""Broadcast and the send queue, at the runtime level with recording transports."""

from __future__ import annotations

import asyncio

from jupyter_party import Server
from jupyter_party.runtime.connection import Connection
from jupyter_party.runtime.host import Host
from jupyter_party.runtime.registry import Registry


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


def _host() -> Host:
    registry = Registry()
    registry.add("quiet", Quiet, "test")
    return Host(registry, "memory://")


async def _joined(room, transport, id, limit=1 << 20):
    connection = Connection(id, "/", transport, limit)
    await room.connect(connection, None)
    return connection


async def test_broadcast_encodes_once_for_all_recipients():
    host = _host()
    room = host.acquire("quiet", "r")
    transports = [Recorder() for _ in range(5)]
    for i, transport in enumerate(transports):
        await _joined(room, transport, f"c{i}")
    room.broadcast({"hello": "world"}, without=["c4"])
    await asyncio.sleep(0)  # the queue flushes on the next loop turn
    sent = [t.batches[0][0] for t in transports[:4]]
    assert all(message is sent[0] for message in sent)  # one message object, shared
    assert sent[0].frame is sent[0].frame  # framed once, then reused
    assert sent[0].frame == b'\x81\x11{"hello":"world"}'
    assert transports[4].batches == []
    await host.close()


async def test_sends_in_one_loop_turn_leave_in_one_write():
    host = _host()
    room = host.acquire("quiet", "r")
    transport = Recorder()
    connection = await _joined(room, transport, "c")
    for n in range(10):
        connection.send(str(n))
    await asyncio.sleep(0)
    assert [[m.data for m in batch] for batch in transport.batches] == [[str(n) for n in range(10)]]
    await host.close()


async def test_stalled_reader_is_closed_with_1013_and_others_keep_receiving():
    host = _host()
    room = host.acquire("quiet", "r")
    stalled, healthy = Recorder(stalled=True), Recorder()
    slow = await _joined(room, stalled, "slow", limit=10_000)
    await _joined(room, healthy, "ok", limit=10_000)
    for _ in range(30):
        room.broadcast("x" * 1000)
        await asyncio.sleep(0)
    assert stalled.closed == (1013, "send buffer full: the client is not reading")
    assert slow.closed
    received = sum(len(batch) for batch in healthy.batches)
    assert received == 30
    assert slow._pending == 0  # its queue was dropped, not kept
    await host.close()


async def test_close_sends_what_was_queued_first():
    host = _host()
    room = host.acquire("quiet", "r")
    transport = Recorder()
    connection = await _joined(room, transport, "c")
    connection.send("last words")
    connection.close(4000, "bye")
    assert [m.data for m in transport.batches[0]] == ["last words"]
    assert transport.closed == (4000, "bye")
    await host.close()
