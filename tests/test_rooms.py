"""The room runtime through a real Jupyter server, end to end: what crosses the web layer and
the worker boundary (authentication, room URLs, close codes and HTTP answers on the wire,
frames between processes, real timers). Room semantics are tested in-process, through the
party test kit, in tests/test_room_runtime.py. Tests run with rooms in a worker process; the
two whose path differs with `workers = 0` run in both modes."""

from __future__ import annotations

import json
import time

import pytest
from tornado.httpclient import HTTPClientError

from conftest import eventually

BOTH_MODES = pytest.mark.parametrize("workers", [1, 0], ids=["worker", "in-process"])
#: What `on_request` of tests/parties/shapes.py returns, and the HTTP answer it becomes.
HTTP_SHAPES = pytest.mark.parametrize(
    ("shape", "status", "content_type", "body"),
    [
        ("text", 200, "text/plain; charset=utf-8", b"plain text"),
        ("bytes", 200, "application/octet-stream", b"\x00\x01binary"),
        ("json", 200, "application/json", b'{"list":[1,2,3],"path":"/json"}'),
        ("none", 204, None, b""),
        ("response", 201, None, b"created"),
        ("deep/sub/path", 200, None, b"/deep/sub/path"),
    ],
)


async def test_hooks_run_in_order(connect):
    client = await connect("parties/probe/order?_pk=alice")
    assert (await client.recv_json())["type"] == "welcome"
    await client.send({"op": "echo", "n": 1})
    assert await client.recv_json() == {"type": "echo", "n": 1}
    client.close()
    await client.closed()  # alice has left before bob comes (two sockets have no order)
    observer = await connect("parties/probe/order?_pk=bob")
    await observer.recv_json()
    await observer.send({"op": "events"})
    events = (await observer.recv_json())["events"]
    assert events == ["on_start", "on_connect:alice", "on_close:alice:1000", "on_connect:bob"]


async def test_messages_of_a_connection_are_handled_in_order(connect):
    client = await connect("parties/probe/order2")
    await client.recv_json()
    for n in range(200):
        await client.send({"op": "echo", "n": n})
    received = [(await client.recv_json())["n"] for _ in range(200)]
    assert received == list(range(200))


async def test_text_arrives_as_str_and_binary_as_bytes(connect):
    client = await connect("parties/probe/types")
    await client.recv_json()
    await client.send(b"\x01\x02\x03")
    assert await client.recv() == b"\x03\x02\x01"
    await client.send({"op": "broadcast", "message": {"a": [1, 2]}})
    assert await client.recv() == '{"a":[1,2]}'  # dict -> JSON text


async def test_reconnect_with_same_pk_keeps_the_new_socket(connect, live_rooms):
    old = await connect("parties/probe/pk?_pk=same")
    await old.recv_json()
    new = await connect("parties/probe/pk?_pk=same")
    await new.recv_json()
    old.close()
    assert (await new.recv_json()) == {"type": "left", "id": "same", "code": 1000}
    await new.send({"op": "connections"})
    assert await new.recv_json() == {"type": "connections", "ids": ["same"]}
    await new.send({"op": "broadcast", "message": "still here"})
    assert await new.recv() == "still here"
    assert await live_rooms.connections("probe", "pk") == 1  # the admin API counts one as well


async def test_broadcast_without(connect):
    a, b, c = [await connect(f"parties/probe/bcast?_pk={n}") for n in "abc"]
    for client in (a, b, c):
        await client.recv_json()
    await a.send({"op": "broadcast", "message": "to b only", "without": ["a", "c"]})
    await a.send({"op": "broadcast", "message": "to all"})
    assert await b.recv() == "to b only"
    assert await b.recv() == "to all"
    assert await a.recv() == "to all"
    assert await c.recv() == "to all"


async def test_server_close_reaches_client(connect):
    client = await connect("parties/probe/closing")
    await client.recv_json()
    await client.send({"op": "close", "code": 4000, "reason": "bye"})
    assert await client.closed() == (4000, "bye")


@HTTP_SHAPES
async def test_http_return_types_and_sub_paths(http, shape, status, content_type, body):
    response = await http(f"parties/shapes/r/{shape}")
    assert response.code == status
    assert response.body == body
    if content_type:
        assert response.headers["Content-Type"] == content_type
    if shape == "response":
        assert response.headers["X-Custom"] == "yes"


async def test_http_request_fields(http, jp_serverapp):
    response = await http("parties/probe/req/a/b?x=1&y=two", method="POST", body="payload")
    data = json.loads(response.body)
    assert data["method"] == "POST"
    assert data["path"] == "/a/b"
    assert data["query"] == {"x": "1", "y": "two"}
    assert data["body"] == "payload"
    assert data["room"] == "req"
    assert data["user"]  # the Jupyter identity


async def test_legacy_party_path_is_main(http, tmp_path):
    response = await http("party/some-room")
    assert response.code == 404  # no party `main` in the test parties
    assert b"Party 'main' not found" in response.body


