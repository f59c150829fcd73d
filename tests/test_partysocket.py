"""PartyKit's `partysocket` (the real npm package) against a real server: the prefix and
basePath forms of the room URL, reconnecting with the same id, and `PartySocket.fetch`.

Each test runs tests/interop/partysocket.mjs, one PartySocket driven by a script; it prints a
line per action, so the test can act on the server in between. Needs `node` and
`npm ci --prefix tests/interop`.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import TIMEOUT, eventually, require

INTEROP = Path(__file__).parent / "interop"
NODE = shutil.which("node")

require(NODE is not None, "node is not installed")
require((INTEROP / "node_modules").is_dir(), "run `npm ci --prefix tests/interop`")


class Script:
    """One `node partysocket.mjs` process; `await script.next()` is its next answer."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def next(self) -> dict[str, Any]:
        line = await asyncio.wait_for(self.process.stdout.readline(), TIMEOUT)
        if not line:
            stderr = (await self.process.stderr.read()).decode(errors="replace")
            pytest.fail(f"partysocket.mjs exited ({self.process.returncode}): {stderr}")
        answer = json.loads(line)
        assert "error" not in answer, answer["error"]
        return answer

    async def finished(self) -> None:
        assert await asyncio.wait_for(self.process.wait(), TIMEOUT) == 0


@pytest.fixture
def partysocket(jp_asyncio_loop, jp_http_port, jp_base_url, jp_auth_header, http):
    """`await partysocket(options, actions)`: a running script. `options` get the server's
    host and the token (as partysocket sends credentials: a query parameter)."""
    token = jp_auth_header["Authorization"].split(" ", 1)[1]
    scripts: list[Script] = []

    async def start(options: dict[str, Any], actions: list[dict[str, Any]]) -> Script:
        config = {
            "options": {
                "host": f"127.0.0.1:{jp_http_port}",  # the test server listens on IPv4 only
                "query": {"token": token},
                **options,
            },
            "actions": actions,
        }
        process = await asyncio.create_subprocess_exec(
            *(NODE, str(INTEROP / "partysocket.mjs"), json.dumps(config)),
            cwd=INTEROP,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        scripts.append(Script(process))
        return scripts[-1]

    yield start

    async def cleanup() -> None:
        for script in scripts:
            if script.process.returncode is None:
                script.process.kill()
            await script.process.wait()

    jp_asyncio_loop.run_until_complete(cleanup())


def base(jp_base_url: str) -> str:
    """The server's base URL as partysocket's `prefix`/`basePath` want it: no leading slash."""
    return jp_base_url.strip("/")


async def test_prefix_form_and_reconnect_with_the_same_id(partysocket, jp_base_url, http):
    script = await partysocket(
        {"party": "probe", "room": "ps1", "prefix": f"{base(jp_base_url)}/parties", "id": "alice"},
        [
            {"id": True},
            {"recv": "welcome"},
            {"send": {"op": "echo", "n": 7}},
            {"recv": "echo"},
            {"reconnect": True},
            {"recv": "welcome"},
            {"hold": True},
        ],
    )
    ids = await script.next()
    assert ids["id"] == "alice"
    assert ids["roomUrl"].endswith(f"{jp_base_url}parties/probe/ps1")
    welcome = (await script.next())["message"]
    assert welcome["id"] == "alice" and welcome["user"] is not None
    await script.next()
    assert (await script.next())["message"] == {"type": "echo", "n": 7}
    await script.next()
    again = (await script.next())["message"]
    assert (again["id"], again["instance"]) == ("alice", welcome["instance"])

    async def alice_once() -> bool:  # the old socket's close must not take the new one along
        response = await http("parties/probe/ps1/connections")
        return json.loads(response.body)["ids"] == ["alice"]

    await eventually(alice_once, message="the room to hold alice's new socket, once")
    script.process.stdin.close()
    await script.next()
    await script.finished()


async def test_base_path_form_and_server_restart(partysocket, jp_base_url, http):
    script = await partysocket(
        {"basePath": f"{base(jp_base_url)}/parties/probe/ps2", "id": "bob"},
        [{"recv": "welcome"}, {"recv": "welcome"}],
    )
    first = (await script.next())["message"]
    assert first["id"] == "bob"
    evicted = await http("party-api/rooms/probe/ps2", method="DELETE")  # clients get 1012
    assert evicted.code == 204
    second = (await script.next())["message"]  # partysocket reconnected by itself
    assert second["id"] == "bob" and second["instance"] > first["instance"]
    await script.finished()


async def test_partysocket_fetch(partysocket, jp_base_url):
    prefix = {"party": "probe", "room": "ps3", "prefix": f"{base(jp_base_url)}/parties"}
    script = await partysocket(
        prefix,
        [
            {"recv": "welcome"},
            {"fetch": {"path": "connections"}},
            {
                "fetch": {"path": "items/1", "query": {"q": "x"}},
                "init": {"method": "POST", "body": "hello"},
            },
            {"fetch": {"basePath": f"{base(jp_base_url)}/parties/probe/ps3"}},
        ],
    )
    welcome = (await script.next())["message"]
    listed = await script.next()
    assert listed["status"] == 200 and listed["body"]["ids"] == [welcome["id"]]
    posted = (await script.next())["body"]
    assert (posted["method"], posted["path"], posted["body"]) == ("POST", "/items/1", "hello")
    assert posted["query"] == {"q": "x"}  # the token never reaches party code
    assert (await script.next())["body"]["room"] == "ps3"
    await script.finished()
