"""The party test kit, used as a party author would: only `jupyter_party.testing`."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from pycrdt import Text

from jupyter_party import Response, Server, YServer
from jupyter_party.testing import (
    ConnectionClosed,
    HandshakeRejected,
    YClient,
    party_host,
    party_room,
)


class Probe(Server):
    """Records its events; answers a few commands."""

    instances = 0

    async def on_start(self):
        Probe.instances += 1
        self.instance = Probe.instances
        self.events = ["on_start"]
        gate = self.room.env.get("gate")
        if gate is not None:  # a test holds on_start open
            self.room.env["starting"].set()
            await gate.wait()
        self.events.append("started")

    def get_connection_tags(self, connection, ctx):
        return [ctx.request.query["role"]] if "role" in ctx.request.query else []

    def on_connect(self, connection, ctx):
        self.events.append(f"on_connect:{connection.id}")
        connection.set_state({"name": ctx.request.query.get("name"), "seen": 0})
        connection.send({"type": "welcome", "instance": self.instance, "user": ctx.user.username})

    async def on_message(self, message, sender):
        self.events.append(f"on_message:{sender.id}:{message}")
        command, _, argument = message.partition(":")
        if command == "shout":
            self.room.broadcast(f"{sender.id}: {argument}", without=[sender.id])
            sender.send("shouted")
        elif command == "count":
            sender.send(str(len(self.room.get_connections(argument or None))))
        elif command == "seen":
            state = sender.set_state(lambda s: {**s, "seen": s["seen"] + 1})
            sender.send(state)
        elif command == "remind":
            await self.room.storage.set_alarm(time.time() * 1000 + float(argument) * 1000)
        elif command == "kick":
            sender.close(4000, "kicked")
        elif command == "fail":
            raise RuntimeError("boom")
        elif command == "note":
            logging.getLogger("probe").warning("noted %s", argument)

    def on_close(self, connection, code, reason):
        self.events.append(f"on_close:{connection.id}:{code}")

    async def on_alarm(self):
        self.events.append("on_alarm")
        fired = (await self.room.storage.get("alarms") or 0) + 1
        await self.room.storage.put("alarms", fired)
        if fired <= self.room.env.get("failing_alarms", 0):
            raise RuntimeError("alarm failed")
        self.room.broadcast({"type": "alarm", "fired": fired})

    def on_request(self, request):
        if request.path == "/events":
            return self.events
        return {"path": request.path, "method": request.method, "body": request.json()}


class Ledger(Server):
    """Storage and transactions through HTTP."""

    async def on_request(self, request):
        storage = self.room.storage
        if request.method == "POST":
            entry = request.json()
            if entry.get("fail"):
                try:
                    async with storage.transaction() as txn:
                        await txn.put(entry["key"], entry["value"])
                        raise ValueError("abandoned")
                except ValueError:
                    return Response.json({"rolled_back": True}, 409)
            async with storage.transaction() as txn:
                total = await txn.get("total") or 0
                await txn.put({entry["key"]: entry["value"], "total": total + entry["value"]})
            return {"total": total + entry["value"]}
        return dict(await storage.list())


class Gated(Server):
    """Refuses strangers with its own HTTP answer; its on_connect may raise."""

    @staticmethod
    def on_before_connect(request, lobby):
        if request.query.get("key") == "wrong":
            return Response("go away", 403)
        return None

    def on_connect(self, connection, ctx):
        if ctx.request.query.get("explode"):
            raise ValueError("no entry")


class Notes(YServer):
    persistence = "snapshot"

    def on_custom_message(self, connection, message):
        if message == "stamp":
            self.document.get("text", type=Text).insert(0, "[server] ")


@pytest.fixture(autouse=True)
def _fresh_probe():
    Probe.instances = 0


async def test_connect_message_close_in_order():
    async with party_room(Probe, "lobby") as room:
        alice = await room.connect(id="alice", query={"name": "A"})
        assert await alice.recv_json() == {"type": "welcome", "instance": 1, "user": "user"}
        await alice.send("seen")
        assert await alice.recv_json() == {"name": "A", "seen": 1}
        await alice.close()
        assert alice.closed
        response = await room.fetch("/events")
        assert response.status == 200
        assert response.json() == [
            "on_start",
            "started",
            "on_connect:alice",
            "on_message:alice:seen",
            "on_close:alice:1000",
        ]


async def test_on_start_finishes_before_any_event():
    env = {"gate": asyncio.Event(), "starting": asyncio.Event()}
    async with party_room(Probe, "slow", env=env) as room:
        connecting = asyncio.ensure_future(room.connect(id="early"))
        fetching = asyncio.ensure_future(room.fetch("/events"))
        await asyncio.wait_for(env["starting"].wait(), 5)
        done, _ = await asyncio.wait({connecting, fetching}, timeout=0.05)
        assert not done  # both wait at the room's gate
        env["gate"].set()
        early = await connecting
        assert (await early.recv_json())["type"] == "welcome"
        assert (await fetching).json()[:2] == ["on_start", "started"]
        assert room.server.events[:3] == ["on_start", "started", "on_connect:early"]


async def test_broadcast_without_the_sender_and_tags():
    async with party_room(Probe, "tags") as room:
        alice = await room.connect(id="alice", query={"role": "admin"})
        bob = await room.connect(id="bob", query={"role": "guest"})
        carol = await room.connect(id="carol", query={"role": "guest"})
        for client in (alice, bob, carol):
            await client.recv_json()
        await alice.send("shout:hello")
        assert await alice.recv() == "shouted"  # and not its own shout, which came first
        assert await bob.recv() == "alice: hello"
        assert await carol.recv() == "alice: hello"
        await bob.send("count:guest")
        assert await bob.recv() == "2"
        await bob.send("count:admin")
        assert await bob.recv() == "1"
        await bob.send("count:carol")  # an id is a tag too
        assert await bob.recv() == "1"


async def test_state_belongs_to_each_connection():
    async with party_room(Probe, "state") as room:
        first = await room.connect(id="same", query={"name": "one"})
        await first.recv()
        for seen in (1, 2):
            await first.send("seen")
            assert await first.recv_json() == {"name": "one", "seen": seen}
        second = await room.connect(id="same", query={"name": "two"})
        await second.recv()
        await second.send("seen")
        assert await second.recv_json() == {"name": "two", "seen": 1}


async def test_close_codes_and_refusals():
    async with party_host({"probe": Probe, "gated": Gated}, max_message_size=100) as host:
        probe = host.room("probe", "codes")
        client = await probe.connect(id="c")
        await client.recv()
        await client.send("kick")
        assert await client.closed_with() == (4000, "kicked")
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.code == 4000

        big = await probe.connect()
        await big.recv()
        await big.send("x" * 101)
        assert (await big.closed_with())[0] == 1009

        failing = await probe.connect(id="f")
        await failing.recv()
        await failing.send("fail")  # a handler error keeps the connection open
        await failing.send("seen")
        assert (await failing.recv_json())["seen"] == 1
        assert any("on_message raised" in r.text and "boom" in r.text for r in probe.log)
        await failing.send("note:this")
        await failing.send("seen")
        await failing.recv()
        assert ("log", "WARNING noted this") in [(r.kind, r.text) for r in probe.log]

        refused = await host.connect("gated", "g", query={"explode": "1"})
        assert refused.close_code == 1011 and "no entry" in refused.close_reason
        with pytest.raises(HandshakeRejected) as rejected:
            await host.connect("gated", "g", query={"key": "wrong"})
        assert rejected.value.response.status == 403
        assert rejected.value.response.text() == "go away"
        stranger = await host.connect("gated", "g", user=None)
        assert stranger.close_code == 4401
        unknown = await host.connect("nope", "g")
        assert unknown.close_code == 4404


class Plain(Server):
    """No hooks but `on_message`, unless an instance is given its own in `__init__`."""

    def __init__(self, room):
        super().__init__(room)
        self.left = []
        if room.id == "own":  # hooks of the instance, not of the class: they run too
            self.on_start = lambda: setattr(self, "started", True)
            self.on_connect = lambda connection, ctx: connection.send("hello")
            self.on_close = lambda connection, code, reason: self.left.append(connection.id)
        if room.id == "broken":
            raise RuntimeError("no instance today")

    def on_message(self, message, sender):
        sender.send(f"{getattr(self, 'started', False)}:{message}:{','.join(self.left)}")


async def test_hooks_a_party_leaves_alone_are_skipped_its_own_run():
    async with party_host({"plain": Plain}) as host:
        plain = await host.connect("plain", "bare")  # starts at once, no on_start to wait for
        await plain.send("x")
        assert await plain.recv() == "False:x:"
        own = await host.connect("plain", "own", id="a")
        assert await own.recv() == "hello"
        gone = await host.connect("plain", "own", id="b")
        assert await gone.recv() == "hello"
        await gone.close()
        await own.send("y")
        assert await own.recv() == "True:y:b"
        broken = await host.connect("plain", "broken")  # its instance failed: refused
        assert broken.close_code == 1011 and "no instance today" in broken.close_reason


async def test_recv_fails_clearly_when_nothing_comes():
    async with party_room(Probe, "quiet") as room:
        client = await room.connect(id="q")
        await client.recv()
        with pytest.raises(TimeoutError, match=r"'q' to probe/quiet.*nothing came"):
            await client.recv(timeout=0.05)


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
async def test_storage_transactions_and_restart(storage, tmp_path):
    url = "memory://" if storage == "memory" else f"sqlite:///{tmp_path / 'rooms.db'}"
    async with party_room(Ledger, "books", storage=url) as room:
        assert (await room.fetch(method="POST", json={"key": "a", "value": 2})).json() == {
            "total": 2
        }
        assert (await room.fetch(method="POST", json={"key": "b", "value": 3})).json() == {
            "total": 5
        }
        failed = await room.fetch(method="POST", json={"key": "c", "value": 9, "fail": True})
        assert failed.status == 409
        await room.restart()
        assert (await room.fetch()).json() == {"a": 2, "b": 3, "total": 5}
        assert await room.storage.get("c") is None


async def test_alarms_fire_on_the_fake_clock():
    async with party_room(Probe, "alarms") as room:
        alice = await room.connect(id="alice")
        await alice.recv()
        await alice.send("remind:3600")
        await alice.send("seen")  # handled after the alarm is set
        await alice.recv()
        assert room.clock.advance(3590) == 0
        assert await room.storage.get_alarm() is not None
        assert room.clock.advance(10) == 1
        assert await alice.recv_json() == {"type": "alarm", "fired": 1}
        with pytest.raises(LookupError):
            await room.run_alarm()  # done: the alarm was cleared

        await alice.send("remind:86400")
        await alice.send("seen")
        await alice.recv()
        await room.run_alarm()  # a day early, on demand
        assert await alice.recv_json() == {"type": "alarm", "fired": 2}
        assert await room.storage.get_alarm() is None


async def test_a_failing_alarm_is_retried_with_backoff():
    async with party_room(Probe, "retry", env={"failing_alarms": 2}) as room:
        watcher = await room.connect()
        await watcher.recv()
        await watcher.send("remind:0")  # due now: fires without advancing the clock
        await _until(lambda: room.clock.pending() == [2.0])  # it failed: retried in 2 s
        assert room.clock.advance(2) == 1
        await _until(lambda: room.clock.pending() == [4.0])  # failed again: then in 4 s
        room.clock.advance(4)
        assert await watcher.recv_json() == {"type": "alarm", "fired": 3}
        assert sum("on_alarm raised" in r.text for r in room.log) == 2


async def test_idle_rooms_are_evicted_on_the_fake_clock():
    async with party_room(Probe, "idle", room_idle_timeout=300) as room:
        client = await room.connect(id="a")
        assert (await client.recv_json())["instance"] == 1
        await client.close()
        room.clock.advance(299)
        assert room.live
        room.clock.advance(1)
        assert not room.live
        again = await room.connect(id="a")
        assert (await again.recv_json())["instance"] == 2  # a new instance: on_start again


async def test_an_alarm_wakes_an_evicted_room():
    async with party_room(Probe, "wake", room_idle_timeout=10) as room:
        client = await room.connect()
        await client.recv()
        await client.close()
        await room.storage.set_alarm(time.time() * 1000 + 60_000)
        room.clock.advance(10)
        assert not room.live
        room.clock.advance(50)
        await _until(lambda: room.server is not None and "on_alarm" in room.server.events)
        assert room.server.instance == 2
        assert await room.storage.get("alarms") == 1


async def test_yserver_with_two_pycrdt_clients():
    async with party_room(Notes, "doc") as room:
        alice = await YClient(await room.connect(id="alice")).sync()
        bob = await YClient(await room.connect(id="bob")).sync()
        await alice.edit(lambda doc: doc.get("text", type=Text).insert(0, "hello"))
        await bob.until(lambda: str(bob.doc.get("text", type=Text)) == "hello")
        await bob.set_awareness(bob.doc.client_id, 1, {"name": "Bob"})
        await alice.until(lambda: alice.states.get(bob.doc.client_id) == {"name": "Bob"})
        await bob.socket.send("__YPS:stamp")
        await alice.until(lambda: str(alice.doc.get("text", type=Text)) == "[server] hello")
        await room.restart()  # persisted as a snapshot
        carol = await YClient(await room.connect(id="carol")).sync()
        assert str(carol.doc.get("text", type=Text)) == "[server] hello"


async def test_rooms_call_each_other_in_one_host():
    class Caller(Server):
        async def on_request(self, request):
            other = self.room.context.parties["probe"].get("target")
            response = await other.fetch("/events")
            return {"status": response.status, "events": json.loads(response.body)}

    async with party_host({"caller": Caller, "probe": Probe}) as host:
        answer = await host.fetch("caller", "c1")
        assert answer.json() == {"status": 200, "events": ["on_start", "started"]}


async def test_the_pytest_plugin_offers_the_kit(party_room, party_host):
    async with party_room(Probe, "plugin") as room:
        client = await room.connect(id="p")
        assert (await client.recv_json())["type"] == "welcome"
    async with party_host({"probe": Probe}) as host:
        assert (await host.fetch("probe", "plugin", "/events")).json() == ["on_start", "started"]


async def _until(predicate, timeout: float = 5.0) -> None:
    """Let the event loop run until `predicate()` holds (work that a fired timer started)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0)
