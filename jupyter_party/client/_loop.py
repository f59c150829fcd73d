"""Event-loop helpers of the clients: the background loop that blocking clients
(`doc_blocking`, `connect_blocking`) run on, and waiting for the first of several events."""

from __future__ import annotations

import asyncio
import threading

_background: asyncio.AbstractEventLoop | None = None
_background_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """One daemon thread running an event loop, started on first use and shared by clients."""
    global _background
    with _background_lock:
        if _background is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="jupyter-party-client", daemon=True
            )
            thread.start()
            _background = loop
        return _background


def client_loop() -> asyncio.AbstractEventLoop:
    """The loop clients run on: this thread's running loop (a kernel's), else the background
    loop."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return background_loop()


async def wait_first(*events: asyncio.Event) -> None:
    """Wait until any of `events` is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
