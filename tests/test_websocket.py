"""Room sockets on the wire (web/websocket.py): the handshake as we answer it, frames sent
right behind the upgrade request or one byte at a time, pings, and the close handshake."""

from __future__ import annotations

import asyncio
import json
import struct

import pytest
from test_frames import frame

from jupyter_party.protocol.frames import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT


def upgrade(path: str, port: int, headers: dict[str, str], version: str = "13") -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: localhost:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        f"Sec-WebSocket-Version: {version}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await asyncio.wait_for(reader.readexactly(2), 10)
    assert not second & 0x80, "server frames are not masked"
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


@pytest.fixture
def raw(jp_serverapp, http_server_client, jp_http_port, jp_base_url, jp_auth_header):
    """Open a TCP connection, send the upgrade request of a room and `then` in one write."""
    opened = []

    async def open_(room: str, then: bytes = b"", **upgrade_args):
        reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
        opened.append(writer)
        path = f"{jp_base_url}parties/probe/{room}"
        writer.write(upgrade(path, jp_http_port, jp_auth_header, **upgrade_args) + then)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        return head.decode(), reader, writer

    yield open_
    for writer in opened:
        writer.close()


async def test_frames_right_behind_the_upgrade_request_and_byte_by_byte(raw):
    pipelined = (
        frame(json.dumps({"op": "echo", "n": 1}).encode())
        + frame(b"ab", BINARY, fin=False)
        + frame(b"hi", PING)
        + frame(b"c", CONTINUATION)
    )
    head, reader, writer = await raw("pipelined?_pk=eager", pipelined)
    assert head.startswith("HTTP/1.1 101 ")
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # RFC 6455's example
    assert "Set-Cookie" not in head and "Sec-WebSocket-Extensions" not in head
    opcode, welcome = await read_frame(reader)
    assert opcode == TEXT and json.loads(welcome)["type"] == "welcome"  # on_connect first
    got = [await read_frame(reader) for _ in range(3)]
    assert (PONG, b"hi") in got
    assert [m for m in got if m[0] != PONG] == [
        (TEXT, b'{"type":"echo","n":1}'),
        (BINARY, b"cba"),
    ]
    for byte in frame(json.dumps({"op": "echo", "n": 2}).encode()):
        writer.write(bytes([byte]))
        await writer.drain()
    assert await read_frame(reader) == (TEXT, b'{"type":"echo","n":2}')
    # The close handshake: our close is echoed, then the server ends the TCP connection.
    writer.write(frame(struct.pack("!H", 4000) + b"bye", CLOSE))
    assert await read_frame(reader) == (CLOSE, struct.pack("!H", 4000))
    assert await asyncio.wait_for(reader.read(), 10) == b""


async def test_a_protocol_error_closes_with_its_code(raw, connect):
    observer = await connect("parties/probe/broken?_pk=observer")
    await observer.recv_json()
    head, reader, _ = await raw("broken?_pk=rude", frame(b"x", masked=False))
    assert head.startswith("HTTP/1.1 101 ")
    assert json.loads((await read_frame(reader))[1])["type"] == "welcome"
    opcode, payload = await read_frame(reader)
    assert (opcode, payload[:2]) == (CLOSE, struct.pack("!H", 1002))
    assert await asyncio.wait_for(reader.read(), 10) == b""
    left = await observer.recv_json()
    assert (left["type"], left["id"], left["code"]) == ("left", "rude", 1002)


async def test_bad_upgrades_are_answered_like_tornado(raw):
    head, _, _ = await raw("bad", version="8")
    assert head.startswith("HTTP/1.1 426 ") and "Sec-Websocket-Version: 13" in head


async def test_a_dropped_connection_is_abnormal(raw, connect):
    observer = await connect("parties/probe/dropped?_pk=observer")
    await observer.recv_json()
    _, reader, writer = await raw("dropped?_pk=gone")
    await read_frame(reader)
    writer.transport.abort()
    left = await observer.recv_json()
    assert (left["type"], left["id"], left["code"]) == ("left", "gone", 1006)
