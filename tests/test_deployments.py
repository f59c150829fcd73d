"""Real deployments, on one server: public share links, room activity, remote clients.

- A share link is built on the server's public address: the browser's own (its `Origin`),
  else `PartyApp.public_url`, else JupyterHub's `JUPYTERHUB_PUBLIC_URL`; a link only this
  machine can open says so (`local`, and a warning from `share_link()`).
- Room connections and messages are server activity (`/api/status`), until the rooms have
  been quiet for `room_activity_timeout`.
- A script outside any server reaches it with `JUPYTER_PARTY_URL` / `JUPYTER_PARTY_TOKEN`,
  and gets one clear error without them.
(tests/test_hub.py does the same against a real JupyterHub.)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import warnings
from datetime import datetime
from urllib.parse import urlsplit

import pytest

from conftest import PARTIES, TIMEOUT, eventually
from jupyter_party.client.share import LocalShareLinkWarning, share_link


@pytest.fixture
def party_config(party_config, tmp_path):
    """The probe party, in a directory of this test's own (the script deploys into it)."""
    parties = tmp_path / "parties"
    parties.mkdir()
    shutil.copy(PARTIES / "probe.py", parties)
    party_config["parties_dir"] = str(parties)
    return party_config


@pytest.fixture
def token(jp_auth_header) -> str:
    return jp_auth_header["Authorization"].split(" ", 1)[1]


@pytest.fixture
def ask_share(http):
    """`await ask_share(headers)`: the share API's answer to a request with those headers."""

    async def ask(headers: dict[str, str] | None = None) -> dict:
        body = json.dumps({"party": "probe", "room": "r1"})
        response = await http("party-api/share", method="POST", body=body, headers=headers)
        assert response.code == 201, response.body
        return json.loads(response.body)

    return ask


async def test_share_links_from_a_kernel_are_flagged_local(ask_share, jp_http_port, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_PUBLIC_URL", raising=False)
    answer = await ask_share()
    assert answer["url"].startswith(f"http://localhost:{jp_http_port}/a%40b/party-share/probe/r1?")
    assert answer["local"] is True


async def test_share_links_asked_by_a_browser_use_its_address(ask_share, jp_http_port):
    # The browser reached this server over TLS at a proxy: the link is what it sees.
    origin = f"https://localhost:{jp_http_port}"
    answer = await ask_share({"Origin": origin})
    assert answer["url"].startswith(f"{origin}/a%40b/party-share/probe/r1?share_token=jps_")
    # A page of another site holding the token does not choose the link's address.
    answer = await ask_share({"Origin": "https://elsewhere.example"})
    assert urlsplit(answer["url"]).netloc == f"localhost:{jp_http_port}"


async def test_share_links_on_a_hub_use_its_public_url(ask_share, url, token, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_PUBLIC_URL", "https://hub.example.org/user/ann/")
    answer = await ask_share()
    assert answer["url"].startswith("https://hub.example.org/user/ann/party-share/probe/r1?")
    assert answer["local"] is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no LocalShareLinkWarning
        link = await asyncio.to_thread(share_link, "probe", "r1", server=url(""), token=token)
    assert link.startswith("https://hub.example.org/user/ann/party-share/probe/r1?")
    monkeypatch.delenv("JUPYTERHUB_PUBLIC_URL")
    with pytest.warns(LocalShareLinkWarning, match="PartyApp.public_url"):
        await asyncio.to_thread(share_link, "probe", "r1", server=url(""), token=token)


@pytest.mark.party_config(public_url="https://parties.example.org")
async def test_public_url_trait_wins_over_the_hub(ask_share, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_PUBLIC_URL", "https://hub.example.org/user/ann/")
    answer = await ask_share()  # a URL without a path gets the server's base_url
    assert answer["url"].startswith("https://parties.example.org/a%40b/party-share/probe/r1?")


# -- activity ---------------------------------------------------------------------------------


@pytest.fixture
def status(http):
    async def last_activity() -> datetime:
        response = await http("api/status")  # reading the status is not activity itself
        return datetime.fromisoformat(json.loads(response.body)["last_activity"])

    return last_activity


@pytest.mark.party_config(room_activity_timeout=1.0)
async def test_room_traffic_is_server_activity_until_the_room_is_quiet(connect, status):
    start = await status()
    client = await connect("parties/probe/r1")
    await client.recv_json()  # welcome

    async def moved_since(then: datetime) -> bool:
        return await status() > then

    await eventually(lambda: moved_since(start), message="a connection to count")
    # An open connection keeps counting while its room had a message within the timeout ...
    await client.send({"op": "echo", "n": 1})
    await client.recv_json()
    sent = await status()
    await eventually(lambda: moved_since(sent), message="an open room to keep counting")
    # ... and stops once the room was quiet for room_activity_timeout (the socket stays open).
    stopped: list[datetime] = []

    async def still() -> bool:
        now = await status()
        if stopped and stopped[-1] == now:
            return True
        stopped.append(now)
        await asyncio.sleep(1.5)  # longer than an update period: a moving time would show
        return False

    await eventually(still, timeout=TIMEOUT, message="a quiet room to stop counting")
    await client.send({"op": "echo", "n": 2})  # a message counts again
    await client.recv_json()
    await eventually(lambda: moved_since(stopped[-1]), message="a message to count again")


# -- a script outside any server -------------------------------------------------------------

SCRIPT = """
import jupyter_party
result = jupyter_party.deploy('''
from jupyter_party import Server

class Remote(Server):
    def on_message(self, message, sender):
        sender.send("got " + message)
''', name="remote")
room = jupyter_party.connect_blocking("remote", "r1")
room.send("hello")
print(room.recv(timeout=10))
room.close()
"""


def _outside_env(tmp_path, **extra: str) -> dict[str, str]:
    """This environment without a trace of any Jupyter server, plus `extra`."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("JUPYTER", "JPY_"))
    }
    empty = tmp_path / "runtime"
    empty.mkdir(exist_ok=True)
    return {**env, "JUPYTER_RUNTIME_DIR": str(empty), **extra}


async def _run(env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


async def test_a_script_reaches_a_remote_server_by_its_variables(url, token, tmp_path):
    env = _outside_env(tmp_path, JUPYTER_PARTY_URL=url(""), JUPYTER_PARTY_TOKEN=token)
    code, out, err = await _run(env)
    assert code == 0, err
    assert out.strip() == "got hello"


async def test_a_script_without_a_server_gets_one_clear_error(tmp_path):
    code, out, err = await _run(_outside_env(tmp_path))
    assert code == 1 and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("jupyter_party.client.discovery.ServerNotFound: no Jupyter server")
    assert "JUPYTER_PARTY_URL=" in last and "JUPYTER_PARTY_TOKEN=" in last
