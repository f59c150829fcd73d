"""Kernel-hosted parties (`jupyter_party.host`): real kernels serve parties to real clients
(WebSockets, other kernels, a browser on the share page) of a real Jupyter server, with the
kernel's own variables; storage stays on the server."""

from __future__ import annotations

import json
import re
import time

import pytest

from conftest import eventually, output_text

QUIZ = """
import json
import jupyter_party

answers = []

class Quiz(jupyter_party.Server):
    def on_message(self, message, sender):
        answers.append({"who": sender.id, "answer": message})  # the kernel's own list
        self.room.broadcast(json.dumps({"count": len(answers)}))

quiz = jupyter_party.host(Quiz, name="quiz", server=SERVER, token=TOKEN)
await quiz.ready()
print(quiz.status)
"""

COUNTER = """
import asyncio, time
import jupyter_party

class Counter(jupyter_party.Server):
    async def on_message(self, message, sender):
        if message == "inc":
            n = (await self.room.storage.get("n") or 0) + 1
            await self.room.storage.put("n", n)  # answered once the server committed it
            self.room.broadcast(str(n))
        elif message == "block":
            time.sleep(4)  # blocks this kernel, and so this party, and nothing else
            sender.send("unblocked")
        elif message == "hang":
            print("hanging", flush=True)  # iopub is a thread of its own: this gets out
            time.sleep(60)
        elif message == "alarm":
            await self.room.storage.set_alarm(time.time() * 1000 + 200)

    def on_alarm(self):
        self.room.broadcast("ding")

counter = jupyter_party.host(Counter, name="tally", server=SERVER, token=TOKEN)
await counter.ready()
print(counter.status)
"""


@pytest.fixture
def party_config(tmp_path):
    return {"parties_dir": str(tmp_path / "parties"), "party_env": {"QUIZ_MODE": "exam"}}


@pytest.fixture
def token(jp_auth_header):
    return jp_auth_header["Authorization"].split(" ", 1)[1]


@pytest.fixture
def hosting(kernels, url, token):
    """`await hosting(cell)`: a new kernel that knows SERVER and TOKEN, then ran `cell`."""

    async def start(cell: str | None = None):
        kernel = await kernels()
        await kernel.run(f"import jupyter_party\nSERVER, TOKEN = {url('')!r}, {token!r}")
        if cell is not None:
            _, out = await kernel.run(cell)
            assert out.strip().endswith("live"), out
        return kernel

    return start


async def test_kernel_serves_browser_and_kernel_guests_with_its_own_list(hosting, connect):
    from test_share_browser import TIMEOUT_MS, expect, fresh_context

    teacher = await hosting(QUIZ)
    _, out = await teacher.run('print(quiz.share_link("class"))')
    link = re.search(r"http\S+/party-share/quiz/class\S*", out).group()  # after a warning:
    # on this machine the link can only be local (LocalShareLinkWarning)
    student = await hosting()
    await student.run(
        'r = await jupyter_party.connect("quiz", "class", id="student", server=SERVER, token=TOKEN)'
    )
    async with fresh_context() as context:  # a guest with nothing but the share link
        page = await context.new_page()
        await page.goto(link)
        await expect(page.locator("#status")).to_have_text("connected", timeout=TIMEOUT_MS)
        await page.locator("#message").fill("42")
        await page.locator("#send button").click()
        count = page.locator("#log .in").filter(has_text=re.compile(r'"count":\s*1'))
        await expect(count).to_have_count(1, timeout=TIMEOUT_MS)
        _, out = await student.run("print(await r.recv(10))")
        assert json.loads(out) == {"count": 1}
        await student.run('await r.send("7")')
        count = page.locator("#log .in").filter(has_text=re.compile(r'"count":\s*2'))
        await expect(count).to_have_count(1, timeout=TIMEOUT_MS)
        _, out = await student.run("print(await r.recv(10))")
        assert json.loads(out) == {"count": 2}
    _, out = await teacher.run("print(json.dumps([a['answer'] for a in answers]))")
    assert json.loads(out) == ["42", "7"]
    _, out = await teacher.run("print(json.dumps(answers[1]))")
    assert json.loads(out)["who"] == "student"


