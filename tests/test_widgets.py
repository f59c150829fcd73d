"""Notebook widgets at the Python/comm level: synced state, custom messages, the kernel relay
against a real server, and `show()` choosing a widget. (The front-end modules are tested with
vitest: test_widgets_js.py.)"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import jupyter_party
from conftest import eventually
from jupyter_party import Server, YServer
from jupyter_party.widgets import DocView, PartyUI, RoomConsole, party_ui_source, show
from jupyter_party.widgets._base import STATIC

TIMEOUT = 10.0
UI = "export default { render({ model, el, room }) { el.textContent = model.get('room'); } };\n"


def record(widget) -> list[tuple[dict, list]]:
    """Replace the widget's (dummy) comm send with a recorder of (data, buffers)."""
    sent: list[tuple[dict, list]] = []
    widget.comm.send = lambda data=None, metadata=None, buffers=None: sent.append(
        (data, list(buffers or []))
    )
    return sent


def custom(sent) -> list[tuple[dict, list]]:
    """The custom messages sent to the front end, but the console's log deltas."""
    return [(c, b) for c, b in _custom(sent) if c.get("type") != "log"]


def log_deltas(sent) -> list[list[dict]]:
    """The console's log deltas sent to the front end: the entries of each."""
    return [c["entries"] for c, _ in _custom(sent) if c.get("type") == "log"]


def _custom(sent) -> list[tuple[dict, list]]:
    return [(d["content"], b) for d, b in sent if d.get("method") == "custom"]


def states(sent) -> list[dict]:
    """The state updates sent to the front end."""
    return [d["state"] for d, _ in sent if d.get("method") == "update"]


def from_front_end(widget, content: dict, buffers: list | None = None) -> None:
    """A custom message from the browser side, as the comm delivers it."""
    widget._handle_msg(
        {"content": {"data": {"method": "custom", "content": content}}, "buffers": buffers or []}
    )


@pytest.fixture
def token(jp_auth_header):
    return jp_auth_header["Authorization"].split(" ", 1)[1]


@pytest.fixture
def widgets(jp_serverapp):
    """Widgets made by a test, closed (with their relay clients) after it."""
    made: list = []
    yield made
    for widget in made:
        widget.close()


# -- state and custom messages ----------------------------------------------------------------


def test_console_state_is_synced():
    w = RoomConsole("chat", "lobby")
    state = w.get_state()
    assert state["party"] == "chat" and state["room"] == "lobby"
    assert state["mode"] == "auto" and state["connections"] == -1 and state["messages"] == []
    assert state["_esm"] == (STATIC / "console.js").read_text()
    sent = record(w)
    w.status = "connected"
    assert sent[-1][0] == {"method": "update", "state": {"status": "connected"}, "buffer_paths": []}


def test_console_messages_are_bounded():
    w = RoomConsole("chat", "lobby")
    w.messages = [{"dir": "in", "text": str(n), "time": n} for n in range(250)]
    assert len(w.messages) == 200 and w.messages[0]["text"] == "50"
    for n in range(205):
        w._log("info", f"event {n}")
    assert len(w.messages) == 200 and w.messages[-1]["text"] == "event 204"


def test_log_travels_as_deltas_not_as_the_whole_log():
    """The kernel's own entries (relay mode) go to the front end one delta each; the page's
    (direct mode) arrive batched and are appended; neither syncs the whole log back."""
    w = RoomConsole("chat", "lobby")
    sent = record(w)
    w._log("info", "from the kernel")
    batch = [{"dir": "in", "text": f"m{n}", "time": n} for n in range(3)]
    from_front_end(w, {"type": "log", "entries": [*batch, {"dir": "bogus", "text": 5}, "junk"]})
    assert [e["text"] for e in w.messages] == ["from the kernel", "m0", "m1", "m2", "5"]
    assert w.messages[-1] == {"dir": "info", "text": "5", "time": 0}
    assert log_deltas(sent) == [[w.messages[0]]] and states(sent) == []
    w.messages = []  # assigned from Python: the whole (empty) log is synced
    assert states(sent) == [{"messages": []}]


