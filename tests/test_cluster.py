"""A party cluster: real `jupyter party serve --redis` processes on one real redis-server.

One owner per room across the nodes (a lease in Redis), events that land on another node
relayed to it, take-over by another node when the owner dies, fencing of a paused owner,
share links, alarms and deploys across nodes, and Redis restarts.
"""

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import redis.asyncio as aioredis
from test_process import TEST_PARTIES, TOKEN, ServerProcess, request, serve_process
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_party.runtime.party_sources import RESYNC

pytest_plugins = ["redis_support"]  # its fixtures: redis_server, redis_url

LEASE_TTL = 2.0


def node(tmp_path, name: str, redis_url: str, *extra: str, parties=TEST_PARTIES) -> ServerProcess:
    """A cluster node named `name` (not started)."""
    return serve_process(
        tmp_path / name,
        f"--redis={redis_url}",
        f"--PartyApp.lease_ttl={LEASE_TTL}",
        f"--PartyApp.node_name={name}",
        *extra,
        parties=parties,
        cwd=tmp_path,
    )


def post(server: ServerProcess, path: str, body: dict | None = None) -> tuple[int, dict]:
    status, answer = request(server.port, "POST", path, body and json.dumps(body))
    return status, json.loads(answer)


def guest_get(server: ServerProcess, path: str) -> tuple[int, bytes]:
    """GET without the Jupyter token (a guest with a share link)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def until_served(
    server: ServerProcess, path: str, timeout: float, refusal: str = "gone: try again"
) -> tuple[int, dict]:
    """POST until the node serves the room (503 while the lease of a dead owner lasts)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = post(server, path)
        if status != 503:
            return status, body
        assert refusal in body["error"], body
        assert time.monotonic() < deadline, f"not served within {timeout} s: {body}"


async def test_one_owner_shared_links_and_take_over_after_kill_9(tmp_path, redis_url):
    room = "/parties/counter/kill9"
    with node(tmp_path, "a", redis_url) as a, node(tmp_path, "b", redis_url) as b:
        assert [post(a, room) for _ in range(5)] == [(200, {"count": n}) for n in range(1, 6)]
        status, body = request(a.port, "GET", "/party-api/rooms")
        listed = [r for r in json.loads(body)["rooms"] if r["room"] == "kill9"]
        assert status == 200 and [r["node"] for r in listed] == ["a"], body
        assert post(b, room) == (200, {"count": 6})  # a owns the room: b relays to it
        relayed = await connect(b, room)  # a WebSocket too
        assert await relayed.read_message() == "6"
        # A share link made on a opens its room on b; revoked on a, it is refused on b, and
        # the guest's socket on b is closed (4401).
        status, grant = post(a, "/party-api/share", {"party": "counter", "room": "shared"})
        assert status == 201, grant
        shared = f"/parties/counter/shared?share_token={grant['token']}"
        assert guest_get(b, shared) == (200, b'{"count":0}')
        guest = await websocket_connect(f"ws://127.0.0.1:{b.port}{shared}")
        assert await read(guest) == "0"
        assert request(a.port, "DELETE", f"/party-api/share/{grant['id']}")[0] == 204
        assert await asyncio.wait_for(guest.read_message(), 10) is None
        assert (guest.close_code, guest.close_reason) == (4401, "share link revoked")
        assert guest_get(b, shared)[0] == 401
        a.kill()  # kill -9 of the owner (server and workers)
        killed = time.monotonic()
        assert await asyncio.wait_for(relayed.read_message(), 10) is None
        assert relayed.close_code == 1012, (relayed.close_code, relayed.close_reason)
        assert until_served(b, room, LEASE_TTL + 5) == (200, {"count": 7})  # nothing lost
        took_over = time.monotonic() - killed
        assert took_over <= LEASE_TTL + 2, took_over
        assert post(b, room) == (200, {"count": 8})


