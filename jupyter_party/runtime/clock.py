"""`Clock`: where the runtime's own timers come from (alarms and their retries, idle eviction,
`on_start` backoff, YServer's debounced saves).

A server uses `SystemClock`, the event loop's timers. The test kit (jupyter_party.testing)
plugs in `ManualClock`, whose time only moves when a test calls `advance`, so an hour of
idle timeout or a day-away alarm is tested in no time. Wall-clock readings (`time.time()`,
what party code uses to compute an alarm's time) are never faked.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol


class Timer(Protocol):
    """A scheduled callback."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time and timers on it."""

    def monotonic(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer: ...


class SystemClock:
    """The real time, and the running event loop's timers."""

    def monotonic(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback, *args)


class _ManualTimer:
    __slots__ = ("args", "callback", "cancelled", "due")

    def __init__(self, due: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.due, self.callback, self.args, self.cancelled = due, callback, args, False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that stands still until `advance` moves it; timers due by then fire in order.

    A timer with no delay (an alarm in the past, an idle timeout of 0) fires on the next loop
    turn, as with the system clock.
    """

    def __init__(self) -> None:
        self._now = 0.0
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        if delay <= 0:
            return asyncio.get_running_loop().call_soon(callback, *args)
        timer = _ManualTimer(self._now + delay, callback, args)
        heapq.heappush(self._timers, (timer.due, next(self._order), timer))
        return timer

    def advance(self, seconds: float) -> int:
        """Move time forward by `seconds`, firing in order every timer due by then (and any
        a fired callback sets within that span); returns how many fired. What the callbacks
        start (an `on_alarm`, a room's shutdown) runs on the event loop afterwards."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        until, fired = self._now + seconds, 0
        while self._timers and self._timers[0][0] <= until:
            due, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self._now = max(self._now, due)
                timer.callback(*timer.args)
                fired += 1
        self._now = until
        return fired

    def pending(self) -> list[float]:
        """Seconds from now until each armed timer fires, soonest first."""
        return sorted(t.due - self._now for _, _, t in self._timers if not t.cancelled)
