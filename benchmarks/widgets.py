"""The console widget under load, in JupyterLab in real Chromium (issue #15, item 7).

    python -m benchmarks.widgets [--rate 1000] [--seconds 10] [--checkout DIR] [--quick]

Starts `jupyter lab` (this checkout's jupyter_party, or DIR's with --checkout: the same
measure of another version), opens a notebook whose cell displays
`RoomConsole("bcast", ROOM, mode="direct")` in headless Chromium, waits for "connected",
then one client of the load generator sends `rate` messages/s into the room for `seconds`
(party `bcast` relays each to every connection: the console receives them all). Measured
over that window, and over an idle window of the same length before it:

- frame time in the page (`requestAnimationFrame` intervals: p50, p99, max; frames/s) and
  the time spent in long tasks (> 50 ms, the PerformanceObserver's `longtask`),
- CPU of the kernel (the process running the notebook), of the Jupyter server, and of the
  browser's processes (Chromium's whole tree),
- that the page shows the last message and at most 200 log lines, and that the kernel's
  `console.messages` ends with it too (the log reached the kernel).

Needs `playwright` (PyPI) with Debian's `chromium` (JUPYTER_PARTY_CHROMIUM to point
elsewhere) and `jupyterlab`; prints a table and writes JSON (`--json`).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import LOADGEN_CORE, ROOT, free_port, pinned, run_loadgen  # noqa: E402

CHROMIUM = os.environ.get("JUPYTER_PARTY_CHROMIUM", "/usr/bin/chromium")
ROOM = "widget-load"
TIMEOUT_MS = 60_000
NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": [
                "from jupyter_party.widgets import RoomConsole\n",
                f'console = RoomConsole("bcast", "{ROOM}", mode="direct")\n',
                "console",
            ],
        },
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": ['print("kernel log:", len(console.messages), console.messages[-1]["text"])'],
        },
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}
# Run one cell of the open notebook (index), once its kernel is up.
RUN_CELL = """
async (index) => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  await panel.context.ready;
  await panel.sessionContext.ready;
  panel.content.activeCellIndex = index;
  await app.commands.execute("notebook:run-cell");
}
"""
NOTEBOOK_OPEN = """
() => {
  const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return !!(widget && widget.sessionContext && widget.content && widget.content.widgets);
}
"""
# Frame intervals and long tasks, from now until FRAMES_STOP.
FRAMES_START = """
() => {
  const probe = (window.__probe = { frames: [], longMs: 0, longTasks: 0, on: true });
  let last = performance.now();
  const loop = (t) => {
    probe.frames.push(t - last);
    last = t;
    if (probe.on) requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
  probe.observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      probe.longMs += entry.duration;
      probe.longTasks += 1;
    }
  });
  probe.observer.observe({ type: "longtask" });
}
"""
FRAMES_STOP = """
() => {
  const probe = window.__probe;
  probe.on = false;
  probe.observer.disconnect();
  const lines = document.querySelectorAll(".jp-party-console .log div");
  return {
    frames: probe.frames, longMs: probe.longMs, longTasks: probe.longTasks,
    lines: lines.length, last: lines.length ? lines[lines.length - 1].textContent : "",
  };
}
"""


SHOWS = """
(text) => {
  const lines = document.querySelectorAll(".jp-party-console .log div");
  return lines.length > 0 && lines[lines.length - 1].textContent.endsWith(text);
}
"""


def cpu_seconds(procs: list[Any]) -> float:
    import psutil

    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def tree(pid: int) -> list[Any]:
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Lab:
    """`jupyter lab` with jupyter_party from `checkout`, parties from benchmarks/parties."""

    def __init__(self, base: Path, checkout: Path) -> None:
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/"
        root = base / "root"
        root.mkdir()
        (root / "load.ipynb").write_text(json.dumps(NOTEBOOK))
        config = base / "config"
        config.mkdir()
        server_config = {
            "ServerApp": {"jpserver_extensions": {"jupyter_party": True}},
            "LabApp": {"expose_app_in_browser": True},
            "PartyApp": {
                "parties_dir": str(HERE / "parties"),
                "storage_url": f"sqlite:///{base / 'rooms.db'}",
                "rate_limit_messages": 0,  # the load generator's 1,000 msg/s, like run.py
                "rate_limit_bytes": 0,
            },
            "IdentityProvider": {"token": self.token},
        }
        (config / "jupyter_server_config.json").write_text(json.dumps(server_config))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
        env.update(
            JUPYTER_CONFIG_DIR=str(config),
            JUPYTER_DATA_DIR=str(base / "data"),
            JUPYTER_RUNTIME_DIR=str(base / "runtime"),
            IPYTHONDIR=str(base / "ipython"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(checkout), env.get("PYTHONPATH")])),
        )
        argv = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}", "--allow-root",
        ]  # fmt: skip
        self.log = (base / "lab.log").open("w")
        self.proc = subprocess.Popen(
            [*pinned(0), *argv], cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((base / "lab.log").read_text()[-3000:])
            try:
                request = urllib.request.Request(
                    self.url + "api/status", headers={"Authorization": f"token {self.token}"}
                )
                urllib.request.urlopen(request, timeout=2).close()
                break
            except OSError:
                time.sleep(0.2)  # polling a port until the server listens

    def kernel(self) -> Any:
        """The notebook's kernel process (the server's child running ipykernel)."""
        for proc in tree(self.proc.pid)[1:]:
            if any("ipykernel" in part for part in proc.cmdline()):
                return proc
        raise RuntimeError("no kernel process")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def window(
    page: Any, lab: Lab, kernel: Any, browser_pid: int, load: dict[str, Any], busy: bool
) -> dict[str, Any]:
    """One measured window: the load generator's `load` runs (`busy`), or as long idle."""
    server = tree(lab.proc.pid)[:1]
    browser = tree(browser_pid)
    before = (cpu_seconds([kernel]), cpu_seconds(server), cpu_seconds(browser))
    page.evaluate(FRAMES_START)
    t0 = time.perf_counter()
    sent: dict[str, Any] = {}
    if busy:
        sent = run_loadgen(load, load["seconds"] + 120)
        # The page may lag behind the room: the window ends once it shows the last message.
        done = time.perf_counter()
        last = round(load["rate"] * load["seconds"]) - 1
        page.wait_for_function(SHOWS, arg=f"load {last}", timeout=600_000)
        sent["catch_up_s"] = round(time.perf_counter() - done, 2)
    else:
        time.sleep(load["seconds"])  # the idle reference: nothing to wait for
    seen = page.evaluate(FRAMES_STOP)
    wall = time.perf_counter() - t0
    after = (cpu_seconds([kernel]), cpu_seconds(server), cpu_seconds(tree(browser_pid)))
    frames = seen["frames"][1:]  # the first interval starts before the window
    cpu = {
        f"{who}_cpu_pct": round(100 * (a - b) / wall, 1)
        for who, a, b in zip(("kernel", "jupyter_server", "browser"), after, before, strict=True)
    }
    return {
        "seconds": round(wall, 2),
        "frames_per_s": round(1000 * len(frames) / sum(frames), 1) if frames else None,
        "frame_p50_ms": pct(frames, 50),
        "frame_p99_ms": pct(frames, 99),
        "frame_max_ms": max(frames, default=None),
        "long_task_ms": round(seen["longMs"], 1),
        "long_tasks": seen["longTasks"],
        "log_lines": seen["lines"],
        "last_line": seen["last"],
        **cpu,
        **{k: v for k, v in sent.items() if k in ("sent", "lost", "messages_per_s", "catch_up_s")},
    }


