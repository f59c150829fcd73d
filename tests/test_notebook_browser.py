"""The quickstart notebook in a real browser: JupyterLab and Notebook 7 in headless Chromium.

A real `jupyter lab` runs as a subprocess (this virtualenv, private JUPYTER_* dirs, a tmp
parties_dir) with jupyter_party enabled. Chromium opens notebooks/quickstart.ipynb, runs it
(all cells but the last, which closes the room), and the room console widget the handle
displays must render, say "connected" and show who it is. A second browser context joins
the room through a share link and sends a message: the first context's console shows it.
Notebook 7 renders the same widget. Screenshots go to test-artifacts/.

The server is a separate process, so Playwright's sync API is fine here. Needs `playwright`
(PyPI), Debian's `chromium`, `jupyterlab` and `notebook`; Playwright's own browser download is
never used.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from importlib.util import find_spec
from pathlib import Path

import pytest

from conftest import require

CHROMIUM = os.environ.get("JUPYTER_PARTY_CHROMIUM", "/usr/bin/chromium")
require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
require(find_spec("playwright") is not None, "playwright is not installed (pip install playwright)")
require(find_spec("jupyterlab") is not None, "jupyterlab is not installed (pip install jupyterlab)")
require(find_spec("notebook") is not None, "notebook is not installed (pip install notebook)")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
JUPYTER = Path(sys.executable).with_name("jupyter")
TIMEOUT_MS = 30_000  # a kernel start plus a deploy in a cold JupyterLab
START_TIMEOUT = 60
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Run every cell above the last one (the last cell closes the room), once the kernel is up.
# Works in JupyterLab and Notebook 7 (both expose `window.jupyterapp` when asked to).
RUN_ALL_BUT_LAST = """
async () => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  await panel.context.ready;
  await panel.sessionContext.ready;
  const notebook = panel.content;
  notebook.activeCellIndex = notebook.widgets.length - 1;
  await app.commands.execute("notebook:run-all-above");
  return notebook.widgets.length;
}
"""
NOTEBOOK_OPEN = """
() => {
  const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return !!(widget && widget.sessionContext && widget.content && widget.content.widgets);
}
"""

# Notebook 7.6's own page errors on a notebook page, with or without jupyter-party (its
# notebook shell has no file browser; a settings plugin finds no schema).
NOTEBOOK7_NOISE = {
    "Cannot read properties of undefined (reading 'schema')",
    "Command 'filebrowser:open-path' not registered.",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def jp_asyncio_loop():
    """No pytest-jupyter loop here: the server is a subprocess, and Playwright's sync API owns
    this thread's event loop (pytest-jupyter's autouse fixture would close that loop)."""


@pytest.fixture
def jp_server_cleanup():
    """Nothing in-process to clean up (see jp_asyncio_loop)."""


class Lab:
    """A running `jupyter lab`: its URL, token, root dir and REST helper."""

    def __init__(self, url: str, token: str, root: Path) -> None:
        self.url, self.token, self.root = url, token, root

    def api(self, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method="GET" if body is None else "POST",
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    for name in ("quickstart.ipynb", "quickstart-nb7.ipynb"):
        shutil.copy(ROOT / "notebooks" / "quickstart.ipynb", root / name)
    config = base / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "ServerApp": {"jpserver_extensions": {"jupyter_party": True}},
                "LabApp": {"expose_app_in_browser": True},
                "JupyterNotebookApp": {"expose_app_in_browser": True},
                "PartyApp": {
                    "parties_dir": str(base / "parties"),
                    "storage_url": f"sqlite:///{base / 'rooms.db'}",
                },
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
    env.update(
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        IPYTHONDIR=str(base / "ipython"),
    )
    labextensions = subprocess.run(
        [str(JUPYTER), "labextension", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    listing = labextensions.stdout + labextensions.stderr
    assert re.search(r"anywidget v\S+ \S*enabled", listing), listing  # its front end is here

    token = secrets.token_hex(16)
    port = _free_port()
    args = [
        str(JUPYTER), "lab", "--no-browser", "--ServerApp.open_browser=False",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
    ]  # fmt: skip
    if os.geteuid() == 0:
        args.append("--allow-root")
    log_path = base / "server.log"
    log = log_path.open("w")
    server = subprocess.Popen(args, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        running = Lab(f"http://127.0.0.1:{port}/", token, root)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert server.poll() is None, log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, log_path.read_text()[-4000:]
            try:
                running.api("api/status")
                break
            except OSError:
                time.sleep(0.2)  # polling a port: nothing to wait on
        yield running
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Console:
    """What the page reported: uncaught errors (console messages kept for failures)."""

    def __init__(self, page) -> None:
        self.messages: list[str] = []
        self.errors: list[str] = []
        page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


def _open_and_run(context, url: str):
    """Open a notebook, run all its cells but the last; return (page, console widget)."""
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    console = Console(page)
    page.goto(url)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    page.wait_for_function(NOTEBOOK_OPEN)
    page.evaluate(RUN_ALL_BUT_LAST)
    widget = page.locator(".jp-party-console")
    expect(widget).to_have_count(1, timeout=TIMEOUT_MS)
    expect(widget.locator(".status")).to_have_text("connected", timeout=TIMEOUT_MS)
    expect(page.get_by_text("the first client got: hello from the second client")).to_be_visible(
        timeout=TIMEOUT_MS
    )
    return page, widget, console


def _presence(widget) -> str:
    expect(widget.locator(".who")).to_have_text(re.compile(r"you: \S{4,8}"))
    who = widget.locator(".who").inner_text().removeprefix("you: ")
    expect(widget.locator(".presence")).to_contain_text(f"here: you ({who})")
    return who


def test_lab_quickstart_widget_and_a_second_context(lab, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    first = browser.new_context(viewport={"width": 1280, "height": 1000})
    second = browser.new_context()
    try:
        page, widget, console = _open_and_run(
            first, f"{lab.url}lab/tree/quickstart.ipynb?token={lab.token}"
        )
        expect(widget.locator(".title")).to_have_text("quickchat / lobby")
        me = _presence(widget)
        # The log shows the room's traffic since it was displayed: the friend's message.
        hello = widget.locator(".log .in").filter(has_text="hello from the second client")
        expect(hello).to_have_count(1)
        widget.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "lab-quickstart-console.png"))

        # A second context (no cookie of the first) joins the room through a write share link.
        grant = lab.api(
            "party-api/share",
            {"party": "quickchat", "room": "lobby", "access": "write", "expires_in": 600},
        )
        guest = second.new_page()
        guest.set_default_timeout(TIMEOUT_MS)
        guest.goto(grant["url"])
        expect(guest.locator("#status")).to_have_text("connected")
        expect(guest.locator("#log .in").filter(has_text='"type":"history"')).to_have_count(1)
        guest.locator("#message").fill("hello from a second browser")
        guest.locator("#send button").click()
        echoed = guest.locator("#log .in").filter(has_text="hello from a second browser")
        expect(echoed).to_have_count(1)  # QuickChat broadcasts to everyone, the sender too
        guest.screenshot(path=str(ARTIFACTS / "lab-second-context-share-page.png"))

        # The first context's console widget shows it, still connected, still itself.
        arrived = widget.locator(".log .in").filter(has_text="hello from a second browser")
        expect(arrived).to_have_count(1)
        expect(widget.locator(".status")).to_have_text("connected")
        assert _presence(widget) == me
        rooms = lab.api("party-api/rooms")["rooms"]
        lobby = next(r for r in rooms if (r["party"], r["room"]) == ("quickchat", "lobby"))
        assert lobby["connections"] >= 3  # the notebook's two clients and the guest
        widget.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "lab-quickstart-message-received.png"))
        assert console.errors == [], console.errors
    finally:
        first.close()
        second.close()


def test_notebook7_renders_the_widget(lab, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page, widget, console = _open_and_run(
            context, f"{lab.url}notebooks/quickstart-nb7.ipynb?token={lab.token}"
        )
        assert "/notebooks/" in page.url and "/lab" not in page.url  # Notebook 7, not Lab
        expect(widget.locator(".title")).to_have_text("quickchat / lobby")
        _presence(widget)
        widget.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "notebook7-quickstart-console.png"))
        assert [e for e in console.errors if e not in NOTEBOOK7_NOISE] == [], console.errors
    finally:
        context.close()