def test_front_end_updates_set_traits():
    """In direct mode the browser side reports status, id and the log through the model."""
    w = RoomConsole("chat", "lobby")
    entry = {"dir": "in", "text": "hello", "time": 1}
    w._handle_msg(
        {
            "content": {
                "data": {
                    "method": "update",
                    "state": {"status": "connected", "connection_id": "abc", "messages": [entry]},
                    "buffer_paths": [],
                }
            },
            "buffers": [],
        }
    )
    assert (w.status, w.connection_id, w.messages) == ("connected", "abc", [entry])


def test_doc_view_and_party_ui_state():
    d = DocView("notes", "r1", user="ana")
    state = d.get_state()
    assert state["user"] == "ana" and state["synced"] is False and state["presence"] == []
    assert state["_esm"] == (STATIC / "doc.js").read_text()
    u = PartyUI("poll", "r", ui_esm=UI)
    assert u.get_state()["ui_esm"] == UI
    assert u.get_state()["_esm"] == (STATIC / "ui.js").read_text()


def test_bundles_are_self_contained():
    """Nothing is fetched at run time: the bundles import no URL and no bare package."""
    for name in ("console.js", "doc.js", "ui.js"):
        text = (STATIC / name).read_text()
        assert not re.search(r"""\bfrom\s*["'](https?:|[a-z@])""", text), name
        assert "export" in text and "default" in text


def test_unknown_custom_messages_are_ignored():
    w = RoomConsole("chat", "lobby")
    sent = record(w)
    from_front_end(w, {"type": "nonsense"})
    from_front_end(w, {"type": "send", "data": "x"})  # not connected: logged, not sent
    assert custom(sent) == [] and w.messages[-1]["text"] == "not sent: not connected"


def test_relay_without_a_server_says_why(monkeypatch):
    monkeypatch.setattr("jupyter_party.client.discovery._running_servers", lambda: [])
    names = (
        "JPY_PARENT_PID",
        "JUPYTERHUB_API_TOKEN",
        "JUPYTERHUB_SERVICE_URL",
        "JUPYTER_PARTY_URL",
    )
    for name in names:
        monkeypatch.delenv(name, raising=False)
    w = RoomConsole("chat", "lobby", mode="relay")
    sent = record(w)
    from_front_end(w, {"type": "relay-open", "id": "me", "query": {}})
    deadline = time.monotonic() + TIMEOUT  # no running loop: the relay starts on a thread
    while not custom(sent) and time.monotonic() < deadline:
        time.sleep(0.01)
    (close, _), *_ = custom(sent)
    assert close["type"] == "close" and close["final"] is True
    assert "no Jupyter server found" in close["reason"]
    assert w.status.startswith("closed (no connection") and w.connection_id == "me"


# -- the kernel relay against a real server ------------------------------------------------------


async def test_console_relays_through_the_kernel(url, token, widgets):
    w = RoomConsole("probe", "relay", server=url(""), token=token, mode="relay")
    widgets.append(w)
    sent = record(w)
    from_front_end(w, {"type": "relay-open", "id": "front-1", "query": {"tags": "a"}})
    await eventually(lambda: any(c["type"] == "message" for c, _ in custom(sent)), TIMEOUT)
    messages = custom(sent)
    assert messages[0][0] == {"type": "open", "id": "front-1", "url": w.relay_client.url}
    welcome = json.loads(messages[1][0]["data"])
    assert welcome["type"] == "welcome" and welcome["id"] == "front-1" and welcome["tags"] == ["a"]
    assert w.status == "connected" and w.connection_id == "front-1"
    assert w.messages[-1]["dir"] == "in" and json.loads(w.messages[-1]["text"]) == welcome

    # text from the send box, and binary frames as buffers, both ways
    from_front_end(w, {"type": "send", "data": json.dumps({"op": "echo", "n": 1})})
    from_front_end(w, {"type": "send", "binary": True}, [memoryview(b"\x01\x02\x03")])
    await eventually(lambda: len(custom(sent)) >= 4, TIMEOUT)
    echo, (binary, buffers) = custom(sent)[2][0], custom(sent)[3]
    assert json.loads(echo["data"])["n"] == 1
    assert binary == {"type": "message", "binary": True} and bytes(buffers[0]) == b"\x03\x02\x01"
    dirs = [m["dir"] for m in w.messages]
    assert dirs.count("out") == 2 and w.messages[-1]["text"] == "<3 bytes of binary data>"

    # presence: the room's connection count from the admin API
    await eventually(lambda: w.connections == 1, TIMEOUT)

    # a second view of the same model is told the relay is open; no second connection
    client = w.relay_client
    from_front_end(w, {"type": "relay-open", "id": "front-1", "query": {}})
    assert w.relay_client is client and custom(sent)[-1][0]["type"] == "open"

    # the last view went away: the kernel's connection closes
    from_front_end(w, {"type": "relay-close"})
    assert w.relay_client is None
    await asyncio.wait_for(client.wait_closed(), TIMEOUT)


