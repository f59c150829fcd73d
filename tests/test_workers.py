"""Party workers: party code runs outside the Jupyter server, supervised.

A handler that blocks, crashes its process, or never returns must never freeze or kill the
Jupyter server, its kernels or other rooms. Real server, real worker processes, real kernel.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid

import pytest

from conftest import TIMEOUT, eventually
from jupyter_party.runtime.router import placement

pytestmark = pytest.mark.party_config(workers=2, handler_timeout=3.0)


def rooms_on_two_workers(prefix: str) -> tuple[str, str]:
    """Two room ids of party `hazard` that live on different workers (of 2)."""
    rooms = [f"{prefix}-{n}" for n in range(20)]
    first = rooms[0]
    other = next(r for r in rooms if placement("hazard", r, 2) != placement("hazard", first, 2))
    return first, other


async def api_json(http, path: str):
    response = await http(path)
    assert response.code == 200, response.body
    return json.loads(response.body)


async def crash_and_recover(connect, http, command: str, hook_text: str) -> None:
    """Shared by the crash tests: a room's worker dies running `command`; the server, its API
    and the room on the other worker never notice; a reconnect sees every acknowledged write."""
    doomed, bystander = rooms_on_two_workers(f"{command}-{uuid.uuid4().hex[:6]}")
    victim = await connect(f"parties/hazard/{doomed}")
    before = json.loads(await victim.recv())
    other = await connect(f"parties/hazard/{bystander}")
    other_hello = json.loads(await other.recv())
    assert other_hello["pid"] != before["pid"]  # two workers, two processes
    await victim.send("put:answer:42")
    assert await victim.recv() == "ok"  # acknowledged: durable from here on

    await victim.send(command)
    code, reason = await victim.closed()
    assert code == 1011
    assert hook_text in reason and "'hazard'" in reason and doomed in reason

    assert (await http("api/status")).code == 200  # the Jupyter server is alive
    await other.send("still there?")
    assert await other.recv() == f"{other_hello['instance']}:still there?"  # never noticed

    again = await connect(f"parties/hazard/{doomed}")  # waits for the new worker
    after = json.loads(await again.recv())
    assert after["pid"] != before["pid"]  # a new worker process, a new instance
    await again.send("get:answer")
    assert json.loads(await again.recv()) == "42"
    workers = (await api_json(http, "party-api/rooms"))["workers"]
    assert sum(w["restarts"] for w in workers) == 1
    assert any(hook_text in (w["last_exit"] or "") for w in workers)


async def test_segfault_in_a_handler_kills_only_its_worker(connect, http):
    await crash_and_recover(connect, http, "segv", "on_message of party 'hazard'")


async def test_os_exit_in_a_handler_kills_only_its_worker(connect, http):
    await crash_and_recover(connect, http, "exit", "ended its worker (exit code 3)")


async def test_endless_loop_is_stopped_after_handler_timeout(connect, http):
    await crash_and_recover(connect, http, "spin", "ran over handler_timeout (3 s)")
    logs = await api_json(http, "party-api/parties/hazard/logs")
    errors = [r["text"] for r in logs["records"] if r["kind"] == "error"]
    # faulthandler's dump of the stuck loop reaches the party's log, pointing at the line.
    assert any("ran over handler_timeout" in e and "hazard.py" in e for e in errors), errors


@pytest.mark.party_config(handler_timeout=30.0)
async def test_a_blocking_handler_never_blocks_jupyter(connect, http, jp_fetch, jp_ws_fetch):
    kernel = json.loads((await jp_fetch("api", "kernels", method="POST", body="{}")).body)
    channels = await jp_ws_fetch("api", "kernels", kernel["id"], "channels")
    await execute(channels, "1 + 1")  # the kernel is up before the party starts sleeping

    client = await connect("parties/hazard/sleepy")
    await client.recv()
    await client.send("sleep:6")
    latencies, calls, executed = [], 0, None
    started = time.time()
    while time.time() - started < 5:
        for path in ("api/status", "api/contents", "api/sessions"):
            t0 = time.monotonic()
            assert (await http(path)).code == 200
            latencies.append(time.monotonic() - t0)
            calls += 1
        if executed is None:
            executed = (time.time(), await execute(channels, "6 * 7"))
    slept = json.loads(await client.recv(timeout=15))["slept"]
    channels.close()
    # The measurements really happened while the party's handler was blocked.
    assert slept[0] <= started + 1 and slept[1] >= time.time() - 1
    assert slept[0] <= executed[0] <= slept[1] and executed[1] == "42"
    assert max(latencies) < 0.5, f"slowest of {calls} calls: {max(latencies):.3f} s"


async def execute(channels, code: str) -> str:
    """Run `code` in a kernel over its channels socket; returns the text of its result."""
    msg_id = uuid.uuid4().hex
    await channels.write_message(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "test",
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                    "date": "",
                },
                "parent_header": {},
                "metadata": {},
                "content": {"code": code, "silent": False},
                "channel": "shell",
                "buffers": [],
            }
        )
    )
    while True:
        message = json.loads(await asyncio.wait_for(channels.read_message(), 30))
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "execute_result":
            return message["content"]["data"]["text/plain"]
        if message["msg_type"] == "error":
            raise AssertionError(message["content"])


async def test_a_party_that_never_starts_backs_off_and_others_keep_serving(connect, http):
    # One party raises in on_start for ever, another crashes its worker on every start.
    for _ in range(3):
        client = await connect("parties/hazard/raise-start-1")
        code, reason = await client.closed()
        assert code == 1011, reason
    assert "next try in" in reason  # the third try came too soon: refused without starting
    crashes = 0
    deadline = time.monotonic() + 4 * TIMEOUT
    while crashes < 3 and time.monotonic() < deadline:
        client = await connect("parties/hazard/crash-start-1")
        code, reason = await client.closed()
        assert code in (1011, 1013), reason
        crashes += "crashed its worker" in reason
        chat = await connect("parties/chat/calm")  # meanwhile another party serves on
        await chat.recv()
        await chat.send("still here")
        chat.close()
    records = (await api_json(http, "party-api/parties/hazard/logs"))["records"]
    texts = [r["text"] for r in records]
    assert any("on_start failed 2 times in a row: next try in" in t for t in texts), texts
    assert any("crashed its worker 2 times in a row: paused for" in t for t in texts), texts
    assert crashes >= 2


async def test_stopping_the_server_stops_the_workers(jp_serverapp, http):
    pids = [w["pid"] for w in (await api_json(http, "party-api/rooms"))["workers"]]
    assert len(pids) == 2 and all(pids)
    await jp_serverapp.cleanup_extensions()  # what a stopping server does first
    for pid in pids:
        await eventually(lambda pid=pid: not _alive(pid), message=f"worker {pid} to exit")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead; its parent reaps it later
        return stat.read().split(") ")[-1][0] != "Z"
