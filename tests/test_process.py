"""Whole-process tests: real server processes, kill -9, restarts, and the README's main command.

Each test starts `jupyter party serve` (or `jupyter server`) as a child process on a free port,
with its own JUPYTER_* directories, and always kills it in a `finally`.
"""

import asyncio
import contextlib
import http.client
import json
import logging
import os
import random
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from conftest import eventually, require

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_PARTIES = Path(__file__).resolve().parent / "parties"
TOKEN = "process-test-token"
START_TIMEOUT = 30.0


# -- helpers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def jupyter_env(root: Path, bin_dir: Path | None = None) -> dict[str, str]:
    """The environment of a child server: private JUPYTER_* dirs, and `bin_dir` first on PATH."""
    env = dict(os.environ)
    for name in ("DATA", "RUNTIME", "CONFIG"):
        path = root / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[f"JUPYTER_{name}_DIR"] = str(path)
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(bin_dir.parent)
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
    return env


def request(
    port: int, method: str, path: str, body: str | bytes | None = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    """One HTTP request to the server on `port`, authenticated with the token."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Authorization": f"token {TOKEN}"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class ServerProcess:
    """A child Jupyter server; `start()` returns once it answers HTTP."""

    def __init__(self, argv: list[str], port: int, env: dict[str, str], log: Path, cwd: Path):
        self.argv, self.port, self.env, self.log_path, self.cwd = argv, port, env, log, cwd
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> "ServerProcess":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(  # its own process group: the server and its workers
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = request(self.port, "GET", "/api/status", timeout=0.5)
                if status == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"server not ready after {START_TIMEOUT}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL to the whole process group (server and workers): no shutdown code runs."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()


def serve_process(
    root: Path, *options: str, parties: Path = TEST_PARTIES, cwd: Path | None = None
) -> ServerProcess:
    """`jupyter party serve` with `options` (not started); its Jupyter dirs and log in `root`."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "jupyter_party.cli",
        "serve",
        f"--parties={parties}",
        f"--port={port}",
        "--allow-root",
        f"--IdentityProvider.token={TOKEN}",
        "--ServerApp.open_browser=False",
        *options,
    ]
    return ServerProcess(
        argv, port, jupyter_env(root / "jupyter"), root / "server.log", cwd or root
    )


def party_serve(
    tmp_path: Path, db: Path, parties: Path = TEST_PARTIES, *extra: str
) -> ServerProcess:
    return serve_process(tmp_path, f"--storage=sqlite:///{db}", *extra, parties=parties)


# -- a. acknowledged writes survive kill -9 ------------------------------------------------------

ROOM = "/parties/durable/kill9"
ITERATIONS = 20
WRITERS = 2  # concurrent sequential writers, so a group commit may hold several writes
WRITES = 300  # per writer and run, at most


