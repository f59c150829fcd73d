"""Deploying from the notebook side: `jupyter_party.deploy`, the CLI, and `%%party` in real
kernels (one deploys, another joins with `connect`) against a live Jupyter server."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import textwrap
from typing import Any

import pytest

import jupyter_party
from conftest import eventually, output_text
from jupyter_party.cli import main as cli_main
from jupyter_party.client import DeployError, DeployResult

TIMEOUT = 10.0

ECHOER = """
from jupyter_party import Server

PREFIX = "{prefix}"

class Echoer(Server):
    def on_message(self, message, sender):
        print("got", message)
        if message == "boom":
            raise ValueError("the party failed on purpose")
        self.room.broadcast(PREFIX + message)
"""


def echoer(prefix: str) -> str:
    return ECHOER.replace("{prefix}", prefix)


@pytest.fixture
def party_config(tmp_path):
    # Deploys write into parties_dir: never into the repository's tests/parties.
    return {"parties_dir": str(tmp_path / "parties")}


@pytest.fixture
def token(jp_auth_header):
    return jp_auth_header["Authorization"].split(" ", 1)[1]


@pytest.fixture
def deploy(url, token):
    """`await deploy(obj, name)`: `jupyter_party.deploy` on a thread (it blocks; the server
    runs on this loop)."""

    async def run(obj: Any, name: str | None = None) -> DeployResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None, lambda: jupyter_party.deploy(obj, name, server=url(""), token=token)
        )

    return run


async def next_text(room, prefix: str = "") -> str:
    """The next text message starting with `prefix` (others are skipped)."""
    while True:
        message = await room.recv(TIMEOUT)
        if isinstance(message, str) and message.startswith(prefix):
            return message


async def test_deploy_source_and_hot_reload(deploy, url, token, party_config):
    result = await deploy(echoer("v1:"), "echoer")
    assert result.name == "echoer" and result.closed == 0 and not result.reloaded
    assert result.url == url("parties/echoer/")
    assert result.path and result.path.endswith("echoer.py")
    assert "echoer" in str(result)
    room = await jupyter_party.connect("echoer", "r", server=url(""), token=token)
    try:
        await room.send("hi")
        assert await next_text(room) == "v1:hi"
        result = await deploy(echoer("v2:"), "echoer")
        assert result.reloaded and result.closed == 1
        # A message written before the client reads the 1012 close frame would be lost (as
        # with any WebSocket client): wait until it saw the close; then sends are buffered
        # until the reconnect and delivered to the new code.
        await eventually(lambda: room.reconnects == 1, message="client saw the close")
        await room.send("again")
        assert await next_text(room, "v2:") == "v2:again"
        assert room.reconnects == 1 and room.close_code == 1012
    finally:
        await room.close()


async def test_refused_deploy_keeps_old_version(deploy, url, token):
    await deploy(echoer("ok:"), "keeper")
    with pytest.raises(DeployError) as info:
        await deploy("from jupyter_party import Server\nclass Broken(Server:\n", "keeper")
    error = info.value
    assert error.status == 400 and "SyntaxError" in str(error) and "Traceback" in str(error)
    assert error.traceback and error.name == "keeper"
    with pytest.raises(DeployError, match="Server"):
        await deploy("x = 1\n", "keeper")  # no Server subclass
    room = await jupyter_party.connect("keeper", "r", server=url(""), token=token)
    try:
        await room.send("still")
        assert await next_text(room) == "ok:still"
    finally:
        await room.close()


async def test_deploy_path_and_class(deploy, tmp_path, url, token):
    module = tmp_path / "modules" / "shouter.py"
    module.parent.mkdir()
    module.write_text(echoer("path:"))
    assert (await deploy(module)).name == "shouter"  # a Path: name from the stem
    assert (await deploy(str(module), "shouter2")).name == "shouter2"  # a str path
    spec = importlib.util.spec_from_file_location("shouter_module", module)
    loaded = sys.modules["shouter_module"] = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(loaded)
        result = await deploy(loaded.Echoer)  # a class: its module's source, name lowercased
    finally:
        del sys.modules["shouter_module"]
    assert result.name == "echoer"
    room = await jupyter_party.connect("echoer", "r", server=url(""), token=token)
    try:
        await room.send("x")
        assert await next_text(room) == "path:x"
    finally:
        await room.close()
    with pytest.raises(ValueError, match="name"):
        jupyter_party.deploy("source text", server=url(""), token=token)
    with pytest.raises(ValueError, match="must match"):
        jupyter_party.deploy("source text", "Bad Name", server=url(""), token=token)
    with pytest.raises(TypeError):
        jupyter_party.deploy(42, "x", server=url(""), token=token)


async def test_cli_deploy(tmp_path, url, token, capsys):
    module = tmp_path / "clip.py"
    module.write_text(echoer("cli:"))
    broken = tmp_path / "broken.py"
    broken.write_text("def (:\n")
    loop = asyncio.get_running_loop()
    args = ["--server", url(""), "--token", token]
    await loop.run_in_executor(None, cli_main, ["deploy", str(module), *args])
    assert "'clip' deployed" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        await loop.run_in_executor(None, cli_main, ["deploy", str(broken), "--name", "x", *args])
    assert "SyntaxError" in str(info.value.code)


# -- two real kernels -------------------------------------------------------------------------


def party_cell(name: str, source: str, server: str, token: str) -> str:
    return f"%%party {name} --server {server} --token {token}\n{textwrap.dedent(source)}"


async def test_two_kernels_deploy_join_redeploy(kernels, url, token):
    a, b = await asyncio.gather(kernels(), kernels())
    server = url("")
    await a.run("%load_ext jupyter_party")
    _, out = await a.run("import sys; print(sys.executable)")
    assert out.strip() == sys.executable  # the kernel runs this venv's Python
    deploy_id, out = await a.run(party_cell("echoer", echoer("v1:"), server, token))
    assert "party 'echoer' deployed" in out and "parties/echoer/" in out, out
    connect = f"""
        import asyncio
        import jupyter_party

        async def until(room, prefix):
            while True:
                message = await room.recv(10)
                if message.startswith(prefix):
                    return message

        r = await jupyter_party.connect("echoer", "room", server={server!r}, token={token!r})
        r.id
    """
    await a.run(connect)
    await b.run(connect)
    # Importing the package in IPython registered %%party by itself (B never ran %load_ext).
    _, out = await b.run('print("party" in get_ipython().magics_manager.magics["cell"])')
    assert out.strip() == "True"
    # B -> A and A -> B through the party (it broadcasts to everyone).
    await b.run('await r.send("from b")')
    _, out = await a.run('print(await until(r, "v1:from b"))')
    assert out.strip() == "v1:from b"
    await a.run('await r.send("from a")')
    _, out = await b.run('print(await until(r, "v1:from a"))')
    assert out.strip() == "v1:from a"
    # The party's prints show up under A's deploying cell.
    await eventually(
        lambda: "print: got from b" in output_text(a.outputs(deploy_id)),
        timeout=TIMEOUT,
        message="party output under the deploying cell",
    )

    # Redeploy a changed party: B reconnects by itself and gets the new behaviour.
    redeploy_id, out = await a.run(party_cell("echoer", echoer("v2:"), server, token))
    assert "reloaded, 2 connections reconnecting" in out, out
    _, out = await b.run(
        """
        while r.reconnects < 1:
            await asyncio.sleep(0.01)
        await r.send("again")
        print(await until(r, "v2:"))
        """
    )
    assert out.strip() == "v2:again"
    _, out = await b.run("print(r.reconnects, r.connected, r.close_code)")
    assert out.split() == ["1", "True", "1012"]
    # A handler error shows its traceback under the newest deploying cell.
    await b.run('await r.send("boom")')
    await eventually(
        lambda: "the party failed on purpose" in output_text(a.outputs(redeploy_id)),
        timeout=TIMEOUT,
        message="handler error under the deploying cell",
    )
    assert "error: on_message raised" in output_text(a.outputs(redeploy_id))

    # A refused deploy shows the traceback in A's cell; the old party still answers.
    broken = "from jupyter_party import Server\nclass Broken(Server:\n    pass\n"
    _, out = await a.run(party_cell("echoer", broken, server, token))
    assert "refused" in out and "SyntaxError" in out and "Traceback" in out, out
    assert "jupyter_party/client" not in out  # no traceback of the client itself
    _, out = await b.run('await r.send("still"); print(await until(r, "v2:still"))')
    assert out.strip() == "v2:still"
    # Kernel A's own client was reconnected too.
    _, out = await a.run('print(await until(r, "v2:still"))')
    assert out.strip() == "v2:still"

    # A class defined in a cell deploys with its cell's source (imports included).
    await a.run(
        """
        from jupyter_party import Server

        class CellParty(Server):
            def on_message(self, message, sender):
                sender.send("cell:" + message)
        """
    )
    _, out = await a.run(
        f"print(jupyter_party.deploy(CellParty, server={server!r}, token={token!r}).name)"
    )
    assert out.strip() == "cellparty"
    _, out = await b.run(
        f"""
        c = await jupyter_party.connect("cellparty", "x", server={server!r}, token={token!r})
        await c.send("hey")
        print(await c.recv(10))
        await c.close()
        """
    )
    assert out.strip() == "cell:hey"
