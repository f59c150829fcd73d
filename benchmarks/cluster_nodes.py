"""Two nodes of a party cluster on a fresh redis-server: run.py's `jupyter-party-cluster2`.

Usage: python cluster_nodes.py '{"ports": [A, B], "workdir": DIR}'

Starts redis-server (without persistence: the scenarios measure relays, not Redis's disk),
node b, then node a (`jupyter party serve --redis`, each in its own process group, so that one
can be killed alone), and writes their pids and ports to DIR/nodes.json. SIGUSR1 replaces
node a, which the takeover scenario kills each round, by a fresh one; SIGTERM stops all.
The measured process tree is this launcher's: Redis and both nodes count.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from run import TOKEN, free_port, party_command

SIGNALS = {signal.SIGUSR1, signal.SIGTERM}
LEASE_TTL = 10.0  # PartyApp.lease_ttl's default


def _unblocked() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_unblocked,
        )  # fmt: skip


def node(name: str, port: int, redis_url: str, workdir: Path) -> subprocess.Popen[bytes]:
    argv = party_command(port, redis_url)
    argv += ["--redis", redis_url, f"--PartyApp.node_name={name}"]
    return start(argv, workdir / f"node-{name}.log")


def wait_ready(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {TOKEN}"}
    )
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"node on port {port} not ready after {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
            return


def main(spec: dict) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # handled below, one at a time
    workdir = Path(spec["workdir"])
    port_a, port_b = spec["ports"]
    redis_port = free_port()
    redis = start(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        workdir / "redis.log",
    )  # fmt: skip
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    b = node("b", port_b, redis_url, workdir)
    wait_ready(port_b)
    processes = [redis, b]
    for generation in range(1_000_000):
        a = node(f"a{generation}", port_a, redis_url, workdir)
        processes.append(a)
        wait_ready(port_a)
        nodes = [{"pid": a.pid, "port": port_a}, {"pid": b.pid, "port": port_b}]
        state = {"generation": generation, "nodes": nodes, "lease_ttl": LEASE_TTL}
        (workdir / "nodes.json.tmp").write_text(json.dumps(state))
        (workdir / "nodes.json.tmp").replace(workdir / "nodes.json")
        if signal.sigwait(SIGNALS) == signal.SIGTERM:
            break
        stop(a)  # killed already by the takeover scenario: reaped here
    for process in reversed(processes):
        stop(process)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
