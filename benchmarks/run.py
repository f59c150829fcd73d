"""jupyter-party's benchmark suite: the same load against jupyter-party and its baselines.

    python -m benchmarks.run [--quick] [--only SCENARIO ...] [--servers NAME ...]
                             [--json PATH] [--no-install] [--profile]

Sets up what it needs on first run (`npm ci` in benchmarks/node for `ws` and `partykit`;
`pip install` of pycrdt-websocket, websockets and uvloop into this interpreter's environment),
then, per scenario and per server: starts the server fresh (pinned to core 0), runs the load
generator (benchmarks/loadgen.py, pinned to core 1), stops the server. Prints a table, the
ratios of jupyter-party against each baseline and the issue's targets; writes JSON.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


SCENARIOS = [
    Scenario(
        "fanout_1",
        "fan-out: 1 sender blasts 64 B messages to 100 receivers",
        "fanout",
        "bcast",
        BCAST,
        {"receivers": 100, "senders": 1, "messages": 2000, "rounds": 3, "timeout": 60},
        {"receivers": 5, "senders": 1, "messages": 20, "rounds": 1, "timeout": 20},
        "deliveries_per_s",
        extra=("loadgen_cpu_pct", "server_cpu_pct", "spread_pct"),
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
        extra=("rss_before_mb", "rss_after_mb", "connect_per_s"),
    ),
    Scenario(
        "coldstart",
        "room cold start: 1,000 new rooms (connect, message, echo), 50 at a time",
        "coldstart",
        "bcast",
        BCAST,
        {"rooms": 1000, "concurrency": 50},
        {"rooms": 20, "concurrency": 5},
        "rooms_per_s",
        extra=("p50_ms", "p99_ms", "loadgen_cpu_pct", "server_cpu_pct"),
    ),
    Scenario(
        "paced",
        "paced latency: 1 sender at 50 msg/s to 100 receivers (5,000 deliveries/s), 10 s",
        "paced",
        "bcast",
        BCAST,
        {"receivers": 100, "rate": 50, "seconds": 10},
        {"receivers": 5, "rate": 50, "seconds": 0.5},
        "p99_ms",
        higher_is_better=False,
        extra=("p50_ms", "max_ms", "loadgen_cpu_pct", "server_cpu_pct"),
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
        "fan-out: 10 senders blast 200 x 64 B each to 100 receivers",
        "fanout",
        "bcast",
        BCAST,
        {"receivers": 100, "senders": 10, "messages": 200, "rounds": 3, "timeout": 60},
        {"receivers": 5, "senders": 2, "messages": 10, "rounds": 1, "timeout": 20},
        "deliveries_per_s",
        extra=("loadgen_cpu_pct", "server_cpu_pct", "spread_pct"),
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
        extra=("rss_before_mb", "rss_after_mb", "connect_per_s"),
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
]
BY_NAME = {s.name: s for s in SCENARIOS}

# The targets: (scenario, baseline or None, kind, value)
TARGETS = [
    ("fanout_1", "partykit-dev", "ratio>=", 1.5),
    ("fanout_1", "tornado-naive", "ratio>=", 2.5),
    ("paced", "partykit-dev", "ratio<=", 1.0),
    ("idle_1k", None, "<=", 15.0),
    ("idle_10k", None, "held", 10000),
    ("coldstart", None, ">=", 500.0),
    ("crdt", "pycrdt-websocket", "ratio>=", 2.0),
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
        print(f"setup: npm ci in {NODE_DIR} (ws, partykit)", flush=True)
        env = {**os.environ, "NO_UPDATE_NOTIFIER": "1"}
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, env=env)
    node_ok = bool(shutil.which("node")) and (NODE_DIR / "node_modules" / "ws").is_dir()
    return {
        "node-ws": node_ok,
        "partykit-dev": node_ok and (NODE_DIR / "node_modules" / "partykit").is_dir(),
        "pycrdt-websocket": have_module("pycrdt.websocket") and have_module("websockets"),
    }


# -- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(core: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(core)]
    return []


class ServerProcess:
    """One server under test, in its own process group (PartyKit's CLI starts workerd)."""

    def __init__(self, name: str, party: str, workdir: Path) -> None:
        self.name, self.port, self.workdir = name, free_port(), workdir
        self.log_path = workdir / f"{name}.log"
        self.headers: dict[str, str] = {}
        self.prefix = "/parties/main/"
        env = dict(os.environ)
        cwd = HERE
        if name == "jupyter-party":
            for d in ("DATA", "RUNTIME", "CONFIG"):
                (workdir / "jupyter" / d.lower()).mkdir(parents=True, exist_ok=True)
                env[f"JUPYTER_{d}_DIR"] = str(workdir / "jupyter" / d.lower())
            argv = [
                sys.executable,
                "-m",
                "jupyter_party.cli",
                "serve",
                "--parties",
                str(HERE / "parties"),
                "--port",
                str(self.port),
                "--ip",
                "127.0.0.1",
                "--storage",
                f"sqlite:///{workdir / 'rooms.db'}",
                "--allow-root",
                f"--IdentityProvider.token={TOKEN}",
                "--ServerApp.open_browser=False",
                # The baselines have no inbound rate limit; the default (100 msg/s per
                # connection, burst 200) would close a blasting sender. Off, like theirs.
                "--PartyApp.rate_limit_messages=0",
                "--PartyApp.rate_limit_bytes=0",
            ]
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
        elif name == "pycrdt-websocket":
            argv = [sys.executable, str(BASELINES / "pycrdt_ws.py"), str(self.port)]
            self.prefix = "/"
        else:
            raise ValueError(name)
        self.argv, self.env, self.cwd = [*pinned(0), *argv], env, cwd
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
        if self.name == "jupyter-party":
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=0.5)
                conn.request("GET", "/api/status", headers=self.headers)
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