async def test_events_on_either_node_reach_the_room_s_one_instance(tmp_path, redis_url):
    room = "/parties/probe/shared"
    with node(tmp_path, "a", redis_url) as a, node(tmp_path, "b", redis_url) as b:
        nodes = (a, b)
        # 8 clients alternating between the nodes, all at once on a new room (both nodes race
        # to claim it; the loser relays to the winner): one instance holds them all.
        clients = await asyncio.gather(
            *(connect(nodes[i % 2], f"{room}?_pk=c{i}") for i in range(8))
        )
        welcomes = [json.loads(await read(client)) for client in clients]
        assert [w["id"] for w in welcomes] == [f"c{i}" for i in range(8)]
        assert len({w["instance"] for w in welcomes}) == 1, welcomes
        for server in nodes:
            status, body = request(server.port, "GET", f"{room}/connections")
            assert status == 200 and sorted(json.loads(body)["ids"]) == [f"c{i}" for i in range(8)]
        owner = [r["node"] for r in rooms(a) + rooms(b) if r["room"] == "shared"]
        assert owner in (["a"], ["b"]), owner  # listed once, by its owner
        # Two senders, one per node: every client gets every message, in order, once.
        count = 50
        for n in range(count):
            for i in (0, 1):
                clients[i].write_message(json.dumps({"op": "broadcast", "message": [f"c{i}", n]}))
        for client in clients:
            got = []
            while len(got) < 2 * count:
                message = json.loads(await read(client))
                if isinstance(message, list):
                    got.append(message)
            for sender in ("c0", "c1"):
                assert [n for who, n in got if who == sender] == list(range(count))
        # `without` leaves out a client on each node; the next broadcast reaches everyone.
        skipped = {"op": "broadcast", "message": "skipped", "without": ["c2", "c3"]}
        clients[0].write_message(json.dumps(skipped))
        clients[0].write_message(json.dumps({"op": "broadcast", "message": "everyone"}))
        for i, client in enumerate(clients):
            expected = ["everyone"] if i in (2, 3) else ["skipped", "everyone"]
            assert [await read(client) for _ in expected] == expected, i
        # An error in the room (on its owner) is in the party's log on both nodes.
        clients[1].write_message(json.dumps({"op": "raise", "text": "seen everywhere"}))
        assert json.loads(await read(clients[1]))["type"] == "error"
        for server in nodes:
            records = await party_log(server, "probe", "seen everywhere")
            assert {r["node"] for r in records} == set(owner), records
        # A client leaving on one node: the room (on its owner) and the others hear it.
        clients[3].close()
        left = json.loads(await read(clients[0]))
        assert left == {"type": "left", "id": "c3", "code": 1005}, left
        for client in clients:
            client.close()
        # HTTP requests alternating between the nodes reach the same room, at once or in turn.
        counts = [post(nodes[i % 2], "/parties/counter/alternate") for i in range(10)]
        assert counts == [(200, {"count": n}) for n in range(1, 11)]
        raced = await asyncio.gather(
            *(asyncio.to_thread(post, nodes[i % 2], "/parties/counter/raced") for i in range(6))
        )
        assert [status for status, _ in raced] == [200] * 6, raced
        status, body = request(b.port, "GET", "/parties/counter/raced")
        assert (status, json.loads(body)) == (200, {"count": 6})  # one room counted them all
        # A room on b calls a room owned by a (context.parties), by HTTP and by WebSocket.
        assert post(a, "/parties/counter/callee") == (200, {"count": 1})
        status, body = request(b.port, "GET", "/parties/caller/calling?room=callee")
        assert (status, json.loads(body)) == (200, {"status": 200, "body": '{"count":2}'})
        status, body = request(b.port, "GET", "/parties/caller/calling/socket?room=callee")
        assert (status, json.loads(body)) == (200, {"first": "2", "second": "3"})
        listed = {(r["room"], r["node"]) for r in rooms(a) + rooms(b)}
        assert {("callee", "a"), ("calling", "b")} <= listed, listed
        # The admin commands say which node: its rooms, and where each log record was made.
        assert "callee" in (listed := cli(a, "rooms", "counter")) and "on node a" in listed
        assert f"[{owner[0]}] shared error: " in cli(b if owner == ["a"] else a, "logs", "probe")


