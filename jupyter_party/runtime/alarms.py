"""Room alarms: persisted, fired at least once, retried with exponential backoff.

The alarm row stays in storage until a run of `on_alarm` succeeds, so a process that dies before
or during the handler fires it again after restart. An evicted room is recreated to run it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .clock import Clock, SystemClock, Timer
from .errors import Overloaded, RoomError

if TYPE_CHECKING:
    from .room import Room
    from .storage import Backend

log = logging.getLogger("jupyter_party")

RETRIES = 6


class Rooms(Protocol):
    """How the clock reaches a room: the host's holds."""

    def acquire(self, party: str, room_id: str) -> Room: ...

    def release(self, room: Room) -> None: ...


class AlarmClock:
    """Timers for every room's alarm; a failing `on_alarm` is retried after `retry_base`
    seconds, doubling each time."""

    def __init__(
        self,
        rooms: Rooms,
        backend: Backend,
        retry_base: float = 2.0,
        clock: Clock | None = None,
        clustered: bool = False,
    ) -> None:
        """`clustered`: other nodes of a party cluster may run the rooms' alarms too."""
        self.retry_base = retry_base
        self._clustered = clustered
        self._clock = clock or SystemClock()
        self._rooms = rooms
        self._backend = backend
        self._timers: dict[tuple[str, str], Timer] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._firing: set[tuple[str, str]] = set()  # rooms whose alarm runs now

    async def arm_persisted(self, owns: Callable[[str, str], bool]) -> None:
        """Arm the persisted alarms of the rooms `owns` accepts, unless they have a timer or
        run now: at start, and in a party cluster again and again, for the alarms set on
        other nodes (which fire here if their node is gone)."""
        for party, room, at_ms in await self._backend.alarms():
            key = (party, room)
            if owns(party, room) and key not in self._timers and key not in self._firing:
                self.schedule(party, room, at_ms)

    def watcher(self, party: str, room: str) -> Callable[[float | None], None]:
        """The callback a room's storage calls after its alarm was set or deleted."""
        return lambda at_ms: self.schedule(party, room, at_ms)

    def schedule(self, party: str, room: str, at_ms: float | None, attempt: int = 0) -> None:
        """(Re)arm the timer of `(party, room)` for `at_ms` (epoch ms); None disarms it."""
        timer = self._timers.pop((party, room), None)
        if timer is not None:
            timer.cancel()
        if at_ms is None:
            return
        delay = max(0.0, at_ms / 1000 - time.time())
        if attempt:
            delay = self.retry_base * 2 ** (attempt - 1)
        self._timers[party, room] = self._clock.call_later(
            delay, self._fire, party, room, at_ms, attempt
        )

    async def run_now(self, party: str, room: str) -> bool:
        """Fire the alarm of `(party, room)` now, as its timer would, and wait for `on_alarm`
        (a failure is retried as usual). Returns False if the room has no alarm set."""
        at_ms = await self._backend.get_alarm((party, room))
        if at_ms is None:
            return False
        timer = self._timers.pop((party, room), None)
        if timer is not None:
            timer.cancel()
        await self._run(party, room, at_ms, 0)
        return True

    def stop(self) -> None:
        """Disarm every timer and cancel running handlers (shutdown)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._running:
            task.cancel()

    def _fire(self, party: str, room: str, at_ms: float, attempt: int) -> None:
        del self._timers[party, room]
        self._firing.add((party, room))
        task = asyncio.ensure_future(self._run(party, room, at_ms, attempt))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(lambda _: self._firing.discard((party, room)))

    async def _run(self, party: str, room_id: str, at_ms: float, attempt: int) -> None:
        backend = self._backend
        # In a party cluster, another node may have run and cleared it meanwhile.
        if self._clustered and await backend.get_alarm((party, room_id)) != at_ms:
            return
        try:
            room = self._rooms.acquire(party, room_id)
        except KeyError as error:  # the party is gone; its alarm can never run
            log.error("alarm of %s/%s dropped: %s", party, room_id, error)
            await backend.set_alarm((party, room_id), None)
            return
        except (Overloaded, RoomError):  # no room for it now, or it cannot start: later
            self.schedule(party, room_id, at_ms, min(attempt + 1, RETRIES))
            return
        try:
            await room._alarm()
        except Overloaded:  # the room did not start here (party cluster): later
            self.schedule(party, room_id, at_ms, min(attempt + 1, RETRIES))
            return
        except Exception:
            if attempt < RETRIES:
                self.schedule(party, room_id, at_ms, attempt + 1)
                return
            log.error("alarm of %s/%s dropped after %d retries", party, room_id, RETRIES)
        finally:
            self._rooms.release(room)
        # Done (or given up): clear it, unless the handler set a new one meanwhile.
        if await backend.get_alarm((party, room_id)) == at_ms:
            await backend.set_alarm((party, room_id), None)
