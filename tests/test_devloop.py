"""The developer loop on a real server: edited party files hot-reload, removed ones unload;
`jupyter party list | rooms | logs | undeploy` against the running server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

import jupyter_party
from conftest import TIMEOUT, eventually
from jupyter_party.cli import main as cli_main
from jupyter_party.runtime.registry import RefusedDeploy, Registry

ECHO = """
from jupyter_party import Server

class Echo(Server):
    def on_connect(self, connection, ctx):
        connection.send("{version}")

    def on_message(self, message, sender):
        print("echo", message)
        sender.send("{version}:" + message)
"""


def echo(version: str) -> str:
    return textwrap.dedent(ECHO).replace("{version}", version)


@pytest.fixture(params=[1, 0], ids=["worker", "in-process"])
def workers(request):
    return request.param


@pytest.fixture
def parties_dir(tmp_path) -> Path:
    return tmp_path / "parties"


@pytest.fixture
def party_config(party_config, parties_dir):
    parties_dir.mkdir()
    (parties_dir / "echo.py").write_text(echo("v1"))
    return {**party_config, "parties_dir": str(parties_dir)}


@pytest.fixture
def party_log(http):
    """`await party_log(name, after, wait)`: the party's log records, waiting for new ones."""

    async def read(name: str, after: int = 0, wait: float = TIMEOUT) -> list[dict]:
        response = await http(f"party-api/parties/{name}/logs?after={after}&wait={wait}")
        assert response.code == 200
        return json.loads(response.body)["records"]

    return read


async def test_an_edited_file_reloads_like_a_deploy(connect, parties_dir, party_log):
    client = await connect("parties/echo/r1")
    assert await client.recv() == "v1"
    (parties_dir / "echo.py").write_text(echo("v2"))
    assert await client.closed() == (1012, "party redeployed")
    again = await connect("parties/echo/r1")
    assert await again.recv() == "v2"
    texts = [record["text"] for record in await party_log("echo")]
    assert "reload: 1 room(s) restarted, 1 client(s) reconnecting" in texts


async def test_a_broken_file_is_refused_and_the_old_version_kept(connect, parties_dir, party_log):
    client = await connect("parties/echo/r2")
    assert await client.recv() == "v1"
    (parties_dir / "echo.py").write_text(echo("v2") + "\ndef broken(:\n")
    errors: list[str] = []

    async def refused() -> bool:  # the watcher writes the refusal to the party's log
        errors[:] = [r["text"] for r in await party_log("echo", wait=0) if r["kind"] == "error"]
        return bool(errors)

    await eventually(refused, message="the refusal in the party's log")
    assert "reload of" in errors[0] and "SyntaxError" in errors[0]
    assert "Traceback" in errors[0]
    await client.send("still")  # never closed: the old version runs on
    assert await client.recv() == "v1:still"
    (parties_dir / "echo.py").write_text(echo("v3"))  # fixed: now it reloads
    assert (await client.closed())[0] == 1012
    assert await (await connect("parties/echo/r2")).recv() == "v3"


async def test_a_new_file_loads_and_a_removed_one_unloads(connect, parties_dir, live_rooms):
    (parties_dir / "fresh.py").write_text(echo("fresh"))
    client = await connect("parties/fresh/r")
    assert await client.recv() == "fresh"
    (parties_dir / "fresh.py").unlink()
    assert await client.closed() == (1012, "party removed")
    refused = await connect("parties/fresh/r")
    assert (await refused.closed())[0] == 4404


@pytest.mark.parametrize("workers", [1])
@pytest.mark.party_config(watch_parties="poll")
async def test_polling_sees_edits_too(connect, parties_dir):
    client = await connect("parties/echo/polled")
    assert await client.recv() == "v1"
    (parties_dir / "echo.py").write_text(echo("v2"))
    assert await client.closed() == (1012, "party redeployed")


# -- the command line, against the running server ----------------------------------------------


@pytest.fixture
def token(jp_auth_header):
    return jp_auth_header["Authorization"].split(" ", 1)[1]


@pytest.fixture
def cli(url, token, capsys):
    """`await cli("rooms", ...)`: the CLI on a thread (it blocks; the server runs on this
    loop), with this server's URL and token; returns what it printed."""

    async def run(*args: str) -> str:
        argv = [*args, "--server", url(""), "--token", token]
        await asyncio.get_running_loop().run_in_executor(None, cli_main, argv)
        return capsys.readouterr().out

    return run