async def test_a_relay_drops_duplicates_and_ends_at_a_gap(tmp_path, redis_url):
    """Pub/sub may duplicate (a retried publish) or lose messages: a duplicate is dropped, a
    gap ends the relay and its clients are closed with 1012 (they reconnect)."""
    room = "/parties/counter/relayed"
    with node(tmp_path, "a", redis_url) as a, node(tmp_path, "b", redis_url) as b:
        assert post(a, room) == (200, {"count": 1})  # a owns the room
        async with aioredis.Redis.from_url(redis_url) as spy, spy.pubsub() as pubsub:
            await pubsub.subscribe("jp:node:a")  # what b relays to a
            client = await connect(b, room)
            assert await read(client) == "1"
            client.write_message("increment")
            assert await read(client) == "2"
            while b"increment" not in (captured := await relayed(pubsub)):
                pass
            await spy.publish("jp:node:a", captured)  # the same message again: dropped
            client.write_message("increment")
            assert await read(client) == "3"
            # Relayed after both increments, on the same link: 4 (a duplicate would make 5).
            assert post(b, room) == (200, {"count": 4})
            assert await read(client) == "4"  # its broadcast
            link, role, seq, sender = captured.partition(b"\n")[0].split(b" ", 3)
            gap = b"%s %s %d %s\n" % (link, role, int(seq) + 100, sender)
            await spy.publish("jp:node:a", gap)
            assert await asyncio.wait_for(client.read_message(), 10) is None
            assert client.close_code == 1012, (client.close_code, client.close_reason)
        again = await connect(b, room)  # a new relay
        assert await read(again) == "4"
        again.close()
    assert "messages from node 'b' were lost" in a.log()


async def relayed(pubsub) -> bytes:
    """The next message on the subscribed channel (get_message answers None for the
    subscription's confirmation, or after its timeout)."""
    deadline = time.monotonic() + 10
    while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)) is None:
        assert time.monotonic() < deadline, "b relayed nothing to a"
    return message["data"]


async def party_log(server: ServerProcess, party: str, text: str) -> list[dict]:
    """The records of the party's log on `server` that contain `text`, once there are some."""
    after = 0
    while True:
        path = f"/party-api/parties/{party}/logs?after={after}&wait=10"
        status, body = await asyncio.to_thread(request, server.port, "GET", path)
        assert status == 200, body
        answer = json.loads(body)
        assert answer["next"] > after, f"no record with {text!r} on port {server.port}"
        found = [r for r in answer["records"] if text in r["text"]]
        if found:
            return found
        after = answer["next"]


def cli(server: ServerProcess, *command: str) -> str:
    """`jupyter party COMMAND` against `server`: what it printed."""
    where = ("--server", f"http://127.0.0.1:{server.port}/", "--token", TOKEN)
    argv = [sys.executable, "-m", "jupyter_party.cli", *command, *where]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def reconnect(server: ServerProcess, path: str) -> tuple[Any, str]:
    """Connect as PartyKit's clients do: again after a 1012, until the room answers. Returns
    the socket and its first message."""
    deadline = time.monotonic() + 10
    while True:
        client = await connect(server, path)
        first = await asyncio.wait_for(client.read_message(), 10)
        if first is not None:
            return client, first
        assert client.close_code == 1012 and time.monotonic() < deadline, client.close_reason


async def read(client) -> str:
    message = await asyncio.wait_for(client.read_message(), 10)
    assert message is not None, (client.close_code, client.close_reason)
    return message


def rooms(server: ServerProcess) -> list[dict]:
    status, body = request(server.port, "GET", "/party-api/rooms")
    assert status == 200, body
    return json.loads(body)["rooms"]


