"""Share links: grants of one room at one access level, until they expire or are revoked.

Grants live in the storage backend under a scope no party can name (party names cannot
contain ':'), keyed by the token's hash; the token itself is shown once, at creation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..protocol.names import check_party_name, check_room_id
from ..protocol.tokens import ACCESS_LEVELS, new_token, same_id, token_id, well_formed
from .storage import Backend

SCOPE = ("jupyter-party:", "shares")
DEFAULT_EXPIRES_IN = 24 * 3600
MAX_EXPIRES_IN = 365 * 24 * 3600


class ShareError(Exception):
    """A share token was refused; `status` is 401 (not valid) or 403 (not for this room)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Grant:
    """What a share token grants. `id` is the token's hash; `expires` is epoch seconds."""

    id: str
    party: str
    room: str
    access: str
    expires: float
    created: float

    def public(self) -> dict[str, Any]:
        return asdict(self)


class Shares:
    """The server's share grants."""

    def __init__(
        self, backend: Backend, clock: Callable[[], float] = time.time, *, shared: bool = False
    ) -> None:
        """`shared`: other servers change the grants too (a party cluster's Redis), so they
        are read from the backend every time instead of being kept in memory."""
        self.clock = clock
        self._shared = shared
        self._backend = backend
        self._grants: dict[str, Grant] | None = None
        self._loading = asyncio.Lock()

    async def create(
        self, party: str, room: str, access: str = "write", expires_in: float = DEFAULT_EXPIRES_IN
    ) -> tuple[str, Grant]:
        """Issue a token for `(party, room)`; returns it (shown once) and its grant."""
        check_party_name(party)
        check_room_id(room)
        if access not in ACCESS_LEVELS:
            raise ValueError(f"access must be one of {ACCESS_LEVELS}, not {access!r}")
        if not 0 < expires_in <= MAX_EXPIRES_IN:
            raise ValueError(f"expires_in must be between 0 and {MAX_EXPIRES_IN} seconds")
        token, now = new_token(), self.clock()
        grant = Grant(token_id(token), party, room, access, now + expires_in, now)
        grants = await self._load()
        await self._backend.put(SCOPE, {grant.id: grant.public()})
        grants[grant.id] = grant
        return token, grant

    async def verify(self, token: str, party: str, room: str) -> Grant:
        """The grant of `token` for `(party, room)`; raises ShareError otherwise."""
        grant = None
        if well_formed(token):
            presented = token_id(token)
            grant = (await self._load()).get(presented)
            if grant is not None and not same_id(grant.id, presented):
                grant = None
        if grant is None:
            raise ShareError(401, "invalid share link")
        if self.clock() >= grant.expires:
            raise ShareError(401, "share link expired")
        if (grant.party, grant.room) != (party, room):
            raise ShareError(403, "this share link is for another room")
        return grant

    async def list(self) -> list[Grant]:
        """Grants that have not expired, oldest first."""
        now = self.clock()
        grants = (await self._load()).values()
        return sorted((g for g in grants if g.expires > now), key=lambda g: g.created)

    async def revoke(self, id: str) -> bool:
        """Forget a grant; returns False if there was none with that id."""
        grants = await self._load()
        if grants.pop(id, None) is None:
            return False
        await self._backend.delete(SCOPE, [id])
        return True

    async def _load(self) -> dict[str, Grant]:
        async with self._loading:
            if self._grants is None or self._shared:
                stored = await self._backend.list(SCOPE)
                self._grants = {key: Grant(**value) for key, value in stored.items()}
        return self._grants
