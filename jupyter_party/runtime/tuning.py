"""How jupyter-party's own processes run: `jupyter party serve` and the party workers (never a
Jupyter server the extension is a guest in, nor a kernel hosting a party).

- `serve`'s event loop is uvloop's when it is installed: less CPU per socket event. The
  workers stay on asyncio's: on uvloop, a redeploy closing 5,000 sockets took twice as long
  (1.6 s against 0.8 s), for no measurable gain in connects.
- The garbage collector is set for a long-running server. CPython's cyclic collector runs after
  every 700 net container allocations; every tenth run walks the middle generation, and from
  time to time the whole heap. A started server holds a large heap that lives as long as the
  process (Jupyter's modules, classes and app), and each connect allocates a few dozen
  containers that die young: with the defaults the collector took about 100 µs of a 0.7 ms
  connect, most of it walking that permanent heap again and again. Once started, that
  heap is frozen out of the collector's walks, and young collections come ten times less
  often (a connect's objects are freed by reference counting: the socket layer makes no
  cycles).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc

#: Net container allocations between two young collections (CPython's default: 700).
YOUNG_THRESHOLD = 7000


def fast_event_loop() -> None:
    """Make the event loops created from now on uvloop's, if it is installed."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def settle_heap() -> None:
    """Call once the process has started: collect, freeze what is left (it stays for the
    process's life), and space out the young collections."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
