"""Room storage in Redis (``redis://host:port/db``): the storage API shared by a party cluster.

The semantics are SQLite's (see :mod:`.storage`): group commit, where every operation issued
during one event-loop turn runs in one batch, and a batch is one Lua script, so Redis applies
it atomically and writes it to its append-only file as one unit; ``await put`` returns once
Redis acknowledged the batch (durable to the degree Redis is configured: ``appendonly yes``
with ``appendfsync always`` is checked at start, and a warning logged otherwise).

Layout, per room ``(party, room)`` named by its JSON array ``["party","room"]``:
``jp:kv:<room>`` (hash: key → encoded value), ``jp:ix:<room>`` (sorted set of keys, all scored
0, so ``ZRANGE BYLEX`` lists them in UTF-8 byte order), and the hash ``jp:alarms``
(room → epoch ms). Values keep their encoded form with a one-byte type tag: ``j`` JSON text,
``b`` bytes.

Fencing: a room whose writes carry a fencing token (:meth:`RedisBackend.fence`) may write only
while the room's lease key ``jp:lease:<room>`` holds that token (``"<token>|<node>"``, see
:mod:`.leases`); the check runs inside the batch script, atomically with the write, so a paused
or partitioned former owner can never write after losing its lease.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from .storage import Bounds, Encoded, GroupCommitBackend, Scope

__all__ = ["PREFIX", "RedisBackend", "StaleLease", "connect", "lease_key", "room_name"]

log = logging.getLogger("jupyter_party")
T = TypeVar("T")

PREFIX = "jp:"
ALARMS = PREFIX + "alarms"

# One batch of operations, run atomically. KEYS[1] is the alarms hash; the room numbered s
# (from 1) has its data hash at KEYS[3s-1], key index at KEYS[3s] and lease at KEYS[3s+1].
# ARGV: the number of rooms, each room's name, then the operations: name, room, fencing token
# ('' = unfenced), arguments. Returns {refused operations (1-based), results}.
_BATCH = """
local nrooms = tonumber(ARGV[1])
local name = {}
for s = 1, nrooms do name[s] = ARGV[1 + s] end
local lease_cache = {}
local function current(s, token)
  if token == '' then return true end
  if lease_cache[s] == nil then
    lease_cache[s] = redis.call('GET', KEYS[3 * s + 1]) or ''
  end
  return string.match(lease_cache[s], '^[^|]*') == token
end
local refused, results = {}, {}
local a, i = 2 + nrooms, 0
while a <= #ARGV do
  local op, s, token = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  a = a + 3
  i = i + 1
  local data, index = KEYS[3 * s - 1], KEYS[3 * s]
  local result = 0
  if op == 'get' then
    local n = tonumber(ARGV[a])
    result = {}
    for j = a + 1, a + n do result[j - a] = redis.call('HGET', data, ARGV[j]) end
    a = a + 1 + n
  elseif op == 'write' then
    local nd = tonumber(ARGV[a])
    local np = tonumber(ARGV[a + 1 + nd])
    if current(s, token) then
      for j = a + 1, a + nd do
        result = result + redis.call('HDEL', data, ARGV[j])
        redis.call('ZREM', index, ARGV[j])
      end
      for j = a + 2 + nd, a + nd + 2 * np, 2 do
        redis.call('HSET', data, ARGV[j], ARGV[j + 1])
        redis.call('ZADD', index, 0, ARGV[j])
      end
    else
      table.insert(refused, i)
    end
    a = a + 2 + nd + 2 * np
  elseif op == 'scan' then
    local low, high, limit, keys = ARGV[a], ARGV[a + 1], ARGV[a + 2]
    if ARGV[a + 3] == '1' then
      keys = redis.call('ZRANGE', index, high, low, 'BYLEX', 'REV', 'LIMIT', 0, limit)
    else
      keys = redis.call('ZRANGE', index, low, high, 'BYLEX', 'LIMIT', 0, limit)
    end
    result = {}
    for _, key in ipairs(keys) do
      table.insert(result, key)
      table.insert(result, redis.call('HGET', data, key))
    end
    a = a + 4
  elseif op == 'clear' then
    if current(s, token) then redis.call('DEL', data, index) else table.insert(refused, i) end
  elseif op == 'get_alarm' then
    result = redis.call('HGET', KEYS[1], name[s])
  elseif op == 'set_alarm' then
    if not current(s, token) then
      table.insert(refused, i)
    elseif ARGV[a] == '' then
      redis.call('HDEL', KEYS[1], name[s])
    else
      redis.call('HSET', KEYS[1], name[s], ARGV[a])
    end
    a = a + 1
  elseif op == 'alarms' then
    result = redis.call('HGETALL', KEYS[1])
  end
  results[i] = result
