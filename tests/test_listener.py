"""How the server takes room connections (web/listener.py): a room upgrade already in the
buffer is read at once; anything else is left whole to Tornado, and answered as before."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from test_frames import frame
from test_websocket import read_frame, upgrade

from jupyter_party.protocol.frames import TEXT
from jupyter_party.web import listener

TIMEOUT = 10.0


@pytest.fixture
def decisions(monkeypatch, http_server):
    """The listener's decisions, in order: True for a request it read, False for Tornado's."""
    seen: list[bool] = []
    arrived = asyncio.Event()
    read = listener._read_upgrade

    def spy(*args):
        seen.append(read(*args))
        arrived.set()
        return seen[-1]

    async def next_() -> bool:
        await asyncio.wait_for(arrived.wait(), TIMEOUT)
        arrived.clear()
        return seen.pop(0)

    monkeypatch.setattr(listener, "_read_upgrade", spy)
    return next_


@pytest.fixture
def send(jp_serverapp, http_server_client, jp_http_port):
    """`await send(request)`: a TCP connection with `request` written; its (reader, writer)."""
    opened = []

    async def send_(data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
        opened.append(writer)
        writer.write(data)
        return reader, writer

    yield send_
    for writer in opened:
        writer.close()


async def head_of(reader: asyncio.StreamReader) -> str:
    return (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)).decode()


def room_upgrade(jp_base_url, jp_http_port, jp_auth_header, room: str, **headers) -> bytes:
    path = f"{jp_base_url}parties/probe/{room}"
    return upgrade(path, jp_http_port, {**jp_auth_header, **headers})


async def test_a_room_upgrade_is_read_as_it_arrives(
    decisions, send, jp_base_url, jp_http_port, jp_auth_header
):
    request = room_upgrade(jp_base_url, jp_http_port, jp_auth_header, "quick?_pk=q")
    echo = frame(json.dumps({"op": "echo", "n": 1}).encode())
    reader, _ = await send(request + echo)  # a frame right behind the request: not lost
    assert await decisions() is True
    assert (await head_of(reader)).startswith("HTTP/1.1 101 ")
    assert json.loads((await read_frame(reader))[1])["type"] == "welcome"
    assert await read_frame(reader) == (TEXT, b'{"type":"echo","n":1}')


async def test_a_refused_upgrade_is_answered_then_closed(
    decisions, send, jp_base_url, jp_http_port, jp_auth_header
):
    # Refused by the handshake's rules (Tornado's), then by the party's gate.
    path = f"{jp_base_url}parties/probe/old"
    reader, _ = await send(upgrade(path, jp_http_port, jp_auth_header, version="8"))
    assert await decisions() is True
    head = await head_of(reader)
    assert head.startswith("HTTP/1.1 426 ") and "Sec-Websocket-Version: 13" in head
    assert "Connection: close" in head
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"Upgrade Required"

    path = f"{jp_base_url}parties/gated/lobby?deny=1"
    reader, _ = await send(upgrade(path, jp_http_port, jp_auth_header))
    assert await decisions() is True
    head = await head_of(reader)
    assert head.startswith("HTTP/1.1 403 ") and "Connection: close" in head
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"denied by the gate of room lobby"


@pytest.mark.parametrize(
    "case",
    ["Content-Length: 0", "HTTP/1.0", "not a room", "split"],
)
async def test_anything_else_is_left_whole_to_tornado(
    case, decisions, send, jp_base_url, jp_http_port, jp_auth_header
):
    request = room_upgrade(jp_base_url, jp_http_port, jp_auth_header, "slow?_pk=s")
    if case == "Content-Length: 0":
        request = request.replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n")
    elif case == "HTTP/1.0":
        request = request.replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1)
    elif case == "not a room":
        request = request.replace(f"{jp_base_url}parties/probe/".encode(), b"/api/", 1)
    first, rest = (request[:20], request[20:]) if case == "split" else (request, b"")
    reader, writer = await send(first)
    assert await decisions() is False
    writer.write(rest)  # the rest of a split request, once the server has the connection
    head = await head_of(reader)
    if case == "not a room":
        assert head.startswith("HTTP/1.1 404 ")  # Tornado's answer: no such handler
    else:
        assert head.startswith("HTTP/1.1 101 ")
        assert json.loads((await read_frame(reader))[1])["type"] == "welcome"


def test_connections_are_handed_over_with_their_first_bytes(http_server):
    listening = list(http_server._sockets.values())
    assert listening
    for sock in listening:  # Linux rounds the seconds to its SYN-ACK retransmissions
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) > 0


async def test_a_proxys_x_headers_are_applied_as_tornado_does(
    decisions, send, http_server, jp_base_url, jp_http_port, jp_auth_header, caplog
):
    # `ServerApp.trust_xheaders`: the request is the client's, as a proxy says it is.
    http_server.xheaders = True
    path = f"{jp_base_url}parties/probe/proxied"
    headers = {**jp_auth_header, "X-Real-Ip": "203.0.113.9"}
    reader, _ = await send(upgrade(path, jp_http_port, headers, version="8"))
    assert await decisions() is True
    assert (await head_of(reader)).startswith("HTTP/1.1 426 ")
    lines = [r.getMessage() for r in caplog.records if "proxied" in r.getMessage()]
    assert lines and all("203.0.113.9" in line for line in lines), lines  # Jupyter's access log