async def test_a_blocked_kernel_blocks_only_its_party(hosting, connect, http):
    await hosting(COUNTER)
    hosted = await connect("parties/tally/r")
    chat = await connect("parties/chat/r")  # a party of the server's worker
    assert (await chat.recv_json())["type"] == "history"
    await hosted.send("block")
    started, latencies = time.monotonic(), []
    while time.monotonic() - started < 3:
        t0 = time.monotonic()
        assert (await http("api/status")).code == 200
        latencies.append(time.monotonic() - t0)
        await chat.send("still here")
        assert (await chat.recv_json())["text"] == "still here"
    assert max(latencies) < 0.5, f"slowest /api/status: {max(latencies):.3f} s"
    assert await hosted.recv(timeout=15) == "unblocked"  # the blocked party itself resumes


async def test_stop_restart_and_host_again_keep_the_rooms_data(hosting, connect, http):
    kernel = await hosting(COUNTER)
    client = await connect("parties/tally/r")
    for expected in ("1", "2"):
        await client.send("inc")
        assert await client.recv() == expected

    await kernel.run("await counter.stop()")
    assert await client.closed() == (1012, "party 'tally' stopped")
    _, out = await kernel.run("print(counter.status)")
    assert out.strip() == "stopped: by stop()"
    refused = await connect("parties/tally/r")  # "try again" while nobody hosts it
    assert await refused.closed() == (
        1013,
        "party 'tally' is hosted by a kernel, which stopped: try again",
    )
    assert (await http("parties/tally/r")).code == 503

    _, out = await kernel.run(
        "counter = jupyter_party.host(Counter, name='tally', server=SERVER, token=TOKEN)\n"
        "await counter.ready(); print(counter.status)"
    )
    assert out.strip() == "live"
    client = await connect("parties/tally/r")
    await client.send("inc")
    assert await client.recv() == "3"  # the storage outlived the hosting

    # The kernel dies (a restart starts a new process): its guests are told.
    await kernel.manager.shutdown_kernel(now=True)
    code, reason = await client.closed(timeout=30)
    assert code == 1012 and "stopped" in reason
    await hosting(COUNTER)  # the restarted notebook runs its cells again
    client = await connect("parties/tally/r")
    await client.send("inc")
    assert await client.recv() == "4"
    await client.send("alarm")  # alarms fire while the kernel lives
    assert await client.recv() == "ding"


async def test_one_name_one_host(hosting, connect, http):
    first = await hosting(QUIZ)
    guest = await connect("parties/quiz/r")
    second = await hosting()
    _, out = await second.run(
        "try:\n"
        "    jupyter_party.host(jupyter_party.Server, name='quiz', server=SERVER, token=TOKEN)\n"
        "except jupyter_party.client.HostError as error:\n"
        "    print(error)"
    )
    assert "already hosted by another kernel: pass replace=True" in out
    _, out = await second.run(
        "try:\n"
        "    jupyter_party.host(jupyter_party.Server, name='chat', server=SERVER, token=TOKEN)\n"
        "except jupyter_party.client.HostError as error:\n"
        "    print(error)"
    )
    assert "party 'chat' is deployed on this server" in out
    _, out = await second.run(
        "try:\n"
        "    jupyter_party.deploy('from jupyter_party import Server\\nclass Q(Server): pass\\n',"
        " name='quiz', server=SERVER, token=TOKEN)\n"
        "except jupyter_party.DeployError as error:\n"
        "    print(error)"
    )
    assert "party 'quiz' is hosted by a kernel" in out

    # replace=True: the second kernel takes over; the first one's guests reconnect (1012).
    _, out = await second.run(QUIZ.replace('name="quiz"', 'name="quiz", replace=True'))
    assert out.strip() == "live"
    code, reason = await guest.closed()
    assert code == 1012 and "now hosted by another kernel" in reason
    _, out = await first.run("print(quiz.status)")
    assert "stopped" in out and "now hosted by another kernel" in out
    guest = await connect("parties/quiz/r?_pk=back")
    await guest.send("again")
    assert json.loads(await guest.recv()) == {"count": 1}
    _, out = await second.run("print(len(answers))")
    assert out.strip() == "1"


