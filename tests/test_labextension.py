"""The JupyterLab extension in a real JupyterLab and a real browser.

`jupyter lab` runs as a subprocess (base_url `/jp/`, a token, private JUPYTER_* dirs, the
test parties), exactly as a user would start it after `pip install`; headless Chromium
(Debian's, driven by Playwright's async API) opens `/jp/lab`, shows the Parties panel, and
uses it on a live room held open by a WebSocket client. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import websocket_connect

from conftest import require

pytest_plugins = ["redis_support"]  # its fixture redis_url: the panel test runs a cluster node

CHROMIUM = os.environ.get("JUPYTER_PARTY_CHROMIUM", "/usr/bin/chromium")
require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
require(find_spec("playwright") is not None, "playwright is not installed (pip install playwright)")
require(find_spec("jupyterlab") is not None, "jupyterlab is not installed (pip install -e .[test])")
from playwright.async_api import async_playwright, expect  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
PARTIES = ROOT / "tests" / "parties"
TOKEN = "labtoken123"
BASE = "/jp/"
TIMEOUT_MS = 20_000
STARTUP_TIMEOUT = 60.0
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def lab_env(tmp_path) -> dict[str, str]:
    """The environment for `jupyter ...` subprocesses: this venv, private user dirs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "IPYTHON"))}
    dirs = {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "IPYTHONDIR": "ipython",
        "JUPYTERLAB_SETTINGS_DIR": "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": "lab-workspaces",
    }
    for name, sub in dirs.items():
        (tmp_path / sub).mkdir()
        env[name] = str(tmp_path / sub)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def jupyter_lab(env: dict[str, str], workdir: Path, *options: str):
    """Start `jupyter lab` (storage in `workdir`, unless `options` say otherwise); yield its
    URL once it says it is running; stop it after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{BASE}"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={BASE}", f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={workdir}",
        "--allow-root",  # containers and CI runners often are root; harmless otherwise
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # no PyPI queries from the test server
        f"--PartyApp.parties_dir={PARTIES}",
        *(options or [f"--PartyApp.storage_url=sqlite:///{workdir / 'rooms.db'}"]),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    log: list[str] = []
    ready = asyncio.Event()

    async def drain() -> None:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            log.append(line.decode(errors="replace"))
            if f"127.0.0.1:{port}{BASE}lab" in log[-1]:
                ready.set()
        ready.set()  # exited: let the waiter see it

    reader = asyncio.ensure_future(drain())
    try:
        await asyncio.wait_for(ready.wait(), STARTUP_TIMEOUT)
        if reader.done():
            await process.wait()
            pytest.fail("jupyter lab exited:\n" + "".join(log), pytrace=False)
        # The URL is logged before the socket is bound: wait until the API answers.
        await asyncio.wait_for(answers(f"{url}party-api/parties?token={TOKEN}"), STARTUP_TIMEOUT)
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        await reader
        (ARTIFACTS / "labextension-server.log").write_text("".join(log))


async def answers(url: str) -> None:
    """Return once `url` answers 200; retry while the server is not listening yet."""
    while True:
        try:
            await AsyncHTTPClient().fetch(url)
            return
        except ConnectionRefusedError:
            await asyncio.sleep(0.05)  # poll interval of the condition "port is bound"


async def test_labextension_is_listed_enabled(lab_env):
    jupyter = shutil.which("jupyter", path=lab_env["PATH"]) or "jupyter"
    process = await asyncio.create_subprocess_exec(
        jupyter, "labextension", "list",
        env=lab_env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    text = ANSI.sub("", output.decode())
    assert re.search(r"^\s*jupyter-party v\S+ enabled\s+OK", text, re.M), text


async def test_parties_panel_lists_a_live_room_and_shares_it(lab_env, tmp_path, redis_url):
    ARTIFACTS.mkdir(exist_ok=True)
    # A node of a party cluster (of one): the panel shows the node owning each room.
    cluster = (f"--PartyApp.redis_url={redis_url}", "--PartyApp.node_name=lab-node")
    async with jupyter_lab(lab_env, tmp_path, *cluster) as url:
        ws_url = url.replace("http", "ws", 1) + f"parties/probe/labroom?token={TOKEN}"
        ws = await websocket_connect(ws_url)
        try:
            welcome = json.loads(await asyncio.wait_for(ws.read_message(), 10))
            assert welcome["type"] == "welcome"
            await ws.write_message(json.dumps({"op": "remember", "text": "written by the party"}))
            remembered = json.loads(await asyncio.wait_for(ws.read_message(), 10))
            assert remembered["type"] == "remembered"  # durable: the inspector can show it
            await check_panel(url, ws)
            # The socket held open was closed by the panel's "evict" (1012: come back later).
            assert await asyncio.wait_for(drain_socket(ws), 10) == 1012
        finally:
            ws.close()
        rooms = await AsyncHTTPClient().fetch(f"{url}party-api/rooms?token={TOKEN}")
        assert json.loads(rooms.body)["rooms"] == []


async def drain_socket(ws) -> int | None:
    while await ws.read_message() is not None:
        pass
    return ws.close_code


async def check_panel(url: str, ws) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 900})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"{url}lab?token={TOKEN}")
            await expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=TIMEOUT_MS)
            await page.screenshot(path=ARTIFACTS / "lab-01-loaded.png")

            # The palette command opens the panel.
            await page.keyboard.press("Control+Shift+C")
            palette = page.locator(".lm-CommandPalette-input")
            await expect(palette).to_be_visible(timeout=TIMEOUT_MS)
            await palette.fill("Parties: Show panel")
            active = page.locator(".lm-CommandPalette-item.lm-mod-active")
            await expect(active).to_have_attribute("data-command", "jupyter-party:show-panel")
            await palette.press("Enter")
            panel = page.locator("#jupyter-party-panel")
            await expect(panel).to_be_visible(timeout=TIMEOUT_MS)

            party = panel.locator('.jp-party-item[data-party="probe"]').first
            await expect(party).to_be_visible(timeout=TIMEOUT_MS)
            room = panel.locator('.jp-party-room[data-party="probe"][data-room="labroom"]')
            await expect(room).to_contain_text("1 connection", timeout=TIMEOUT_MS)
            await expect(room).to_contain_text("on node lab-node")
            worker = panel.locator(".jp-party-worker")  # the worker process running the rooms
            await expect(worker).to_contain_text(re.compile(r"worker 0 pid \d+, 0 restarts"))
            await page.screenshot(path=ARTIFACTS / "lab-02-parties-panel.png")

            await room.get_by_role("button", name="copy write link").click()
            link = panel.locator(".jp-party-link")
            await expect(link).to_have_value(
                re.compile(re.escape(f"{BASE}party-share/probe/labroom?share_token=")),
                timeout=TIMEOUT_MS,
            )
            await page.screenshot(path=ARTIFACTS / "lab-03-write-link.png")

            await room.get_by_role("button", name="logs").click()
            await expect(panel.get_by_text("Log: probe", exact=True)).to_be_visible()

            # Traffic, drawn as sparklines: the panel samples the room's counters as it refreshes.
            for n in range(3):
                await ws.write_message(json.dumps({"op": "echo", "n": n}))
            spark = room.locator('.jp-party-spark[data-kind="messages_in"] polyline')
            await expect(spark).to_have_count(1, timeout=TIMEOUT_MS)
            await expect(room.locator(".jp-party-sparklines")).to_contain_text(
                re.compile(r"in .*[1-9][0-9.]*/s"), timeout=TIMEOUT_MS
            )

            # The inspector: what the party stored, edited here, then read by the party.
            await room.get_by_role("button", name="inspect").click()
            inspector = panel.locator(".jp-party-inspector")
            stored = inspector.locator('.jp-party-stored[data-key="remembered"]')
            await expect(stored.locator("textarea")).to_have_value(
                re.compile("written by the party"), timeout=TIMEOUT_MS
            )
            await expect(
                inspector.locator('.jp-party-connection[data-access="write"]')
            ).to_have_count(1)
            await page.screenshot(path=ARTIFACTS / "lab-04-inspector.png")
            await stored.locator("textarea").fill('["edited in the panel"]')
            await stored.get_by_role("button", name="save").click()
            await expect(panel.locator(".jp-party-status")).to_have_text("remembered saved")
            read = await AsyncHTTPClient().fetch(
                f"{url}parties/probe/labroom/stored?key=remembered&token={TOKEN}"
            )
            assert json.loads(read.body) == {"value": ["edited in the panel"]}

            await room.get_by_role("button", name="evict").click()
            await expect(room).to_have_count(0, timeout=TIMEOUT_MS)
            await expect(panel.locator(".jp-party-empty")).to_have_text("No live rooms")
            await page.screenshot(path=ARTIFACTS / "lab-05-evicted.png")
            assert [e for e in errors if "party" in e.lower()] == []
        finally:
            await browser.close()
