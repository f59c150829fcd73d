"""`Host`: the live rooms of one process, created on demand and evicted when idle.

The host knows nothing of sockets or processes: the session (session.py) drives it, in a
worker process or, with `workers = 0`, in the server process itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..protocol.codes import CloseCode
from .alarms import AlarmClock
from .clock import Clock, SystemClock, Timer
from .errors import Overloaded, RoomError
from .leases import RoomLeases
from .limits import Limits
from .partylog import LogSink
from .registry import Registry
from .room import Members, Room, RoomServices
from .stall import Steps
from .storage import Backend
from .stubs import Parties
from .tasks import spawn

log = logging.getLogger("jupyter_party")

#: Seconds between two warnings of rooms refused past `max_rooms` (a crowd would flood the log).
REFUSALS_REPORTED_EVERY = 60.0
#: Longest pause before a room whose `on_start` keeps failing is tried again.
MAX_START_BACKOFF = 60.0

__all__ = ["Host", "Limits"]


class Host:
    """Rooms by `(party, id)`: the same pair always reaches the same live instance."""

    def __init__(
        self,
        registry: Registry,
        backend: Backend,
        limits: Limits,
        *,
        members: Members,
        logs: LogSink,
        parties: Parties,
        steps: Steps | None = None,
        env: dict[str, Any] | None = None,
        owns: Callable[[str, str], bool] = lambda party, room: True,
        clock: Clock | None = None,
        leases: RoomLeases | None = None,
    ) -> None:
        self.registry = registry
        self.clock = clock = clock or SystemClock()
        self.limits = limits
        self.backend = backend
        self.alarms = AlarmClock(
            self, backend, limits.alarm_retry_base, clock, clustered=leases is not None
        )
        self.rooms: dict[tuple[str, str], Room] = {}
        self._logs = logs
        self._owns = owns
        self._services = RoomServices(
            env=lambda party: {**(env or {}), **registry.env_file(party)},
            backend=backend,
            limits=limits,
            logs=logs,
            steps=steps or Steps(limits.stall_warning),
            members=members,
            parties=parties,
            alarm_watcher=self.alarms.watcher,
            discard=self.discard,
            clock=clock,
            leases=leases,
        )
        self.leases = leases
        if leases is not None:
            leases.on_lost = self._lease_lost
        self._idle: dict[Room, Timer] = {}
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}  # start failures, retry at
        self._handles = 0
        self._refused, self._refused_reported = 0, -REFUSALS_REPORTED_EVERY  # past max_rooms
        self._started = False
        self._adopting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Arm the alarms persisted by earlier runs for the rooms this host owns. Idempotent."""
        if self._started:
            return
        self._started = True
        await self.alarms.arm_persisted(self._owns)
        if self.leases is not None:
            self._adopting = spawn(self._adopt_alarms(self.leases.leases.ttl))

    async def _adopt_alarms(self, every: float) -> None:
        """Party cluster: arm the alarms other nodes set since, every `every` seconds, so an
        alarm whose node died still fires (at least once) here."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.alarms.arm_persisted(self._owns)
            except Exception as error:
                log.warning("cannot read the party cluster's alarms from Redis: %s", error)

    def acquire(self, party: str, room_id: str) -> Room:
        """The room `(party, room_id)`, created on demand, held until `release`.

        Raises UnknownParty (a KeyError), Overloaded past `max_rooms`, and RoomError while a
        room whose `on_start` keeps failing waits for its next try.
        """
        room = self.rooms.get((party, room_id))
        if room is None:
            server_class = self.registry.get(party)
            if len(self.rooms) >= self.limits.max_rooms:
                self._report_refusal()
                raise Overloaded(f"too many rooms: the limit is {self.limits.max_rooms}")
            self._check_backoff(party, room_id)
            self._handles += 1
            room = Room(self._services, party, server_class, room_id, self._handles)
            self.rooms[party, room_id] = room
            room._started.add_done_callback(lambda _: self._started_or_failed(room))
        timer = self._idle.pop(room, None)
        if timer is not None:
            timer.cancel()
        room._leases += 1
        return room

    def _report_refusal(self) -> None:
        """Tell the operator that new rooms are refused (clients only see 1013 / 503): the
        first refusal at once, then how many, at most once per REFUSALS_REPORTED_EVERY."""
        self._refused += 1
        now = self.clock.monotonic()
        if now - self._refused_reported >= REFUSALS_REPORTED_EVERY:
            log.warning(
                "refused %d new room(s): %d rooms are live, the limit (max_rooms)",
                self._refused,
                len(self.rooms),
            )
            self._refused, self._refused_reported = 0, now

    def release(self, room: Room) -> None:
        """End a hold taken with `acquire`; the last one starts the idle countdown."""
        room._leases -= 1
        if room._leases == 0 and self.rooms.get((room.party, room.id)) is room:
            delay = self.limits.room_idle_timeout
            self._idle[room] = self.clock.call_later(delay, self._evict, room)

    def discard(self, room: Room) -> None:
        """Forget a room (it failed to start, or broke); the next event makes a new instance."""
        if self.rooms.get((room.party, room.id)) is room:
            del self.rooms[room.party, room.id]
        timer = self._idle.pop(room, None)
        if timer is not None:
            timer.cancel()

    async def evict(self, party: str, room_id: str, reason: str = "room evicted") -> bool:
        """Stop a live room now (its clients reconnect to a fresh instance); storage is kept.
        Returns False if no such room is live."""
        room = self.rooms.get((party, room_id))
        if room is None:
            return False
        self.discard(room)
        await room._stop(CloseCode.SERVICE_RESTART, reason)
        return True

    async def reload(self, party: str, reason: str = "party redeployed") -> int:
        """After a redeploy (or removal): stop the party's live rooms (their clients are told
        to reconnect with 1012) so the next event runs the new code; storage is kept. Returns
        how many connections were closed."""
        rooms = [room for (name, _), room in self.rooms.items() if name == party]
        closed = sum(len(room.get_connections()) for room in rooms)
        for room in rooms:
            self.discard(room)
        restart = CloseCode.SERVICE_RESTART
        await asyncio.gather(*(room._stop(restart, reason) for room in rooms))
        self._failures = {key: v for key, v in self._failures.items() if key[0] != party}
        return closed

    def describe(self) -> list[dict[str, Any]]:
        """Live rooms with their connection counts and last activity (epoch seconds), and in a
        party cluster the node that owns them (this one)."""
        node = {} if self.leases is None else {"node": self.leases.leases.node}
        return [
            {
                "party": party,
                "room": room_id,
                **node,
                "connections": len(room.get_connections()),
                "last_activity": room._last_activity,
                **room._traffic.public(),
            }
            for (party, room_id), room in sorted(self.rooms.items())
        ]

    async def close(
        self, code: int = CloseCode.GOING_AWAY, reason: str = "server shutting down"
    ) -> None:
        """Close every connection, stop alarms, let rooms finish, flush storage (shutdown)."""
        if self._adopting is not None:
            self._adopting.cancel()
        self.alarms.stop()
        rooms = list(self.rooms.values())
        for timer in self._idle.values():
            timer.cancel()
        self._idle.clear()
        self.rooms.clear()
        await asyncio.gather(*(room._stop(code, reason) for room in rooms))
        if self.leases is not None:
            await self.leases.close()
        await self.backend.close()

    async def _lease_lost(self, party: str, room_id: str) -> None:
        reason = "another node of the party cluster took this room over"
        await self.evict(party, room_id, reason)

    def _evict(self, room: Room) -> None:
        self._idle.pop(room, None)
        if room._leases == 0:
            self.discard(room)
            spawn(room._stop())
            log.debug("evicted idle room %s/%s", room.party, room.id)

    # -- rooms whose on_start fails: tried again at once, then after 1, 2, 4, ... s ---------

    def _check_backoff(self, party: str, room_id: str) -> None:
        failures, retry_at = self._failures.get((party, room_id), (0, 0.0))
        wait = retry_at - self.clock.monotonic()
        if wait > 0:
            raise RoomError(
                f"on_start of party {party!r} room {room_id!r} failed {failures} times in a "
                f"row; next try in {wait:.0f} s"
            )

    def _started_or_failed(self, room: Room) -> None:
        key = (room.party, room.id)
        if room._failure is None or isinstance(room._failure, Overloaded):  # not its code
            self._failures.pop(key, None)
            return
        failures = self._failures.get(key, (0, 0.0))[0] + 1
        backoff = 0.0 if failures == 1 else min(2.0 ** (failures - 2), MAX_START_BACKOFF)
        self._failures[key] = (failures, self.clock.monotonic() + backoff)
        if backoff:
            self._logs.record(
                room.party,
                room.id,
                "error",
                f"on_start failed {failures} times in a row: next try in {backoff:.0f} s",
            )