async def test_before_connect_rejects_with_its_response(connect):
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as refused:
        await connect("parties/gated/r1?deny=1")
    assert refused.value.code == 403


async def test_before_connect_that_raises_refuses_with_4401(connect):
    client = await connect("parties/gated/r1?explode=1")
    assert await client.closed() == (4401, "gate says no")


async def test_cross_party_fetch_and_socket(http):
    response = await http("parties/caller/c1?room=shared")
    assert json.loads(response.body) == {"status": 200, "body": '{"count":1}'}
    response = await http("parties/caller/c1/socket?room=shared")
    assert json.loads(response.body) == {"first": "1", "second": "2"}
    assert json.loads((await http("parties/counter/shared")).body) == {"count": 2}


async def test_unknown_party(connect, http):
    client = await connect("parties/nosuchparty/r")
    code, reason = await client.closed()
    assert code == 4404
    assert "nosuchparty" in reason
    response = await http("parties/nosuchparty/r")
    assert response.code == 404
    assert json.loads(response.body) == {"error": "Party 'nosuchparty' not found"}


@pytest.mark.parametrize(
    "room",
    ["", "x" * 257, "%01ctl", "..", "%2e%2e", "%2E.", "bad%ff"],
    ids=["empty", "too-long", "control", "dotdot", "encoded-dotdot", "mixed-dotdot", "not-utf8"],
)
async def test_invalid_room_ids_are_refused(connect, http, live_rooms, room):
    response = await http(f"parties/probe/{room}")
    assert response.code in (400, 404)
    client = await connect(f"parties/probe/{room}")
    assert (await client.closed())[0] == 4400
    assert await live_rooms() == set()


async def test_room_ids_are_raw_and_limited_to_256_bytes(http):
    response = await http("parties/probe/" + "x" * 256)
    assert response.code == 200
    assert json.loads(response.body)["room"] == "x" * 256
    response = await http("parties/probe/caf%C3%A9")  # ids are not decoded, as in PartyKit
    assert json.loads(response.body)["room"] == "caf%C3%A9"


async def test_authentication_is_required(connect, http):
    client = await connect("parties/probe/auth", auth=False)
    assert await client.closed() == (4401, "authentication required: use a Jupyter token")
    response = await http("parties/probe/auth", auth=False)
    assert response.code == 401
    admin = await http("party-api/rooms", auth=False)
    assert admin.code == 403


async def test_connect_error_closes_with_1011(connect):
    client = await connect("parties/faulty/f2?fail=1")
    assert await client.closed() == (1011, "ValueError: connect refused by the party")


@pytest.mark.party_config(room_idle_timeout=0.1)
async def test_idle_room_is_evicted_and_recreated_with_storage(connect, live_rooms):
    client = await connect("parties/probe/idle?_pk=ann")
    first = await client.recv_json()
    assert first["remembered"] == []
    await client.send({"op": "remember", "text": "remember me"})  # stored in on_message...
    assert await client.recv_json() == {"type": "remembered", "texts": ["remember me"]}
    client.close()
    await eventually(lambda: live_rooms.gone("probe", "idle"), message="eviction")
    again = await connect("parties/probe/idle")
    welcome = await again.recv_json()
    assert welcome["remembered"] == ["remember me"]  # ...and loaded by the new on_start
    assert welcome["instance"] != first["instance"]


async def test_admin_api_lists_parties_and_rooms(jp_fetch, connect):
    client = await connect("parties/probe/listed")
    await client.recv_json()
    await client.send({"op": "echo", "n": 1})
    await client.recv_json()
    parties = json.loads((await jp_fetch("party-api", "parties")).body)["parties"]
    names = {p["name"] for p in parties}
    assert {"chat", "counter", "probe", "gated"} <= names
    rooms = json.loads((await jp_fetch("party-api", "rooms")).body)["rooms"]
    listed = next(r for r in rooms if (r["party"], r["room"]) == ("probe", "listed"))
    assert listed["connections"] == 1
    assert time.time() - 60 < listed["last_activity"] <= time.time()
    assert (listed["messages_in"], listed["messages_out"]) == (1, 2)  # welcome, echo
    assert listed["bytes_in"] == len('{"op": "echo", "n": 1}') and listed["bytes_out"] > 0


@BOTH_MODES
async def test_server_stop_closes_connections(connect, jp_serverapp):
    client = await connect("parties/probe/stopping")
    await client.recv_json()
    await jp_serverapp.cleanup_extensions()  # what a stopping server does first
    assert await client.closed() == (1001, "server shutting down")


