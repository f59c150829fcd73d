"""jupyter-party's benchmark suite: the same load against jupyter-party and its baselines.

    python -m benchmarks.run [--quick] [--only SCENARIO ...] [--servers NAME ...]
                             [--json PATH] [--no-install] [--profile]

Sets up what it needs on first run (`npm ci` in benchmarks/node for `ws` and `partykit`;
`pip install` of pycrdt-websocket, websockets and uvloop into this interpreter's environment),
then, per scenario: starts each server fresh (its process tree pinned to core 0, or to both
cores for the `cpu` scenario), runs the load generator (benchmarks/loadgen.py, pinned to core
1) against it, stops it; scenarios with `interleaved_rounds` start all their servers first and
measure them in turn, round after round. Prints a table, the ratios of jupyter-party
(`workers = 1`, the default) against each baseline and each of its variants (`workers = 0`,
`workers = 2`) and the issues' targets; writes JSON.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NODE_DIR = HERE / "node"
BASELINES = HERE / "baselines"
TOKEN = "benchmark-token"
PIP_NEEDS = {  # module -> requirement
    "pycrdt.websocket": "pycrdt-websocket==0.16.5",
    "websockets": "websockets>=14",
    "uvloop": "uvloop",
}

# -- scenarios ---------------------------------------------------------------------------------

BCAST = ("jupyter-party", "tornado-naive", "node-ws", "partykit-dev")
CLUSTER = "jupyter-party-cluster2"
# jupyter-party's variants: the main one is `jupyter-party` (workers = 1, the default).
# name -> `--workers` (None: not given, the default, 1 worker process).
PARTY_VARIANTS: dict[str, int | None] = {
    "jupyter-party": None,
    "jupyter-party-inproc": 0,  # rooms in the server process itself: no isolation
    "jupyter-party-workers2": 2,
    CLUSTER: None,  # two nodes of a party cluster on one redis-server (cluster_nodes.py)
}
# ... and jupyter-party without isolation: what the worker boundary costs
BCAST_INPROC = (*BCAST, "jupyter-party-inproc")
SERVER_CORES, LOADGEN_CORE = "0", "1"
BURN_MS = 2.0  # the cpu scenario's work per message
# Servers of these scenarios run at once and are measured in turn, round after round (see
# run_interleaved): what else runs on the machine then weighs on each alike.
ROUNDS3, ROUNDS1 = {"interleaved_rounds": 3}, {"interleaved_rounds": 1}


@dataclass
class Scenario:
    name: str
    what: str
    loadgen: str  # Load method in loadgen.py
    party: str  # jupyter-party's party for it
    servers: tuple[str, ...]
    full: dict[str, Any]
    quick: dict[str, Any]
    metric: str  # the headline figure
    higher_is_better: bool = True
    timeout: float = 900.0
    extra: tuple[str, ...] = field(default=())  # secondary figures shown in the table
    server_cores: str = SERVER_CORES  # taskset -c for the server's process tree
    quick_servers: tuple[str, ...] | None = None  # with --quick, if not `servers`
    # Before each measurement, wait up to this many seconds for the rest of the machine to
    # be quiet (see wait_for_quiet); figures taken on a busy machine are flagged.
    quiet_wait: float = 0.0


def storm(name: str, what: str, how: dict[str, str], extra: tuple[str, ...] = ()) -> Scenario:
    """A reconnect storm scenario (loadgen.py `storm`): `how` is its event and client policy."""
    return Scenario(
        name,
        what,
        "storm",
        "bcast",
        ("jupyter-party",),
        {"clients": 5000, "timeout": 90, **how},
        {"clients": 30, "timeout": 60, **how},
        "all_back_s",
        higher_is_better=False,
        extra=("p50_back_s", "p99_back_s", "reconnect_attempts", "lost", *extra),
    )


SCENARIOS = [
    Scenario(
        "fanout_1",
        "fan-out: 1 sender blasts 2,000 x 64 B to 100 receivers, 3 rounds",
        "fanout",
        "bcast",
        BCAST_INPROC,
        {"receivers": 100, "senders": 1, "messages": 2000, "rounds": 1, "timeout": 60, **ROUNDS3},
        {"receivers": 5, "senders": 1, "messages": 20, "rounds": 1, "timeout": 20, **ROUNDS1},
        "deliveries_per_s",
        extra=("loadgen_cpu_pct", "server_cpu_pct", "others_cpu_pct", "spread_pct"),
    ),
    Scenario(
        "idle_1k",
        "idle memory: 1,000 connections in one room",
        "idle",
        "bcast",
        BCAST,
        {"connections": 1000},
        {"connections": 20},
        "kb_per_connection",
        higher_is_better=False,
        extra=("children_kb_per_connection", "rss_before_mb", "rss_after_mb", "connect_per_s"),
    ),
    Scenario(
        "coldstart",
        "room cold start: 1,000 new rooms (connect, message, echo), 50 at a time",
        "coldstart",
        "bcast",
        BCAST_INPROC,
        {"rooms": 1000, "concurrency": 50},
        {"rooms": 20, "concurrency": 5},
        "rooms_per_s",
        extra=("p50_ms", "p99_ms", "loadgen_cpu_pct", "server_cpu_pct"),
    ),
    Scenario(
        "paced",
        "paced latency: 1 sender at 50 msg/s to 100 receivers (5,000 deliveries/s), 5 s x 3",
        "paced",
        "bcast",
        BCAST_INPROC,
        {"receivers": 100, "rate": 50, "seconds": 5, **ROUNDS3},
        {"receivers": 5, "rate": 50, "seconds": 0.5, **ROUNDS1},
        "p99_ms",
        higher_is_better=False,
        extra=("p50_ms", "max_ms", "loadgen_cpu_pct", "server_cpu_pct", "others_cpu_pct"),
    ),
    Scenario(
        "crdt",
        "CRDT: 1 client sends 1,000 Yjs updates into a room of 100 clients (apply + fan-out)",
        "crdt",
        "ydoc",
        ("jupyter-party", "pycrdt-websocket"),
        {"receivers": 100, "updates": 1000, "rounds": 3, "timeout": 90},
        {"receivers": 5, "updates": 20, "rounds": 1, "timeout": 20},
        "deliveries_per_s",
        extra=("updates_per_s", "loadgen_cpu_pct", "server_cpu_pct", "spread_pct"),
    ),
    Scenario(
        "fanout_10",
        "fan-out: 10 senders blast 200 x 64 B each to 100 receivers, 3 rounds",
        "fanout",
        "bcast",
        BCAST_INPROC,
        {"receivers": 100, "senders": 10, "messages": 200, "rounds": 1, "timeout": 60, **ROUNDS3},
        {"receivers": 5, "senders": 2, "messages": 10, "rounds": 1, "timeout": 20, **ROUNDS1},
        "deliveries_per_s",
        extra=("loadgen_cpu_pct", "server_cpu_pct", "others_cpu_pct", "spread_pct"),
    ),
    Scenario(
        "idle_10k",
        "idle memory: 10,000 connections in one room, one process",
        "idle",
        "bcast",
        BCAST,
        {"connections": 10000},
        {"connections": 30},
        "kb_per_connection",
        higher_is_better=False,
        extra=("children_kb_per_connection", "rss_before_mb", "rss_after_mb", "connect_per_s"),
    ),
    Scenario(
        "idle_10k_y",
        "idle memory: 10,000 connections in one Y room (each got the server's sync step 1)",
        "idle",
        "ydoc",
        ("jupyter-party", "y-websocket"),
        {"connections": 10000, "y": True},
        {"connections": 30, "y": True},
        "kb_per_connection",
        higher_is_better=False,
        extra=("children_kb_per_connection", "rss_before_mb", "rss_after_mb", "connect_per_s"),
    ),
    Scenario(
        "storage",
        "storage: 100 clients in 10 rooms put a key and wait for the durable ack, 5 s (SQLite)",
        "storage",
        "store",
        ("jupyter-party",),
        {"clients": 100, "rooms": 10, "seconds": 5},
        {"clients": 4, "rooms": 2, "seconds": 0.5},
        "puts_per_s",
        extra=("p50_ms", "p99_ms", "loadgen_cpu_pct", "server_cpu_pct"),
    ),
    Scenario(
        "cpu",
        "CPU-bound party: ~2 ms of Python per message, 20 rooms x 2 clients, each sends its "
        "next message when the room's reply arrives, 4 s x 3 (the server may use both cores)",
        "cpu",
        "burn",
        ("jupyter-party", "jupyter-party-workers2", "jupyter-party-inproc"),
        {"rooms": 20, "clients_per_room": 2, "seconds": 4, **ROUNDS3},
        {"rooms": 6, "clients_per_room": 1, "seconds": 0.5, **ROUNDS1},
        "messages_per_s",
        extra=(
            "rounds",
            "p99_ms",
            "server_cpu_ms_per_msg",
            "loadgen_cpu_pct",
            "server_cpu_pct",
            "others_cpu_pct",
            "rooms_per_worker",
        ),
        server_cores="0,1",
        quick_servers=("jupyter-party", "jupyter-party-workers2"),
        quiet_wait=30.0,
    ),
    Scenario(
        "cluster_fanout",
        "party cluster: fan-out of 1 sender (on the room's owner) to 100 receivers split over "
        "two nodes, against one node, 3 rounds",
        "fanout",
        "bcast",
        ("jupyter-party", CLUSTER),
        {"receivers": 100, "senders": 1, "messages": 2000, "rounds": 1, "timeout": 60, **ROUNDS3},
        {"receivers": 6, "senders": 1, "messages": 20, "rounds": 1, "timeout": 20, **ROUNDS1},
        "deliveries_per_s",
        extra=("loadgen_cpu_pct", "server_cpu_pct", "others_cpu_pct", "spread_pct"),
    ),
    Scenario(
        "cluster_paced",
        "party cluster: paced latency, 1 sender at 50 msg/s to 100 receivers split over two "
        "nodes, against one node, 5 s x 3",
        "paced",
        "bcast",
        ("jupyter-party", CLUSTER),
        {"receivers": 100, "rate": 50, "seconds": 5, **ROUNDS3},
        {"receivers": 6, "rate": 50, "seconds": 0.5, **ROUNDS1},
        "p99_ms",
        higher_is_better=False,
        extra=("p50_ms", "max_ms", "loadgen_cpu_pct", "server_cpu_pct", "others_cpu_pct"),
    ),
    Scenario(
        "cluster_coldstart",
        "party cluster: 1,000 new rooms opened through node A and B alternately (connect, "
        "message, echo), 50 at a time",
        "coldstart",
        "bcast",
        ("jupyter-party", CLUSTER),
        {"rooms": 1000, "concurrency": 50},
        {"rooms": 20, "concurrency": 5},
        "rooms_per_s",
        extra=("p50_ms", "p99_ms", "loadgen_cpu_pct", "server_cpu_pct"),
        # Two nodes on this machine: the servers may use both cores (one node alike), as in
        # `cpu`; the load generator stays on core 1. On one core: see benchmarks/README.md.
        server_cores="0,1",
    ),
    Scenario(
        "cluster_takeover",
        "party cluster: kill -9 of a room's owner, until the other node serves the room "
        "(lease_ttl 10 s, the default), 3 times",
        "takeover",
        "bcast",
        (CLUSTER,),
        {"rounds": 3},
        {"rounds": 1},
        "takeover_s",
        higher_is_better=False,
        extra=("rounds", "lease_ttl_s"),
    ),
    Scenario(
        "churn",
        "sessions open and close (8 at a time, half plain rooms, half Y rooms), 30 min; "
        "RSS growth per 10,000 sessions after 5 min of warm-up",
        "churn",
        "bcast",
        ("jupyter-party", "tornado-naive"),
        {"seconds": 1800, "warmup_s": 300, "concurrency": 8, "sample_s": 5},
        {"seconds": 3, "warmup_s": 1, "concurrency": 4, "sample_s": 0.2},
        "mib_per_10k_sessions",
        higher_is_better=False,
        timeout=3600.0,
        extra=(
            "mib_per_10k_first_half",
            "mib_per_10k_second_half",
            "mib_per_10k_in_children",
            "sessions",
            "sessions_per_s",
            "rss_warm_mb",
            "rss_end_mb",
            "server_cpu_pct",
            "others_cpu_pct",
        ),
    ),
    Scenario(
        "rooms_10k",
        "many rooms: 10,000 rooms with one connection each (connect, message, echo, 50 at a "
        "time), all held: RSS growth per room (beyond a connection's: idle_10k's, same run)",
        "coldstart",
        "bcast",
        ("jupyter-party", "tornado-naive", "node-ws"),
        {"rooms": 10_000, "concurrency": 50, "hold": True},
        {"rooms": 30, "concurrency": 5, "hold": True},
        "kb_per_room",
        higher_is_better=False,
        extra=("kb_beyond_connection", "children_kb_per_room", "rooms_per_s", "p99_ms"),
    ),
    Scenario(
        "bigdoc",
        "big document: a YServer room holding ~10 MB (100,000 paragraphs typed 100 at a time); "
        "100 clients join at once: seconds until all are synced",
        "bigdoc",
        "ydoc",
        ("jupyter-party", "y-websocket", "jupyter-party-inproc"),
        {"paragraphs": 100_000, "per_update": 100, "joiners": 100, "timeout": 300},
        {"paragraphs": 12_000, "per_update": 100, "joiners": 5, "timeout": 60},
        "all_synced_s",
        higher_is_better=False,
        extra=("p50_synced_s", "room_mb", "seed_s", "doc_mb", "server_cpu_pct", "compactions_ms"),
        quick_servers=("jupyter-party", "y-websocket"),
    ),
    Scenario(
        "widgets",
        "the console widget in JupyterLab (headless Chromium) while 1,000 messages/s reach "
        "its room for 10 s (benchmarks/widgets.py)",
        "widgets",
        "bcast",
        ("jupyter-party",),
        {"rate": 1000, "seconds": 10},
        {"rate": 200, "seconds": 1},
        "frame_p99_ms",
        higher_is_better=False,
        extra=(
            "frames_per_s",
            "long_task_ms",
            "catch_up_s",
            "log_lines",
            "kernel_cpu_pct",
            "browser_cpu_pct",
            "idle_frame_p99_ms",
        ),
    ),
    storm(
        "storm_redeploy",
        "reconnect storm: 5,000 clients in one room, the party redeployed (1012 to all): "
        "seconds until every client is back and got a message sent after it",
        {"event": "redeploy", "policy": "jupyter-party"},
    ),
    storm(
        "storm_kill",
        "reconnect storm: 5,000 clients in one room, the server killed (SIGKILL) and started "
        "again; clients with partysocket's backoff",
        {"event": "kill", "policy": "partysocket"},
        ("restart_s",),
    ),
]
BY_NAME = {s.name: s for s in SCENARIOS}

# The issues' targets: (scenario, other server or None, kind, value). "ratio" is jupyter-party's
# figure over the other server's; "gain" the other server's over jupyter-party's.
TARGETS = [
    # "Performance that must survive isolation": jupyter-party is workers = 1 (the default).
    ("fanout_1", "partykit-dev", "ratio>=", 10.0),
    ("fanout_1", "tornado-naive", "ratio>=", 15.0),
    ("fanout_10", "partykit-dev", "ratio>=", 10.0),
    ("fanout_10", "tornado-naive", "ratio>=", 15.0),
    ("paced", "partykit-dev", "ratio<=", 1.0),
    ("fanout_1", "jupyter-party-inproc", "ratio>=", 0.75),  # isolation costs <= 25 %
    ("fanout_10", "jupyter-party-inproc", "ratio>=", 0.75),
    ("cpu", "jupyter-party-workers2", "gain>=", 1.6),  # workers = 2 over workers = 1
    # Issue #7.
    ("idle_1k", None, "<=", 15.0),
    ("idle_10k", None, "held", 10000),
    ("coldstart", None, ">=", 500.0),
    ("crdt", "pycrdt-websocket", "ratio>=", 2.0),
    # Issue #12: a party cluster of two nodes on this machine.
    ("cluster_fanout", CLUSTER, "gain>=", 0.5),  # the cross-node hop must not dominate
    ("cluster_coldstart", CLUSTER, ">=", 500.0),
    ("cluster_takeover", CLUSTER, "<=", 11.0),  # lease_ttl + 1 s
    # Issue #15.
    ("coldstart", "tornado-naive", "ratio>=", 0.8),
    ("rooms_10k", None, "beyond<=", 8.0),  # KB per room beyond the connection's
    ("idle_10k", None, "<=", 12.0),
    ("idle_10k_y", None, "<=", 12.0),
    ("churn", None, "<=", 0.2),
    ("storm_redeploy", None, "<=", 3.0),
    ("bigdoc", "y-websocket", "ratio<=", 1.0),
]

# -- setup -------------------------------------------------------------------------------------


def have_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def setup(install: bool) -> dict[str, bool]:
    """Install what is missing (unless `install` is False); return which extras are usable."""
    missing = [req for mod, req in PIP_NEEDS.items() if not have_module(mod)]
    if missing and install:
        print(f"setup: pip install {' '.join(missing)}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True)
    if install and not (NODE_DIR / "node_modules").is_dir() and shutil.which("npm"):
        print(f"setup: npm ci in {NODE_DIR} (ws, partykit, y-websocket)", flush=True)
        env = {**os.environ, "NO_UPDATE_NOTIFIER": "1"}
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, env=env)
    node_ok = bool(shutil.which("node")) and (NODE_DIR / "node_modules" / "ws").is_dir()
    return {
        "node-ws": node_ok,
        "partykit-dev": node_ok and (NODE_DIR / "node_modules" / "partykit").is_dir(),
        "pycrdt-websocket": have_module("pycrdt.websocket") and have_module("websockets"),
        "y-websocket": node_ok and (NODE_DIR / "node_modules" / "y-websocket").is_dir(),
        "widgets": have_module("playwright")
        and have_module("jupyterlab")
        and Path(os.environ.get("JUPYTER_PARTY_CHROMIUM", "/usr/bin/chromium")).exists(),
    }


# -- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(cores: int | str) -> list[str]:
    """`taskset -c CORES`: the process and every process it starts (children inherit it)."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cores)]
    return []


