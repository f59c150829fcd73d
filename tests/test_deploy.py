"""Deploying parties through the admin API: hot reload, refused deploys, captured output."""

from __future__ import annotations

import json
import textwrap

import pytest
from tornado.httpclient import HTTPClientError

from conftest import eventually
from jupyter_party.runtime.registry import Registry

GREETER = """
from jupyter_party import Server

class Greeter(Server):
    async def on_connect(self, connection, ctx):
        count = (await self.room.storage.get("visits") or 0) + 1
        await self.room.storage.put("visits", count)
        connection.send(f"{GREETING} #{count}")

    def on_message(self, message, sender):
        print("got", message)
        if message == "boom":
            raise ValueError("the party failed on purpose")
        sender.send(message.upper())

GREETING = "{greeting}"
"""


@pytest.fixture
def party_config(tmp_path):
    return {"parties_dir": str(tmp_path / "parties")}


@pytest.fixture
def deploy(jp_fetch):
    async def post(name: str, source: str):
        body = json.dumps({"source": textwrap.dedent(source)})
        try:
            response = await jp_fetch("party-api", "parties", name, method="POST", body=body)
        except HTTPClientError as error:
            return error.code, json.loads(error.response.body)
        return response.code, json.loads(response.body)

    return post


async def test_deploy_and_hot_reload_keeps_storage(deploy, connect, party_config, http):
    status, result = await deploy("greeter", GREETER.replace("{greeting}", "hello"))
    assert status == 200 and result["closed"] == 0
    client = await connect("parties/greeter/lobby")
    assert await client.recv() == "hello #1"
    status, result = await deploy("greeter", GREETER.replace("{greeting}", "welcome back"))
    assert (status, result["closed"], result["reloaded"]) == (200, 1, True)
    assert await client.closed() == (1012, "party redeployed")
    again = await connect("parties/greeter/lobby")
    assert await again.recv() == "welcome back #2"  # new code, same storage
    assert result["rooms"] == 1

    async def deploy_steps() -> list[str]:
        response = await http("party-api/parties/greeter/logs")
        texts = [r["text"] for r in json.loads(response.body)["records"]]
        return [text for text in texts if text.startswith("deploy:")]

    # What the deploying cell shows: each step, then how many clients came back.
    async def reported() -> bool:
        return "deploy: 1 of 1 client(s) reconnected" in await deploy_steps()

    await eventually(reported, message="the reconnection report")
    steps = await deploy_steps()
    assert steps[-3].startswith("deploy: staged and imported in ")
    assert steps[-2:] == [
        "deploy: 1 room(s) restarted, 1 client(s) reconnecting",
        "deploy: 1 of 1 client(s) reconnected",
    ]
    saved = Registry(party_config["parties_dir"])  # what a restarted server would load
    assert "greeter" in saved.names()


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("class Broken(:\n    pass\n", "SyntaxError"),
        ("import no_such_module_here\n", "ModuleNotFoundError"),
        ("x = 1\n", "define exactly one Server subclass"),
    ],
    ids=["syntax", "import", "no-server"],
)
async def test_refused_deploy_keeps_the_running_version(deploy, connect, source, error):
    assert (await deploy("greeter", GREETER.replace("{greeting}", "v1")))[0] == 200
    status, result = await deploy("greeter", source)
    assert status == 400
    assert error in result["error"]
    assert "Traceback" in result["traceback"] and error in result["traceback"]
    client = await connect("parties/greeter/still")
    assert await client.recv() == "v1 #1"


async def test_prints_and_errors_reach_the_party_log(deploy, connect, jp_fetch):
    await deploy("greeter", GREETER.replace("{greeting}", "hi"))
    client = await connect("parties/greeter/logged")
    await client.recv()
    await client.send("boom")
    await client.send("after")
    assert await client.recv() == "AFTER"  # the connection survived the error

    async def logs(after: int = 0, wait: float = 0):
        query = {"after": str(after), "wait": str(wait)}
        response = await jp_fetch("party-api", "parties", "greeter", "logs", params=query)
        return json.loads(response.body)

    first = await logs()
    kinds = [(r["kind"], r["room"]) for r in first["records"]]
    assert ("print", "logged") in kinds
    texts = [r["text"] for r in first["records"]]
    assert "got boom" in texts and "got after" in texts
    error = next(r for r in first["records"] if r["kind"] == "error")
    assert "on_message raised" in error["text"]
    assert "ValueError: the party failed on purpose" in error["text"]
    # a long poll returns as soon as something new is recorded
    waiting = logs(first["next"], wait=30)
    await client.send("later")
    newer = await waiting
    assert [r["text"] for r in newer["records"]] == ["got later"]


STRICT = """
from jupyter_party import Server

class Strict(Server):
    max_message_size = {size}

    def on_message(self, message, sender):
        sender.send(len(message))
"""


async def test_a_party_s_own_limits_apply_to_its_sockets_and_follow_its_versions(
    deploy, connect, party_config
):
    status, _ = await deploy("strict", STRICT.format(size=1000))
    assert status == 200
    client = await connect("parties/strict/r")
    await client.send("x" * 1000)
    assert await client.recv() == "1000"
    await client.send("x" * 1001)
    assert (await client.closed())[0] == 1009  # the party's limit, not the server's (1 MiB)
    status, _ = await deploy("strict", STRICT.format(size=4000))
    assert status == 200
    client = await connect("parties/strict/r")
    await client.send("x" * 4000)
    assert await client.recv() == "4000"  # the new version's limit
