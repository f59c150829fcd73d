"""Room leases in Redis: one owner per room across a party cluster, with fencing tokens.

A room's lease is the key ``jp:lease:<room>`` holding ``"<token>|<node>"`` with a time to live
(``PartyApp.lease_ttl``). The node that holds it owns the room and renews it while the room
lives; a node that dies or pauses stops renewing, the key expires, and the next node to need the
room claims it. Every claim takes a new fencing token from the counter ``jp:fence:<room>``
(``INCR``: it only grows), and the room's storage writes carry it
(:meth:`.redis_storage.RedisBackend.fence`): Redis refuses a write whose token is no longer the
lease's, so a former owner can never write after losing its lease, even if it does not know yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import Elsewhere
from .redis_storage import PREFIX, RedisBackend, connect, lease_key, room_name
from .storage import Scope
from .tasks import spawn

__all__ = ["Leases", "RoomLeases"]

log = logging.getLogger("jupyter_party")

# KEYS: lease, fence counter. ARGV: node, ttl in ms. Returns the token, or the owner's lease.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held then
  local token, node = string.match(held, '^([^|]*)|(.*)$')
  if node == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, token}
  end
  return {0, held}
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. '|' .. ARGV[1], 'PX', ARGV[2])
return {1, tostring(token)}
"""

# KEYS: lease. ARGV: "<token>|<node>", ttl in ms (0: release). Returns 1 if it was still held.
_KEEP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""


class Leases:
    """This node's side of the room leases: claim, renew, release, and who owns a room."""

    def __init__(self, redis: Any, node: str, ttl: float) -> None:
        """``redis`` is a ``redis.asyncio.Redis``; ``node`` names this node (no ``|``)."""
        if "|" in node:
            raise ValueError(f"node names cannot contain '|': {node!r}")
        self.node = node
        self.ttl = ttl
        self._redis = redis
        self._claim = redis.register_script(_CLAIM)
        self._keep = redis.register_script(_KEEP)

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl * 1000))

    async def claim(self, scope: Scope) -> int | None:
        """Take the room's lease (or extend it, if this node holds it): its fencing token, or
        None when another node owns the room."""
        fence = f"{PREFIX}fence:{room_name(scope)}"
        won, value = await self._claim(
            keys=[lease_key(scope), fence], args=[self.node, self._ttl_ms]
        )
        return int(value) if won else None

    async def renew(self, held: dict[Scope, int]) -> list[Scope]:
        """Extend by ``ttl`` the leases taken with these tokens, in one round trip (a node may
        hold thousands); the rooms whose lease was lost meanwhile."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope, token in held.items():
                args = [self._held(token), self._ttl_ms]
                await self._keep(keys=[lease_key(scope)], args=args, client=pipe)
            kept = await pipe.execute()
        return [scope for scope, still in zip(held, kept, strict=True) if not still]

    async def release(self, scope: Scope, token: int) -> None:
        """Give the lease up (the room stopped here), unless it was already lost."""
        await self._keep(keys=[lease_key(scope)], args=[self._held(token), 0])

    async def owner(self, scope: Scope) -> str | None:
        """The node owning the room now, or None."""
        held = await self._redis.get(lease_key(scope))
        return None if held is None else held.decode().split("|", 1)[1]

    def _held(self, token: int) -> str:
        return f"{token}|{self.node}"


class RoomLeases:
    """The leases of the rooms live in this process, kept while they live.

    A room claims its lease before ``on_start`` (:meth:`claim`; another node's room raises
    :class:`.errors.Elsewhere`) and gives it up when it stops (:meth:`release`; claims are
    counted, so an instance replacing another one in this process keeps the lease). Every
    ``ttl / 3`` the held leases are renewed; a lease that is lost (another node took the room
    over) or that could not be renewed for a whole ``ttl`` (Redis unreachable: it has expired
    there) makes ``on_lost(party, room)`` stop the room here. Its storage writes fail from the
    moment the lease is lost, whether or not this process noticed yet (fencing).
    """

    def __init__(self, redis_url: str, node: str, ttl: float, backend: Any) -> None:
        """``backend`` must be the process's :class:`RedisBackend` (the writes to fence)."""
        if not isinstance(backend, RedisBackend):
            raise ValueError(
                "a party cluster (redis_url) needs Redis storage: a redis:// storage_url"
            )
        self._redis = connect(redis_url)
        self.leases = Leases(self._redis, node, ttl)
        self.on_lost: Callable[[str, str], Awaitable[Any]] | None = None
        self._backend = backend
        self._held: dict[Scope, tuple[int, int]] = {}  # scope -> (token, claims)
        self._renewed = time.monotonic()
        self._renewing: asyncio.Task[None] | None = None

    async def claim(self, party: str, room: str) -> None:
        """Own the room (before it starts here). Raises Elsewhere if another node does."""
        scope = (party, room)
        held = self._held.get(scope)
        if held is not None:
            self._held[scope] = (held[0], held[1] + 1)
            return
        token = await self.leases.claim(scope)
        if token is None:
            owner = await self.leases.owner(scope)
            raise Elsewhere(f"party {party!r} room {room!r} is served by node {owner!r}: try again")
        held = self._held.get(scope)  # another instance claimed it meanwhile
        self._held[scope] = (token, 1 if held is None else held[1] + 1)
        self._backend.fence(scope, token)
        if self._renewing is None:
            self._renewing = spawn(self._renew())

    async def release(self, party: str, room: str) -> None:
        """The room stopped here (its writes are done): give the lease up with its last claim."""
        scope = (party, room)
        held = self._held.get(scope)
        if held is None:
            return
        token, claims = held
        if claims > 1:
            self._held[scope] = (token, claims - 1)
            return
        del self._held[scope]
        try:
            await self.leases.release(scope, token)
        except Exception as error:  # it expires by itself
            log.warning("could not release the lease of %s/%s: %s", party, room, error)

    async def close(self) -> None:
        """Stop renewing (the rooms have stopped) and close the Redis connection."""
        if self._renewing is not None:
            self._renewing.cancel()
        await self._redis.aclose()

    async def _renew(self) -> None:
        ttl = self.leases.ttl
        while True:
            await asyncio.sleep(ttl / 3)
            started = time.monotonic()
            try:
                lost = await self.leases.renew({scope: t for scope, (t, _) in self._held.items()})
                self._renewed = started
            except Exception as error:
                if started - self._renewed < ttl:
                    log.warning("cannot renew room leases in Redis (%s); retrying", error)
                    continue
                log.error(
                    "room leases not renewed for %.0f s (%s): stopping this node's rooms",
                    started - self._renewed,
                    error,
                )
                lost = list(self._held)
            for party, room in lost:
                if (party, room) in self._held:
                    log.warning("lost the lease of %s/%s: stopping it here (1012)", party, room)
                    self._held.pop((party, room))
                    if self.on_lost is not None:
                        try:
                            await self.on_lost(party, room)
                        except Exception:
                            log.exception("stopping %s/%s after losing its lease", party, room)
