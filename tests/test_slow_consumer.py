"""A client that stops reading is closed (1013) while the rest of the room keeps receiving."""

from __future__ import annotations

import asyncio
import json
import socket
import struct

import pytest
from test_websocket import upgrade

from conftest import eventually

LIMIT = 256 * 1024
ROUNDS, BURST, SIZE = 200, 4, 32 * 1024  # 25.6 MB in all: far past LIMIT plus socket buffers


def _kernel_buffers() -> int:
    """About the most the kernel holds for the stalled socket: the server's send buffer (the
    client's receive buffer is pinned to 4 KiB), plus 1 MiB for the kernel's own accounting."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as wmem:
        return int(wmem.read().split()[2]) + (1 << 20)


async def _raw_websocket(port: int, path: str, headers: dict[str, str]):
    """Open a WebSocket by hand so that the test decides when (and whether) to read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("localhost", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    writer.write(upgrade(path, port, headers))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def _read_frames(reader):
    """Read frames until a close frame; return (data bytes received, close code)."""
    received = 0
    while True:
        first, second = await asyncio.wait_for(reader.readexactly(2), 10)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", await reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await reader.readexactly(8))[0]
        payload = await reader.readexactly(length)
        if first & 0x0F == 0x8:
            return received, struct.unpack("!H", payload[:2])[0]
        received += length


@pytest.mark.party_config(send_buffer_limit=LIMIT)
async def test_slow_consumer_is_closed_and_others_keep_receiving(
    connect, http, jp_http_port, jp_base_url, jp_auth_header
):
    path = f"{jp_base_url}parties/probe/slow?_pk=sloth"
    reader, writer = await _raw_websocket(jp_http_port, path, jp_auth_header)
    fast = await connect("parties/probe/slow?_pk=fast")
    await fast.recv_json()
    left = []  # the room's on_close tells the others, as soon as the server closed the sloth

    async def next_message() -> str:
        while (message := await fast.recv()).startswith('{"type":"left"'):
            left.append(json.loads(message))
        return message

    for _ in range(ROUNDS):  # bursts smaller than LIMIT, paced by the reader that keeps up
        await fast.send({"op": "blast", "count": BURST, "size": SIZE})
        burst = [await next_message() for _ in range(BURST)]
        assert [m.split(":", 1)[0] for m in burst] == [str(i) for i in range(BURST)]
        assert json.loads(await next_message()) == {"type": "blasted"}

    async def only_fast_left() -> bool:
        connections = json.loads((await http("parties/probe/slow/connections")).body)
        return connections["ids"] == ["fast"]

    await eventually(only_fast_left, message="close")
    if not left:
        left.append(await fast.recv_json())
    assert left == [{"type": "left", "id": "sloth", "code": 1013}]
    received, code = await _read_frames(reader)
    assert code == 1013
    # What reached the stalled client is bounded by our queue plus the kernel's buffers.
    assert received <= LIMIT + _kernel_buffers() + BURST * SIZE
    assert received < ROUNDS * BURST * SIZE
    writer.close()
