"""The kernel-side CRDT client (`jupyter_party.doc`) against a real server and the `ydoc` party."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
from pycrdt import Doc, Map, Text

import jupyter_party
from conftest import eventually
from jupyter_party.client import (
    DocumentRecreated,
    RoomDoc,
    RoomRefused,
    ServerNotFound,
    doc_blocking,
    find_server,
)

TIMEOUT = 10.0


@pytest.fixture
def token(jp_auth_header):
    return jp_auth_header["Authorization"].split(" ", 1)[1]


@pytest.fixture
def open_doc(jp_serverapp, url, token, jp_asyncio_loop):
    """`await open_doc(room, **kwargs)`: `jupyter_party.doc` on the test server, closed after."""
    docs: list[RoomDoc] = []

    async def open_(room: str, **kwargs) -> RoomDoc:
        kwargs.setdefault("server", url(""))
        kwargs.setdefault("token", token)
        d = await jupyter_party.doc("ydoc", room, **kwargs)
        docs.append(d)
        return d

    yield open_
    for d in docs:
        jp_asyncio_loop.run_until_complete(asyncio.wait_for(d.close(), TIMEOUT))


def text(d: Doc) -> str:
    return str(d.get("text", type=Text))


async def room_state(http, room: str) -> dict:
    response = await http(f"parties/ydoc/{room}")
    assert response.code == 200, response.body
    return json.loads(response.body)


async def test_two_clients_converge(open_doc, http):
    a = await open_doc("converge")
    b = await open_doc("converge")
    assert a.synced and b.synced and a.connected
    a.get("text", type=Text).insert(0, "hello")
    b.get("text", type=Text).insert(0, "world ")
    a.get("map", type=Map)["a"] = 1
    b.get("map", type=Map)["b"] = "two"
    await eventually(lambda: text(a) == text(b) and len(text(a)) == 11, message="text converges")
    await eventually(
        lambda: (
            a.get("map", type=Map).to_py()
            == b.get("map", type=Map).to_py()
            == {
                "a": 1.0,
                "b": "two",
            }
        ),
        message="map converges",
    )
    state = await room_state(http, "converge")
    assert state["text"] == text(a) and state["map"] == {"a": 1.0, "b": "two"}
    # A late joiner gets everything in its initial sync.
    c = await open_doc("converge")
    assert text(c) == text(a)
    assert c.epoch == a.epoch != ""


async def test_server_edit_reaches_clients(open_doc, http):
    a = await open_doc("server-edit")
    b = await open_doc("server-edit")
    sent = []
    write = b._provider.ws.write_message
    b._provider.ws.write_message = lambda frame, binary=False: (
        sent.append(frame) or write(frame, binary)
    )
    response = await http("parties/ydoc/server-edit", method="POST", body="from server")
    assert response.code == 200
    await eventually(lambda: text(a) == text(b) == "from server", message="server edit")
    assert sent == []  # a received update is never sent back
    b.get("text", type=Text).insert(0, ">")
    await eventually(lambda: text(a) == ">from server")
    assert len(sent) == 1


async def test_awareness(open_doc):
    a = await open_doc("presence")
    b = await open_doc("presence")
    changes = []
    b.awareness.observe(lambda topic, event: changes.append(event[0]))
    a.awareness.set_local_state({"user": "alice"})
    await eventually(lambda: b.awareness.states.get(a.client_id) == {"user": "alice"})
    assert a.awareness.states == {a.client_id: {"user": "alice"}}
    a.awareness.set_local_state_field("cursor", 3)
    await eventually(lambda: b.awareness.states.get(a.client_id, {}).get("cursor") == 3)
    assert changes[0]["added"] == [a.client_id]
    # A client that joins later gets the states in its handshake.
    c = await open_doc("presence")
    await eventually(lambda: a.client_id in c.awareness.states, message="state at join")
    await a.close()
    assert a.closed and a.error is None
    await eventually(lambda: a.client_id not in b.awareness.states, message="removal on close")
    await eventually(lambda: a.client_id not in c.awareness.states)
    assert {"added": [], "updated": [], "removed": [a.client_id]} in changes


async def test_reconnect_resyncs_offline_edits(open_doc, http):
    a = await open_doc("reconnect", id="kernel-a")
    b = await open_doc("reconnect")
    a.awareness.set_local_state({"user": "a"})
    await eventually(lambda: a.client_id in b.awareness.states)
    seen = []
    b.awareness.observe(lambda topic, event: seen.append(event[0]))
    closing = await http(
        "parties/ydoc/reconnect/close?tag=kernel-a&code=1012&reason=test", method="POST"
    )
    assert json.loads(closing.body) == {"closed": ["kernel-a"]}
    await eventually(lambda: not a.connected, message="client sees the drop")
    a.get("text", type=Text).insert(0, "offline edit")  # made while disconnected
    b.get("map", type=Map)["while"] = "away"
    await a.wait_synced(TIMEOUT)
    await eventually(lambda: text(b) == "offline edit", message="offline edit after reconnect")
    await eventually(lambda: a.get("map", type=Map).to_py() == {"while": "away"})
    ids = json.loads((await http("parties/ydoc/reconnect/connections")).body)["ids"]
    assert ids.count("kernel-a") == 1  # same _pk
    # The server removed a's awareness state when the socket closed; a sends it again.
    removal = {"added": [], "updated": [], "removed": [a.client_id]}
    await eventually(lambda: removal in seen and seen[-1]["added"] == [a.client_id])
    assert b.awareness.states[a.client_id] == {"user": "a"}
    # Live edits flow again.
    a.get("text", type=Text).insert(0, "> ")
    await eventually(lambda: text(b) == "> offline edit", message="live edit after reconnect")


async def test_read_only_client(open_doc, http):
    writer = await open_doc("ro")
    reader = await open_doc("ro", params={"readonly": "1"})
    reader.get("text", type=Text).insert(0, "ignored")
    writer.get("text", type=Text).insert(0, "kept")
    await eventually(lambda: "kept" in text(reader), message="reader sees live changes")
    # The writer's edit went through after the reader's: both were processed in order.
    await eventually(lambda: text(writer) == "kept")
    assert (await room_state(http, "ro"))["text"] == "kept"


async def test_wrong_token_fails_fast(url):
    start = time.monotonic()
    with pytest.raises(RoomRefused) as info:
        await jupyter_party.doc("ydoc", "denied", server=url(""), token="wrong", timeout=TIMEOUT)
    assert info.value.code == 4401
    assert "authentication" in str(info.value) and "parties/ydoc/denied" in str(info.value)
    assert time.monotonic() - start < 3


async def test_unknown_party_fails_fast(url, token):
    with pytest.raises(RoomRefused) as info:
        await jupyter_party.doc("nope", "r", server=url(""), token=token, timeout=TIMEOUT)
    assert info.value.code == 4404


async def test_unreachable_server_times_out(token):
    with pytest.raises(TimeoutError, match=r"127\.0\.0\.1:9"):
        await jupyter_party.doc("ydoc", "r", server="http://127.0.0.1:9/", token=token, timeout=0.5)


async def test_epoch_change_stops_the_client(open_doc, http):
    a = await open_doc("epoch")
    a.get("text", type=Text).insert(0, "old incarnation")

    async def server_has_text() -> bool:
        return (await room_state(http, "epoch"))["text"] != ""

    await eventually(server_has_text)
    first = json.loads((await http("parties/ydoc/epoch/instance")).body)
    assert first["epoch"] == a.epoch
    # Recreate the document: the party wipes its storage, drops the live instance and cuts
    # the connection (1012), so the client reconnects to a fresh instance with a new epoch.
    assert (await http("parties/ydoc/epoch/recreate", method="POST")).code == 200
    with pytest.raises(DocumentRecreated):
        await asyncio.wait_for(a.wait_closed(), TIMEOUT)
    assert a.stale and a.closed and not a.connected
    with pytest.raises(DocumentRecreated):
        await a.wait_synced(1)
    fresh = json.loads((await http("parties/ydoc/epoch/instance")).body)
    assert fresh["instance"] != first["instance"] and fresh["epoch"] != a.epoch
    assert (await room_state(http, "epoch"))["text"] == ""  # nothing merged
    with pytest.raises(DocumentRecreated):
        await open_doc("epoch", document=a)  # the stale copy cannot be reopened
    b = await open_doc("epoch")  # a new RoomDoc gets the new document
    assert text(b) == "" and b.epoch == fresh["epoch"]
    assert text(a) == "old incarnation"  # the stale copy is left as it was


async def test_blocking_client(url, token, http):
    def script() -> str:
        d = doc_blocking("ydoc", "blocking", server=url(""), token=token)
        with d.new_transaction():
            d.get("text", type=Text).insert(0, "from a thread")
        d.close_blocking()
        return text(d)

    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, script) == "from a thread"
    state = await room_state(http, "blocking")
    assert state["text"] == "from a thread"


async def test_document_argument(open_doc):
    mine = RoomDoc(client_id=1234)
    d = await open_doc("mine", document=mine)
    assert d is mine and d.client_id == 1234
    with pytest.raises(RuntimeError, match="already connected"):
        await open_doc("mine", document=mine)
    # Closed, edited offline, then reopened: same epoch, the edit is synced.
    epoch = d.epoch
    await d.close()
    d.get("text", type=Text).insert(0, "later")
    other = await open_doc("mine")
    assert await open_doc("mine", document=mine) is mine and mine.epoch == epoch
    await eventually(lambda: text(other) == "later")
    with pytest.raises(TypeError):
        await open_doc("mine", document=Doc())


# -- discovery --------------------------------------------------------------------------------


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """A runtime dir holding a jpserver file for this process; hub variables cleared."""
    for name in list(os.environ):
        if name.startswith(("JUPYTERHUB_", "JPY_", "JUPYTER_PARTY_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))

    def write(pid: int = os.getpid(), **info) -> dict:
        info = {
            "url": "http://localhost:8888/lab/",
            "hostname": "localhost",
            "port": 8888,
            "sock": "",
            "secure": False,
            "base_url": "/lab/",
            "token": "secret",
            "pid": pid,
            **info,
        }
        (tmp_path / f"jpserver-{pid}-{info['port']}.json").write_text(json.dumps(info))
        return info

    return write


def test_find_server_by_parent_pid(runtime, monkeypatch):
    runtime()
    runtime(pid=os.getppid(), port=9999, token="other")
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getpid()))
    info = find_server()
    assert info.url == "http://localhost:8888/lab/" and info.token == "secret"
    assert info.room_url("p", "a b") == "ws://localhost:8888/lab/parties/p/a%20b"


def test_find_server_single_and_wildcard(runtime):
    runtime(hostname="0.0.0.0", base_url="/", secure=True)
    assert find_server() == find_server(token=None)
    assert find_server().url == "https://127.0.0.1:8888/"
    assert find_server(token="mine").token == "mine"


def test_find_server_explicit_wins(runtime, monkeypatch):
    runtime()
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getpid()))
    info = find_server("ws://h:1/x", "t")
    assert (info.url, info.token) == ("http://h:1/x/", "t")
    # The token of a running server at that URL is found by itself.
    assert find_server("http://localhost:8888/lab").token == "secret"


def test_find_server_jupyterhub(runtime, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:40000/user/ann")
    info = find_server()
    assert (info.url, info.token) == ("http://127.0.0.1:40000/user/ann/", "hub-token")
    # An explicit server on the hub's address gets the hub token; any other server never does.
    assert find_server("http://127.0.0.1:40000/user/ann/").token == "hub-token"
    with pytest.raises(ServerNotFound, match="no token"):
        find_server("http://attacker.example:40000/user/ann/")
    with pytest.raises(ServerNotFound, match="no token"):
        find_server("http://127.0.0.1:40001/")


def test_find_server_from_jupyter_party_variables(runtime, monkeypatch):
    runtime()
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getpid()))
    monkeypatch.setenv("JUPYTER_PARTY_URL", "https://remote.example:8443/jp")
    monkeypatch.setenv("JUPYTER_PARTY_TOKEN", "remote-token")
    info = find_server()  # the variables win over the kernel's own server
    assert (info.url, info.token) == ("https://remote.example:8443/jp/", "remote-token")
    assert find_server("http://h:1/", "t").url == "http://h:1/"  # explicit arguments win
    monkeypatch.delenv("JUPYTER_PARTY_TOKEN")
    with pytest.raises(ServerNotFound, match="set JUPYTER_PARTY_TOKEN="):
        find_server()


def test_find_server_errors(runtime, monkeypatch):
    with pytest.raises(ServerNotFound, match="server="):
        find_server()  # none running
    runtime(port=1)
    runtime(pid=os.getppid(), port=2)
    with pytest.raises(ServerNotFound, match="token="):
        find_server()  # two running, no parent pid
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getpid()))
    runtime(port=1, token="")
    with pytest.raises(ServerNotFound, match="no token"):
        find_server()
    with pytest.raises(ServerNotFound, match="URL"):
        find_server("localhost:8888", "t")
    with pytest.raises(ServerNotFound, match="no token"):
        find_server("http://elsewhere:1/", "")


async def test_the_provider_honours_the_backoff_options(open_doc, http):
    """`doc()` takes `connect()`'s `min_delay`, `max_delay` and `max_retries`: with no retry
    allowed, the first close stops the document instead of reconnecting."""
    d = await open_doc("retries", id="once", max_retries=0, min_delay=0.01, max_delay=0.02)
    await http("parties/ydoc/retries/close?tag=once&code=1011&reason=test", method="POST")
    with pytest.raises(ConnectionError, match="gave up after 0 retries"):
        await asyncio.wait_for(d.wait_closed(), 10)
    assert d.closed and not d.connected