def party_command(port: int, storage: str, parties: Path = HERE / "parties") -> list[str]:
    """`jupyter party serve` of the benchmark parties (in `parties`) on `port`."""
    return [
        sys.executable,
        "-m",
        "jupyter_party.cli",
        "serve",
        "--parties",
        str(parties),
        "--port",
        str(port),
        "--ip",
        "127.0.0.1",
        "--storage",
        storage,
        "--allow-root",
        f"--IdentityProvider.token={TOKEN}",
        "--ServerApp.open_browser=False",
        # The baselines have no inbound rate limit; the default (100 msg/s per
        # connection, burst 200) would close a blasting sender. Off, like theirs.
        "--PartyApp.rate_limit_messages=0",
        "--PartyApp.rate_limit_bytes=0",
    ]


def is_party(name: str) -> bool:
    """jupyter-party itself or one of its variants (workers = 0, workers = 2, a cluster)."""
    return name in PARTY_VARIANTS


class ServerProcess:
    """One server under test, in its own process group (PartyKit's CLI starts workerd,
    jupyter-party its worker processes)."""

    def __init__(
        self, name: str, party: str, workdir: Path, cores: str = SERVER_CORES, env_extra=None
    ) -> None:
        self.name, self.port, self.workdir = name, free_port(), workdir
        self.log_path = workdir / f"{name}.log"
        self.headers: dict[str, str] = {}
        self.prefix = "/parties/main/"
        env = {**os.environ, **(env_extra or {})}
        # The servers import this checkout's jupyter_party (and the workers, started with
        # `python -m jupyter_party.runtime.worker`, inherit it), whatever is installed.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        cwd = HERE
        self.ports = [self.port]
        if is_party(name):
            # A copy: a redeploy (the storm scenario) writes the party's file into it.
            shutil.copytree(HERE / "parties", workdir / "parties", dirs_exist_ok=True)
            for d in ("DATA", "RUNTIME", "CONFIG"):
                (workdir / "jupyter" / d.lower()).mkdir(parents=True, exist_ok=True)
                env[f"JUPYTER_{d}_DIR"] = str(workdir / "jupyter" / d.lower())
            argv = party_command(
                self.port, f"sqlite:///{workdir / 'rooms.db'}", workdir / "parties"
            )
            if PARTY_VARIANTS[name] is not None:
                argv += ["--workers", str(PARTY_VARIANTS[name])]
            if name == CLUSTER:  # node a on `port` (the launcher's readiness), node b
                self.ports = [self.port, free_port()]
                spec = {"ports": self.ports, "workdir": str(workdir)}
                argv = [sys.executable, str(HERE / "cluster_nodes.py"), json.dumps(spec)]
            self.headers = {"Authorization": f"token {TOKEN}"}
            self.prefix = f"/parties/{party}/"
        elif name == "tornado-naive":
            argv = [sys.executable, str(BASELINES / "tornado_naive.py"), str(self.port)]
        elif name == "node-ws":
            argv = ["node", str(BASELINES / "node_ws.mjs"), str(self.port)]
        elif name == "partykit-dev":
            cwd = workdir / "partykit"
            shutil.copytree(BASELINES / "partykit", cwd, dirs_exist_ok=True)
            env.update(NO_UPDATE_NOTIFIER="1", CI="1")
            argv = [
                "node",
                str(NODE_DIR / "node_modules" / "partykit" / "dist" / "bin.mjs"),
                "dev",
                "--port",
                str(self.port),
                "--disable-request-cf-fetch",
                "--no-hotkeys",
                "--persist",
                "false",
                "src/server.ts",
                "--config",
                "partykit.json",
            ]
        elif name == "y-websocket":  # its own server (bin/server.cjs), documents in memory
            env.update(HOST="127.0.0.1", PORT=str(self.port))
            argv = ["node", str(NODE_DIR / "node_modules" / "y-websocket" / "bin" / "server.cjs")]
            self.prefix = "/"
        elif name == "pycrdt-websocket":
            argv = [sys.executable, str(BASELINES / "pycrdt_ws.py"), str(self.port)]
            self.prefix = "/"
        else:
            raise ValueError(name)
        self.argv, self.env, self.cwd = [*pinned(cores), *argv], env, cwd
        self.proc: subprocess.Popen | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def start(self, timeout: float = 60.0) -> ServerProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            if self._ready():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log()}")

    def _ready(self) -> bool:
        if is_party(self.name):  # its workers answer too (they start once the server listens)
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=0.5)
                conn.request("GET", "/party-api/rooms", headers=self.headers)
                ok = conn.getresponse().status == 200
                conn.close()
                return ok
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
            return True
        return False

    @property
    def pid(self) -> int:
        """The process to measure: taskset execs the server, so it is the child itself."""
        return self.proc.pid

    def tree(self) -> dict[str, Any]:
        """The server's processes now (itself and every descendant: workerd, party workers)
        and the cores they may run on: proof that children inherited the pinning."""
        try:
            import psutil
        except ImportError:
            return {}
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return {}
        affinities = set()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                affinities.add(tuple(proc.cpu_affinity()))
        return {
            "server_processes": len(procs),
            "server_cores": sorted({c for a in affinities for c in a}),
            "server_cores_same_for_all": len(affinities) == 1,
        }

    def kill(self) -> None:
        """SIGKILL to the whole process group (the server and its workers), at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def errors_since(self, offset: int) -> list[str]:
        """Error lines the server logged after byte `offset` of its log."""
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        return [line for line in text.splitlines() if re.search(r"Traceback|\[E |ERROR", line)]

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # and any child left in the group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None


# -- running -----------------------------------------------------------------------------------


def make_updates(path: Path, n: int) -> None:
    """`n` Yjs updates of one client typing (each ~25 B), length-prefixed, in order."""
    from pycrdt import Doc, Text

    doc = Doc()
    text = doc.get("text", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for i in range(n):
        with doc.transaction():
            text.insert(len(text), "abcdefgh"[i % 8])
    path.write_bytes(b"".join(len(u).to_bytes(4, "big") + u for u in updates))


def make_bigdoc(path: Path, paragraphs: int, per_update: int) -> None:
    """A big document as the updates that wrote it: `paragraphs` paragraphs of ~100 B typed
    `per_update` at a time, length-prefixed, in order (~10 MB for 100,000)."""
    from pycrdt import Doc, Text

    doc = Doc()
    text = doc.get("text", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    filler = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor " * 2
    for start in range(0, paragraphs, per_update):
        block = "".join(
            f"{i:>7} {filler}"[:103] + "\n"
            for i in range(start, min(start + per_update, paragraphs))
        )
        with doc.transaction():
            text.insert(len(text), block)
    path.write_bytes(b"".join(len(u).to_bytes(4, "big") + u for u in updates))


def y_update() -> bytes:
    """One small Yjs update (a client types a word); applying it again changes nothing."""
    from pycrdt import Doc, Text

    doc = Doc()
    doc.get("text", type=Text).insert(0, "churn")
    return doc.get_update()


def run_loadgen(spec: dict[str, Any], timeout: float, on_ready: Any = None) -> dict[str, Any]:
    """Run the load generator; `on_ready()`, if given, is called when it prints READY (the
    storm scenario's kill: then it is told what `on_ready` returned, on its stdin)."""
    argv = [*pinned(LOADGEN_CORE), sys.executable, str(HERE / "loadgen.py"), json.dumps(spec)]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, cwd=HERE
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        lines = []
        try:
            for line in proc.stdout:
                if line.strip() == "READY" and on_ready is not None:
                    proc.stdin.write(f"{on_ready()}\n")
                    proc.stdin.flush()
                else:
                    lines.append(line)
            proc.wait()
        finally:
            timer.cancel()
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"load generator failed ({proc.returncode}):\n{err.read()[-3000:]}")
    return json.loads(lines[-1])