def measure(rate: int, seconds: float, checkout: Path) -> dict[str, Any]:
    import psutil
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory(prefix="jp-widgets-") as tmp:
        lab = Lab(Path(tmp), checkout)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM,
                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
                    headless=True,
                )
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(f"{lab.url}lab/tree/load.ipynb?token={lab.token}")
                page.wait_for_function(NOTEBOOK_OPEN)
                page.evaluate(RUN_CELL, 0)
                widget = page.locator(".jp-party-console")
                expect(widget.locator(".status")).to_have_text("connected", timeout=TIMEOUT_MS)
                kernel = lab.kernel()
                # Chromium's processes: the browser's own, below Playwright's driver.
                chromium = [
                    p
                    for p in psutil.Process().children(recursive=True)
                    if "chrom" in p.name() and p.parent() and "chrom" not in p.parent().name()
                ]
                load = {
                    "scenario": "stream",
                    "port": lab.port,
                    "prefix": "/parties/bcast/",
                    "query": f"?token={lab.token}",
                    "headers": {},
                    "room": ROOM,
                    "rate": rate,
                    "seconds": seconds,
                }
                idle = window(page, lab, kernel, chromium[0].pid, load, busy=False)
                loaded = window(page, lab, kernel, chromium[0].pid, load, busy=True)
                # The log reached the kernel: its own `console.messages` ends with the last one.
                page.evaluate(RUN_CELL, 1)
                output = page.locator(".jp-OutputArea-output").filter(has_text="kernel log:")
                expect(output).to_have_count(1)
                loaded["kernel_log"] = output.inner_text().strip()
                browser.close()
        finally:
            lab.stop()
    return {"idle": idle, "load": loaded}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="200 messages/s for 1 s")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="jupyter_party from here")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.rate, args.seconds = 200, 1.0
    result = {
        "rate": args.rate,
        "seconds": args.seconds,
        "checkout": str(args.checkout),
        "loadgen_core": LOADGEN_CORE,
        **measure(args.rate, args.seconds, args.checkout.resolve()),
    }
    keys = [k for k in result["load"] if k not in ("last_line", "kernel_log")]
    print(f"{'':24}{'idle':>14}{'load':>14}")
    for key in keys:
        row = [result[w].get(key) for w in ("idle", "load")]
        cells = "".join(f"{'-' if v is None else round(v, 1):>14}" for v in row)
        print(f"{key:<24}{cells}")
    print(f"last line: {result['load']['last_line']!r}; {result['load']['kernel_log']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