class Run:
    """The shared state of one run of writers: what was acknowledged, and when to kill."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.acked: dict[str, str] = {}
        self.lock = threading.Lock()
        self.enough = threading.Event()  # set once `target` writes were acknowledged
        self.finished = 0  # writers that ran out of writes before the kill
        self.errors: list[str] = []  # answers other than the acknowledgement


def _writer(port: int, prefix: str, run: Run) -> None:
    """Write until the connection fails; record only the writes the server acknowledged."""
    for i in range(WRITES):
        # Every third write is a batch of three keys: one put, all or nothing.
        if i % 3 == 2:
            items = {
                f"{prefix}-{i}-{j}": f"batch {prefix} {i} {j} {random.random()}" for j in "abc"
            }
            path, body = f"{ROOM}/batch", json.dumps(items)
        else:
            key = f"{prefix}-{i}"
            items = {key: f"value {key} {random.random()} " + "x" * random.randrange(2000)}
            path, body = f"{ROOM}/put?key={urllib.parse.quote(key)}", items[key]
        try:
            status, text = request(port, "POST", path, body.encode())
        except (OSError, http.client.HTTPException):
            return  # the server died mid-request: not acknowledged
        if (status, text) != (200, b"ok"):
            with run.lock:
                run.errors.append(f"{path}: {status} {text[:200]!r}")
            run.enough.set()  # fail fast: the main thread checks errors
            return
        with run.lock:
            run.acked.update(items)
            if len(run.acked) >= run.target:
                run.enough.set()
    with run.lock:
        run.finished += 1


def _check_acked(port: int, acked: dict[str, str], recent: dict[str, str]) -> None:
    status, body = request(port, "GET", f"{ROOM}/list")
    assert status == 200, body
    stored = json.loads(body)
    missing = {k: v for k, v in acked.items() if stored.get(k) != v}
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {next(iter(missing))}"
    for key, value in recent.items():  # the last run's writes, one GET each
        status, body = request(port, "GET", f"{ROOM}/get?key={urllib.parse.quote(key)}")
        assert (status, body.decode()) == (200, value), key


def test_acknowledged_writes_survive_kill_9(tmp_path):
    db = tmp_path / "party.db"
    acked: dict[str, str] = {}  # every write acknowledged so far, over all iterations
    recent: dict[str, str] = {}  # those of the last run
    for iteration in range(ITERATIONS + 1):
        server = party_serve(tmp_path, db)
        try:
            server.start()
            _check_acked(server.port, acked, recent)
            if iteration == ITERATIONS:
                break
            run = Run(target=random.randint(5, 60))
            writers = [
                threading.Thread(
                    target=_writer, args=(server.port, f"i{iteration}w{w}", run), daemon=True
                )
                for w in range(WRITERS)
            ]
            for thread in writers:
                thread.start()
            assert run.enough.wait(30), f"only {len(run.acked)} writes acked:\n{server.log()}"
            # Kill while the writers keep going: usually a write is in flight, sometimes it is
            # being committed.
            if random.random() < 0.5:
                time.sleep(random.random() * 0.005)
            server.kill()
            for thread in writers:
                thread.join(15)
                assert not thread.is_alive(), "a writer did not notice the server died"
            assert not run.errors, f"writes refused: {run.errors}\n{server.log()}"
            assert run.finished == 0, "the writers ran out of writes before the kill"
            recent = run.acked
            acked.update(recent)
        finally:
            server.kill()
    assert len(acked) >= ITERATIONS * 5

    # Independently of the server: the file is sound and holds every acknowledged write.
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = conn.execute(
            "SELECT key, value FROM kv WHERE party = 'durable' AND room = 'kill9'"
        ).fetchall()
    stored = {key.decode(): json.loads(value) for key, value in rows}
    assert {k: stored.get(k) for k in acked} == acked


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_no_orphan_workers_after_the_server_is_killed(tmp_path):
    server = party_serve(tmp_path, tmp_path / "party.db", TEST_PARTIES, "--workers=2")
    with server:
        status, body = request(server.port, "GET", "/party-api/rooms")
        assert status == 200, body
        pids = [worker["pid"] for worker in json.loads(body)["workers"]]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        os.kill(server.pid, signal.SIGKILL)  # the server alone: its workers must notice
        server.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in pids if _alive(pid)], "orphan workers left running"


# -- b. alarms survive a restart -------------------------------------------------------------------


def _alarm_state(port: int, room: str) -> dict:
    status, body = request(port, "GET", f"/parties/alarmclock/{room}")
    assert status == 200, body
    return json.loads(body)


def test_alarm_fires_after_restart(tmp_path):
    db = tmp_path / "alarms.db"
    server = party_serve(tmp_path, db)
    try:
        server.start()
        set_at = {}
        for room, in_ms in (("r1", 1500), ("r2", 2500)):
            status, body = request(
                server.port, "POST", f"/parties/alarmclock/{room}/set?in_ms={in_ms}"
            )
            assert status == 200, body
            set_at[room] = json.loads(body)["alarm"]
        for room in set_at:
            assert _alarm_state(server.port, room) == {"fired": [], "alarm": set_at[room]}
        server.kill()
        assert time.time() * 1000 < set_at["r1"], "the test was too slow: killed after the alarm"
    finally:
        server.kill()

    server = party_serve(tmp_path, db)
    try:
        server.start()
        deadline = time.monotonic() + 20
        pending = set(set_at)
        while pending and time.monotonic() < deadline:
            for room in list(pending):
                state = _alarm_state(server.port, room)
                if state["fired"] and state["alarm"] is None:
                    pending.discard(room)
            time.sleep(0.1)
        assert not pending, f"alarms of {pending} did not fire after restart:\n{server.log()}"
        for room in set_at:
            # Fired once, after its time, knowing its own room id; then cleared.
            assert _alarm_state(server.port, room) == {"fired": [room], "alarm": None}
        assert time.time() * 1000 >= set_at["r2"]
    finally:
        server.kill()


# -- c. the README's main command, in a fresh virtualenv ---------------------------------------


def readme_main_command() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"^```bash\n(.*?)^```", readme, re.S | re.M)
    assert block, "README.md has no ```bash block"
    lines = [line.strip() for line in block.group(1).splitlines()]
    return next(line for line in lines if line and not line.startswith("#"))


@pytest.fixture
def readme_venv(tmp_path):
    """A fresh virtualenv in which the install part of the README's main command has run."""
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / "bin"
    install, serve = (shlex.split(part) for part in readme_main_command().split("&&"))
    assert install[:4] == ["python", "-m", "pip", "install"], install
    assert serve[0] == "jupyter", serve
    env = jupyter_env(tmp_path / "jupyter", bin_dir)
    result = subprocess.run(
        [str(bin_dir / "python"), *install[1:], "--quiet"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return bin_dir, serve, env


async def test_readme_main_command_in_fresh_venv(readme_venv, tmp_path):
    bin_dir, serve, env = readme_venv
    listed = await asyncio.to_thread(
        subprocess.run,
        [str(bin_dir / "jupyter"), "server", "extension", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)  # no colours
    # Enabled by the JSON the wheel installs into the venv's etc/jupyter, and it validates.
    sections = dict(re.findall(r"^Config dir: (.*)\n((?:(?!Config dir:).*\n?)*)", output, re.M))
    venv_section = sections.get(str(bin_dir.parent / "etc" / "jupyter"), "")
    assert re.search(r"^\s*jupyter_party\s+enabled\s*$", venv_section, re.M), output
    assert re.search(r"^\s*jupyter_party \S+ OK\s*$", venv_section, re.M), output

    port = free_port()
    argv = [
        str(bin_dir / serve[0]),
        *serve[1:],
        "--allow-root",
        f"--port={port}",
        f"--IdentityProvider.token={TOKEN}",
        "--ServerApp.open_browser=False",
        "--LabApp.expose_app_in_browser=True",  # for the browser check below
    ]
    # Run where a person runs it: in the repository, whose notebooks/ the command opens.
    server = ServerProcess(argv, port, env, tmp_path / "jupyter-server.log", REPO_ROOT)
    try:
        await asyncio.to_thread(server.start)
        url = f"ws://127.0.0.1:{port}/parties/chat/readme-room"
        headers = {"Authorization": f"token {TOKEN}"}
        a = await websocket_connect(HTTPRequest(url, headers=headers))
        b = await websocket_connect(HTTPRequest(url, headers=headers))
        try:

            async def receive(ws):
                message = await asyncio.wait_for(ws.read_message(), 10)
                assert message is not None, f"socket closed: {ws.close_code} {ws.close_reason}"
                return json.loads(message)

            for ws in (a, b):
                first = await receive(ws)
                assert first["type"] == "history", first
                assert first["messages"] == []
            await a.write_message("hello")
            for ws in (a, b):
                received = await receive(ws)
                assert received["type"] == "message", received
                assert received["text"] == "hello", received
        finally:
            a.close()
            b.close()
        notebook = next(arg for arg in serve[1:] if arg.endswith(".ipynb"))
        await asyncio.to_thread(_lab_runs_the_quickstart, port, notebook)
        server.stop()
        assert server.proc.returncode is not None
    finally:
        server.kill()


def _lab_runs_the_quickstart(port: int, notebook: str) -> None:
    """In Chromium: JupyterLab shows the notebook the command opened and the Parties panel,
    and running the notebook's cells connects its room console."""
    from test_notebook_browser import (
        ARTIFACTS,
        CHROMIUM,
        CHROMIUM_ARGS,
        NOTEBOOK_OPEN,
        RUN_ALL_BUT_LAST,
        TIMEOUT_MS,
        expect,
        sync_playwright,
    )

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = chromium.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            # Jupyter serves the notebook's directory when it is given a notebook to open.
            page.goto(f"http://127.0.0.1:{port}/lab/tree/{Path(notebook).name}?token={TOKEN}")
            expect(page.locator("#jupyter-party-panel")).to_be_visible()  # shown at first visit
            party = page.locator('#jupyter-party-panel .jp-party-item[data-party="chat"]')
            expect(party.and_(page.locator(":not(.jp-party-room)"))).to_be_visible()
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            page.wait_for_function(NOTEBOOK_OPEN)
            page.evaluate(RUN_ALL_BUT_LAST)
            widget = page.locator(".jp-party-console")
            expect(widget.locator(".status")).to_have_text("connected", timeout=TIMEOUT_MS)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "readme-main-command.png"))
        finally:
            chromium.close()


# -- d. `jupyter party serve` honours its flags ------------------------------------------------

ECHO_PARTY = """
from jupyter_party import Server


class Echo(Server):
    async def on_request(self, request):
        await self.room.storage.put("last", request.text())
        return {"room": self.room.id, "echo": request.text()}
"""


SOMAXCONN_LIMIT = int(Path("/proc/sys/net/core/somaxconn").read_text())


def listen_backlog(port: int) -> int:
    """The accept queue's size of the socket listening on `port` (`ss`: Send-Q of LISTEN)."""
    require(shutil.which("ss") is not None, "no ss (apt-get install iproute2)")
    shown = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(shown[2])  # State Recv-Q Send-Q Local Peer


def test_serve_cli_flags(tmp_path):
    parties = tmp_path / "my-parties"
    parties.mkdir()
    (parties / "echo.py").write_text(ECHO_PARTY)
    db = tmp_path / "nested" / "dir" / "store.db"
    port = free_port()
    bin_dir = Path(sys.executable).parent
    jupyter = bin_dir / "jupyter"
    # `jupyter party serve` as documented; the `jupyter` launcher finds `jupyter-party` on PATH.
    launcher = (
        [str(jupyter), "party"] if jupyter.exists() else [sys.executable, "-m", "jupyter_party.cli"]
    )
    argv = [
        *launcher,
        "serve",
        "--parties",
        str(parties),
        "--port",
        str(port),
        "--storage",
        f"sqlite:///{db}",
        "--workers",
        "2",
        "--handler-timeout",
        "7",
        "--allow-root",
        f"--IdentityProvider.token={TOKEN}",
        "--ServerApp.open_browser=False",
    ]
    env = jupyter_env(tmp_path / "jupyter", bin_dir)
    with ServerProcess(argv, port, env, tmp_path / "server.log", tmp_path) as server:
        assert f":{port}/" in server.log()
        status, body = request(port, "GET", "/party-api/parties")
        assert status == 200, body
        # A reconnect storm must not overflow the listen queue (Tornado's is 128).
        assert listen_backlog(port) == min(socket.SOMAXCONN, SOMAXCONN_LIMIT)
        sources = {p["name"]: p["source"] for p in json.loads(body)["parties"]}
        assert sources.get("echo") == str(parties / "echo.py"), sources
        status, body = request(port, "GET", "/party-api/rooms")
        assert len(json.loads(body)["workers"]) == 2
        assert "2 worker process(es)" in server.log()
        assert f":{port}/parties?token=" in server.log()  # the party home page
        status, body = request(port, "POST", "/parties/echo/room-1", b"ping")
        assert status == 200, body
        assert json.loads(body) == {"room": "room-1", "echo": "ping"}
        assert db.is_file()
        with contextlib.closing(sqlite3.connect(db)) as conn:
            rows = conn.execute("SELECT party, room, key, value FROM kv").fetchall()
        assert rows == [("echo", "room-1", b"last", '"ping"')]


MODULES_PARTY = """
import sys

from jupyter_party import Server


class Modules(Server):
    def on_request(self, request):
        return {"imported": sys.modules.get(request.query["name"]) is not None}
"""


def test_serve_does_not_compile_the_iri_grammars(tmp_path):
    """jsonschema's optional rfc3987_syntax compiles ~35 grammars on import (over a second of
    every start, which clients reconnecting after a restart wait for); `serve` keeps it out."""
    parties = tmp_path / "parties"
    parties.mkdir()
    (parties / "modules.py").write_text(MODULES_PARTY)
    db = tmp_path / "rooms.db"
    with party_serve(tmp_path, db, parties, "--workers=0") as server:  # rooms in its process
        for name, imported in [("jsonschema", True), ("rfc3987_syntax", False)]:
            status, body = request(server.port, "GET", f"/parties/modules/r?name={name}")
            assert (status, json.loads(body)) == (200, {"imported": imported}), name


LOOP_PARTY = """
import asyncio
import gc

from jupyter_party import Server


class Loop(Server):
    def on_message(self, message, sender):
        loop = type(asyncio.get_running_loop()).__module__
        frozen = gc.get_freeze_count() > 0
        sender.send(f"{loop} frozen={frozen} young={gc.get_threshold()[0]} {message}")
"""


@pytest.mark.parametrize("workers, loop", [(0, "uvloop"), (1, "asyncio.unix_events")])
async def test_serve_processes_are_tuned(tmp_path, workers, loop):
    """`serve` runs on uvloop when it is installed (room sockets are its transports then;
    with `workers = 0` the rooms are in its process), a party worker on asyncio's loop; once
    started, both have their heap settled: frozen out of the collector's walks, young
    collections spaced out (tuning.py)."""
    from jupyter_party.runtime.tuning import YOUNG_THRESHOLD

    parties = tmp_path / "parties"
    parties.mkdir()
    (parties / "loop.py").write_text(LOOP_PARTY)
    with party_serve(tmp_path, tmp_path / "rooms.db", parties, f"--workers={workers}") as server:
        url = f"ws://127.0.0.1:{server.port}/parties/loop/r"
        headers = {"Authorization": f"token {TOKEN}"}
        client = await websocket_connect(HTTPRequest(url, headers=headers))
        client.write_message("hello")
        answer = await asyncio.wait_for(client.read_message(), 10)
        assert answer == f"{loop} frozen=True young={YOUNG_THRESHOLD} hello"
        client.close(4000, "done")
        assert await asyncio.wait_for(client.read_message(), 10) is None  # closed
        assert client.close_code == 4000


GARBAGE_PARTY = """
import gc

from jupyter_party import Server


class Garbage(Server):
    def on_request(self, request):
        \"\"\"?op=watch: from now on the collector keeps what it finds unreachable;
        without: the type names of what it found since.\"\"\"
        gc.collect()
        if request.query.get("op") == "watch":
            gc.garbage.clear()
            gc.set_debug(gc.DEBUG_SAVEALL)
            return {}
        names = sorted({type(o).__qualname__ for o in gc.garbage})
        gc.set_debug(0)
        gc.garbage.clear()
        return {"garbage": names}

    def on_message(self, message, sender):
        sender.send(message)
"""


async def test_served_sockets_leave_no_cycles(tmp_path):
    """Connects and closed sockets leave nothing in a reference cycle (on uvloop, as served):
    the handler and its request, the room socket and its transport, the router's socket and
    its outbox are freed by reference counting. The collector found them before, and its walks
    cost about a seventh of a connect's CPU."""
    parties = tmp_path / "parties"
    parties.mkdir()
    (parties / "garbage.py").write_text(GARBAGE_PARTY)
    db = tmp_path / "rooms.db"
    with party_serve(tmp_path, db, parties, "--workers=0") as server:  # rooms in its process
        assert request(server.port, "GET", "/parties/garbage/g?op=watch")[0] == 200
        headers = {"Authorization": f"token {TOKEN}"}
        for i in range(10):
            url = f"ws://127.0.0.1:{server.port}/parties/garbage/r?_pk=c{i}"
            client = await websocket_connect(HTTPRequest(url, headers=headers))
            client.write_message(f"hello {i}")
            assert await asyncio.wait_for(client.read_message(), 10) == f"hello {i}"
            client.close(4000, "done")
            assert await asyncio.wait_for(client.read_message(), 10) is None  # closed

        def room_r() -> list[dict]:
            body = request(server.port, "GET", "/party-api/rooms")[1]
            return [r for r in json.loads(body)["rooms"] if r["room"] == "r"]

        await eventually(
            lambda: not any(r["connections"] for r in room_r()),
            message="the server letting the sockets go",
        )
        status, body = request(server.port, "GET", "/parties/garbage/g")
        assert status == 200, body
        garbage = set(json.loads(body)["garbage"])
        ours = {"RoomHandler", "HTTPServerRequest", "RoomSocket", "TCPTransport", "Socket"}
        assert not garbage & {*ours, "Outbox"}, sorted(garbage)


def test_debug_records_no_handler_shows_are_not_built():
    """Jupyter's app logger is left at DEBUG with handlers that filter: every `log.debug` of
    a request built a record (and walked the stack) for nothing. The extension keeps the
    logger at its handlers' lowest level, and after every change of the logging settings."""
    from traitlets.config import Application

    from jupyter_party.extension import _skip_unseen_records

    class LevelsApp(Application):
        pass

    app = LevelsApp(log_level="INFO")
    assert app.log.level == logging.DEBUG  # traitlets' own way
    _skip_unseen_records(app)
    assert app.log.level == logging.INFO
    app.log_level = "WARN"  # traitlets configures the logger again: back to DEBUG, then ours
    assert app.log.level == logging.WARNING
    app.log_level = "DEBUG"
    assert app.log.level == logging.DEBUG
    app.log_level = "INFO"
    app.logging_config = {  # a second handler shows debug records: they are made again
        "handlers": {"all": {"class": "logging.NullHandler", "level": "DEBUG"}},
        "loggers": {"LevelsApp": {"handlers": ["console", "all"]}},
    }
    assert app.log.level == logging.DEBUG