def run_widgets(load: dict[str, Any], workdir: Path, timeout: float) -> dict[str, Any]:
    """benchmarks/widgets.py (JupyterLab and Chromium of its own): the loaded window's figures,
    and the idle window's as `idle_*`."""
    print("  widgets / jupyter-party ...", end=" ", flush=True)
    out = workdir / "widgets.json"
    argv = [sys.executable, str(HERE / "widgets.py"), "--json", str(out)]
    argv += ["--rate", str(load["rate"]), "--seconds", str(load["seconds"])]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=HERE)
        if done.returncode != 0:
            raise RuntimeError(done.stdout[-1500:] + done.stderr[-1500:])
        measured = json.loads(out.read_text())
    except Exception as error:
        print("error")
        return {"error": str(error)[-2000:]}
    result = {**measured["load"], **{f"idle_{k}": v for k, v in measured["idle"].items()}}
    print(f"{result['frame_p99_ms']:.1f}")
    return result


def rooms_per_worker(party: str, spec: dict[str, Any], name: str) -> list[int]:
    """How the server placed the scenario's rooms on its workers (crc32 of party and room)."""
    _this_checkout_first()
    from jupyter_party.runtime.router import placement

    workers = PARTY_VARIANTS[name]
    workers = 1 if workers is None else max(workers, 1)
    counts = [0] * workers
    for room in spec["room_names"]:
        counts[placement(party, room, workers)] += 1
    return counts


