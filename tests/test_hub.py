"""A real JupyterHub: share links and room activity where most people share rooms from.

The hub (`jupyterhub` from PyPI) runs with `configurable-http-proxy` (npm, tests/interop), the
dummy authenticator and a local-process spawner whose single-user server has jupyter-party.
Its public URL names a host, `hub.test`, that only the browser resolves (to the proxy): so a
link built from the address a kernel used (`127.0.0.1:<server port>`) cannot pass for it.

A kernel in the user's server deploys a party and makes a share link; an anonymous headless
Chromium opens the link through the proxy and exchanges messages with the kernel; then, with
the kernel idle and no other request to the user's server, only the room is busy, and the
hub's `last_activity` for the user must still move (the single-user server reports activity
every second here, `JUPYTERHUB_ACTIVITY_INTERVAL=1`; the hub's own poll of the proxy is off).
About 20 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from conftest import require

ROOT = Path(__file__).resolve().parents[1]
PROXY = ROOT / "tests" / "interop" / "node_modules" / ".bin" / "configurable-http-proxy"
CHROMIUM = os.environ.get("JUPYTER_PARTY_CHROMIUM", "/usr/bin/chromium")
require(find_spec("jupyterhub") is not None, "jupyterhub is not installed (pip install .[test])")
require(PROXY.exists(), "configurable-http-proxy is missing (npm ci --prefix tests/interop)")
require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
require(find_spec("playwright") is not None, "playwright is not installed (pip install playwright)")
from playwright.async_api import async_playwright, expect  # noqa: E402

PUBLIC_HOST = "hub.test"
USER = "alice"
START_TIMEOUT = 60.0
TIMEOUT = 20.0
TIMEOUT_MS = 20_000

PARTY = """
from jupyter_party import Server

class HubChat(Server):
    def on_message(self, message, sender):
        self.room.broadcast(message, without=[sender.id])