end
return {refused, results}
"""


def connect(url: str) -> Any:
    """A ``redis.asyncio.Redis`` client for ``url``.

    A connection idle for a second is checked before use, and a command that fails on a broken
    connection is sent once more on a new one, so the first command after Redis restarted does
    not fail on a dead socket. (Should Redis have run a batch whose reply was lost, running it
    again writes the same values; only ``delete()``'s count of existing keys may differ.) A
    Redis that cannot be reached at all (a partition, not a refusal) fails a connection after
    5 s, instead of the operating system's minutes.
    """
    import redis.asyncio as redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return redis.Redis.from_url(
        url, health_check_interval=1, retry=Retry(NoBackoff(), 1), socket_connect_timeout=5
    )


def room_name(scope: Scope) -> str:
    """The room's name in Redis keys: its JSON array, unambiguous whatever the ids contain."""
    return json.dumps(list(scope), ensure_ascii=False, separators=(",", ":"))


def lease_key(scope: Scope) -> str:
    """The Redis key of the room's lease, ``"<fencing token>|<node>"`` while someone owns it."""
    return f"{PREFIX}lease:{room_name(scope)}"


class StaleLease(RuntimeError):
    """A storage write carried a fencing token that is no longer the room's lease."""

    def __init__(self, scope: Scope, token: str) -> None:
        party, room = scope
        super().__init__(
            f"storage write refused for party {party!r} room {room!r}: fencing token {token} "
            "is no longer the room's lease (this node lost it; another node may own the room)"
        )
        self.scope = scope


def _encode_value(value: Encoded) -> bytes:
    return b"b" + value if isinstance(value, bytes) else b"j" + value.encode()


def _decode_value(stored: bytes) -> Encoded:
    return stored[1:] if stored[:1] == b"b" else stored[1:].decode()


def _pairs(flat: list[bytes]) -> list[tuple[bytes, bytes]]:
    return list(zip(flat[::2], flat[1::2], strict=True))


class _Op:
    """One operation of a batch: its script arguments, and how to read its result."""

    __slots__ = ("args", "name", "read", "scope", "token")

    def __init__(
        self,
        name: str,
        scope: Scope | None,
        token: str,
        args: list[Any],
        read: Callable[[Any], Any],
    ) -> None:
        self.name, self.scope, self.token, self.args, self.read = name, scope, token, args, read


class RedisBackend(GroupCommitBackend):
    """Every room of the cluster in one Redis database; see the module docstring."""

    def __init__(self, url: str) -> None:
        super().__init__()
        try:
            import redis  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ImportError(
                "Redis storage needs the 'redis' package: pip install 'jupyter-party[redis]'"
            ) from exc
        self.url = url
        self._redis = connect(url)
        self._batch = self._redis.register_script(_BATCH)
        self._fences: dict[Scope, str] = {}
        self._checked = False

    def fence(self, scope: Scope, token: int) -> None:
        """Make the room's writes carry fencing ``token`` from now on. (A room stays fenced:
        once its lease is given up or lost, its writes fail until it claims a new one.)"""
        self._fences[scope] = str(token)

    def _op(
        self, name: str, scope: Scope | None, args: list[Any], read: Callable[[Any], T]
    ) -> asyncio.Future[T]:
        token = "" if scope is None else self._fences.get(scope, "")
        return self._submit(_Op(name, scope, token, args, read))

    async def _execute(self, ops: list[_Op]) -> list[Any]:
        if not self._checked:
            self._checked = True
            await self.check_durability()
        rooms: dict[Scope, int] = {}
        for op in ops:
            if op.scope is not None:
                rooms.setdefault(op.scope, len(rooms) + 1)
        keys = [ALARMS]
        argv: list[Any] = [len(rooms)]
        for scope in rooms:
            name = room_name(scope)
            keys += [f"{PREFIX}kv:{name}", f"{PREFIX}ix:{name}", lease_key(scope)]
            argv.append(name)
        for op in ops:
            room = 0 if op.scope is None else rooms[op.scope]
            argv += [op.name, room, op.token, *op.args]
        refused, results = await self._batch(keys=keys, args=argv)
        out = [op.read(result) for op, result in zip(ops, results, strict=True)]
        for i in refused:
            op = ops[i - 1]
            out[i - 1] = StaleLease(op.scope, op.token)
        return out

    async def check_durability(self) -> None:
        """Log a warning unless Redis keeps an fsynced append-only file (or everysec + replica).

        Acknowledged writes are only as durable as Redis makes them; managed Redis services that
        refuse CONFIG get a log line saying the setting could not be checked.
        """
        import redis

        try:
            config = await self._redis.config_get("append*")
            replicas = (await self._redis.info("replication")).get("connected_slaves", 0)
        except redis.ResponseError as exc:
            log.warning("Redis storage %s: cannot check its durability settings: %s", self.url, exc)
            return
        aof = config.get("appendonly") == "yes"
        fsync = config.get("appendfsync", "")
        if not aof or fsync == "no" or (fsync == "everysec" and not replicas):
            log.warning(
                "Redis storage %s is not configured for durability (appendonly %s, appendfsync %s, "
                "%d replicas): acknowledged room writes may be lost if Redis stops. Use "
                "'appendonly yes' and 'appendfsync always' (or 'everysec' with a replica).",
                self.url,
                "yes" if aof else "no",
                fsync,
                replicas,
            )

    # Primitives, each one operation of a batch.

    async def _read(self, scope: Scope, keys: list[str]) -> dict[str, Encoded]:
        def read(values: list[bytes | None]) -> dict[str, Encoded]:
            return {
                key: _decode_value(value)
                for key, value in zip(keys, values, strict=True)
                if value is not None
            }

        return await self._op("get", scope, [len(keys), *keys], read)

    async def _write(self, scope: Scope, puts: dict[str, Encoded], deletes: list[str]) -> int:
        args: list[Any] = [len(deletes), *deletes, len(puts)]
        for key, value in puts.items():
            args += [key, _encode_value(value)]
        return await self._op("write", scope, args, int)

    async def _scan(
        self, scope: Scope, bounds: Bounds, limit: int | None, reverse: bool
    ) -> dict[str, Encoded]:
        low, high = bounds
        args = [
            b"-" if low is None else b"[" + low,
            b"+" if high is None else b"(" + high,
            -1 if limit is None else limit,
            int(reverse),
        ]

        def read(flat: list[bytes]) -> dict[str, Encoded]:
            return {key.decode(): _decode_value(value) for key, value in _pairs(flat)}

        return await self._op("scan", scope, args, read)

    async def delete_all(self, scope: Scope) -> None:
        await self._op("clear", scope, [], lambda result: None)

    async def get_alarm(self, scope: Scope) -> float | None:
        return await self._op("get_alarm", scope, [], lambda at: None if at is None else float(at))

    async def set_alarm(self, scope: Scope, at_ms: float | None) -> None:
        at = "" if at_ms is None else repr(float(at_ms))
        await self._op("set_alarm", scope, [at], lambda result: None)

    async def alarms(self) -> list[tuple[str, str, float]]:
        def read(flat: list[bytes]) -> list[tuple[str, str, float]]:
            return [(*json.loads(name), float(at)) for name, at in _pairs(flat)]

        return await self._op("alarms", None, [], read)

    async def sync(self) -> None:
        # Batches run in order, so an empty operation completes after everything issued before it.
        await self._op("sync", None, [], lambda result: None)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._enqueue(_Op("sync", None, "", [], lambda result: None))
        finally:
            await self._redis.aclose()