def calibrate_burn(ms: float) -> tuple[int, float]:
    """Loop count of parties/burn.py's `burn` that costs `ms` of CPU here (median of a few
    tries, refined twice), given to every server alike; and the ms it costs. CPU time, not wall
    time: on a busy machine the wall clock also counts the time the loop was descheduled."""
    import importlib.util

    _this_checkout_first()
    spec = importlib.util.spec_from_file_location("_burn", HERE / "parties" / "burn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loops = 20_000
    for _ in range(3):
        took = statistics.median(_timed(module.burn, loops) for _ in range(9))
        loops = max(1, round(loops * ms / 1000 / took))
    return loops, 1000 * statistics.median(_timed(module.burn, loops) for _ in range(9))


def _this_checkout_first() -> None:
    """Import this checkout's jupyter_party, as the servers do (`python benchmarks/run.py`
    puts benchmarks/ first on sys.path, not the checkout)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def _timed(fn, arg) -> float:
    t = time.thread_time()
    fn(arg)
    return time.thread_time() - t


def py_spy_path() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


@contextlib.contextmanager
def profiling(server: ServerProcess, path: Path, enabled: bool):
    """py-spy samples the jupyter-party server and its party workers while the load runs (raw
    collapsed stacks, each under a `process PID:"command line"` frame)."""
    py_spy = py_spy_path()
    if not enabled or not is_party(server.name) or not py_spy:
        yield None
        return
    argv = [py_spy, "record", "--pid", str(server.pid), "--subprocesses", "--format", "raw"]
    proc = subprocess.Popen(
        [*argv, "-o", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        yield path
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def waiting(frame: str) -> bool:
    """A leaf frame of a thread that waits (py-spy does not always see it as idle): a thread
    pool's worker blocked on its queue (SQLite storage, anyio's), an event loop blocked in
    epoll."""
    name, _, where = frame.partition(" (")
    if name == "_worker":
        return where.startswith("concurrent/futures/thread.py")
    if name in ("WorkerThread.run", "Condition.wait"):  # anyio's idle thread (Jupyter's)
        return where.startswith(("anyio/", "threading.py"))
    return name.endswith("Selector.select") and where.startswith("selectors.py")


#: What a connect costs, step by step: each busy sample of the process tree goes to the step of
#: its deepest frame named here (a prefix of "function (file"); "the party worker" is all of
#: the worker's samples; the rest is "event loop and socket I/O".
CONNECT_STEPS = (
    ("accept the TCP connection", ("TCPServer._handle_connection", "HTTPServer.handle_stream")),
    (  # Tornado's HTTP/1 connection, or ours for a room upgrade (web/listener.py)
        "read and route the HTTP request",
        ("HTTP1Connection._read_message", "HTTP1ServerConnection", "_read_upgrade ("),
    ),
    ("make the handler (Tornado, Jupyter)", ("RequestHandler.__init__",)),
    ("Jupyter's authentication (prepare)", ("JupyterHandler.prepare",)),
    ("the party's request (path, identity)", ("RoomHandler._identify",)),
    ("gate and open: the worker round trip", ("RoomHandler._join", "Router.", "WorkerLink.")),
    (  # ours (web/websocket.py), and Tornado's before it (to profile older checkouts)
        "the handshake (101) and socket set-up",
        (
            "RoomHandler._bad_upgrade",
            "WebSocket.take_over",
            "WebSocket._attach",
            "WebSocket.connection_made",
            "switching_protocols",
            "WebSocketHandler.get",
            "WebSocketProtocol13",
        ),
    ),
    ("the access log", ("log_request (jupyter_server",)),
)
_WORKER_STEP = "the party worker"
_OTHER_STEP = "event loop and socket I/O"


def connect_step(frames: list[str], worker: bool) -> str:
    """The step of CONNECT_STEPS one sample's stack (outermost first) belongs to."""
    if worker:
        return _WORKER_STEP
    for frame in reversed(frames):
        for step, marks in CONNECT_STEPS:
            if frame.startswith(marks):
                return step
    return _OTHER_STEP