async def test_console_share_links_are_made_by_the_kernel_in_relay_mode(url, token, widgets):
    w = RoomConsole("probe", "shared", server=url(""), token=token, mode="relay")
    widgets.append(w)
    record(w)
    from_front_end(w, {"type": "share", "access": "read"})
    await eventually(lambda: w.share, TIMEOUT)
    assert w.share["access"] == "read" and w.share["local"] is True  # a localhost test server
    assert w.share["url"].startswith(url("party-share/probe/shared?share_token=jps_"))
    refused = RoomConsole("probe", "r", server=url(""), token="wrong", mode="relay")
    widgets.append(refused)
    record(refused)
    from_front_end(refused, {"type": "share", "access": "write"})
    await eventually(lambda: refused.share, TIMEOUT)
    assert refused.share["error"].startswith("no share link: ")


async def test_relay_reports_closes_and_refusals(url, token, widgets):
    w = RoomConsole("no-such-party", "r", server=url(""), token=token, mode="relay")
    widgets.append(w)
    sent = record(w)
    from_front_end(w, {"type": "relay-open", "id": "x", "query": {}})
    await eventually(lambda: any(c["type"] == "close" for c, _ in custom(sent)), TIMEOUT)
    close = next(c for c, _ in custom(sent) if c["type"] == "close")
    assert close["final"] is True
    assert "4404" in str(close["code"]) + close["reason"] or "404" in close["reason"]
    assert w.status.startswith("closed")


async def test_doc_view_relays_binary_sync_frames(url, token, widgets):
    from pycrdt import Doc, Text

    from jupyter_party.protocol.ysync import STEP1, STEP2, SyncMessage, parse_frame, sync_frame

    w = DocView("ydoc", "relayed", server=url(""), token=token, mode="relay")
    widgets.append(w)
    sent = record(w)
    from_front_end(w, {"type": "relay-open", "id": "doc-1", "query": {"epoch": ""}})
    await eventually(lambda: any(c["type"] == "open" for c, _ in custom(sent)), TIMEOUT)
    # what the front end's Yjs would send: its STEP1; the room answers with a STEP2
    mine = Doc()
    mine.get("text", type=Text)
    frame = sync_frame(STEP1, mine.get_state())
    from_front_end(w, {"type": "send", "binary": True}, [memoryview(frame)])

    def frames():
        return [parse_frame(bytes(b[0])) for c, b in custom(sent) if c.get("binary") and b]

    await eventually(
        lambda: any(isinstance(f, SyncMessage) and f.step == STEP2 for f in frames()), TIMEOUT
    )
    texts = [c["data"] for c, _ in custom(sent) if c["type"] == "message" and "data" in c]
    assert any(t.startswith("__YPS:") and "epoch" in t for t in texts)  # the room's epoch


