"""Where jupyter-party's memory per idle connection goes: tracemalloc, by allocation site.

    python benchmarks/memprofile.py [N]

Starts `jupyter party serve --workers 0` (rooms in the server process, which holds the
sockets) with PYTHONTRACEMALLOC=1 (slow: for attribution, not for figures), opens N idle
connections to one room and prints the allocation sites that grew, in bytes per connection.
The RSS figures come from `run.py` (scenario idle_1k).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import Load
from run import ServerProcess


async def probe(server: ServerProcess, n: int) -> dict:
    load = Load({"port": server.port, "prefix": "/parties/bcast/", "headers": server.headers})
    control = Load({"port": server.port, "prefix": "/parties/memprobe/", "headers": server.headers})
    ctl = await control.connect("probe")

    async def ask(what: str) -> dict:
        got = asyncio.get_running_loop().create_future()
        ctl.on_frames = lambda c, p: got.done() or got.set_result(p[0])
        ctl.send(what.encode())
        return json.loads(await asyncio.wait_for(got, 60))

    first = await load.connect("idle")  # the room exists before the snapshot
    first.send(b"x")
    await asyncio.sleep(0.5)
    await ask("snap")
    await load.connect_many(["idle"] * n, 32)
    await asyncio.sleep(1.0)
    result = await ask("diff")
    load.close_all()
    control.close_all()
    return result


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        # The probe party reads the heap of the process it runs in: with rooms in the server
        # process (workers = 0), that is the one holding the sockets. (With workers, each
        # connection also costs its worker under 1 KB: see README.md, scenario idle_1k.)
        server = ServerProcess("jupyter-party-inproc", "bcast", Path(tmp))
        server.env["PYTHONTRACEMALLOC"] = "1"
        try:
            server.start()
            result = asyncio.run(probe(server, n))
        finally:
            server.stop()
    if "error" in result:
        sys.exit(result["error"])
    print(f"{n} connections: Python heap grew {result['total_kb'] / n:.2f} KB per connection")
    print(f"{'B/conn':>8} {'objs/conn':>10}  allocation site")
    for row in result["top"]:
        print(f"{row['kb'] * 1024 / n:8.0f} {row['count'] / n:10.1f}  {row['where']}")


if __name__ == "__main__":
    main()
