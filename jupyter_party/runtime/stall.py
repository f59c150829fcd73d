"""Steps of party code: each is timed, and the one running is published for the watchdog.

Party code runs on its process's event loop; while it computes (or calls `time.sleep`) nothing
else in that process runs. Each synchronous call of a hook, and each step of an async hook
(from one `await` that suspends to the next), is one step. A step longer than
`Limits.stall_warning` seconds is logged as a warning on "jupyter_party":

    party 'stall' room 'r': on_message blocked the event loop for 0.31 s

In a worker process, `begin` also writes the step to the worker's `Board` (shared memory), so
the supervisor can name the party, room and hook of a step that never ends.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Generator
from time import perf_counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .board import Board

log = logging.getLogger("jupyter_party")


class Steps:
    """Times steps of party code against `warning` seconds (0: no warnings)."""

    __slots__ = ("board", "warning")

    def __init__(self, warning: float, board: Board | None = None) -> None:
        self.warning = warning
        self.board = board

    def begin(self, party: str, room: str, hook: str) -> float:
        if self.board is not None:
            self.board.begin(party, room, hook)
        return perf_counter()

    def end(self, start: float, party: str, room: str, hook: str) -> None:
        if self.board is not None:
            self.board.end()
        elapsed = perf_counter() - start
        if elapsed > self.warning > 0:
            log.warning(
                "party %r room %r: %s blocked the event loop for %.2f s", party, room, hook, elapsed
            )

    def timed(self, value: Any, party: str, room: str, hook: str) -> Awaitable[Any] | Any:
        """`value` stepped through `Timed` if it is a coroutine."""
        if inspect.iscoroutine(value):
            return Timed(self, value, party, room, hook)
        return value

    async def run(
        self, party: str, room: str, hook: str, fn: Callable[..., Any], *args: Any
    ) -> Any:
        """Call hook `fn(*args)` and await its result if it is awaitable, step by step."""
        start = self.begin(party, room, hook)
        try:
            result = fn(*args)
        finally:
            self.end(start, party, room, hook)
        if inspect.isawaitable(result):
            return await self.timed(result, party, room, hook)
        return result


class Timed:
    """Awaits `coroutine`, one timed step at a time."""

    __slots__ = ("_coroutine", "_hook", "_party", "_room", "_steps")

    def __init__(self, steps: Steps, coroutine: Any, party: str, room: str, hook: str) -> None:
        self._steps = steps
        self._coroutine = coroutine
        self._party, self._room, self._hook = party, room, hook

    def __await__(self) -> Generator[Any, Any, Any]:
        steps = self._coroutine.__await__()
        clock = self._steps
        where = (self._party, self._room, self._hook)
        value: Any = None
        error: BaseException | None = None
        while True:
            start = clock.begin(*where)
            try:
                yielded = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as stop:
                return stop.value
            finally:
                clock.end(start, *where)
            try:
                value, error = (yield yielded), None
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as thrown:  # e.g. CancelledError: pass it to the coroutine
                value, error = None, thrown