@pytest.mark.parametrize("workers", [1])
async def test_cli_list_and_rooms(cli, connect, parties_dir):
    (parties_dir / "broken.py").write_text("import nowhere_to_be_found\n")
    listed = await cli("list")
    lines = {line.split()[0]: line for line in listed.splitlines() if line[:1] != " "}
    assert str(parties_dir / "echo.py") in lines["echo"]
    assert "chat" in lines  # installed parties too
    assert "failed to load: ModuleNotFoundError" in listed
    client = await connect("parties/echo/listed")
    await client.recv()
    assert (await cli("rooms", "echo")).split() == ["echo", "listed", "1", "connection(s)"]
    assert "echo" not in await cli("rooms", "chat")


@pytest.mark.parametrize("workers", [1])
async def test_cli_logs_and_follow(cli, connect, url, token):
    client = await connect("parties/echo/logged")
    await client.recv()
    await client.send("one")
    await client.recv()
    assert "logged print: echo one" in await cli("logs", "echo")

    follower = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "jupyter_party.cli", "logs", "echo", "-f", "--server", url(""), "--token", token),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(follower.stdout.readline(), TIMEOUT)
        assert b"echo one" in line  # what was there already
        await client.send("two")
        line = await asyncio.wait_for(follower.stdout.readline(), TIMEOUT)
        assert b"logged print: echo two" in line  # then what comes
    finally:
        follower.kill()
        await follower.wait()


@pytest.mark.parametrize("workers", [1])
async def test_cli_undeploy_and_the_python_call(cli, connect, parties_dir, url, token):
    client = await connect("parties/echo/gone")
    await client.recv()
    assert "party 'echo' undeployed (1 client(s) closed)" in await cli("undeploy", "echo")
    assert await client.closed() == (1012, "party removed")
    assert not (parties_dir / "echo.py").exists()
    assert (await (await connect("parties/echo/gone")).closed())[0] == 4404

    (parties_dir / "other.py").write_text(echo("other"))
    await eventually(lambda: _loaded("other", url, token), message="other.py loaded")
    closed = await asyncio.get_running_loop().run_in_executor(
        None, lambda: jupyter_party.undeploy("other", server=url(""), token=token)
    )
    assert closed == 0 and not (parties_dir / "other.py").exists()


@pytest.mark.parametrize("workers", [1])
async def test_cli_errors_are_clear(cli, url):
    with pytest.raises(SystemExit) as refused:
        await cli("undeploy", "chat")  # installed, not deployed
    assert "404" in str(refused.value.code) and "no file in parties_dir" in str(refused.value.code)
    with pytest.raises(SystemExit) as unreachable:
        cli_main(["list", "--server", "http://127.0.0.1:9/", "--token", "x"])
    assert "cannot reach the Jupyter server at http://127.0.0.1:9/" in str(unreachable.value.code)


@pytest.mark.parametrize("workers", [1])
async def test_cli_finds_the_running_server(url, jp_runtime_dir):
    """Without --server, the CLI finds the server as a kernel would (its runtime file)."""
    listing = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "jupyter_party.cli", "list"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(jp_runtime_dir)},
    )
    out, err = await asyncio.wait_for(listing.communicate(), TIMEOUT)
    assert listing.returncode == 0, err
    assert b"echo" in out


async def _loaded(name: str, url, token) -> bool:
    parties = await asyncio.get_running_loop().run_in_executor(
        None, lambda: jupyter_party.client.parties(server=url(""), token=token)
    )
    return name in {party["name"] for party in parties}


# -- the registry's side: what a changed file does in each worker ------------------------------


def test_registry_loads_changed_files_only_and_keeps_the_old_version_on_errors(tmp_path):
    registry = Registry(tmp_path)
    first = registry.deploy("echo", echo("v1"))
    assert registry.load("echo") is False  # what a deploy just wrote: nothing to do
    (tmp_path / "echo.py").write_text(echo("v2"))
    assert registry.load("echo") is True
    second = registry.get("echo")
    assert second is not first
    (tmp_path / "echo.py").write_text("def broken(:\n")
    with pytest.raises(RefusedDeploy) as refused:
        registry.load("echo")
    assert "SyntaxError" in refused.value.traceback
    assert registry.get("echo") is second  # the running version stays


def test_registry_unload_brings_back_an_installed_party(tmp_path):
    (tmp_path / "chat.py").write_text(echo("mine"))  # shadows the bundled demo
    registry = Registry(tmp_path)
    assert registry.source("chat") == str(tmp_path / "chat.py")
    (tmp_path / "chat.py").unlink()
    assert registry.unload("chat") is True
    assert registry.source("chat").startswith("entry point")
    assert registry.unload("chat") is False  # an installed party is not unloaded
    assert registry.unload("nothing") is False
