"""Party "ydochist": a CRDT room with `history` persistence (its update log is compacted into
one snapshot past `history_max_bytes`, here each MB), timing each compaction for the bigdoc
scenario: `GET {base}parties/ydochist/{room}` answers ``{"compactions_ms": [...]}``."""

import time

from jupyter_party import YServer

COMPACTIONS_MS: list[float] = []  # in the worker that hosts the rooms


class Ydochist(YServer):
    persistence = "history"
    history_max_bytes = 1_000_000  # a compaction per MB typed: the last one is of the whole

    async def _compact(self):  # instrumented: the time of the package's own compaction
        started = time.perf_counter()
        await super()._compact()
        COMPACTIONS_MS.append(round((time.perf_counter() - started) * 1000, 1))

    def on_request(self, request):
        return {"compactions_ms": COMPACTIONS_MS}