def summarize_profile(path: Path, top: int = 12) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks, for the
    server process and for its party workers (`worker`) apart; shares are of each one's busy
    samples (py-spy samples each process at the same rate, so `samples` compares their load;
    `waiting` counts the samples left out as waiting)."""
    roles: dict[str, dict[str, Any]] = {}
    steps: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        role = "server"
        frames = []
        for f in stack.split(";"):
            if f.startswith("process "):  # --subprocesses: which process the stack is from
                role = "worker" if "jupyter_party.runtime.worker" in f else "server"
            else:
                frames.append(f.split(" (")[0] + " (" + f.split(" (")[-1])
        if not frames:
            continue
        r = roles.setdefault(
            role,
            {
                "n": 0,
                "waiting": 0,
                "own": collections.Counter(),
                "inclusive": collections.Counter(),
            },
        )
        n = int(count)
        if waiting(frames[-1]):
            r["waiting"] += n
            continue
        r["n"] += n
        steps[connect_step(frames, role == "worker")] += n
        r["own"][frames[-1]] += n
        for f in set(frames):
            r["inclusive"][f] += n
    out: dict[str, Any] = {}
    for role, r in roles.items():
        share = lambda c, t=r["n"]: [(f, round(100 * n / t, 1)) for f, n in c.most_common(top)]  # noqa: E731
        out[role] = {
            "samples": r["n"],
            "waiting": r["waiting"],
            "self_pct": share(r["own"]),
            "inclusive_pct": share(r["inclusive"]),
        }
    busy = sum(steps.values()) or 1
    out["steps_pct"] = [(step, round(100 * n / busy, 1)) for step, n in steps.most_common()]
    return out


def run_scenario(
    scenario: Scenario,
    servers: list[str],
    quick: bool,
    workdir: Path,
    profile: bool,
    shared: dict[str, ServerProcess],
    env_extra: dict[str, str] | None = None,
    churn_seconds: float | None = None,
) -> dict[str, Any]:
    """Each server starts fresh for each scenario; with --quick, `shared` keeps them running
    across scenarios (jupyter-party serves every party from one process) to save start-ups.
    A scenario with `interleaved_rounds` runs every server at once and measures them in turn,
    round after round (the median round counts): load from elsewhere on the machine, which
    comes and goes, then weighs on each server alike."""
    sizes = dict(scenario.quick if quick else scenario.full)
    if scenario.loadgen == "churn" and churn_seconds:  # --churn-seconds
        sizes["seconds"] = churn_seconds
        sizes["warmup_s"] = min(sizes["warmup_s"], churn_seconds / 6)
        scenario = dataclasses.replace(scenario, timeout=churn_seconds + 600)
    if quick:
        scenario = dataclasses.replace(scenario, quiet_wait=0.0)  # a smoke test: no waiting
    out: dict[str, Any] = {"what": scenario.what, "metric": scenario.metric, "sizes": sizes}
    out["higher_is_better"] = scenario.higher_is_better
    load = {k: v for k, v in sizes.items() if k != "interleaved_rounds"}
    if scenario.loadgen == "crdt":
        load["updates_file"] = str(workdir / "updates.bin")
        make_updates(Path(load["updates_file"]), load.pop("updates"))
    if scenario.loadgen == "bigdoc":
        load["updates_file"] = str(workdir / "bigdoc.bin")
        make_bigdoc(Path(load["updates_file"]), load.pop("paragraphs"), load.pop("per_update"))
    if scenario.loadgen == "churn":
        load["y_update"] = y_update().hex()
    if scenario.loadgen == "widgets":
        out["servers"] = {"jupyter-party": run_widgets(load, workdir, scenario.timeout)}
    elif sizes.get("interleaved_rounds"):
        out["servers"] = run_interleaved(
            scenario, servers, quick, workdir, profile, shared, env_extra, load
        )
    else:
        out["servers"] = {}
        for name in servers:
            print(f"  {scenario.name} / {name} ...", end=" ", flush=True)
            server, fresh = get_server(name, scenario, workdir, shared, env_extra)
            started = time.perf_counter()
            try:
                if fresh:
                    server.start()
                    if quick:
                        shared[name] = server
                result = measure(server, scenario, load, profile)
                result["start_s"] = round(time.perf_counter() - started, 1)
            except Exception as error:
                result = {"error": str(error)[-2000:]}
            finally:
                if fresh and not quick:
                    server.stop()
            out["servers"][name] = result
            show(scenario, result)
    base = out["servers"].get("jupyter-party", {}).get(scenario.metric)
    out["ratios"] = {}
    for name, result in out["servers"].items():
        other = result.get(scenario.metric)
        if name != "jupyter-party" and base and other:
            out["ratios"][name] = round(base / other, 3)
    return out


def run_interleaved(
    scenario: Scenario,
    servers: list[str],
    quick: bool,
    workdir: Path,
    profile: bool,
    shared: dict[str, ServerProcess],
    env_extra: dict[str, str] | None,
    load: dict[str, Any],
) -> dict[str, Any]:
    """Start every server, then measure each in turn, `interleaved_rounds` times; each
    server's result is its median round, with every round's figure in `rounds`."""
    rounds = scenario.quick["interleaved_rounds"] if quick else scenario.full["interleaved_rounds"]
    running: dict[str, ServerProcess] = {}
    fresh_ones: list[ServerProcess] = []
    results: dict[str, Any] = {}  # name -> its rounds so far, or its error
    try:
        for name in servers:
            server, fresh = get_server(name, scenario, workdir, shared, env_extra)
            try:
                if fresh:
                    fresh_ones.append(server)
                    server.start()
                    if quick:
                        shared[name] = server
                running[name] = server
                results[name] = []
            except Exception as error:
                results[name] = {"error": str(error)[-2000:]}
        for r in range(rounds):
            for name, server in running.items():
                if not isinstance(results[name], list):
                    continue  # failed in an earlier round
                print(f"  {scenario.name} / {name} (round {r + 1}/{rounds}) ...", end=" ")
                try:
                    result = measure(server, scenario, load, profile)
                    results[name].append(result)
                except Exception as error:
                    result = results[name] = {"error": str(error)[-2000:]}
                show(scenario, result)
    finally:
        if not quick:
            for server in fresh_ones:
                server.stop()
    out: dict[str, Any] = {}
    metric = scenario.metric
    for name, got in results.items():
        if not isinstance(got, list):
            out[name] = got
            continue
        # Rounds flagged `busy` (the machine was busy: see measure) count only if all are.
        valid = [x for x in got if not x.get("busy")] or got
        ordered = sorted(valid, key=lambda x: x[metric], reverse=not scenario.higher_is_better)
        values = [x[metric] for x in valid]
        mean = sum(values) / len(values)
        out[name] = {
            **ordered[len(ordered) // 2],
            "lost": sum(x.get("lost", 0) for x in got),
            "rounds": [round(x[metric], 1) for x in got],
            "busy_rounds": sum(1 for x in got if x.get("busy")),
            "spread_pct": 100 * (max(values) - min(values)) / mean if mean else 0.0,
        }
    return out


def get_server(
    name: str,
    scenario: Scenario,
    workdir: Path,
    shared: dict[str, ServerProcess],
    env_extra: dict[str, str] | None,
) -> tuple[ServerProcess, bool]:
    """The server to measure, and whether it is a fresh one (not started yet). --quick keeps
    one of each server, once started, for every scenario (`shared`; pinned to the cores of the
    first scenario that used it: quick figures are only a smoke test)."""
    server = shared.get(name)
    fresh = server is None
    if fresh:
        server = ServerProcess(
            name,
            scenario.party,
            workdir / f"{scenario.name}-{name}",
            cores=scenario.server_cores,
            env_extra=env_extra,
        )
        server.workdir.mkdir(parents=True, exist_ok=True)
    if is_party(name):
        server.prefix = f"/parties/{scenario.party}/"
    return server, fresh


QUIET_PCT = 20.0  # % of one core: the rest of the machine counts as quiet below it
BUSY_PCT = 50.0  # % of one core: a two-core figure taken with more than this is flagged


def machine_busy() -> float | None:
    """CPU seconds the whole machine has spent busy (both cores), if psutil is there."""
    try:
        import psutil
    except ImportError:
        return None
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0) + getattr(t, "guest", 0.0)
    return sum(t) - idle - getattr(t, "guest_nice", 0.0)


def wait_for_quiet(budget: float, hold: float = 2.0) -> dict[str, Any]:
    """Wait until the machine (everything: the idle servers of this run count too, at well
    under 2 % of a core each) stays under QUIET_PCT of a core for `hold` seconds, at most
    `budget` seconds. Another engineer's test suite on a shared machine comes and goes."""
    started = last_t = time.monotonic()
    last = machine_busy()
    quiet_since = None
    pct = 0.0
    while last is not None and time.monotonic() - started < budget:
        time.sleep(0.5)
        now, busy = time.monotonic(), machine_busy()
        pct, last, last_t = 100 * (busy - last) / (now - last_t), busy, now
        if pct >= QUIET_PCT:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= hold:
            break
    return {"waited_for_quiet_s": round(time.monotonic() - started, 1), "busy_before_pct": pct}


