"""The benchmark suite runs end to end (`benchmarks/run.py --quick`), so it cannot rot.

Only what it reports is checked: exit status, the JSON's shape, positive figures, no lost
message. Timing is never asserted: CI machines are shared and noisy. Baselines that need a
network install (Node `ws` and PartyKit without benchmarks/node/node_modules, pycrdt-websocket
without the package) are skipped by `--no-install`.
"""

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "fanout_1": "deliveries_per_s",
    "idle_1k": "kb_per_connection",
    "coldstart": "rooms_per_s",
    "paced": "p99_ms",
    "crdt": "deliveries_per_s",
    "fanout_10": "deliveries_per_s",
    "idle_10k": "kb_per_connection",
    "storage": "puts_per_s",
    "cpu": "messages_per_s",
    "cluster_fanout": "deliveries_per_s",
    "cluster_paced": "p99_ms",
    "cluster_coldstart": "rooms_per_s",
    "cluster_takeover": "takeover_s",
    "idle_10k_y": "kb_per_connection",
    "rooms_10k": "kb_per_room",
    "churn": "mib_per_10k_sessions",
    "bigdoc": "all_synced_s",
    "storm_redeploy": "all_back_s",
    "storm_kill": "all_back_s",
    "widgets": "frame_p99_ms",  # unless playwright, jupyterlab or Chromium is missing
}
CLUSTER = "jupyter-party-cluster2"  # two nodes and their redis-server, one process tree
# Their figure is RSS growth, which over a few connections or seconds is noise (any sign).
RSS_GROWTH = {"idle_1k", "idle_10k", "idle_10k_y", "rooms_10k", "churn"}
# jupyter-party's variants by scenario: rooms in the server process (workers = 0), 2 workers.
VARIANTS = {
    "fanout_1": "jupyter-party-inproc",
    "paced": "jupyter-party-inproc",
    "fanout_10": "jupyter-party-inproc",
    "cpu": "jupyter-party-workers2",
    "cluster_fanout": CLUSTER,
    "cluster_paced": CLUSTER,
    "cluster_coldstart": CLUSTER,
    "cluster_takeover": CLUSTER,
}


def test_benchmarks_quick(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--no-install", "--json", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    document = json.loads(out.read_text())
    assert document["quick"] is True
    assert set(document["scenarios"]) == set(SCENARIOS) - set(document["skipped"])
    for name, metric in SCENARIOS.items():
        if name in document["skipped"]:
            continue
        scenario = document["scenarios"][name]
        assert scenario["metric"] == metric
        servers = scenario["servers"]
        assert "jupyter-party" in servers or name == "cluster_takeover", name
        if name in ("fanout_1", "coldstart", "paced", "fanout_10"):
            assert "tornado-naive" in servers, name  # a baseline that needs no install
        if name in VARIANTS:
            assert VARIANTS[name] in servers, name
        # The server's whole process tree is measured: with workers, the worker(s) too.
        if name != "widgets":  # JupyterLab's server, measured by benchmarks/widgets.py
            measured = servers.get("jupyter-party") or servers[CLUSTER]
            assert measured["server_processes"] >= 2, name
        if CLUSTER in servers and name != "cluster_takeover":  # redis, 2 x (node + worker)
            assert servers[CLUSTER]["server_processes"] >= 5, servers[CLUSTER]
        for server, result in servers.items():
            where = f"{name}/{server}: {result}"
            assert "error" not in result, where
            assert result.get("lost", 0) == 0, where
            if name == "churn":  # sessions of both kinds opened and closed, none failed
                assert result["plain_sessions"] > 0 and result["y_sessions"] > 0, where
            elif name == "rooms_10k":  # every room answered, and is held
                assert result["rooms_per_s"] > 0 and result["rss_after_mb"] > 0, where
            elif name.startswith("idle"):  # RSS may not grow at a few connections
                assert result["connections"] > 0 and result["rss_after_mb"] > 0, where
            else:
                assert result[metric] > 0, where
            if "loadgen_cpu_pct" in result:
                assert result["loadgen_cpu_pct"] >= 0, where
        if name not in RSS_GROWTH:
            for server, ratio in scenario["ratios"].items():
                assert ratio > 0, (name, server)
    assert "jupyter-party" in document["scenarios"]["crdt"]["servers"]
    for name in ("storm_redeploy", "storm_kill"):  # every client came back, the server is clean
        storm = document["scenarios"][name]["servers"]["jupyter-party"]
        assert storm["server_errors"] == [] and storm["p50_back_s"] > 0, storm
    assert document["scenarios"]["storm_kill"]["servers"]["jupyter-party"]["restart_s"] > 0
    if "widgets" in document["scenarios"]:  # the page showed the last message, bounded
        widgets = document["scenarios"]["widgets"]["servers"]["jupyter-party"]
        assert widgets["last_line"].endswith(f"load {widgets['sent'] - 1}"), widgets
        assert 0 < widgets["log_lines"] <= 200, widgets
    bigdoc = document["scenarios"]["bigdoc"]["servers"]["jupyter-party"]
    assert bigdoc["compactions_ms"], bigdoc  # the history room compacted the document
    cpu = document["scenarios"]["cpu"]
    assert cpu["work_per_message"]["loops"] > 0
    sizes = cpu["sizes"]
    for server, workers in (("jupyter-party", 1), ("jupyter-party-workers2", 2)):
        placed = cpu["servers"][server]["rooms_per_worker"]
        assert len(placed) == workers and sum(placed) == sizes["rooms"], (server, placed)
        assert cpu["servers"][server]["server_processes"] == 1 + workers, server


def test_connect_steps_go_to_the_deepest_named_frame(tmp_path):
    """`--profile`'s step table: a sample counts for the innermost step on its stack, a
    worker's samples for the worker, and idle threads for nothing."""
    sys.path.insert(0, str(REPO_ROOT))
    from benchmarks.run import summarize_profile

    server = 'process 1:"python -m jupyter_party.cli serve"'
    worker = f'{server};process 2:"python -m jupyter_party.runtime.worker 1"'
    read = "HTTP1Connection._read_message (tornado/http1connection.py:1)"
    prepare = "JupyterHandler.prepare (jupyter_server/base/handlers.py:1)"
    stacks = {
        f"{server};{read};{prepare};uuid4 (uuid.py:1)": 3,  # auth, inside the request read
        f"{server};{read};HTTPHeaders.parse (tornado/httputil.py:1)": 1,
        f"{worker};Session._open (jupyter_party/runtime/session.py:1)": 4,
        f"{server};WorkerThread.run (anyio/_backends/_asyncio.py:1)": 50,  # idle
        f"{server};_run_once (asyncio/base_events.py:1)": 2,
    }
    path = tmp_path / "profile.txt"
    path.write_text("".join(f"{stack} {n}\n" for stack, n in stacks.items()))
    steps = dict(summarize_profile(path)["steps_pct"])
    assert steps == {
        "the party worker": 40.0,
        "Jupyter's authentication (prepare)": 30.0,
        "event loop and socket I/O": 20.0,
        "read and route the HTTP request": 10.0,
    }
