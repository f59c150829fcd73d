"""Party "memprobe": tracemalloc snapshots of the server process, for benchmarks/memprofile.py.

Only useful when the server runs with PYTHONTRACEMALLOC set. "snap" takes a snapshot; "diff"
answers with the top allocation sites (by line) grown since, as JSON.
"""

import gc
import json
import tracemalloc

from jupyter_party import Server

_snapshots: list[tracemalloc.Snapshot] = []


class Memprobe(Server):
    def on_message(self, message, sender):
        if not tracemalloc.is_tracing():
            sender.send(json.dumps({"error": "start the server with PYTHONTRACEMALLOC=N"}))
            return
        gc.collect()
        if message == "snap":
            _snapshots[:] = [tracemalloc.take_snapshot()]
            sender.send(json.dumps({"ok": True}))
        elif message == "diff" and _snapshots:
            now = tracemalloc.take_snapshot()
            stats = now.compare_to(_snapshots[0], "lineno")
            top = [
                {"where": str(s.traceback[0]), "kb": s.size_diff / 1024, "count": s.count_diff}
                for s in stats[:25]
            ]
            total = sum(s.size_diff for s in stats)
            sender.send(json.dumps({"total_kb": total / 1024, "top": top}))
