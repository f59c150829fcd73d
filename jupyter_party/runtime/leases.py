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

from typing import Any

from .redis_storage import PREFIX, lease_key, room_name
from .storage import Scope

__all__ = ["Leases"]

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

    async def renew(self, scope: Scope, token: int) -> bool:
        """Extend the lease taken with ``token`` by ``ttl``; False if it was lost meanwhile."""
        return bool(
            await self._keep(keys=[lease_key(scope)], args=[self._held(token), self._ttl_ms])
        )

    async def release(self, scope: Scope, token: int) -> None:
        """Give the lease up (the room stopped here), unless it was already lost."""
        await self._keep(keys=[lease_key(scope)], args=[self._held(token), 0])

    async def owner(self, scope: Scope) -> str | None:
        """The node owning the room now, or None."""
        held = await self._redis.get(lease_key(scope))
        return None if held is None else held.decode().split("|", 1)[1]

    def _held(self, token: int) -> str:
        return f"{token}|{self.node}"
