"""Kernel-hosted parties (`jupyter_party.host`): a real kernel serves a party to real clients
of a real Jupyter server, with the kernel's own variables."""

from __future__ import annotations

import json

import pytest

TIMEOUT = 10.0

QUIZ = """
import jupyter_party

answers = []

class Quiz(jupyter_party.Server):
    def on_message(self, message, sender):
        answers.append({"who": sender.id, "answer": message})
        self.room.broadcast(json.dumps({"count": len(answers)}))

quiz = jupyter_party.host(Quiz, name="quiz", server=SERVER, token=TOKEN)
await quiz.ready()
print(quiz.status)
"""


@pytest.fixture
def party_config(tmp_path):
    return {"parties_dir": str(tmp_path / "parties"), "party_env": {"QUIZ_MODE": "exam"}}


@pytest.fixture
def token(jp_auth_header):
    return jp_auth_header["Authorization"].split(" ", 1)[1]


async def host_quiz(kernel, url, token) -> None:
    await kernel.run(f"import json\nSERVER, TOKEN = {url('')!r}, {token!r}")
    _, out = await kernel.run(QUIZ)
    assert out.strip() == "live", out


async def test_a_kernel_hosts_a_party_with_its_own_data(kernels, url, token, connect):
    kernel = await kernels()
    await host_quiz(kernel, url, token)
    alice = await connect("parties/quiz/class?_pk=alice")
    bob = await connect("parties/quiz/class?_pk=bob")
    await alice.send("42")
    assert await alice.recv_json() == {"count": 1}
    assert await bob.recv_json() == {"count": 1}
    await bob.send("7")
    assert await alice.recv_json() == {"count": 2}
    _, out = await kernel.run("print(json.dumps(answers))")
    assert json.loads(out) == [{"who": "alice", "answer": "42"}, {"who": "bob", "answer": "7"}]


ENV = """
class Env(jupyter_party.Server):
    def on_connect(self, connection, ctx):
        connection.send(json.dumps(self.room.env))

env_party = jupyter_party.host(Env, name="envcheck", server=SERVER, token=TOKEN)
await env_party.ready()
print(env_party.status)
"""


async def test_a_party_hosted_by_a_kernel_gets_the_party_env(kernels, url, token, connect):
    kernel = await kernels()
    await host_quiz(kernel, url, token)
    _, out = await kernel.run(ENV)
    assert out.strip() == "live", out
    client = await connect("parties/envcheck/r1")
    assert await client.recv_json() == {"QUIZ_MODE": "exam"}
