"""The room runtime through the party test kit: hooks, ordering, routing, errors, eviction,
alarms. The kit drives the server's own runtime in-process (`workers = 0`), with the test
parties of tests/parties; tests/test_rooms.py and tests/test_alarms.py keep what needs a real
server (the web layer, worker processes, real timers) end to end.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from test_rooms import HTTP_SHAPES

from conftest import PARTIES
from jupyter_party.testing import HandshakeRejected, PartyHost, party_host


async def rooms(**limits) -> PartyHost:
    """The test parties, served in-process (started; the caller closes it)."""
    host = party_host(parties_dir=PARTIES, **limits)
    await host.start()
    return host


@pytest.fixture
def host(jp_asyncio_loop, request):
    """A started PartyHost for tests/parties; `@pytest.mark.limits(...)` sets limits."""
    marker = request.node.get_closest_marker("limits")
    started = jp_asyncio_loop.run_until_complete(rooms(**(marker.kwargs if marker else {})))
    yield started
    jp_asyncio_loop.run_until_complete(started.close())


async def test_hooks_run_in_order(host):
    room = host.room("probe", "order")
    client = await room.connect("alice")
    assert (await client.recv_json())["type"] == "welcome"
    await client.send({"op": "echo", "n": 1})
    assert await client.recv_json() == {"type": "echo", "n": 1}
    await client.close()
    observer = await room.connect("bob")
    await observer.recv_json()
    await observer.send({"op": "events"})
    events = (await observer.recv_json())["events"]
    assert events == ["on_start", "on_connect:alice", "on_close:alice:1000", "on_connect:bob"]


async def test_on_start_gates_fifty_concurrent_connects(host):
    room = host.room("probe", "crowd")
    clients = await asyncio.gather(*(room.connect(f"c{i}") for i in range(50)))
    welcomes = [await c.recv_json() for c in clients]
    assert {w["instance"] for w in welcomes} == {1}  # one instance, started once, before all
    await clients[0].send({"op": "events"})
    message = await clients[0].recv_json()
    while message["type"] != "events":
        message = await clients[0].recv_json()
    assert message["events"][0] == "on_start"
    assert message["events"].count("on_start") == 1
    assert len([e for e in message["events"] if e.startswith("on_connect")]) == 50


async def test_first_message_waits_for_on_connect(host):
    connecting = asyncio.ensure_future(host.connect("probe", "eager"))
    client = await connecting
    await client.send({"op": "echo", "n": 0})
    assert (await client.recv_json())["type"] == "welcome"
    assert await client.recv_json() == {"type": "echo", "n": 0}


async def test_messages_of_a_connection_are_handled_in_order(host):
    client = await host.connect("probe", "order2")
    await client.recv_json()
    for n in range(200):
        await client.send({"op": "echo", "n": n})
    received = [(await client.recv_json())["n"] for _ in range(200)]
    assert received == list(range(200))


async def test_text_arrives_as_str_and_binary_as_bytes(host):
    client = await host.connect("probe", "types")
    await client.recv_json()
    await client.send(b"\x01\x02\x03")
    assert await client.recv() == b"\x03\x02\x01"
    await client.send({"op": "broadcast", "message": {"a": [1, 2]}})
    assert await client.recv() == '{"a":[1,2]}'  # dict -> JSON text


async def test_reconnect_with_same_pk_keeps_the_new_socket(host):
    room = host.room("probe", "pk")
    old = await room.connect("same")
    await old.recv_json()
    new = await room.connect("same")
    await new.recv_json()
    await old.close()
    assert (await new.recv_json()) == {"type": "left", "id": "same", "code": 1000}
    await new.send({"op": "connections"})
    assert await new.recv_json() == {"type": "connections", "ids": ["same"]}
    await new.send({"op": "broadcast", "message": "still here"})
    assert await new.recv() == "still here"
    assert (await room.fetch("/connections")).json()["ids"] == ["same"]


async def test_an_id_finds_its_newest_open_connection_and_is_forgotten_with_it(host):
    """`get_connection` looks the id up (not a scan of the room): the newest open socket of a
    reused id is found, and the room keeps nothing of an id once its sockets are gone."""
    room = host.room("probe", "ids")
    peer = await room.connect("peer")
    await peer.recv_json()
    old = await room.connect("same")
    await old.recv_json()
    new = await room.connect("same")
    await new.recv_json()
    await peer.send({"op": "get_connection", "id": "same"})
    assert await new.recv_json() == {"type": "found", "by": "peer"}
    await new.close()
    for client in (peer, old):
        assert (await client.recv_json())["type"] == "left"
    await peer.send({"op": "get_connection", "id": "same"})  # the older one is still open
    assert await old.recv_json() == {"type": "found", "by": "peer"}
    await old.close()
    assert (await peer.recv_json())["type"] == "left"
    instance = host.session.host.rooms[("probe", "ids")]
    assert list(instance._by_id) == ["peer"] and len(instance._connections) == 1


async def test_broadcast_without(host):
    a, b, c = [await host.connect("probe", "bcast", n) for n in "abc"]
    for client in (a, b, c):
        await client.recv_json()
    await a.send({"op": "broadcast", "message": "to b only", "without": ["a", "c"]})
    await a.send({"op": "broadcast", "message": "to all"})
    assert await b.recv() == "to b only"
    assert await b.recv() == "to all"
    assert await a.recv() == "to all"
    assert await c.recv() == "to all"


async def test_tags_select_connections(host):
    a = await host.connect("probe", "tags", "a", {"tags": "red,big"})
    b = await host.connect("probe", "tags", "b", {"tags": "red"})
    c = await host.connect("probe", "tags", "c")
    assert (await a.recv_json())["tags"] == ["red", "big"]
    await b.recv_json()
    await c.recv_json()
    for tag, expected in (
        ("red", ["a", "b"]),
        ("big", ["a"]),
        ("none", []),
        (None, ["a", "b", "c"]),
    ):
        await c.send({"op": "connections", "tag": tag})
        assert (await c.recv_json())["ids"] == expected


async def test_connection_state(host):
    client = await host.connect("probe", "state")
    await client.recv_json()
    await client.send({"op": "state", "add": 2})
    assert await client.recv_json() == {"type": "state", "state": 2, "read": 2}
    await client.send({"op": "state", "add": 3})
    assert await client.recv_json() == {"type": "state", "state": 5, "read": 5}


async def test_get_connection_reaches_a_peer(host):
    a = await host.connect("probe", "peer", "a")
    b = await host.connect("probe", "peer", "b")
    await a.recv_json()
    await b.recv_json()
    await a.send({"op": "get_connection", "id": "b"})
    assert await b.recv_json() == {"type": "found", "by": "a"}


async def test_server_close_reaches_client(host):
    client = await host.connect("probe", "closing")
    await client.recv_json()
    await client.send({"op": "close", "code": 4000, "reason": "bye"})
    assert await client.closed_with() == (4000, "bye")


@HTTP_SHAPES
async def test_http_return_types_and_sub_paths(host, shape, status, content_type, body):
    response = await host.fetch("shapes", "r", f"/{shape}")
    assert response.status == status
    assert response.body == body
    if content_type:
        assert response.headers["Content-Type"] == content_type
    if shape == "response":
        assert response.headers["X-Custom"] == "yes"


async def test_http_handler_error_is_500_without_details(host):
    response = await host.fetch("shapes", "r", "/raise")
    assert response.status == 500
    assert b"secret detail" not in response.body


async def test_before_connect_rejects_with_its_response(host):
    with pytest.raises(HandshakeRejected) as refused:
        await host.connect("gated", "r1", query={"deny": "1"})
    assert refused.value.response.status == 403


async def test_before_connect_rewrites_the_request(host):
    client = await host.connect("gated", "r1", query={"as": "ann"})
    assert await client.recv_json() == {"header": "ann"}


async def test_before_connect_that_raises_refuses_with_4401(host):
    client = await host.connect("gated", "r1", query={"explode": "1"})
    assert await client.closed_with() == (4401, "gate says no")


async def test_before_request_gates_http(host):
    denied = await host.fetch("gated", "r2", query={"deny": "1"})
    assert (denied.status, denied.body) == (403, b"denied by the gate of room r2")
    rewritten = await host.fetch("gated", "r2", query={"as": "bob"})
    assert rewritten.json() == {"header": "bob"}
    assert (await host.fetch("gated", "r2")).json() == {"header": None}


async def test_cross_party_fetch_and_socket(host):
    response = await host.fetch("caller", "c1", query={"room": "shared"})
    assert response.json() == {"status": 200, "body": '{"count":1}'}
    response = await host.fetch("caller", "c1", "/socket", query={"room": "shared"})
    assert response.json() == {"first": "1", "second": "2"}
    assert (await host.fetch("counter", "shared")).json() == {"count": 2}


async def test_unknown_party(host):
    client = await host.connect("nosuchparty", "r")
    code, reason = await client.closed_with()
    assert code == 4404
    assert "nosuchparty" in reason
    response = await host.fetch("nosuchparty", "r")
    assert response.status == 404
    assert response.json() == {"error": "Party 'nosuchparty' not found"}


async def test_message_handler_error_keeps_the_connection(host):
    client = await host.connect("faulty", "f1")
    assert await client.recv() == "hello"
    await client.send("boom")
    await client.send("after")
    assert await client.recv() == "ok:after"
    probe = await host.connect("probe", "error")
    await probe.recv_json()
    await probe.send({"op": "raise", "text": "kaput"})
    assert await probe.recv_json() == {"type": "error", "error": "kaput"}
    await probe.send({"op": "echo", "n": 7})
    assert await probe.recv_json() == {"type": "echo", "n": 7}


async def test_connect_error_closes_with_1011(host):
    client = await host.connect("faulty", "f2", query={"fail": "1"})
    assert await client.closed_with() == (1011, "ValueError: connect refused by the party")


async def test_failed_start_affects_only_that_room(host):
    client = await host.connect("faulty", "broken-1")
    code, reason = await client.closed_with()
    assert code == 1011
    assert "cannot start this room" in reason
    assert not host.room("faulty", "broken-1").live  # the next event will try again
    healthy = await host.connect("faulty", "fine")
    assert await healthy.recv() == "hello"
    assert (await host.fetch("faulty", "broken-2")).status == 500


async def test_a_room_that_keeps_failing_to_start_backs_off(host):
    async def error() -> str:
        return (await host.fetch("faulty", "broken-3")).json()["error"]

    assert await error() == "the room failed to start"
    refused = await _until(error, lambda e: "next try in" in e)  # after the second failure
    assert "times in a row" in refused
    assert await error() == refused  # no try while the clock stands still
    host.clock.advance(int(refused.rsplit("next try in ", 1)[1].split()[0]))
    assert await error() == "the room failed to start"  # tried again


@pytest.mark.limits(room_idle_timeout=60)
async def test_idle_room_is_evicted_and_recreated_with_storage(host):
    room = host.room("probe", "idle")
    client = await room.connect("ann")
    first = await client.recv_json()
    assert first["remembered"] == []
    await client.send({"op": "remember", "text": "remember me"})  # stored in on_message...
    assert await client.recv_json() == {"type": "remembered", "texts": ["remember me"]}
    await client.close()
    host.clock.advance(59)
    assert room.live
    host.clock.advance(1)
    assert not room.live
    again = await room.connect()
    welcome = await again.recv_json()
    assert welcome["remembered"] == ["remember me"]  # ...and loaded by the new on_start
    assert welcome["instance"] != first["instance"]


@pytest.mark.limits(room_idle_timeout=60)
async def test_busy_room_is_not_evicted(host):
    client = await host.connect("probe", "busy")
    instance = (await client.recv_json())["instance"]
    for n in range(20):  # keep talking for many idle timeouts
        await client.send({"op": "echo", "n": n})
        await client.recv_json()
        host.clock.advance(30)
    assert host.room("probe", "busy").live
    assert (await host.fetch("probe", "busy")).json()["instance"] == instance


async def test_handler_errors_are_logged_with_party_and_room(host, caplog):
    client = await host.connect("faulty", "logged")
    assert await client.recv() == "hello"
    await client.send("boom")
    await client.send("next")
    assert await client.recv() == "ok:next"
    messages = [r.getMessage() for r in caplog.records if r.name == "jupyter_party"]
    assert "party 'faulty' room 'logged': on_message raised" in messages
    assert caplog.records[0].levelno == logging.ERROR
    assert any("message handler failed" in r.text for r in host.room("faulty", "logged").log)


# -- alarms -----------------------------------------------------------------------------------


@pytest.mark.limits(room_idle_timeout=3600)
async def test_alarm_fires_once_with_room_id(host):
    room = host.room("ticker", "a1")
    assert (await room.fetch(method="POST", query={"in_ms": "50000"})).status == 200
    assert _alarm_timers(host) == [pytest.approx(50, abs=1)]
    host.clock.advance(50)
    await _until(lambda: _runs(room), lambda runs: runs["alarm"] is None)
    assert [run["room"] for run in (await _runs(room))["runs"]] == ["a1"]
    assert _alarm_timers(host) == []


@pytest.mark.limits(room_idle_timeout=3600, alarm_retry_base=0.1)
async def test_failing_alarm_is_retried_with_backoff(host):
    room = host.room("ticker", "a2")
    await room.fetch(method="POST", query={"in_ms": "0", "fail": "2"})  # due now
    await _until(lambda: _timers(host), lambda timers: timers == [pytest.approx(0.1)])
    host.clock.advance(0.1)  # alarm_retry_base, not the 2 s default; then
    await _until(lambda: _timers(host), lambda timers: timers == [pytest.approx(0.2)])
    host.clock.advance(0.2)  # 0.2 s: exponential backoff
    await _until(lambda: _runs(room), lambda runs: runs["alarm"] is None)
    assert len((await _runs(room))["runs"]) == 3  # succeeded on the third run: no more
    assert _alarm_timers(host) == []


@pytest.mark.limits(room_idle_timeout=5)
async def test_alarm_wakes_an_evicted_room(host):
    room = host.room("ticker", "a3")
    await room.fetch(method="POST", query={"in_ms": "60000"})
    host.clock.advance(5)
    assert not room.live
    host.clock.advance(55)  # nothing but the alarm touches the room
    await _until(lambda: _runs(room), lambda runs: runs["runs"])
    assert [run["room"] for run in (await _runs(room))["runs"]] == ["a3"]


def _alarm_timers(host) -> list[float]:
    """The armed timers of the kit's clock, but the rooms' idle timeouts (an hour here)."""
    return [t for t in host.clock.pending() if t < 3000]


async def _timers(host) -> list[float]:
    return _alarm_timers(host)


async def _runs(room) -> dict:
    return json.loads((await room.fetch()).body)


async def _until(read, check, timeout: float = 5.0):
    """Read (an awaitable) until `check` holds: work that a fired timer started runs on."""
    async with asyncio.timeout(timeout):
        while not check(value := await read()):
            await asyncio.sleep(0)
    return value