def measure(
    server: ServerProcess, scenario: Scenario, load: dict[str, Any], profile: bool
) -> dict[str, Any]:
    """One run of the load generator against a started server."""
    quiet = wait_for_quiet(scenario.quiet_wait) if scenario.quiet_wait else {}
    if scenario.loadgen == "takeover":
        return {**server.tree(), **measure_takeover(server, load["rounds"])}
    spec = {
        "scenario": scenario.loadgen,
        "port": server.port,
        "ports": server.ports,
        "prefix": server.prefix,
        "headers": server.headers,
        "server_pids": [server.pid],
        **load,
    }
    if scenario.loadgen == "bigdoc" and is_party(server.name):  # and the compaction time
        spec["history_prefix"] = "/parties/ydochist/"
    if scenario.loadgen == "churn":  # its Y rooms: party ydoc (a baseline: the same path)
        spec["y_prefix"] = "/parties/ydoc/" if is_party(server.name) else server.prefix
    if scenario.loadgen == "cpu":
        spec["room_names"] = [f"burn-{i}" for i in range(load["rooms"])]
    on_ready = None
    if scenario.loadgen == "storm":
        spec["party_source"] = (HERE / "parties" / f"{scenario.party}.py").read_text()
        spec["party"] = scenario.party
        if spec["event"] == "kill":
            on_ready = restarter(server, spec)
    log_offset = server.log_path.stat().st_size if server.log_path.exists() else 0
    prof_path = HERE / "results" / f"profile-{scenario.name}-{server.name}.txt"
    with profiling(server, prof_path, profile) as prof:
        tree = server.tree()
        result = run_loadgen(spec, scenario.timeout, on_ready)
    if scenario.loadgen == "storm":
        result["server_errors"] = server.errors_since(log_offset)[:20]
        result.update(spec.get("restart", {}))
    result.update(tree)
    result.update(quiet)
    if scenario.quiet_wait and result.get("others_cpu_pct", 0) > BUSY_PCT:
        result["busy"] = True  # the rest of the machine took much of the second core
    if "room_names" in spec:
        result["rooms_per_worker"] = rooms_per_worker(scenario.party, spec, server.name)
    if prof is not None and prof.exists():
        result["profile"] = summarize_profile(prof)
    return result


