"""`Host`: every live room of one server process, created on demand and evicted when idle.

The host knows nothing of Jupyter or Tornado's web layer: the extension, the standalone server
and (later) a worker process all drive the same Host.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from . import partylog
from .alarms import AlarmClock
from .errors import Overloaded
from .http import Request, Response
from .partylog import PartyLogs
from .registry import Registry
from .room import Room
from .shares import Shares
from .storage import Backend, open_backend
from .stubs import Parties
from .tasks import spawn

log = logging.getLogger("jupyter_party")

GOING_AWAY = 1001
UNAUTHENTICATED = 4401
SERVICE_RESTART = 1012


@dataclass
class Limits:
    """The limits of DESIGN §10, in bytes and seconds."""

    max_message_size: int = 1 << 20
    max_connections_per_room: int = 32768
    max_rooms: int = 10000
    room_idle_timeout: float = 60.0
    send_buffer_limit: int = 4 << 20
    ping_interval: float = 30.0
    ping_timeout: float = 30.0
    rate_limit_messages: float = 100.0
    rate_limit_burst: int = 200
    rate_limit_bytes: int = 1 << 20
    rate_limit_window: float = 3.0
    rate_limit_strikes: int = 3
    awareness_rate: float = 10.0
    awareness_burst: int = 20
    stall_warning: float = 0.1
    alarm_retry_base: float = 2.0  # seconds before the first alarm retry; doubles each time


class Host:
    """Rooms by `(party, id)`: the same pair always reaches the same live instance."""

    def __init__(
        self,
        registry: Registry,
        storage_url: str,
        limits: Limits | None = None,
        env: dict[str, Any] | None = None,
    ) -> None:
        self.registry = registry
        self.limits = limits or Limits()
        self.env = env or {}
        self.backend: Backend = open_backend(storage_url)
        self.alarms = AlarmClock(self)
        self.shares = Shares(self.backend)
        self.logs = PartyLogs()
        partylog.install()
        self.parties = Parties(self)
        self.rooms: dict[tuple[str, str], Room] = {}
        self._idle: dict[Room, asyncio.TimerHandle] = {}
        self._started = False

    async def start(self) -> None:
        """Arm the alarms persisted by earlier runs. Idempotent."""
        if self._started:
            return
        self._started = True
        for party, room, at_ms in await self.backend.alarms():
            self.alarms.schedule(party, room, at_ms)

    def acquire(self, party: str, room_id: str) -> Room:
        """The room `(party, room_id)`, created on demand, held until `release`.

        Raises KeyError (UnknownParty) for an unknown party and Overloaded past `max_rooms`.
        """
        room = self.rooms.get((party, room_id))
        if room is None:
            server_class = self.registry.get(party)
            if len(self.rooms) >= self.limits.max_rooms:
                raise Overloaded(f"too many rooms: the limit is {self.limits.max_rooms}")
            room = self.rooms[party, room_id] = Room(self, party, server_class, room_id)
        timer = self._idle.pop(room, None)
        if timer is not None:
            timer.cancel()
        room.leases += 1
        return room

    def release(self, room: Room) -> None:
        """End a hold taken with `acquire`; the last one starts the idle countdown."""
        room.leases -= 1
        if room.leases == 0 and self.rooms.get((room.party, room.id)) is room:
            delay = self.limits.room_idle_timeout
            self._idle[room] = asyncio.get_running_loop().call_later(delay, self._evict, room)

    def discard(self, room: Room) -> None:
        """Forget a room (it failed to start); the next event creates a new instance."""
        if self.rooms.get((room.party, room.id)) is room:
            del self.rooms[room.party, room.id]
        timer = self._idle.pop(room, None)
        if timer is not None:
            timer.cancel()

    async def request(self, party: str, room_id: str, request: Request) -> Response:
        """Deliver an HTTP request to a room."""
        room = self.acquire(party, room_id)
        try:
            return await room.request(request)
        finally:
            self.release(room)

    async def revoke_share(self, id: str) -> bool:
        """Revoke a share grant and close every socket opened with it."""
        revoked = await self.shares.revoke(id)
        for room in list(self.rooms.values()):
            for connection in room.get_connections():
                if connection.share_id == id:
                    connection.close(UNAUTHENTICATED, "share link revoked")
        return revoked

    async def evict(self, party: str, room_id: str) -> bool:
        """Stop a live room now (its clients reconnect to a fresh instance); storage is kept.
        Returns False if no such room is live."""
        room = self.rooms.get((party, room_id))
        if room is None:
            return False
        self.discard(room)
        await room.stop(SERVICE_RESTART, "room evicted")
        return True

    async def reload(self, party: str) -> int:
        """After a redeploy: stop the party's live rooms (their clients are told to reconnect
        with 1012) so the next event runs the new code; storage is kept. Returns how many
        connections were closed."""
        rooms = [room for (name, _), room in self.rooms.items() if name == party]
        closed = sum(len(room.get_connections()) for room in rooms)
        for room in rooms:
            self.discard(room)
        await asyncio.gather(*(room.stop(SERVICE_RESTART, "party redeployed") for room in rooms))
        return closed

    def describe(self) -> list[dict[str, Any]]:
        """Live rooms with their connection counts and last activity (epoch seconds)."""
        return [
            {
                "party": party,
                "room": room_id,
                "connections": len(room.get_connections()),
                "last_activity": room.last_activity,
            }
            for (party, room_id), room in sorted(self.rooms.items())
        ]

    async def close(self) -> None:
        """Close every connection, stop alarms, let rooms finish, flush storage (shutdown)."""
        self.alarms.stop()
        rooms = list(self.rooms.values())
        for timer in self._idle.values():
            timer.cancel()
        self._idle.clear()
        self.rooms.clear()
        await asyncio.gather(*(room.stop(GOING_AWAY, "server shutting down") for room in rooms))
        await self.backend.close()

    def _evict(self, room: Room) -> None:
        self._idle.pop(room, None)
        if room.leases == 0:
            self.discard(room)
            spawn(room.stop())
            log.debug("evicted idle room %s/%s", room.party, room.id)