async def test_a_paused_owner_cannot_write_and_its_clients_get_1012(tmp_path, redis_url):
    room = "/parties/counter/paused"
    # workers=0: the rooms run in the server process, so SIGSTOP pauses them too.
    with node(tmp_path, "a", redis_url, "--workers=0") as a, node(tmp_path, "b", redis_url) as b:
        ws = await websocket_connect(
            HTTPRequest(
                f"ws://127.0.0.1:{a.port}{room}", headers={"Authorization": f"token {TOKEN}"}
            )
        )
        assert await ws.read_message() == "0"
        ws.write_message("increment")
        assert await ws.read_message() == "1"
        os.killpg(a.pid, signal.SIGSTOP)
        try:
            # b takes the room over once a's lease expired, with a's acknowledged write.
            assert until_served(b, room, LEASE_TTL + 5) == (200, {"count": 2})
            assert post(b, room) == (200, {"count": 3})
        finally:
            os.killpg(a.pid, signal.SIGCONT)
        ws.write_message("increment")  # a resumes: it must not write any more
        while (message := await asyncio.wait_for(ws.read_message(), 10)) is not None:
            assert message not in ("2", "3"), "the paused owner wrote after losing its lease"
        assert ws.close_code == 1012, (ws.close_code, ws.close_reason)
        status, body = request(b.port, "GET", room)
        assert (status, json.loads(body)) == (200, {"count": 3})  # b's data intact
        assert "lost the lease of counter/paused" in a.log()


async def connect(server: ServerProcess, path: str):
    return await websocket_connect(
        HTTPRequest(
            f"ws://127.0.0.1:{server.port}{path}", headers={"Authorization": f"token {TOKEN}"}
        )
    )


async def test_redis_stopped_and_restarted_during_traffic(tmp_path, new_redis):
    redis = new_redis()
    with node(tmp_path, "a", redis.url) as a, node(tmp_path, "b", redis.url) as b:
        live = await connect(a, "/parties/counter/live")
        assert await live.read_message() == "0"
        live.write_message("increment")
        assert await live.read_message() == "1"
        relayed = await connect(b, "/parties/counter/live")  # through Redis, to a
        assert await read(relayed) == "1"
        assert post(a, "/parties/counter/http") == (200, {"count": 1})
        redis.stop(signal.SIGKILL)
        # The relay went through Redis: its client is told at once (1012), and reconnects.
        assert await asyncio.wait_for(relayed.read_message(), LEASE_TTL + 5) is None
        assert relayed.close_code == 1012, (relayed.close_code, relayed.close_reason)
        # New rooms are refused with 503 (1013), saying why; the server keeps running.
        status, body = post(a, "/parties/counter/fresh")
        assert status == 503 and "Redis cannot be reached" in body["error"], body
        # A live room cannot keep its lease: once it has expired, its clients get 1012.
        assert await asyncio.wait_for(live.read_message(), LEASE_TTL + 5) is None
        assert live.close_code == 1012, (live.close_code, live.close_reason)
        assert request(a.port, "GET", "/api/status")[0] == 200
        redis.start()  # same data: every acknowledged write is there
        refusal = "Redis cannot be reached"
        assert until_served(a, "/parties/counter/fresh", 10, refusal) == (200, {"count": 1})
        assert post(a, "/parties/counter/http") == (200, {"count": 2})
        again = await connect(a, "/parties/counter/live")
        assert await again.read_message() == "1"
        again.close()
        # Through b too, once both nodes listen on Redis again (a client reconnects meanwhile).
        relayed, first = await reconnect(b, "/parties/counter/live")
        assert first == "1"
        relayed.close()
    log = a.log()
    assert "cannot claim the lease of counter/fresh in Redis" in log
    assert "room leases not renewed" in log


def test_kill_9_of_every_node_and_redis_loses_nothing_acknowledged(tmp_path, new_redis):
    redis = new_redis()  # appendonly yes, appendfsync always
    with node(tmp_path, "a", redis.url) as a, node(tmp_path, "b", redis.url) as b:
        acked = {}
        for i in range(20):  # rooms alternate between the nodes; each POST is acknowledged
            server, room = (a, b)[i % 2], f"/parties/counter/r{i % 4}"
            assert post(server, room)[0] == 200
            acked[room] = acked.get(room, 0) + 1
        a.kill()
        b.kill()
        redis.stop(signal.SIGKILL)
    redis.start()
    with node(tmp_path, "c", redis.url) as c:
        for room, count in acked.items():
            # c waits for the dead nodes' leases to expire, then has every write.
            assert until_served(c, room, LEASE_TTL + 5) == (200, {"count": count + 1})


def alarm_state(server: ServerProcess, room: str) -> dict:
    status, body = request(server.port, "GET", f"/parties/alarmclock/{room}")
    assert status == 200, body
    return json.loads(body)


