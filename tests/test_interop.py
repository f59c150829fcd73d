"""Unchanged JavaScript Yjs providers against `YServer` (party `ydoc`), through a real server.

Each node process (tests/interop/client.mjs) runs one provider: YPartyKitProvider (y-partykit),
YProvider (y-partyserver) or WebsocketProvider (y-websocket). It takes JSON actions on stdin and
answers each with one JSON line of its state. Needs `node` and `npm ci --prefix tests/interop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, Provider, Text
from tornado.websocket import WebSocketClientConnection

import jupyter_party
from conftest import eventually, require

INTEROP = Path(__file__).parent / "interop"
NODE = shutil.which("node")
TIMEOUT = 20.0  # per line from a client; the client's own waits give up after 15 s

require(NODE is not None, "node is not installed")
require((INTEROP / "node_modules").is_dir(), "run `npm ci --prefix tests/interop`")


def room_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


class NodeClient:
    """One `node client.mjs` process; `do(action)` returns the client's state after it."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.stderr = bytearray()
        self.events: list[dict[str, Any]] = []
        self._drain = asyncio.ensure_future(self._read_stderr())

    async def _read_stderr(self) -> None:
        while chunk := await self.process.stderr.read(1 << 16):
            self.stderr += chunk

    def _fail(self, message: str) -> None:
        stderr = self.stderr.decode(errors="replace")[-2000:]
        pytest.fail(f"{self.name}: {message}\nstderr: {stderr}")

    async def _line(self) -> dict[str, Any]:
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), TIMEOUT)
        except TimeoutError:
            self._fail(f"no output for {TIMEOUT} s")
        if not line:
            await asyncio.sleep(0.1)  # let stderr arrive
            self._fail(f"exited ({self.process.returncode}) without answering")
        message = json.loads(line)
        if "error" in message:
            await asyncio.sleep(0.1)
            self._fail(message["error"])
        return message

    async def until(self, key: str) -> dict[str, Any]:
        """Read lines until one has `key`; earlier lines are kept in `events`."""
        while True:
            message = await self._line()
            if key in message:
                return message
            self.events.append(message)

    async def synced(self) -> NodeClient:
        await self.until("synced")
        return self

    async def do(self, action: dict[str, Any]) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(action).encode() + b"\n")
        await self.process.stdin.drain()
        return await self.until("ok")

    async def run(self, *actions: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for action in actions:
            state = await self.do(action)
        return state

    async def finish(self) -> dict[str, Any]:
        """Close stdin: the client disconnects cleanly, prints its final state and exits 0."""
        self.process.stdin.close()
        final = (await self.until("final"))["final"]
        code = await asyncio.wait_for(self.process.wait(), TIMEOUT)
        if code != 0:
            self._fail(f"exit status {code}")
        return final

    async def kill(self) -> None:
        """SIGKILL: the socket drops without a close frame or an awareness goodbye."""
        self.process.kill()
        await self.process.wait()


@pytest.fixture
def node(http, jp_asyncio_loop, jp_http_port, jp_base_url, jp_auth_header):
    """`await node(provider, room, params=...)`: a synced node client in `room` of party ydoc."""
    clients: list[NodeClient] = []
    token = jp_auth_header["Authorization"].split(" ", 1)[1]

    async def start(provider: str, room: str, **params: str) -> NodeClient:
        config = {
            "provider": provider,
            "host": f"127.0.0.1:{jp_http_port}",  # the test server listens on IPv4 only
            "basePath": f"{jp_base_url}parties/ydoc",
            "room": room,
            "token": token,
            "params": params,
            "interactive": True,
        }
        process = await asyncio.create_subprocess_exec(
            NODE,
            str(INTEROP / "client.mjs"),
            json.dumps(config),
            cwd=INTEROP,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        client = NodeClient(f"{provider}@{room}", process)
        clients.append(client)
        return await client.synced()

    yield start

    async def cleanup() -> None:
        for client in clients:
            if client.process.returncode is None:
                client.process.kill()
            await client.process.wait()
            await client._drain

    jp_asyncio_loop.run_until_complete(cleanup())


class TornadoChannel:
    """pycrdt's `Channel` over a tornado WebSocket (binary frames only)."""

    def __init__(self, ws: WebSocketClientConnection, path: str) -> None:
        self.ws = ws
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> TornadoChannel:
        return self

    async def __anext__(self) -> bytes:
        while True:
            message = await self.ws.read_message()
            if message is None:
                raise StopAsyncIteration
            if isinstance(message, bytes):
                return message

    async def recv(self) -> bytes:
        return await self.__anext__()

    async def send(self, message: bytes) -> None:
        await self.ws.write_message(message, binary=True)


@contextlib.asynccontextmanager
async def python_client(connect, room: str):
    """A pycrdt `Doc` synced with the room through pycrdt's own `Provider`."""
    client = await connect(f"parties/ydoc/{room}")
    doc = Doc()
    try:
        async with Provider(doc, TornadoChannel(client.ws, room)) as provider:
            await asyncio.wait_for(provider.synced.wait(), TIMEOUT)
            yield doc
    finally:
        client.close()


async def room_state(http, room: str) -> dict[str, Any]:
    response = await http(f"parties/ydoc/{room}")
    assert response.code == 200, response.body
    return json.loads(response.body)


@pytest.mark.party_config(room_idle_timeout=0.05)
async def test_mixed_clients_converge(node, connect, http, live_rooms, url, jp_serverapp):
    room = room_id("mixed")
    names = ["ypartykit", "yprovider", "ywebsocket"]
    clients = await asyncio.gather(*(node(name, room) for name in names))
    everyone = [*names, "python", "kernel"]
    tokens = {name: [f"<{name}:{i}>" for i in range(15)] for name in everyone}
    expected_length = sum(len(t) for ts in tokens.values() for t in ts)
    kernel = await jupyter_party.doc(  # our own provider, as a notebook kernel uses it
        "ydoc", room, server=url(""), token=jp_serverapp.identity_provider.token
    )
    ktext, kmap = kernel.get("text", type=Text), kernel.get("map", type=Map)

    async with python_client(connect, room) as doc:
        text, ymap = doc.get("text", type=Text), doc.get("map", type=Map)

        async def edit_node(name: str, client: NodeClient) -> None:
            for i, token in enumerate(tokens[name]):
                # alternate appends and inserts at the front, so edits really interleave
                await client.do({"insert": "text", "value": token, "index": 0 if i % 2 else None})
            await client.do({"set": name, "value": {"n": len(tokens[name])}})
            await client.do({"set": "shared", "value": name})

        async def edit_python() -> None:
            for i, token in enumerate(tokens["python"]):
                text.insert(0 if i % 2 else len(text), token)
                await asyncio.sleep(0.005)
            ymap["python"] = {"n": len(tokens["python"])}
            ymap["shared"] = "python"

        async def edit_kernel() -> None:
            for i, token in enumerate(tokens["kernel"]):
                ktext.insert(len(ktext) if i % 2 else 0, token)
                await asyncio.sleep(0.005)
            kmap["kernel"] = {"n": len(tokens["kernel"])}
            kmap["shared"] = "kernel"

        await asyncio.gather(edit_python(), edit_kernel(), *map(edit_node, names, clients))

        expected_keys = {*everyone, "shared"}
        for client in clients:
            await client.do({"waitTextLength": expected_length})
            await client.do({"waitMap": {n: {"n": 15} for n in everyone}})
        finals: list[dict] = []

        async def converged() -> bool:
            # Concurrent writes of "shared" settle last: compare everyone with the server.
            server = await room_state(http, room)
            finals[:] = [await client.do({"state": True}) for client in clients]
            ours = [(str(text), ymap.to_py()), (str(ktext), kmap.to_py())]
            held = [(state["text"], state["map"]) for state in finals] + ours
            return set(server["map"]) == expected_keys and all(
                pair == (server["text"], server["map"]) for pair in held
            )

        await eventually(converged, message="every client to hold the server's content")
        python_text, python_map = str(text), ymap.to_py()
        kernel_text, kernel_map = str(ktext), kmap.to_py()
        await kernel.close()

    server = await room_state(http, room)
    assert set(server["map"]) == expected_keys
    for token in (t for ts in tokens.values() for t in ts):
        assert server["text"].count(token) == 1, token
    # every client and the server hold the very same content
    assert python_text == kernel_text == server["text"]
    assert python_map == kernel_map == server["map"]
    for name, final in zip(names, finals, strict=True):
        assert final["text"] == server["text"], name
        assert final["map"] == server["map"], name
    assert server["map"]["shared"] in set(everyone)
    for client in clients:
        await client.finish()

    # and it is what the room stored: a fresh instance loads the same content
    await eventually(lambda: live_rooms.gone("ydoc", room), message="eviction")
    assert await room_state(http, room) == server


async def test_awareness_seen_and_removed(node):
    room = room_id("aware")
    pk, ps, ws = await asyncio.gather(
        node("ypartykit", room), node("yprovider", room), node("ywebsocket", room)
    )
    for client, name in ((pk, "pk"), (ps, "ps"), (ws, "ws")):
        await client.do({"awareness": {"name": name, "cursor": {"x": 1}}})
    states = await asyncio.gather(
        pk.do({"waitAwareness": 2, "names": ["ps", "ws"]}),
        ps.do({"waitAwareness": 2, "names": ["pk", "ws"]}),
        ws.do({"waitAwareness": 2, "names": ["pk", "ps"]}),
    )
    assert {"name": "ws", "cursor": {"x": 1}} in states[0]["awareness"]

    # a late joiner gets every known state on connect
    late = await node("ywebsocket", room)
    await late.do({"awareness": {"name": "late"}})
    await late.do({"waitAwareness": 3, "names": ["pk", "ps", "ws"]})
    await pk.do({"waitAwareness": 3, "names": ["late", "ps", "ws"]})
    await late.finish()  # a clean disconnect (the provider says goodbye itself)

    # a dropped connection: the server removes its state and tells the others
    await ws.kill()
    await asyncio.gather(
        pk.do({"waitAwareness": 1, "names": ["ps"]}),
        ps.do({"waitAwareness": 1, "names": ["pk"]}),
    )
    await pk.kill()
    assert (await ps.do({"waitAwareness": 0}))["awareness"] == []
    await ps.finish()


def filler(n: int) -> str:
    """The same text as client.mjs's {"big": n}."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return (alphabet * (n // len(alphabet) + 1))[:n]


async def test_large_insert_is_chunked_and_arrives_intact(node, http):
    room = room_id("big")
    size = 2_500_000  # three y-pk-batch chunks of at most 1,000,000 bytes
    sender, watcher = await asyncio.gather(node("ypartykit", room), node("yprovider", room))
    await sender.do({"insert": "text", "value": "head:"})
    await sender.do({"big": size})
    await sender.do({"insert": "text", "value": ":tail"})  # sent after the batch, in order
    seen = await watcher.do({"waitTextLength": size + 10})
    # y-partykit did use y-pk-batch (it warns on stderr when it does)
    await eventually(lambda: b"split into chunks" in sender.stderr, message="chunking warning")
    server = await room_state(http, room)
    assert server["text"] == "head:" + filler(size) + ":tail"
    assert seen["textSha256"] == (await sender.do({"state": True}))["textSha256"]

    # YProvider (y-partyserver >= 1.0) sends large updates unchunked: accepted too
    await watcher.do({"big": 1_200_000})
    await sender.do({"waitTextLength": size + 10 + 1_200_000})
    assert len((await room_state(http, room))["text"]) == size + 10 + 1_200_000
    await sender.finish()
    await watcher.finish()


@pytest.mark.party_config(room_idle_timeout=0.05)
async def test_large_document_survives_reload(node, http, live_rooms):
    room = room_id("bigsave")
    size = 2_500_000
    sender = await node("ypartykit", room)
    await sender.do({"insert": "text", "value": "head:"})
    await sender.do({"big": size})
    await sender.do({"insert": "text", "value": ":tail"})
    await sender.finish()
    await eventually(lambda: live_rooms.gone("ydoc", room), message="eviction")
    text = (await room_state(http, room))["text"]
    assert len(text) == size + 10
    assert text == "head:" + filler(size) + ":tail"


async def test_custom_message_round_trip(node):
    room = room_id("custom")
    a, b = await asyncio.gather(node("yprovider", room), node("yprovider", room))
    await a.do({"custom": "hello"})
    await a.do({"waitCustom": "echo:hello"})
    await b.do({"custom": "from b"})
    state = await b.do({"waitCustom": "echo:from b"})
    assert state["custom"] == ["echo:from b"]  # the echo goes to the sender only
    assert (await a.do({"state": True}))["custom"] == ["echo:hello"]
    await a.finish()
    await b.finish()


async def test_read_only_connection(node, http):
    room = room_id("readonly")
    reader = await node("ypartykit", room, readonly="1")
    writer = await node("yprovider", room)
    await writer.do({"insert": "text", "value": "hello"})
    await reader.do({"waitText": "hello"})  # sees live changes

    # the reader's edits go nowhere; its awareness, sent after them, still works
    await reader.do({"insert": "text", "value": "nope"})
    await reader.do({"set": "ro", "value": 1})
    await reader.do({"awareness": {"name": "ro"}})
    await writer.do({"waitAwareness": 1, "names": ["ro"]})
    await writer.do({"insert": "text", "value": " world"})
    await reader.do({"waitText": " world", "mode": "contains"})
    assert await room_state(http, room) == {"text": "hello world", "map": {}}
    state = await writer.do({"state": True})
    assert (state["text"], state["map"]) == ("hello world", {})

    # a read-only y-websocket client too
    other = await node("ywebsocket", room, readonly="1")
    assert (await other.do({"insert": "text", "value": "!"}))["text"] == "hello world!"
    await other.do({"awareness": {"name": "ro2"}})
    await writer.do({"waitAwareness": 2, "names": ["ro", "ro2"]})
    assert (await room_state(http, room))["text"] == "hello world"
    for client in (reader, writer, other):
        await client.finish()
