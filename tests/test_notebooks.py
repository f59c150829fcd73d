"""Every demo notebook runs top to bottom in a real kernel against a live server, unchanged:
the kernel finds the server by itself, as in Jupyter (runtime file + JPY_PARENT_PID)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def party_config(tmp_path):
    return {"parties_dir": str(tmp_path / "parties")}  # deployed demo parties land here


@pytest.fixture
def run_notebook(tmp_path, jp_serverapp, jp_http_port, jp_base_url, http_server_client):
    """`await run_notebook(name)`: execute it; returns each code cell's output text."""
    runtime = tmp_path / "kernel-runtime"
    runtime.mkdir()
    info = {
        "url": f"http://127.0.0.1:{jp_http_port}{jp_base_url}",
        "hostname": "127.0.0.1",
        "port": jp_http_port,
        "sock": "",
        "secure": False,
        "base_url": jp_base_url,
        "token": jp_serverapp.identity_provider.token,
        "pid": os.getpid(),  # the kernel's JPY_PARENT_PID: "my server"
        "root_dir": str(tmp_path),
        "password": False,
        "version": "test",
    }
    (runtime / f"jpserver-{os.getpid()}.json").write_text(json.dumps(info))
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "JPY_PARENT_PID": str(os.getpid())}

    async def run(name: str, on_cell_executed=None) -> list[str]:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        client = NotebookClient(
            notebook,
            timeout=60,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
            on_cell_executed=on_cell_executed,
        )
        await client.async_execute(env=env)
        return [_text(cell) for cell in notebook.cells if cell.cell_type == "code"]

    return run


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] in ("display_data", "execute_result"):
            data = output["data"]
            parts.append(data.get("text/plain", ""))
            if "application/vnd.jupyter.widget-view+json" in data:
                parts.append("<widget>")
        elif output["output_type"] == "error":
            parts.append("\n".join(output["traceback"]))
    return "\n".join(parts)


def test_every_notebook_is_tested():
    tested = {"quickstart", "counter", "collaborative-doc", "poll", "hot-reload", "live-quiz"}
    assert {path.stem for path in NOTEBOOKS.glob("*.ipynb")} == tested


async def test_quickstart(run_notebook):
    cells = await run_notebook("quickstart.ipynb")
    assert "party 'quickchat' deployed" in cells[1]
    assert '{"type":"history","messages":[]}' in cells[2]
    assert "<widget>" in cells[2]  # the handle displays as a room console
    assert "the first client got: hello from the second client" in cells[3]
    assert "/party-share/quickchat/lobby" in cells[4]


async def test_counter(run_notebook):
    cells = await run_notebook("counter.ipynb")
    start = int(cells[0].split()[-1])
    assert f"after a WebSocket increment: {start + 1}" in cells[1]
    assert f"HTTP answered 200 {{'count': {start + 2}}}" in cells[2]
    assert f"the WebSocket client was told: {start + 2}" in cells[2]


async def test_collaborative_doc(run_notebook):
    cells = await run_notebook("collaborative-doc.ipynb")
    assert "party 'notes' deployed" in cells[1]
    alice = cells[3].splitlines()[0].removeprefix("alice sees: ")
    assert "Hello from Alice." in alice and "Hi, Bob here." in alice
    assert cells[3].splitlines()[1].removeprefix("bob sees:   ") == alice
    assert "bob sees who is here: [{'user': 'alice'}]" in cells[4]


async def test_poll(run_notebook):
    cells = await run_notebook("poll.ipynb")
    assert "party 'lunchpoll' deployed" in cells[1]
    assert "<widget>" in cells[2]  # the party's own UI
    tally = json.loads(cells[3].split("tally: ", 1)[1].replace("'", '"'))
    assert tally["pizza"] == 2 and tally["salad"] == 1


async def test_hot_reload_and_errors(run_notebook):
    cells = await run_notebook("hot-reload.ipynb")
    assert "v1 says hello to Ada" in cells[2]
    assert "v2 says HELLO to Grace" in cells[4]
    assert "SyntaxError" in cells[5] and "keeps running" in cells[5]
    assert "v2 says HELLO to Linus" in cells[6]
    assert "RuntimeError: greeter cannot greet a boom" in cells[7]
    # The deploying cell shows the party's live output (its updates arrive asynchronously:
    # tests/test_deploy_kernel.py checks the traceback landing there, message by message).
    assert "output from party 'greeter'" in cells[3] or "[lobby]" in cells[3]


async def test_live_quiz_with_a_browser_guest(run_notebook):
    """The notebook hosts the quiz; a guest in Chromium answers on the share page while the
    notebook waits; the notebook's DataFrame holds the answer."""
    from test_share_browser import TIMEOUT_MS, expect, fresh_context

    link: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def executed(cell, cell_index, execute_reply) -> None:
        found = re.search(r"http\S+/party-share/quiz/class\S*", _text(cell))
        if found and not link.done():
            link.set_result(found.group())

    running = asyncio.ensure_future(run_notebook("live-quiz.ipynb", on_cell_executed=executed))
    url = await asyncio.wait_for(asyncio.shield(link), 120)
    async with fresh_context() as context:
        page = await context.new_page()
        await page.goto(url)
        await expect(page.locator("h2")).to_have_text(
            "Which planet is the largest?", timeout=TIMEOUT_MS
        )
        await page.get_by_role("button", name="Jupiter").click()
        await expect(page.locator("#tally")).to_contain_text("Jupiter: 1", timeout=TIMEOUT_MS)
        cells = await asyncio.wait_for(running, 120)
    assert "<widget>" in cells[2]  # the hosted party's widget
    assert re.search(r"0\s+[0-9a-f]{32}\s+Jupiter$", cells[4])  # the DataFrame: one answer
    assert "Jupiter    1" in cells[5]
    assert cells[6].strip() == "'stopped: by stop()'"