def test_alarms_fire_once_on_their_owner_and_after_its_death_on_another_node(tmp_path, redis_url):
    with node(tmp_path, "a", redis_url) as a, node(tmp_path, "b", redis_url) as b:
        for room, in_ms in (("soon", 500), ("later", 4000)):
            status, body = request(a.port, "POST", f"/parties/alarmclock/{room}/set?in_ms={in_ms}")
            assert status == 200, body
        deadline = time.monotonic() + 10
        while alarm_state(a, "soon")["alarm"] is not None:  # fired and cleared by its owner
            assert time.monotonic() < deadline, "the alarm of 'soon' did not fire"
        a.kill()  # before "later" is due: b (which learnt of it from Redis) must fire it
        deadline = time.monotonic() + 4 + LEASE_TTL + 5
        while (state := until_alarm_state(b, "later"))["alarm"] is not None:
            assert time.monotonic() < deadline, f"the alarm of 'later' did not fire: {state}"
        assert state == {"fired": ["later"], "alarm": None}
        assert until_alarm_state(b, "soon") == {"fired": ["soon"], "alarm": None}  # once


def until_alarm_state(server: ServerProcess, room: str) -> dict:
    """The room's state, once the node serves it (503 while a dead node's lease lasts)."""
    deadline = time.monotonic() + LEASE_TTL + 5
    while True:
        status, body = request(server.port, "GET", f"/parties/alarmclock/{room}")
        if status != 503:
            assert status == 200, body
            return json.loads(body)
        assert time.monotonic() < deadline, body


PARTY_V1 = """
from jupyter_party import Server

class Versioned(Server):
    def on_connect(self, connection, ctx):
        connection.send("v1")

    def on_request(self, request):
        return {"version": 1}
"""


async def test_a_deploy_made_on_one_node_runs_on_every_node(tmp_path, redis_url):
    # Each node has its own parties_dir: only Redis carries the deploy from a to b.
    dirs = {name: tmp_path / f"parties-{name}" for name in "ab"}
    for directory in dirs.values():
        directory.mkdir()
    with (
        node(tmp_path, "a", redis_url, parties=dirs["a"]) as a,
        node(tmp_path, "b", redis_url, parties=dirs["b"]) as b,
    ):
        status, body = request(
            a.port, "POST", "/party-api/parties/versioned", json.dumps({"source": PARTY_V1})
        )
        assert status == 200, body
        # b learns of it from Redis: its own parties_dir gets the file, and b serves the party.
        deadline = time.monotonic() + 10
        while (status := request(b.port, "GET", "/parties/versioned/r1")[0]) == 404:
            assert time.monotonic() < deadline, "the deploy did not reach b"
        assert request(b.port, "GET", "/parties/versioned/r1") == (200, b'{"version":1}')
        live = await connect(b, "/parties/versioned/r1")
        assert await live.read_message() == "v1"
        # A redeploy on a restarts the party's rooms on b too (1012), with the new code.
        v2 = PARTY_V1.replace('"v1"', '"v2"').replace('"version": 1', '"version": 2')
        status, body = request(
            a.port, "POST", "/party-api/parties/versioned", json.dumps({"source": v2})
        )
        assert status == 200, body
        assert await asyncio.wait_for(live.read_message(), 10) is None
        assert live.close_code == 1012
        again = await connect(b, "/parties/versioned/r1")
        assert await again.read_message() == "v2"
        # A lost announcement (Redis pub/sub is at most once) is caught up with.
        async with aioredis.Redis.from_url(redis_url) as client:
            await client.hset("jp:parties", "versioned", v2.replace('"v2"', '"v3"'))
        assert await asyncio.wait_for(again.read_message(), RESYNC + 5) is None  # 1012
        again = await connect(b, "/parties/versioned/r1")
        assert await again.read_message() == "v3"
        again.close()
        # An undeploy on a removes it from b.
        assert request(a.port, "DELETE", "/party-api/parties/versioned")[0] == 200
        deadline = time.monotonic() + 10
        while request(b.port, "GET", "/parties/versioned/r2")[0] != 404:
            assert time.monotonic() < deadline, "the undeploy did not reach b"
        assert not (dirs["b"] / "versioned.py").exists()
