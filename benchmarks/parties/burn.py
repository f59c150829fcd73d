"""Party "burn": each message costs ~2 ms of pure Python, then the room gets a reply.

Used by the `cpu` scenario (party code that is CPU-bound, spread over many rooms): with
`workers = 2` two rooms' handlers can run at once, with `workers = 1` they queue in one process.
The work is a fixed number of loop iterations (`JP_BENCH_BURN_LOOPS`, calibrated once by
benchmarks/run.py to ~2 ms and given to every server alike), not a wait on a clock: a loop
that spins until the wall clock says 2 ms would finish early whenever the process is
descheduled, and would hide contention for the cores.
"""

import os

from jupyter_party import Server

LOOPS = int(os.environ.get("JP_BENCH_BURN_LOOPS", "20000"))


def burn(loops: int) -> int:
    """Integer arithmetic in a Python loop: holds the GIL, no I/O, no sleeping."""
    x = 0
    for i in range(loops):
        x = (x * 31 + i) & 0xFFFFF
    return x


class Burn(Server):
    def on_message(self, message, sender):
        burn(LOOPS)
        self.room.broadcast(message)  # the reply: every connection of the room gets it
