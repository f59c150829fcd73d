"""The kernel-side room client (`jupyter_party.connect`) against a real server and `probe`."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

import jupyter_party
from conftest import eventually
from jupyter_party.client import RoomClient, RoomRefused, connect_blocking

TIMEOUT = 10.0


@pytest.fixture
def token(jp_auth_header):
    return jp_auth_header["Authorization"].split(" ", 1)[1]


@pytest.fixture
def join(jp_serverapp, url, token, jp_asyncio_loop):
    """`await join(room, **kwargs)`: `jupyter_party.connect("probe", room)`, closed after."""
    clients: list[RoomClient] = []

    async def join_(room: str, party: str = "probe", **kwargs) -> RoomClient:
        kwargs.setdefault("server", url(""))
        kwargs.setdefault("token", token)
        client = await jupyter_party.connect(party, room, **kwargs)
        clients.append(client)
        return client

    yield join_
    for client in clients:
        jp_asyncio_loop.run_until_complete(asyncio.wait_for(client.close(), TIMEOUT))


async def recv_json(client: RoomClient) -> dict:
    message = await client.recv(TIMEOUT)
    assert isinstance(message, str), message
    return json.loads(message)


async def test_send_recv_and_iterate(join):
    room = await join("basic", id="kernel-1")
    assert room.connected and room.id == "kernel-1"
    assert room.url.endswith("/parties/probe/basic")
    welcome = await recv_json(room)
    assert welcome["type"] == "welcome" and welcome["id"] == "kernel-1"
    for n in range(5):
        await room.send({"op": "echo", "n": n})  # dict -> JSON text
    seen = []
    async for message in room:
        seen.append(json.loads(message)["n"])
        if len(seen) == 5:
            break
    assert seen == [0, 1, 2, 3, 4]
    await room.send(b"\x01\x02\x03")  # bytes -> binary
    assert await room.recv(TIMEOUT) == b"\x03\x02\x01"
    await room.send('{"op": "echo", "n": 7}')  # str -> text, as is
    assert (await recv_json(room))["n"] == 7
    with pytest.raises(TimeoutError):
        await room.recv(timeout=0.05)
    assert "connected" in repr(room) and "probe/basic" in repr(room)


async def test_callbacks_sync_and_async(join):
    room = await join("callbacks")
    assert (await recv_json(room))["type"] == "welcome"
    got_sync, got_async = [], []
    room.on_message(got_sync.append)

    @room.on_message
    async def record(message):
        await asyncio.sleep(0)
        got_async.append(message)

    room.on_message(lambda message: 1 / 0)  # a failing callback does not stop the others
    await room.send({"op": "echo", "n": 1})
    await eventually(lambda: len(got_async) == 1, message="async callback")
    assert json.loads(got_sync[0]) == {"type": "echo", "n": 1} == json.loads(got_async[0])
    room.off(record)
    await room.send({"op": "echo", "n": 2})
    await eventually(lambda: len(got_sync) == 2)
    assert len(got_async) == 1
    # Messages stay available to recv() as well.
    assert [(await recv_json(room))["n"] for _ in range(2)] == [1, 2]


async def test_reconnect_same_id_and_offline_buffer(join, http):
    calls = []

    def query():
        calls.append(len(calls))
        return {"tags": f"call{len(calls)}"}

    room = await join("reconnect", id="kernel-r", query=query)
    opened, closed, buffered = [], [], []
    room.on_open(lambda: opened.append(True))

    @room.on_close
    def offline(code, reason):
        # Called as the socket closes, before any reconnect: these sends are buffered.
        closed.append((code, reason))
        for n in range(3 if code == 1012 else 0):
            room.send_nowait({"op": "echo", "n": n})
        buffered.append(room.buffered)

    first = await recv_json(room)
    assert first["tags"] == ["call1"]
    # The room closes its one connection (probe's HTTP `close`), as a redeploy would.
    closed_by_room = await http(
        "parties/probe/reconnect/close?code=1012&reason=party%20redeployed", method="POST"
    )
    assert json.loads(closed_by_room.body) == {"closed": ["kernel-r"]}
    await eventually(lambda: closed, message="client sees the drop")
    assert closed == [(1012, "party redeployed")] and buffered == [3]
    await room.wait_connected(TIMEOUT)
    assert opened == [True] and room.reconnects == 1
    welcome = await recv_json(room)
    assert welcome["type"] == "welcome" and welcome["id"] == "kernel-r"
    assert welcome["tags"] == ["call2"]  # the query callable ran again
    assert [(await recv_json(room))["n"] for _ in range(3)] == [0, 1, 2]
    connections = json.loads((await http("parties/probe/reconnect/connections")).body)
    assert connections["ids"] == ["kernel-r"]


async def test_reconnects_after_other_closes_with_backoff(join, http):
    room = await join("drops", id="k")
    await recv_json(room)
    for i in range(3):
        closing = await http("parties/probe/drops/close?code=1011&reason=oops", method="POST")
        assert json.loads(closing.body) == {"closed": ["k"]}
        await eventually(lambda i=i: room.reconnects == i + 1, message="the drop")
        start = time.monotonic()
        await room.wait_connected(TIMEOUT)
        assert time.monotonic() - start < 3
        assert (await recv_json(room))["type"] == "welcome"
    assert room.close_code == 1011 and room.last_failure.startswith("connection closed (1011)")


async def test_server_refusal_after_connect_stops(join):
    room = await join("refused")
    await recv_json(room)
    await room.send({"op": "close", "code": 4403, "reason": "go away"})
    with pytest.raises(RoomRefused) as info:
        await asyncio.wait_for(room.wait_closed(), TIMEOUT)
    assert info.value.code == 4403 and "go away" in str(info.value)
    assert room.closed and not room.connected
    with pytest.raises(RoomRefused):  # every later read reports it too
        await room.recv(TIMEOUT)
    with pytest.raises(ConnectionError):
        await room.send("late")


async def test_wrong_token_fails_fast(url):
    start = time.monotonic()
    with pytest.raises(RoomRefused) as info:
        await jupyter_party.connect("probe", "denied", server=url(""), token="wrong")
    assert info.value.code == 4401 and "parties/probe/denied" in str(info.value)
    assert time.monotonic() - start < 3


async def test_unknown_party_fails_fast(url, token):
    with pytest.raises(RoomRefused) as info:
        await jupyter_party.connect("nope", "r", server=url(""), token=token)
    assert info.value.code == 4404


async def test_unreachable_server_times_out(token):
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"127\.0\.0\.1:9"):
        await jupyter_party.connect(
            "probe", "r", server="http://127.0.0.1:9/", token=token, timeout=0.5
        )
    assert time.monotonic() - start < 3


async def test_hanging_handshake_times_out(token):
    """A server that accepts TCP but never answers: connect() gives up after `timeout`."""
    silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    start = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match="not connected within"):
            await jupyter_party.connect(
                "probe", "r", server=f"http://127.0.0.1:{port}/", token=token, timeout=0.5
            )
    finally:
        silent.close()
    assert time.monotonic() - start < 2


async def test_unknown_option(url, token):
    with pytest.raises(TypeError, match="colour"):
        await jupyter_party.connect("probe", "r", server=url(""), token=token, colour="red")


async def test_close_ends_iteration(join):
    room = await join("ending")
    messages = []

    async def reader():
        async for message in room:
            messages.append(message)

    task = asyncio.ensure_future(reader())
    await eventually(lambda: len(messages) == 1, message="welcome")
    await room.close()
    await asyncio.wait_for(task, TIMEOUT)  # iteration ends without an error
    assert room.closed and room.error is None and room.close_code == 1000


async def test_fetch(join):
    room = await join("http")
    response = await room.fetch("x?y=1")
    assert response.status == 200 and response.ok
    body = response.json()
    assert body["path"] == "/x" and body["query"] == {"y": "1"} and body["room"] == "http"
    assert body["method"] == "GET" and body["user"]
    status, headers, raw = await room.fetch("/", method="POST", body={"a": 1})
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(raw)["body"] == '{"a": 1}'
    response = await room.fetch(method="PUT", body="text", query={"q": "v"})
    assert response.json()["query"] == {"q": "v"} and response.json()["body"] == "text"


async def test_blocking_client(url, token):
    def script() -> list:
        with connect_blocking("probe", "blocking", server=url(""), token=token) as room:
            first = json.loads(room.recv(TIMEOUT))
            room.send({"op": "echo", "n": 3})
            echo = json.loads(room.recv(TIMEOUT))
            status = room.fetch("z").status
        return [first["type"], echo["n"], status, room.closed]

    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, script) == ["welcome", 3, 200, True]