def measure_takeover(server: ServerProcess, rounds: int) -> dict[str, Any]:
    """Kill -9 the node owning a room (its whole process group), then ask the other node for
    the room until it serves it (503 while the dead node's lease lasts): seconds, per round.
    The launcher starts a fresh pair of nodes for each round (cluster_nodes.py)."""
    times, generation = [], -1
    for r in range(rounds):
        nodes = _cluster_nodes(server.workdir / "nodes.json", generation)
        generation = nodes["generation"]
        room = f"/parties/bcast/takeover-{r}"
        a, b = nodes["nodes"]
        if _post(a["port"], room) == 503:
            raise RuntimeError("node a does not serve the room")
        os.killpg(a["pid"], signal.SIGKILL)
        killed = time.monotonic()
        while _post(b["port"], room) == 503:
            if time.monotonic() - killed > 60:
                raise RuntimeError("the room was not taken over within 60 s")
        times.append(time.monotonic() - killed)
        os.kill(server.pid, signal.SIGUSR1)  # the launcher starts a fresh node a
    return {
        "takeover_s": statistics.median(times),
        "rounds": [round(t, 2) for t in times],
        "lease_ttl_s": nodes["lease_ttl"],
    }


def _cluster_nodes(path: Path, after: int, timeout: float = 60.0) -> dict[str, Any]:
    """The launcher's nodes (cluster_nodes.py), once a generation after `after` is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            nodes: dict[str, Any] = json.loads(path.read_text())
            if nodes["generation"] > after:
                return nodes
        time.sleep(0.1)
    raise RuntimeError(f"the cluster's nodes were not ready within {timeout} s")


def _post(port: int, path: str) -> int:
    """POST `path` to a node: its HTTP status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, headers={"Authorization": f"token {TOKEN}"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def restarter(server: ServerProcess, spec: dict[str, Any]) -> Any:
    """The storm scenario's kill: SIGKILL the server's process group, tell the load generator
    (its clock starts), start the server again on the same port; how long the restart took
    goes into `spec["restart"]`."""

    def kill_and_restart() -> str:
        server.kill()
        started = time.perf_counter()
        threading.Thread(target=restart, args=(started,), daemon=True).start()
        return "KILLED"

    def restart(started: float) -> None:
        server.start()
        spec["restart"] = {"restart_s": round(time.perf_counter() - started, 2)}

    return kill_and_restart


def show(scenario: Scenario, result: dict[str, Any]) -> None:
    shown = result.get(scenario.metric)
    print(f"{shown:,.1f}" if isinstance(shown, int | float) else result.get("error", "?"))
    if result.get("lost"):
        print(f"    INVALID: {result['lost']} messages lost", flush=True)


def beyond_connection(results: dict[str, Any]) -> None:
    """What a room costs beyond its connection: rooms_10k's KB per room minus idle_10k's KB
    per connection, for each server measured in both (same run)."""
    rooms, idle = results.get("rooms_10k"), results.get("idle_10k")
    if not rooms or not idle:
        return
    for name, result in rooms["servers"].items():
        per_connection = idle["servers"].get(name, {}).get("kb_per_connection")
        if "kb_per_room" in result and per_connection is not None:
            result["kb_beyond_connection"] = result["kb_per_room"] - per_connection


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for scenario, baseline, kind, value in TARGETS:
        res = results.get(scenario)
        if res is None:
            continue
        jp = res["servers"].get("jupyter-party", {})
        if "error" in jp:
            got, ok = None, False
        elif kind == "held":
            got = jp.get("connections", 0) - jp.get("lost", 0)
            ok = got >= value and not jp.get("lost")
        elif kind == "beyond<=":
            got = jp.get("kb_beyond_connection")
            ok = got is not None and got <= value
        elif kind.startswith(("ratio", "gain")):
            if baseline not in res["servers"]:
                continue  # not run (--servers, or not installed)
            got = res["ratios"].get(baseline)
            if got is not None and kind.startswith("gain"):
                got = round(1 / got, 3)
            ok = got is not None and (got >= value if kind.endswith(">=") else got <= value)
        else:  # an absolute figure: jupyter-party's, or the named variant's
            got = res["servers"].get(baseline or "jupyter-party", {}).get(res["metric"])
            ok = got is not None and (got >= value if kind == ">=" else got <= value)
        if kind.startswith("gain"):
            label = f"{scenario}: {res['metric']} {baseline} / jupyter-party >= {value}"
        else:
            label = f"{scenario}: {res['metric']} " + (
                f"vs {baseline} {kind} {value}" if baseline else f"{kind} {value}"
            )
        check = {"target": label, "value": got, "met": ok}
        if jp.get("busy") or res["servers"].get(baseline or "", {}).get("busy"):
            check["busy"] = True  # taken on a busy machine: says little either way
        checks.append(check)
    return checks


def fmt(value: Any) -> str:
    if isinstance(value, list):
        return "/".join(fmt(v) for v in value)
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def print_report(results: dict[str, Any], targets: list[dict[str, Any]]) -> None:
    for name, res in results.items():
        print(f"\n## {name}: {res['what']}")
        better = "higher" if res["higher_is_better"] else "lower"
        columns = [res["metric"], *BY_NAME[name].extra]
        widths = [max(18, len(c) + 2) for c in columns]
        head = "".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))
        print(f"{'server':<24}{head}{'ratio':>10}")
        for server, r in res["servers"].items():
            if "error" in r:
                print(f"{server:<24}  ERROR: {r['error'].splitlines()[0][:90]}")
                continue
            ratio = res["ratios"].get(server)
            cells = "".join(f"{fmt(r.get(c)):>{w}}" for c, w in zip(columns, widths, strict=True))
            shown = (f"{ratio:.2f}" if ratio < 10 else fmt(ratio)) if ratio else ""
            flags = ("  LOST!" if r.get("lost") else "") + ("  BUSY" if r.get("busy") else "")
            print(f"{server:<24}{cells}{shown:>10}{flags}")
        print(f"(ratio = jupyter-party / server on {res['metric']}; {better} is better)")
        for server, r in res["servers"].items():
            if "profile" in r:
                print(f"{server}: the process tree's busy samples (py-spy), by step")
                for step, pct in r["profile"]["steps_pct"]:
                    print(f"  {pct:5.1f} %  {step}")
    if targets:
        print("\n## targets (jupyter-party = workers 1; ratio = jupyter-party / other)")
        for t in targets:
            value = t["value"]
            shown = f"{value:.2f}" if isinstance(value, float) and value < 10 else fmt(value)
            busy = " (machine busy meanwhile: not a valid measure)" if t.get("busy") else ""
            print(f"{'MET ' if t['met'] else 'MISS'}  {t['target']}: {shown}{busy}")