def run_loadgen(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    argv = [*pinned(1), sys.executable, str(HERE / "loadgen.py"), json.dumps(spec)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=HERE)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def py_spy_path() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


@contextlib.contextmanager
def profiling(server: ServerProcess, path: Path, enabled: bool):
    """py-spy samples the jupyter-party server while the load runs (raw collapsed stacks)."""
    py_spy = py_spy_path()
    if not enabled or server.name != "jupyter-party" or not py_spy:
        yield None
        return
    proc = subprocess.Popen(
        [py_spy, "record", "--pid", str(server.pid), "--format", "raw", "-o", str(path)],
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


def summarize_profile(path: Path, top: int = 12) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1] for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    share = lambda c: [(f, round(100 * n / total, 1)) for f, n in c.most_common(top)]  # noqa: E731
    return {"samples": total, "self_pct": share(own), "inclusive_pct": share(inclusive)}


def run_scenario(
    scenario: Scenario,
    servers: list[str],
    quick: bool,
    workdir: Path,
    profile: bool,
    shared: dict[str, ServerProcess],
) -> dict[str, Any]:
    """Each server starts fresh for each scenario; with --quick, `shared` keeps them running
    across scenarios (jupyter-party serves every party from one process) to save start-ups."""
    sizes = dict(scenario.quick if quick else scenario.full)
    out: dict[str, Any] = {"what": scenario.what, "metric": scenario.metric, "sizes": sizes}
    out["higher_is_better"] = scenario.higher_is_better
    out["servers"] = {}
    if scenario.loadgen == "crdt":
        sizes["updates_file"] = str(workdir / "updates.bin")
        make_updates(Path(sizes["updates_file"]), sizes.pop("updates"))
    for name in servers:
        print(f"  {scenario.name} / {name} ...", end=" ", flush=True)
        server = shared.get(name)
        fresh = server is None
        if fresh:
            server = ServerProcess(name, scenario.party, workdir / f"{scenario.name}-{name}")
            server.workdir.mkdir(parents=True, exist_ok=True)
        if name == "jupyter-party":
            server.prefix = f"/parties/{scenario.party}/"
        started = time.perf_counter()
        try:
            if fresh:
                server.start()
                if quick:
                    shared[name] = server
            spec = {
                "scenario": scenario.loadgen,
                "port": server.port,
                "prefix": server.prefix,
                "headers": server.headers,
                "server_pids": [server.pid],
                **sizes,
            }
            prof_path = HERE / "results" / f"profile-{scenario.name}.txt"
            with profiling(server, prof_path, profile) as prof:
                result = run_loadgen(spec, scenario.timeout)
            if prof is not None and prof.exists():
                result["profile"] = summarize_profile(prof)
            result["start_s"] = round(time.perf_counter() - started, 1)
        except Exception as error:
            result = {"error": str(error)[-2000:]}
        finally:
            if not quick:
                server.stop()
        out["servers"][name] = result
        shown = result.get(scenario.metric)
        print(f"{shown:,.1f}" if isinstance(shown, int | float) else result.get("error", "?"))
        if result.get("lost"):
            print(f"    INVALID: {result['lost']} messages lost", flush=True)
    base = out["servers"].get("jupyter-party", {}).get(scenario.metric)
    out["ratios"] = {}
    for name, result in out["servers"].items():
        other = result.get(scenario.metric)
        if name != "jupyter-party" and base and other:
            out["ratios"][name] = round(base / other, 3)
    return out


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
        elif kind.startswith("ratio"):
            got = res["ratios"].get(baseline)
            if got is None:
                continue
            ok = got >= value if kind == "ratio>=" else got <= value
        else:
            got = jp.get(res["metric"])
            ok = got is not None and (got >= value if kind == ">=" else got <= value)
        label = f"{scenario}: {res['metric']} " + (
            f"vs {baseline} {kind} {value}" if baseline else f"{kind} {value}"
        )
        checks.append({"target": label, "value": got, "met": ok})
    return checks


def fmt(value: Any) -> str:
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
        print(f"{'server':<18}" + "".join(f"{c:>18}" for c in columns) + f"{'ratio':>10}")
        for server, r in res["servers"].items():
            if "error" in r:
                print(f"{server:<18}  ERROR: {r['error'].splitlines()[0][:90]}")
                continue
            ratio = res["ratios"].get(server)
            row = f"{server:<18}" + "".join(f"{fmt(r.get(c)):>18}" for c in columns)
            print(row + f"{fmt(ratio) if ratio else '':>10}" + ("  LOST!" if r.get("lost") else ""))
        print(f"(ratio = jupyter-party / server on {res['metric']}; {better} is better)")
    if targets:
        print("\n## targets (issue #7)")
        for t in targets:
            print(f"{'MET ' if t['met'] else 'MISS'}  {t['target']}: {fmt(t['value'])}")


def run_all(
    scenarios: list[Scenario],
    args: argparse.Namespace,
    available: dict[str, bool],
    skipped: dict[str, str],
    results: dict[str, Any],
    tmp: Path,
    shared: dict[str, ServerProcess],
) -> None:
    for scenario in scenarios:
        servers = []
        for name in scenario.servers:
            if args.servers and name not in args.servers:
                continue
            if not available.get(name, True):
                skipped[name] = "not installed (run without --no-install)"
                continue
            servers.append(name)
        print(f"{scenario.name}: {scenario.what}", flush=True)
        results[scenario.name] = run_scenario(
            scenario, servers, args.quick, tmp, args.profile, shared
        )


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