async def test_cookie_authenticated_cross_origin_websocket_is_refused(http, connect, jp_http_port):
    from tornado.httpclient import HTTPClientError

    login = await http("party-api/rooms")  # a token request sets Jupyter's login cookie
    cookie = "; ".join(c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie"))
    assert "username-" in cookie
    with pytest.raises(HTTPClientError) as refused:
        await connect(
            "parties/probe/origin",
            auth=False,
            headers={"Cookie": cookie, "Origin": "http://evil.test"},
        )
    assert refused.value.code == 403
    same_origin = {"Cookie": cookie, "Origin": f"http://localhost:{jp_http_port}"}
    client = await connect("parties/probe/origin", auth=False, headers=same_origin)
    welcome = await client.recv_json()
    assert welcome["user"]  # the cookie's Jupyter identity reaches ctx.user


@pytest.mark.party_config(max_message_size=64 * 1024)
async def test_oversized_message_is_closed_with_1009(connect):
    client = await connect("parties/probe/big")
    await client.recv_json()
    await client.send(b"x" * (64 * 1024 + 1))
    assert (await client.closed())[0] == 1009


async def test_handler_errors_are_logged_with_party_and_room(connect, caplog):
    client = await connect("parties/faulty/logged")
    assert await client.recv() == "hello"
    await client.send("boom")
    await client.send("next")
    assert await client.recv() == "ok:next"
    messages = [r.getMessage() for r in caplog.records if r.name == "jupyter_party"]
    assert "party 'faulty' room 'logged': on_message raised" in messages


async def test_admin_api_evicts_a_room(jp_fetch, connect):
    client = await connect("parties/probe/evictme")
    first = await client.recv_json()
    await client.send({"op": "remember", "text": "kept"})
    await client.recv_json()
    response = await jp_fetch("party-api", "rooms", "probe", "evictme", method="DELETE")
    assert response.code == 204
    assert await client.closed() == (1012, "room evicted")
    again = await connect("parties/probe/evictme")
    welcome = await again.recv_json()
    assert welcome["remembered"] == ["kept"]  # storage survived
    assert welcome["instance"] != first["instance"]  # in a new instance
    with pytest.raises(HTTPClientError) as missing:
        await jp_fetch("party-api", "rooms", "probe", "nosuchroom", method="DELETE")
    assert missing.value.code == 404


async def test_a_party_may_open_a_room_to_the_public(connect, http):
    stranger = await connect("parties/public/open-lobby", auth=False)
    assert await stranger.recv_json() == {"user": None, "access": "read"}
    response = await http("parties/public/open-lobby", auth=False)
    assert json.loads(response.body) == {"user": None, "access": "read"}
    # A cookie-less POST (a script, curl) is no forged session: the gate judges it, not XSRF.
    response = await http("parties/public/open-lobby", method="POST", body="{}", auth=False)
    assert (response.code, json.loads(response.body)) == (200, {"user": None, "access": "read"})
    closed = await connect("parties/public/members", auth=False)
    assert await closed.closed() == (4401, "authentication required: use a Jupyter token")
    member = await connect("parties/public/members")
    assert (await member.recv_json())["access"] == "write"
    unknown = await connect("parties/nosuchparty/r", auth=False)  # strangers learn nothing
    assert (await unknown.closed())[0] == 4401


@BOTH_MODES
async def test_a_client_with_its_handshake_is_in_the_room(connect):
    # The room admits a socket (and runs on_connect) before the 101: a broadcast sent right
    # after the client's handshake completed reaches it, whichever worker runs the room.
    sender = await connect("parties/probe/handshake?_pk=sender")
    await sender.recv_json()
    for n in range(20):
        late = await connect(f"parties/probe/handshake?_pk=late{n}")
        await sender.send({"op": "blast", "count": 1, "size": 1})
        seen = [await late.recv() for _ in range(2)]  # its welcome, then the blast
        assert json.loads(seen[0])["type"] == "welcome" and seen[1] == "0:x", seen
        assert await sender.recv() == "0:x"
        assert (await sender.recv_json())["type"] == "blasted"


@BOTH_MODES
async def test_an_open_socket_keeps_no_handler(connect):
    """Once the 101 is sent, the handler has returned and nothing keeps it: an open socket
    is a `RoomSocket` (websocket.py), not Tornado's handler, request and stream (about half
    of an idle connection's memory). The 101 sets no login cookie: a room socket
    authenticates each connect."""
    import gc

    from jupyter_party.web.room_handler import RoomHandler, RoomSocket

    # The first event starts the rooms and the room, whose tasks keep that request's context.
    await (await connect("parties/probe/released?_pk=first")).recv_json()
    client = await connect("parties/probe/released?_pk=kept", headers={"X-Extra": "seen"})
    welcome = await client.recv_json()
    assert "x-extra" in welcome["headers"] and welcome["id"] == "kept"  # the party saw them
    assert "Set-Cookie" not in client.ws.headers
    gc.collect()
    handlers = [h for h in gc.get_objects() if isinstance(h, RoomHandler)]
    assert not [h for h in handlers if h.request.query == "_pk=kept"]
    assert [s for s in gc.get_objects() if isinstance(s, RoomSocket) and s.socket is not None]
    await client.send({"op": "echo", "n": 7})  # the socket works on, and closes cleanly
    assert await client.recv_json() == {"type": "echo", "n": 7}
    await client.send({"op": "close", "code": 4000, "reason": "done"})
    assert await client.closed() == (4000, "done")