def run_all(
    scenarios: list[Scenario],
    args: argparse.Namespace,
    available: dict[str, bool],
    skipped: dict[str, str],
    results: dict[str, Any],
    tmp: Path,
    shared: dict[str, ServerProcess],
) -> None:
    env_extra: dict[str, str] = {}
    burn: dict[str, float] = {}
    if any(s.loadgen == "cpu" for s in scenarios):
        # Before any server starts (--quick shares them): every one burns the same loop count.
        loops, ms = calibrate_burn(BURN_MS)
        env_extra["JP_BENCH_BURN_LOOPS"] = str(loops)
        burn = {"loops": loops, "ms_here": round(ms, 3)}
        print(f"cpu scenario: {loops:,} loop iterations per message, {ms:.2f} ms here", flush=True)
    for scenario in scenarios:
        servers = []
        names = scenario.servers
        if args.quick and scenario.quick_servers is not None:
            names = scenario.quick_servers
        for name in names:
            if args.servers and name not in args.servers:
                continue
            if not available.get(name, True):
                skipped[name] = "not installed (run without --no-install)"
                continue
            servers.append(name)
        if scenario.loadgen == "widgets" and not available["widgets"]:
            skipped[scenario.name] = "needs playwright, jupyterlab and Chromium"
            continue
        print(f"{scenario.name}: {scenario.what}", flush=True)
        results[scenario.name] = run_scenario(
            scenario, servers, args.quick, tmp, args.profile, shared, env_extra, args.churn_seconds
        )
        if scenario.loadgen == "cpu":
            results[scenario.name]["work_per_message"] = burn


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds), for CI")
    parser.add_argument("--only", nargs="+", choices=list(BY_NAME), metavar="SCENARIO")
    parser.add_argument("--servers", nargs="+", help="limit to these servers")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--no-install", action="store_true", help="skip what is not installed")
    parser.add_argument("--profile", action="store_true", help="py-spy the jupyter-party server")
    parser.add_argument(
        "--churn-seconds", type=float, help="duration of the churn scenario (default: 30 min)"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)  # stop every server on SIGTERM too

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10,000 connections
    available = setup(install=not args.no_install)
    (HERE / "results").mkdir(exist_ok=True)
    if args.profile and not py_spy_path() and not args.no_install:
        print("setup: pip install py-spy", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], check=True)
    scenarios = [BY_NAME[n] for n in args.only] if args.only else SCENARIOS
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    started = time.time()
    shared: dict[str, ServerProcess] = {}
    with tempfile.TemporaryDirectory(prefix="jp-bench-") as tmp:
        try:
            run_all(scenarios, args, available, skipped, results, Path(tmp), shared)
        finally:
            for server in shared.values():
                server.stop()
    beyond_connection(results)
    targets = [] if args.quick else check_targets(results)
    print_report(results, targets)
    document = {
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "pinned": bool(pinned(0)),
        },
        "skipped": skipped,
        "scenarios": results,
        "targets": targets,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2))
    print(f"\nwrote {args.json}")
    errors = [
        f"{s}/{n}" for s, r in results.items() for n, x in r["servers"].items() if "error" in x
    ]
    if errors:
        print(f"errors in: {', '.join(errors)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
