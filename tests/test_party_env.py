"""`room.env` and `lobby.env`: `PartyApp.party_env` plus the `.env` next to a party's module.

The values reach party code (in a worker, and in the server process) and nowhere else: no
answer of the admin API, the inspector, the home page, the share page, the metrics, and no
log line carries them.
"""

from __future__ import annotations

import hashlib
import json
import logging

import pytest

from jupyter_party.runtime.env import read_env_file

SECRETS = ("config-secret-value", "file-secret-value", "shared-from-file")
EXPECTED = {
    "CONFIG_SECRET": "config-secret-value",
    "FILE_SECRET": "file-secret-value",
    "SHARED": "shared-from-file",  # the file wins over party_env, key by key
}

# The party proves what it got with a digest: it never says a value itself.
PARTY = """
import hashlib, json, logging
from jupyter_party import Response, Server

def digest(env):
    return hashlib.sha256(json.dumps(dict(env), sort_keys=True).encode()).hexdigest()

class EnvCheck(Server):
    @staticmethod
    def on_before_connect(request, lobby):
        if digest(lobby.env) != EXPECTED:
            return Response("the gate got another env", status=403)
        return None

    def on_connect(self, connection, ctx):
        print("connected", connection.id)
        env = self.room.env
        connection.send(json.dumps({"keys": sorted(env), "digest": digest(env)}))

    def on_request(self, request):
        logging.getLogger(__name__).warning("asked for %s", request.path)
        return {"keys": sorted(self.room.env), "digest": digest(self.room.env)}
"""


def _digest(env: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()


@pytest.fixture(params=[1, 0], ids=["worker", "in-process"])
def workers(request) -> int:
    return request.param


@pytest.fixture
def party_config(party_config, tmp_path):
    parties = tmp_path / "parties"
    parties.mkdir()
    (parties / "envcheck.py").write_text(f"EXPECTED = {_digest(EXPECTED)!r}\n{PARTY}")
    (parties / ".env").write_text(
        "# the parties' own settings\n\nexport FILE_SECRET='file-secret-value'\n"
        'SHARED="shared-from-file"\n'
    )
    party_config["parties_dir"] = str(parties)
    party_config["party_env"] = {
        "CONFIG_SECRET": "config-secret-value",
        "SHARED": "shared-from-config",
    }
    return party_config


async def test_env_reaches_the_party_and_no_answer_or_log(
    http, connect, share, caplog, jp_logging_stream
):
    caplog.set_level(logging.DEBUG)
    client = await connect("parties/envcheck/r1")  # the gate checked lobby.env
    hello = await client.recv_json()
    assert hello == {"keys": sorted(EXPECTED), "digest": _digest(EXPECTED)}
    room = await http("parties/envcheck/r1/anything")
    assert json.loads(room.body) == hello

    grant = await share("envcheck", "r1")
    answers = [room.body, json.dumps(hello).encode(), json.dumps(grant).encode()]
    for path in (
        "party-api/parties",
        "party-api/rooms",
        "party-api/rooms/envcheck/r1",
        "party-api/parties/envcheck/logs",
        "party-api/share",
        "parties",
        f"party-share/envcheck/r1?share_token={grant['token']}",
        "metrics",
    ):
        response = await http(path)
        assert response.code == 200, (path, response.body)
        answers.append(response.body)
    logs = json.loads(answers[-5])["records"]
    assert any("asked for" in record["text"] for record in logs)  # the party's log works
    lines = caplog.text + jp_logging_stream.getvalue()
    assert "GET /a%40b/party-api/rooms/envcheck/r1" in lines  # the server's log was captured
    for secret in SECRETS:
        assert not [a for a in answers if secret.encode() in a], secret
        assert secret not in lines, secret


def test_env_file_syntax(tmp_path):
    path = tmp_path / ".env"
    assert read_env_file(path) == {}  # no file: no settings
    path.write_text("A=1\n  # note\nexport B = 'two words'\nC=\"x=y\"\nD=\n")
    assert read_env_file(path) == {"A": "1", "B": "two words", "C": "x=y", "D": ""}
    path.write_text("A=1\nthis-is-a-secret-without-a-key\n")
    with pytest.raises(ValueError, match=r"\.env:2: expected KEY=VALUE") as error:
        read_env_file(path)
    assert "this-is-a-secret" not in str(error.value)
