"""Event-loop stall detection: warn when one synchronous step of a party hook is too long.

A party handler runs on the server's event loop; while it computes (or calls `time.sleep`)
nothing else in the process runs. Each synchronous call of a hook, and each step of an async
hook (from one `await` that suspends to the next), is timed with two `perf_counter()` calls;
a step longer than `Limits.stall_warning` seconds is logged as a warning on "jupyter_party":

    party 'stall' room 'r': on_message blocked the event loop for 0.31 s
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Generator
from time import perf_counter
from typing import Any

log = logging.getLogger("jupyter_party")


def report(party: str, room: str, hook: str, elapsed: float) -> None:
    log.warning(
        "party %r room %r: %s blocked the event loop for %.2f s", party, room, hook, elapsed
    )


class Timed:
    """Awaits `coroutine`, timing each of its steps; slow ones are reported."""

    __slots__ = ("_coroutine", "_hook", "_party", "_room", "_threshold")

    def __init__(self, coroutine: Any, threshold: float, party: str, room: str, hook: str) -> None:
        self._coroutine = coroutine
        self._threshold = threshold
        self._party, self._room, self._hook = party, room, hook

    def __await__(self) -> Generator[Any, Any, Any]:
        steps = self._coroutine.__await__()
        threshold = self._threshold
        value: Any = None
        error: BaseException | None = None
        while True:
            start = perf_counter()
            try:
                yielded = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as stop:
                self._check(start, threshold)
                return stop.value
            except BaseException:
                self._check(start, threshold)
                raise
            self._check(start, threshold)
            try:
                value, error = (yield yielded), None
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as thrown:  # e.g. CancelledError: pass it to the coroutine
                value, error = None, thrown

    def _check(self, start: float, threshold: float) -> None:
        elapsed = perf_counter() - start
        if elapsed > threshold:
            report(self._party, self._room, self._hook, elapsed)


def timed(value: Any, threshold: float, party: str, room: str, hook: str) -> Awaitable[Any] | Any:
    """`value` wrapped in `Timed` if it is a coroutine and stall warnings are on."""
    if threshold > 0 and inspect.iscoroutine(value):
        return Timed(value, threshold, party, room, hook)
    return value


async def run(
    threshold: float, party: str, room: str, hook: str, fn: Callable[..., Any], *args: Any
) -> Any:
    """Call hook `fn(*args)` and await its result if it is awaitable, timing every step."""
    start = perf_counter()
    try:
        result = fn(*args)
    finally:
        elapsed = perf_counter() - start
        if elapsed > threshold > 0:
            report(party, room, hook, elapsed)
    if inspect.isawaitable(result):
        return await timed(result, threshold, party, room, hook)
    return result
