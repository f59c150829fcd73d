"""Binder, offline: do what repo2docker does with `binder/`, then run the quickstart notebook.

A fresh virtualenv gets exactly what `binder/requirements.txt` lists, then `binder/postBuild`
runs in the repository root with that virtualenv first in PATH (as repo2docker runs it).
`jupyter lab` is started from it as Binder would start it; the server extension must be
enabled there, anywidget's front end installed, and notebooks/quickstart.ipynb must execute
against that server, its kernel finding the server by itself (runtime file + JPY_PARENT_PID),
as in Jupyter. The server runs under a hub's prefix with the variables Binder's hub gives it
(`JUPYTERHUB_PUBLIC_URL`, `JUPYTERHUB_SERVICE_PREFIX`, `BINDER_LAUNCH_HOST`), so the share link
the notebook's kernel makes must be under the server's public base URL.
Slow (a virtualenv and two pip installs, using pip's cache): about a minute.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from test_notebooks import _text

from conftest import require

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
INSTALL_TIMEOUT = 300
START_TIMEOUT = 60
PREFIX = "/user/binder-test-abc123/"
PUBLIC_URL = f"https://hub.binder.example{PREFIX}"  # where the browser reaches this server

EXECUTE = r"""
import json, sys
import nbformat
from nbclient import NotebookClient

source, workdir, out = sys.argv[1:4]
notebook = nbformat.read(source, as_version=4)
client = NotebookClient(notebook, timeout=60, kernel_name="python3",
                        resources={"metadata": {"path": workdir}})
client.execute()
nbformat.write(notebook, out)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(args: list[str], env: dict[str, str], cwd: Path = ROOT, timeout: float = 120) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{args} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def binder_env(tmp_path_factory):
    """A virtualenv built from binder/ as repo2docker would; returns (bin dir, environment)."""
    require(
        (BINDER / "requirements.txt").is_file() and os.access(BINDER / "postBuild", os.X_OK),
        "binder/requirements.txt and an executable binder/postBuild",
    )
    base = tmp_path_factory.mktemp("binder")
    venv = base / "venv"
    python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    bindir = venv / "bin"
    home = base / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER", "JPY_", "PYTHON", "VIRTUAL_ENV", "IPYTHON"))
    }
    env.update(
        PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    pip = [str(bindir / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, "-r", str(BINDER / "requirements.txt")], env, timeout=INSTALL_TIMEOUT)
    _run([str(BINDER / "postBuild")], env, cwd=ROOT, timeout=INSTALL_TIMEOUT)
    return bindir, env, base


@pytest.fixture(scope="module")
def binder_server(binder_env):
    """`jupyter lab` from the Binder virtualenv, started as Binder starts it (no browser,
    a token, as root when we are root); yields (server info, process)."""
    bindir, env, base = binder_env
    root_dir = base / "root"
    shutil.copytree(ROOT / "notebooks", root_dir / "notebooks")
    token = secrets.token_hex(16)
    port = _free_port()
    args = [
        str(bindir / "jupyter"),
        "lab",
        "--no-browser",
        "--ServerApp.open_browser=False",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root_dir}",
        f"--ServerApp.base_url={PREFIX}",
        f"--IdentityProvider.token={token}",
        f"--PartyApp.parties_dir={base / 'parties'}",
        f"--PartyApp.storage_url=sqlite:///{base / 'rooms.db'}",
    ]
    if os.geteuid() == 0:
        args.append("--allow-root")
    hub = {
        "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
        "JUPYTERHUB_PUBLIC_URL": PUBLIC_URL,
        "BINDER_LAUNCH_HOST": "https://binder.example/",  # BinderHub's, not this server's
    }
    log = (base / "server.log").open("w")
    server = subprocess.Popen(
        args, cwd=root_dir, env={**env, **hub}, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}{PREFIX}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert server.poll() is None, (base / "server.log").read_text()[-4000:]
            assert time.monotonic() < deadline, (base / "server.log").read_text()[-4000:]
            try:
                request = urllib.request.Request(
                    f"{url}api/status", headers={"Authorization": f"token {token}"}
                )
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.2)  # polling a port: nothing to wait on
        yield {"url": url, "token": token, "pid": server.pid, "root": root_dir, "log": base}
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        log.close()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the list commands colour their output


def test_binder_files():
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    post_build = (BINDER / "postBuild").read_text()
    assert post_build.startswith("#!/bin/bash") and "pip install --no-cache-dir ." in post_build
    requirements = (BINDER / "requirements.txt").read_text()
    assert "jupyterlab" in requirements
    badge = "https://mybinder.org/v2/gh/"
    readme = (ROOT / "README.md").read_text()
    assert badge in readme and "urlpath=lab/tree/notebooks/quickstart.ipynb" in readme


def test_extension_enabled(binder_env):
    bindir, env, _ = binder_env
    servers = _run([str(bindir / "jupyter"), "server", "extension", "list"], env, timeout=60)
    line = next(line for line in servers.splitlines() if "jupyter_party" in line)
    assert "enabled" in line, servers
    assert "jupyter_party 0" in servers and "OK" in servers, servers
    labextensions = _run([str(bindir / "jupyter"), "labextension", "list"], env, timeout=60)
    lines = _ANSI.sub("", labextensions).splitlines()
    assert any("anywidget" in line and "enabled" in line for line in lines)
    # a plain `pip install .` (what postBuild runs) ships the prebuilt Parties panel
    assert any("jupyter-party" in line and "enabled" in line for line in lines), labextensions


def test_quickstart_runs_on_binder(binder_env, binder_server):
    bindir, env, base = binder_env
    # The server's own extension answers (not a 404 from a server without it).
    request = urllib.request.Request(
        f"{binder_server['url']}party-api/parties",
        headers={"Authorization": f"token {binder_server['token']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        parties = response.read().decode()
    assert '"chat"' in parties and '"counter"' in parties, parties  # the bundled demos
    runtime = Path(env["JUPYTER_RUNTIME_DIR"])
    assert (runtime / f"jpserver-{binder_server['pid']}.json").is_file()

    workdir = binder_server["root"] / "notebooks"
    out = base / "quickstart.out.ipynb"
    # The kernel is a child of this script, not of the server: JPY_PARENT_PID names the
    # server, as the server's own kernels see it, and the runtime dir is the server's.
    kernel_env = {**env, "JPY_PARENT_PID": str(binder_server["pid"])}
    _run(
        [
            str(bindir / "python"),
            "-c",
            EXECUTE,
            str(workdir / "quickstart.ipynb"),
            str(workdir),
            str(out),
        ],
        kernel_env,
        cwd=workdir,
        timeout=150,
    )
    notebook = nbformat.read(out, as_version=4)
    cells = [_text(cell) for cell in notebook.cells if cell.cell_type == "code"]
    assert "party 'quickchat' deployed" in cells[1]
    assert '{"type":"history","messages":[]}' in cells[2]
    assert "<widget>" in cells[2]  # the handle displays as a room console
    assert "the first client got: hello from the second client" in cells[3]
    assert f"share link for {PUBLIC_URL}party-share/quickchat/lobby" in cells[4], cells[4]
    assert "LocalShareLinkWarning" not in cells[4]
