"""Where jupyter-party's memory per idle connection goes: tracemalloc, by allocation site.

    python benchmarks/memprofile.py [N]
    python benchmarks/memprofile.py --churn SECONDS
    python benchmarks/memprofile.py --gc N

Starts `jupyter party serve --workers 0` (rooms in the server process, which holds the
sockets) with PYTHONTRACEMALLOC=1 (slow: for attribution, not for figures), opens N idle
connections to one room and prints the allocation sites that grew, in bytes per connection.
The RSS figures come from `run.py` (scenario idle_1k). With `--churn`, the churn scenario's
sessions run for SECONDS instead (a third of it as warm-up, before the snapshot), and the
sites that grew are shown in bytes per session: what a leak is made of. With `--gc`, no
tracemalloc: N connections are opened (64 at a time) and closed, three times, and the cyclic
garbage collector's work in the server process is shown per connection (runs, CPU, objects
it found in reference cycles).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import Client, Load
from run import ServerProcess, y_update


async def ask(ctl: Client, what: str) -> dict:
    """Send `what` to the memprobe party; its JSON answer."""
    got = asyncio.get_running_loop().create_future()
    ctl.on_frames = lambda c, p: got.done() or got.set_result(p[0])
    ctl.send(what.encode())
    return json.loads(await asyncio.wait_for(got, 60))


async def probe(server: ServerProcess, n: int, churn: float = 0.0) -> dict:
    load = Load({"port": server.port, "prefix": "/parties/bcast/", "headers": server.headers})
    control = Load({"port": server.port, "prefix": "/parties/memprobe/", "headers": server.headers})
    ctl = await control.connect("probe")

    if churn:
        spec = {
            "port": server.port,
            "prefix": "/parties/bcast/",
            "y_prefix": "/parties/ydoc/",
            "y_update": y_update().hex(),
            "headers": server.headers,
            "concurrency": 8,
            "sample_s": 5,
            "warmup_s": 0,
        }
        await Load({**spec, "seconds": churn / 3}).churn()  # warm-up
        await ask(ctl, "snap")
        sessions = (await Load({**spec, "seconds": churn * 2 / 3}).churn())["sessions"]
        await asyncio.sleep(1.0)
    else:
        first = await load.connect("idle")  # the room exists before the snapshot
        first.send(b"x")
        await asyncio.sleep(0.5)
        await ask(ctl, "snap")
        await load.connect_many(["idle"] * n, 32)
        await asyncio.sleep(1.0)
        sessions = n
    result = await ask(ctl, "diff")
    load.close_all()
    control.close_all()
    return {**result, "n": sessions}


async def collector(server: ServerProcess, n: int, rounds: int = 3) -> dict:
    """The collector's work in the server process while `rounds` times `n` connections open
    (64 at a time) into one room and close."""
    load = Load({"port": server.port, "prefix": "/parties/bcast/", "headers": server.headers})
    control = Load({"port": server.port, "prefix": "/parties/memprobe/", "headers": server.headers})
    ctl = await control.connect("probe")

    await ask(ctl, "gc")
    for _ in range(rounds):
        await load.connect_many(["idle"] * n, 64)
        load.close_all()
        await asyncio.sleep(1.0)  # the server lets them go
    stats = await ask(ctl, "gc-stats")
    control.close_all()
    return {**stats, "n": n * rounds}


def main() -> None:
    if sys.argv[1:2] == ["--gc"]:
        with tempfile.TemporaryDirectory() as tmp:
            server = ServerProcess("jupyter-party-inproc", "bcast", Path(tmp))
            try:
                server.start()
                stats = asyncio.run(collector(server, int(sys.argv[2])))
            finally:
                server.stop()
        n = stats["n"]
        print(f"{n} connections opened and closed; the cyclic collector, per connection:")
        print(f"{'generation':>10} {'runs':>8} {'CPU µs':>8} {'unreachable objects':>20}")
        for g in range(3):
            runs, cpu, found = (stats[k][g] for k in ("runs", "cpu_s", "unreachable"))
            print(f"{g:>10} {runs / n:8.3f} {cpu * 1e6 / n:8.1f} {found / n:20.2f}")
        return
    churn = float(sys.argv[2]) if sys.argv[1:2] == ["--churn"] else 0.0
    n = int(sys.argv[1]) if len(sys.argv) > 1 and not churn else 1000
    with tempfile.TemporaryDirectory() as tmp:
        # The probe party reads the heap of the process it runs in: with rooms in the server
        # process (workers = 0), that is the one holding the sockets. (With workers, each
        # connection also costs its worker under 1 KB: see README.md, scenario idle_1k.)
        server = ServerProcess("jupyter-party-inproc", "bcast", Path(tmp))
        server.env["PYTHONTRACEMALLOC"] = "1"
        try:
            server.start()
            result = asyncio.run(probe(server, n, churn))
        finally:
            server.stop()
    if "error" in result:
        sys.exit(result["error"])
    n, unit = result["n"], "session" if churn else "connection"
    print(f"{n} {unit}s: Python heap grew {result['total_kb'] * 1024 / n:.2f} B per {unit}")
    print(f"{'B/' + unit:>12} {'objs/' + unit:>14}  allocation site")
    for row in result["top"]:
        print(f"{row['kb'] * 1024 / n:12.2f} {row['count'] / n:14.4f}  {row['where']}")


if __name__ == "__main__":
    main()