async def test_console_attached_to_a_kernel_client(url, token, widgets):
    room = await jupyter_party.connect("probe", "attached", server=url(""), token=token, id="k1")
    try:
        w = RoomConsole(client=room)
        widgets.append(w)
        sent = record(w)
        assert (w.party, w.room, w.connection_id, w.mode) == ("probe", "attached", "k1", "relay")
        assert w.status == "connected"
        from_front_end(w, {"type": "relay-open", "id": "k1", "query": {}})
        assert custom(sent)[-1][0]["type"] == "open"
        from_front_end(w, {"type": "send", "data": json.dumps({"op": "echo", "n": 5})})
        await eventually(lambda: any('"n": 5' in m["text"] for m in w.messages), TIMEOUT)
        from_front_end(w, {"type": "relay-close"})
        assert not room.closed  # the user's client stays open
    finally:
        await room.close()


# -- show() ---------------------------------------------------------------------------------------


class PlainParty(Server):
    pass


class WithUI(Server):
    ui = UI


class WithUIFile(Server):
    ui = "_widget_test_ui.js"


class Notes(YServer):
    pass


def test_show_picks_the_widget():
    assert isinstance(show(PlainParty, "r"), RoomConsole)
    assert isinstance(show(Notes, "r"), DocView)
    ui = show(WithUI, "r")
    assert isinstance(ui, PartyUI) and ui.ui_esm == UI and ui.party == "withui"
    assert isinstance(show(Notes, "r", kind="console"), RoomConsole)
    assert isinstance(show(PlainParty, "r", ui=UI), PartyUI)
    result = SimpleNamespace(name="counter", path=None)  # like a DeployResult
    assert show(result, "r", kind="doc").party == "counter"
    with pytest.raises(ValueError, match="declares no UI"):
        show(PlainParty, "r", kind="ui")


def test_party_ui_from_a_file_next_to_the_module(tmp_path):
    path = Path(__file__).parent / "_widget_test_ui.js"
    path.write_text(UI)
    try:
        assert party_ui_source(WithUIFile) == UI
        assert show(WithUIFile, "r").ui_esm == UI
    finally:
        path.unlink()
    assert party_ui_source(PlainParty) is None


def test_show_by_name_falls_back_to_entry_points(monkeypatch):
    """No server reachable: the installed entry point `chat` (a plain Server) -> console."""
    w = show("chat", "lobby", server="http://127.0.0.1:9/", token="t", mode="relay")
    assert isinstance(w, RoomConsole) and (w.party, w.room, w.mode) == ("chat", "lobby", "relay")
    assert isinstance(
        show("no-such-party", "r", server="http://127.0.0.1:9/", token="t"), RoomConsole
    )


def test_show_reads_the_admin_api(monkeypatch):
    def fake(party, server, token):
        return {"poll": {"ui": UI, "kind": "server"}, "notes": {"ui": None, "kind": "yserver"}}[
            party
        ]

    monkeypatch.setattr("jupyter_party.widgets._show._from_server", fake)
    assert isinstance(show("poll", "r"), PartyUI)
    assert isinstance(show("notes", "r"), DocView)


async def test_show_against_a_live_server(url, token):
    """Today's admin API lists parties without `ui`/`kind`: show() falls back sensibly."""
    # show() is blocking (it is called in a kernel); off the loop that serves the test server
    w = await asyncio.to_thread(show, "probe", "r", server=url(""), token=token)
    assert isinstance(w, RoomConsole) and w.party == "probe"
    w.close()


def test_show_is_exported():
    assert jupyter_party.show is show
    code = "import sys, jupyter_party; print('anywidget' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # the server does not pay for widgets it never shows


async def test_a_room_handle_displays_as_its_console(url, jp_serverapp):
    from jupyter_party import connect
    from jupyter_party.widgets import RoomConsole

    room = await connect(
        "probe", "display", server=url(""), token=jp_serverapp.identity_provider.token
    )
    data, _metadata = room._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert isinstance(room._view, RoomConsole)
    assert room._repr_mimebundle_()[0] == data  # one console per handle
    assert room._repr_mimebundle_()[0] == data  # one console per handle
    await room.close()
