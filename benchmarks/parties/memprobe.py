"""Party "memprobe": the heap of the process it runs in, for benchmarks/memprofile.py.

"snap" takes a tracemalloc snapshot; "diff" answers with the top allocation sites (by line)
grown since, as JSON (only with PYTHONTRACEMALLOC set). "gc" starts counting the cyclic
garbage collector's runs; "gc-stats" answers with them since: per generation, runs, CPU
seconds and objects found unreachable (each was in a reference cycle).
"""

import gc
import json
import time
import tracemalloc

from jupyter_party import Server

_snapshots: list[tracemalloc.Snapshot] = []
_collector = {"runs": [0, 0, 0], "cpu_s": [0.0, 0.0, 0.0], "unreachable": [0, 0, 0]}
_started: list[float] = [0.0]


def _count(phase, info):
    if phase == "start":
        _started[0] = time.process_time()
        return
    generation = info["generation"]
    _collector["runs"][generation] += 1
    _collector["cpu_s"][generation] += time.process_time() - _started[0]
    _collector["unreachable"][generation] += info["collected"]


class Memprobe(Server):
    def on_message(self, message, sender):
        if message == "gc":
            for values in _collector.values():
                values[:] = [0] * 3
            if _count not in gc.callbacks:
                gc.callbacks.append(_count)
            sender.send(json.dumps({"ok": True}))
            return
        if message == "gc-stats":
            sender.send(json.dumps(_collector))
            return
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
