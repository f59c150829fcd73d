"""Redis storage and leases against a real redis-server: fencing, durability, Redis restarts."""

import asyncio
import contextlib
import logging
import signal
import time

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from jupyter_party.runtime.leases import Leases
from jupyter_party.runtime.redis_storage import RedisBackend, StaleLease, lease_key
from jupyter_party.runtime.storage import open_backend

pytest_plugins = ["redis_support"]  # its fixtures: redis_server, redis_url

SCOPE = ("chat", "lobby")
OTHER = ("chat", "hall")


@contextlib.asynccontextmanager
async def opened(url):
    backend = open_backend(url)
    try:
        yield backend
    finally:
        with contextlib.suppress(RedisConnectionError):
            await backend.close()


@contextlib.asynccontextmanager
async def node(url, name, ttl=10.0):
    """One node's side of the cluster: its leases and its storage backend."""
    client = aioredis.Redis.from_url(url)
    try:
        async with opened(url) as backend:
            yield Leases(client, name, ttl), backend
    finally:
        await client.aclose()


async def wait_for(condition, timeout=10.0):
    """Await `condition()` until it is true (the condition itself waits on Redis)."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"


async def test_open_backend_gives_redis(redis_url):
    async with opened(redis_url) as backend:
        assert isinstance(backend, RedisBackend)


async def test_one_owner_per_room_and_tokens_only_grow(redis_url):
    async with node(redis_url, "a") as (a, _), node(redis_url, "b") as (b, _):
        first = await a.claim(SCOPE)
        assert first is not None
        assert await b.claim(SCOPE) is None
        assert await a.claim(SCOPE) == first  # the holder extends its own lease
        assert await a.owner(SCOPE) == "a"
        assert await b.claim(OTHER) is not None  # other rooms are independent
        assert await b.renew({SCOPE: first}) == [SCOPE]  # lost (never b's)
        await b.release(SCOPE, first)  # not b's lease: nothing happens
        assert await a.owner(SCOPE) == "a"
        await a.release(SCOPE, first)
        assert await a.owner(SCOPE) is None
        second = await b.claim(SCOPE)
        assert second > first
        assert await a.renew({SCOPE: first, OTHER: 0}) == [SCOPE, OTHER]


async def test_lease_expires_unless_renewed(redis_url):
    async with node(redis_url, "a", ttl=1.0) as (a, _), node(redis_url, "b") as (b, _):
        token = await a.claim(SCOPE)
        started = time.monotonic()
        for _ in range(3):  # renewing keeps it past its ttl
            assert await a.renew({SCOPE: token}) == []
            assert await b.claim(SCOPE) is None
        await wait_for(lambda: b.claim(SCOPE))
        assert time.monotonic() - started >= 1.0
        assert await a.owner(SCOPE) == "b"
        assert await a.renew({SCOPE: token}) == [SCOPE]


async def test_a_stale_fencing_token_cannot_write(redis_url):
    async with node(redis_url, "a", ttl=0.2) as (a, store_a), node(redis_url, "b") as (b, store_b):
        token_a = await a.claim(SCOPE)
        store_a.fence(SCOPE, token_a)
        await store_a.put(SCOPE, {"k": "from a"})
        await store_a.set_alarm(SCOPE, 1000)
        # a pauses past its lease; b takes the room over and writes.
        await wait_for(lambda: b.claim(SCOPE))
        store_b.fence(SCOPE, await b.claim(SCOPE))
        await store_b.put(SCOPE, {"k": "from b"})
        # a's writes of that room fail (all kinds), in the same batch as a write of another,
        # unfenced room, which succeeds.
        results = await asyncio.gather(
            store_a.put(SCOPE, {"k": "late", "other": 1}),
            store_a.delete(SCOPE, ["k"]),
            store_a.delete_all(SCOPE),
            store_a.set_alarm(SCOPE, None),
            store_a.put(OTHER, {"fine": True}),
            return_exceptions=True,
        )
        assert all(isinstance(r, StaleLease) for r in results[:4]), results
        assert "fencing token" in str(results[0]) and "'lobby'" in str(results[0])
        assert results[4] is None
        assert await store_a.list(SCOPE) == {"k": "from b"}  # reads still work
        assert await store_b.get_alarm(SCOPE) == 1000
        assert await store_b.get(OTHER, ["fine"]) == {"fine": True}
        # A lease that merely expired (nobody took it over) refuses the writes too.
        await store_b.sync()
        async with aioredis.Redis.from_url(redis_url) as client:
            await client.delete(lease_key(SCOPE))
        with pytest.raises(StaleLease):
            await store_b.put(SCOPE, {"k": "after expiry"})


async def test_group_commit(redis_url):
    async with opened(redis_url) as backend:
        before = backend.commits
        await asyncio.gather(*(backend.put(SCOPE, {f"k{i}": i}) for i in range(200)))
        assert backend.commits - before <= 2
        assert len(await backend.list(SCOPE)) == 200


async def test_durability_warning(redis_url, new_redis, caplog):
    caplog.set_level(logging.WARNING, "jupyter_party")
    async with opened(redis_url) as backend:  # appendonly yes, appendfsync always
        await backend.put(SCOPE, {"k": 1})
    assert "durability" not in caplog.text
    async with opened(new_redis(appendonly=False).url) as backend:
        await backend.put(SCOPE, {"k": 1})
    assert "is not configured for durability (appendonly no" in caplog.text


async def test_acknowledged_writes_survive_a_redis_crash_and_the_backend_recovers(new_redis):
    server = new_redis()
    async with opened(server.url) as backend:
        acked, enough = [], asyncio.Event()

        async def writer():
            i = 0
            while True:
                await backend.put(SCOPE, {f"k{i}": i})
                acked.append(i)
                if i == 200:
                    enough.set()
                i += 1

        task = asyncio.ensure_future(writer())
        await asyncio.wait_for(enough.wait(), 10)
        server.stop(signal.SIGKILL)  # kill -9 while writes are in flight
        with pytest.raises(RedisConnectionError):
            await task  # the writer sees a clear error, not a silent ack
        with pytest.raises(RedisConnectionError):
            await backend.put(SCOPE, {"down": True})
        server.start()  # same port, same append-only file
        stored = await backend.get(SCOPE, [f"k{i}" for i in acked])
        assert stored == {f"k{i}": i for i in acked}
        await backend.put(SCOPE, {"after": True})  # the same backend works again
        assert await backend.get(SCOPE, ["after", "down"]) == {"after": True}