async def test_decorators_admin_api_and_widget(hosting, connect, http):
    kernel = await hosting(
        """
        import json
        import jupyter_party
        echo = jupyter_party.host(name="echo", server=SERVER, token=TOKEN)

        @echo.on_message
        def answer(room, message, sender):
            room.broadcast(f"{sender.id}: {message}")

        await echo.ready()
        view = echo.widget()
        print(echo.status)
        """
    )
    client = await connect("parties/echo/lobby?_pk=ann")
    await client.send("hi")
    assert await client.recv() == "ann: hi"

    parties = json.loads((await http("party-api/parties")).body)["parties"]
    echo = next(p for p in parties if p["name"] == "echo")
    assert echo["source"].startswith("kernel (pid ") and echo["error"] is None
    rooms = json.loads((await http("party-api/rooms")).body)["rooms"]
    assert {"party": "echo", "room": "lobby", "connections": 1}.items() <= next(
        r for r in rooms if r["party"] == "echo"
    ).items()
    inspected = json.loads((await http("party-api/rooms/echo/lobby")).body)
    assert [c["id"] for c in inspected["connections"]] == ["ann"]

    # The widget follows without being asked: its state is pushed from the kernel.
    async def widget(expression: str):
        return json.loads((await kernel.run(f"print(json.dumps({expression}))"))[1])

    async def shows_the_room() -> bool:
        return await widget("view.rooms") == [{"room": "lobby", "connections": 1}]

    await eventually(shows_the_room, message="the widget lists the live room")
    kinds = [(e["kind"], e["connection"], e["text"]) for e in await widget("view.events")]
    assert kinds == [("join", "ann", ""), ("message", "ann", "hi")]
    # The front end's "share" request (through the comm, as the browser sends it).
    await kernel.run('view._handle_custom_msg({"type": "share", "room": "lobby"}, [])')
    shared = await widget("view.share")
    assert shared["room"] == "lobby" and "party-share/echo/lobby?" in shared["url"]
    await kernel.run('view._handle_custom_msg({"type": "stop"}, [])')
    assert (await client.closed())[0] == 1012

    async def stopped() -> bool:
        return await widget("view.status") == "stopped: by stop()"

    await eventually(stopped, message="the widget shows the party stopped")


async def test_a_party_hosted_by_a_kernel_gets_the_party_env(hosting, connect):
    await hosting(
        """
        import json

        class Env(jupyter_party.Server):
            def on_connect(self, connection, ctx):
                connection.send(json.dumps(self.room.env))

        env_party = jupyter_party.host(Env, name="envcheck", server=SERVER, token=TOKEN)
        await env_party.ready()
        print(env_party.status)
        """
    )
    client = await connect("parties/envcheck/r1")
    assert await client.recv_json() == {"QUIZ_MODE": "exam"}


async def test_interrupting_a_blocked_kernel_stops_its_party(hosting, connect):
    kernel = await hosting(COUNTER)
    client = await connect("parties/tally/r")
    await client.send("inc")
    assert await client.recv() == "1"
    await client.send("hang")
    await eventually(lambda: "hanging" in output_text(kernel.messages), message="the hook to hang")
    await kernel.manager.interrupt_kernel()
    assert await client.closed() == (1012, "party 'tally' stopped")
    _, out = await kernel.run("await counter.stop()  # the stop under way\nprint(counter.status)")
    assert out.strip() == "stopped: the kernel was interrupted"
    _, out = await kernel.run(
        "counter = jupyter_party.host(Counter, name='tally', server=SERVER, token=TOKEN)\n"
        "await counter.ready(); print(counter.status)"
    )
    assert out.strip() == "live"
    client = await connect("parties/tally/r")
    await client.send("inc")
    assert await client.recv() == "2"


async def test_hosting_needs_jupyter_credentials(http):
    answer = await http("party-api/host/quiz", auth=False)
    assert answer.code in (401, 403)  # 403 where Jupyter refuses anonymous requests itself
    answer = await http("party-api/host/quiz")
    assert (answer.code, json.loads(answer.body)) == (200, {"party": "quiz", "available": True})
    answer = await http("party-api/host/chat")
    assert answer.code == 409 and "deployed on this server" in json.loads(answer.body)["message"]
