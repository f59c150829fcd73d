"""Room alarms: persisted, fired at least once, retried with exponential backoff (DESIGN §5).

The alarm row stays in storage until a run of `on_alarm` succeeds, so a server that dies before
or during the handler fires it again after restart. An evicted room is recreated to run it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import Overloaded

if TYPE_CHECKING:
    from .host import Host

log = logging.getLogger("jupyter_party")

RETRIES = 6


class AlarmClock:
    """Timers for every room's alarm."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._running: set[asyncio.Task[None]] = set()

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
            # `alarm_retry_base` seconds before the first retry; doubles each time.
            delay = self._host.limits.alarm_retry_base * 2 ** (attempt - 1)
        loop = asyncio.get_running_loop()
        self._timers[party, room] = loop.call_later(delay, self._fire, party, room, at_ms, attempt)

    def stop(self) -> None:
        """Disarm every timer and cancel running handlers (server shutdown)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._running:
            task.cancel()

    def _fire(self, party: str, room: str, at_ms: float, attempt: int) -> None:
        del self._timers[party, room]
        task = asyncio.ensure_future(self._run(party, room, at_ms, attempt))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, party: str, room_id: str, at_ms: float, attempt: int) -> None:
        backend = self._host.backend
        try:
            room = self._host.acquire(party, room_id)
        except KeyError as error:  # the party is gone; its alarm can never run
            log.error("alarm of %s/%s dropped: %s", party, room_id, error)
            await backend.set_alarm((party, room_id), None)
            return
        except Overloaded:  # no room for it now (max_rooms): try again later
            self.schedule(party, room_id, at_ms, min(attempt + 1, RETRIES))
            return
        try:
            await room.alarm()
        except Exception:
            if attempt < RETRIES:
                self.schedule(party, room_id, at_ms, attempt + 1)
                return
            log.error("alarm of %s/%s dropped after %d retries", party, room_id, RETRIES)
        finally:
            self._host.release(room)
        # Done (or given up): clear it, unless the handler set a new one meanwhile.
        if await backend.get_alarm((party, room_id)) == at_ms:
            await backend.set_alarm((party, room_id), None)