"""

HUB_CONFIG = """
import sys
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.public_url = "http://{public_host}:{port}/"
c.JupyterHub.db_url = "sqlite:///{base}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{base}/cookie_secret"
c.JupyterHub.pid_file = "{base}/hub.pid"
c.JupyterHub.last_activity_interval = 3600  # the proxy's view of traffic: not what we test
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.ConfigurableHTTPProxy.command = ["{proxy}"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.auth_token = "{proxy_token}"
c.JupyterHub.services = [{{"name": "tester", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["tester"]}}]
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = {args}
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.SimpleLocalProcessSpawner.home_dir_template = "{base}/home/{{username}}"
c.Spawner.environment = {environment}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Hub:
    """A running hub: its local URL (what the test's Python clients use) and its token."""

    def __init__(self, url: str, token: str, public: str) -> None:
        self.url = url
        self.token = token
        self.public = public
        self.http = AsyncHTTPClient()

    async def api(self, method: str, path: str, body: dict | None = None) -> dict:
        request = HTTPRequest(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            request_timeout=TIMEOUT,
        )
        response = await self.http.fetch(request)
        return json.loads(response.body) if response.body else {}

    async def wait_for(self, predicate, what: str, timeout: float = START_TIMEOUT):
        """Poll `predicate` (async, returning a value or None) until it gives a value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await predicate()
            if value is not None:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.25)  # polling another process's state: nothing to wait on

    async def last_activity(self) -> datetime:
        user = await self.api("GET", f"hub/api/users/{USER}")
        return datetime.fromisoformat(user["last_activity"].replace("Z", "+00:00"))


@pytest.fixture
def hub(tmp_path):
    """JupyterHub with configurable-http-proxy, listening on 127.0.0.1, public as hub.test."""
    port, hub_port, proxy_api_port = _free_port(), _free_port(), _free_port()
    token = secrets.token_hex(16)
    jupyter = tmp_path / "jupyter"
    (jupyter / "config").mkdir(parents=True)
    (jupyter / "config" / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "ServerApp": {"jpserver_extensions": {"jupyter_party": True}},
                "PartyApp": {
                    "parties_dir": str(tmp_path / "parties"),
                    "storage_url": f"sqlite:///{tmp_path / 'rooms.db'}",
                },
            }
        )
    )
    environment = {
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "JUPYTER_DATA_DIR": str(jupyter / "data"),
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
        "JUPYTERHUB_ACTIVITY_INTERVAL": "1",
    }
    args = ["--allow-root"] if os.geteuid() == 0 else []
    public = f"http://{PUBLIC_HOST}:{port}/"
    (tmp_path / "jupyterhub_config.py").write_text(
        HUB_CONFIG.format(
            port=port,
            hub_port=hub_port,
            proxy_api_port=proxy_api_port,
            public_host=PUBLIC_HOST,
            base=tmp_path,
            proxy=PROXY,
            proxy_token=secrets.token_hex(16),
            token=token,
            args=repr(args),
            environment=repr(environment),
        )
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER", "JPY_", "IPYTHON"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log = (tmp_path / "hub.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(tmp_path / "jupyterhub_config.py")],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield Hub(f"http://127.0.0.1:{port}/", token, public), process, tmp_path / "hub.log"
    finally:
        # The hub stops the user's server and the proxy as it exits; whatever it left behind
        # (a server it could not stop in time) is stopped here, so no test leaks a process.
        children = psutil.Process(process.pid).children(recursive=True)
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(children, timeout=10)
        log.close()


class Kernel:
    """A kernel of the user's server, driven over Jupyter's kernel WebSocket via the proxy."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.session = uuid.uuid4().hex

    async def run(self, code: str) -> str:
        """Execute `code`; return its output (stdout, results); fail on an error."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "session": self.session,
            "username": USER,
            "version": "5.3",
            "date": datetime.now(UTC).isoformat(),
        }
        content = {"code": code, "silent": False, "store_history": False, "allow_stdin": False}
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        await self.ws.write_message(json.dumps({**message, "channel": "shell"}))
        output: list[str] = []
        idle = replied = False
        while not (idle and replied):
            raw = await asyncio.wait_for(self.ws.read_message(), TIMEOUT)
            assert raw is not None, "the kernel's socket closed"
            reply = json.loads(raw)
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, body = reply["msg_type"], reply["content"]
            if kind == "stream":
                output.append(body["text"])
            elif kind == "execute_result":
                output.append(body["data"].get("text/plain", ""))
            elif kind == "error":
                raise AssertionError("\n".join(body["traceback"]))
            elif kind == "status" and body["execution_state"] == "idle":
                idle = True
            elif kind == "execute_reply":
                replied = True
        return "".join(output)


async def _user_server(hub: Hub, process, log: Path) -> str:
    await hub.api("POST", f"hub/api/users/{USER}")
    await hub.api("POST", f"hub/api/users/{USER}/server")

    async def ready():
        assert process.poll() is None, log.read_text()[-4000:]
        user = await hub.api("GET", f"hub/api/users/{USER}")
        server = user.get("servers", {}).get("")
        return server["url"] if server and server.get("ready") else None

    return await hub.wait_for(ready, "the user's server")


async def _hub_up(hub: Hub, process, log: Path) -> None:
    async def up():
        assert process.poll() is None, log.read_text()[-4000:]
        try:
            return await hub.api("GET", "hub/api/")
        except (OSError, HTTPClientError):
            return None

    await hub.wait_for(up, "the hub")


async def test_a_kernel_on_a_hub_shares_a_room_that_keeps_the_server_active(hub):
    hub, process, log = hub
    await _hub_up(hub, process, log)
    server_path = await _user_server(hub, process, log)
    assert server_path == f"/user/{USER}/"
    kernel_info = await hub.api("POST", f"user/{USER}/api/kernels", {"name": "python3"})
    ws = await websocket_connect(
        HTTPRequest(
            f"ws://127.0.0.1:{urlsplit(hub.url).port}/user/{USER}/api/kernels/"
            f"{kernel_info['id']}/channels",
            headers={"Authorization": f"token {hub.token}"},
        )
    )
    kernel = Kernel(ws)
    try:
        # The kernel finds its server by itself, deploys, and makes a link: no warning that
        # it is local, and it is on the hub's public host and the user's public path.
        url = await kernel.run(
            "import warnings, jupyter_party\n"
            "from jupyter_party.client.share import LocalShareLinkWarning\n"
            "warnings.simplefilter('error', LocalShareLinkWarning)\n"
            f"jupyter_party.deploy({PARTY!r}, name='hubchat')\n"
            "print(jupyter_party.share_link('hubchat', 'lobby'))\n"
            "room = await jupyter_party.connect('hubchat', 'lobby')\n"
        )
        link = urlsplit(url.strip().splitlines()[-1])
        assert (link.scheme, link.netloc) == ("http", urlsplit(hub.public).netloc), url
        assert link.path == f"/user/{USER}/party-share/hubchat/lobby", url
        assert link.query.startswith("share_token=jps_"), url

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-background-networking",
                    f"--host-resolver-rules=MAP {PUBLIC_HOST} 127.0.0.1",
                ],
            )
            try:
                page = await (await browser.new_context()).new_page()
                response = await page.goto(url.strip().splitlines()[-1])
                assert response is not None and response.status == 200
                await expect(page.locator("#status")).to_have_text("connected", timeout=TIMEOUT_MS)
                # kernel -> browser
                await kernel.run("await room.send('hello from the kernel')")
                await expect(
                    page.locator("#log .in").filter(has_text="hello from the kernel")
                ).to_have_count(1, timeout=TIMEOUT_MS)
                # browser -> kernel
                await page.locator("#message").fill("hello from the browser")
                await page.locator("#send button").click()
                got = await kernel.run("print(await room.recv(timeout=10))")
                assert got.strip() == "hello from the browser"

                # From now on the kernel is idle and nobody calls the user's server: only the
                # room (the browser sending through the proxy) can move the hub's activity.
                quiet_since = datetime.now(UTC)
                before = await hub.last_activity()

                async def moved():
                    await page.locator("#message").fill(f"tick {time.monotonic()}")
                    await page.locator("#send button").click()
                    after = await hub.last_activity()
                    return after if after > quiet_since else None

                after = await hub.wait_for(moved, "the hub's last_activity to move", TIMEOUT)
                assert after > before
            finally:
                await browser.close()
    finally:
        ws.close()
