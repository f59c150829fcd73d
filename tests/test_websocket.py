"""Room sockets on the wire (web/websocket.py): the handshake as we answer it, frames sent
right behind the upgrade request or one byte at a time, pings, and the close handshake."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import struct
import subprocess

import pytest
from test_frames import frame
from tornado.httpclient import HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application, RequestHandler
from tornado.websocket import websocket_connect

from jupyter_party.protocol.frames import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT
from jupyter_party.runtime.outbox import Outgoing
from jupyter_party.web.websocket import WebSocket, switching_protocols


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


class _Echo(WebSocket):
    __slots__ = ()

    def on_message(self, message):
        self.write([Outgoing(message)])
        return None


class _EchoHandler(RequestHandler):
    async def get(self) -> None:
        key = self.request.headers["Sec-WebSocket-Key"]
        await _Echo(1 << 20, None).take_over(self.detach(), switching_protocols(key))


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
async def test_a_tls_connection_keeps_its_stream(tmp_path):
    """asyncio cannot adopt the TLS session of Tornado's socket: over TLS the socket's
    IOStream stays, and the same WebSocket reads and writes through it."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = ["-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)]
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run([*command, *subject], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sock, port = bind_unused_port()
    server = HTTPServer(Application([("/", _EchoHandler)]), ssl_options=context)
    server.add_sockets([sock])
    try:
        request = HTTPRequest(f"wss://localhost:{port}/", validate_cert=False)
        client = await websocket_connect(request)
        for message in ("hello", b"\x00" * 100_000):
            await client.write_message(message, binary=isinstance(message, bytes))
            assert await asyncio.wait_for(client.read_message(), 10) == message
        client.close(4000, "bye")
        assert await asyncio.wait_for(client.read_message(), 10) is None
        assert client.close_code == 4000
    finally:
        server.stop()
