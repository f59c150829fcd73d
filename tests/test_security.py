"""What a guest with a share link, or with nothing, can still do: each guarantee of
docs/security.md that is not tested elsewhere, on a real server with real clients."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import psutil
import pytest
from pycrdt import Doc, Text
from ysupport import YClient

from conftest import PARTIES, eventually
from jupyter_party.protocol.ysync import (
    STEP1,
    STEP2,
    AwarenessEntry,
    AwarenessMessage,
    SyncMessage,
    awareness_frame,
    encode_awareness,
    parse_frame,
    sync_frame,
)
from jupyter_party.runtime.partylog import PartyLog
from jupyter_party.runtime.storage import SQLiteBackend

BROKEN = """
from pathlib import Path
with open(Path(__file__).with_suffix(".imports"), "a") as log:
    log.write("imported\\n")  # each time this module's code runs
raise RuntimeError("secret-in-the-traceback")
"""


@pytest.fixture
def party_config(party_config, tmp_path):
    """The test parties, plus `broken`: a module that fails to import (and counts its runs)."""
    parties = tmp_path / "parties"
    shutil.copytree(PARTIES, parties, ignore=shutil.ignore_patterns("__pycache__"))
    (parties / "broken.py").write_text(BROKEN)
    party_config["parties_dir"] = str(parties)
    return party_config


async def _login_cookie(http) -> str:
    login = await http("party-api/rooms")  # a token request sets Jupyter's login cookie
    return "; ".join(c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie"))


# -- read links and identities --------------------------------------------------------------


async def test_read_links_neither_post_to_the_chat_nor_count(share, connect, http, live_rooms):
    owner = await connect("parties/chat/ro?_pk=owner")
    await owner.recv_json()  # the history
    for party, message in (("chat", "spam from a read link"), ("counter", "increment")):
        grant = await share(party, "ro", access="read")
        guest = await connect(f"parties/{party}/ro?share_token={grant['token']}", auth=False)
        await guest.recv()
        await guest.send(message)
        guest.close()  # its message is handled (or dropped) before its close
        await eventually(lambda p=party: live_rooms.connections(p, "ro"), message="the close")
    assert json.loads((await http("parties/chat/ro")).body) == {"messages": []}
    assert json.loads((await http("parties/counter/ro")).body) == {"count": 0}
    read = await share("counter", "ro", access="read")
    response = await http(
        f"parties/counter/ro?share_token={read['token']}", method="POST", auth=False
    )
    assert response.code == 403  # HTTP writes through a read link are refused outright


async def test_the_chat_names_a_guest_by_its_link_not_by_its_pk(share, connect):
    owner = await connect("parties/chat/who?_pk=owner")
    await owner.recv_json()
    grant = await share("chat", "who")
    guest = await connect(f"parties/chat/who?_pk=admin&share_token={grant['token']}", auth=False)
    await guest.recv_json()
    await guest.send("I am the admin")
    said = await owner.recv_json()
    assert said["text"] == "I am the admin"
    assert said["from"] == f"share-{grant['id'][:12]}"  # assigned by the server


async def test_a_connection_id_cannot_be_taken_by_another_credential(share, connect):
    owner = await connect("parties/probe/ids?_pk=alice")
    assert (await owner.recv_json())["id"] == "alice"
    grant = await share("probe", "ids")
    thief = await connect(f"parties/probe/ids?_pk=alice&share_token={grant['token']}", auth=False)
    assert await thief.closed() == (4403, "connection id 'alice' is in use")
    again = await connect("parties/probe/ids?_pk=alice")  # the owner reconnecting: allowed
    assert (await again.recv_json())["id"] == "alice"


# -- expiry, errors, strangers --------------------------------------------------------------


async def test_an_expired_link_closes_its_open_sockets(share, connect):
    grant = await share("probe", "expiring", expires_in=2)
    guest = await connect(f"parties/probe/expiring?share_token={grant['token']}", auth=False)
    await guest.recv_json()
    assert await guest.closed() == (4401, "share link expired")


async def test_guests_never_see_a_partys_error_text(share, connect):
    grant = await share("faulty", "f")
    guest = await connect(f"parties/faulty/f?fail=1&share_token={grant['token']}", auth=False)
    assert await guest.closed() == (1011, "refused by the party")
    owner = await connect("parties/faulty/f?fail=1")
    code, reason = await owner.closed()
    assert code == 1011 and "ValueError: connect refused by the party" in reason
    grant = await share("gated", "g")
    guest = await connect(f"parties/gated/g?explode=1&share_token={grant['token']}", auth=False)
    assert await guest.closed() == (4401, "refused by the party")


async def test_strangers_cannot_tell_parties_apart(http):
    for kind in ("party-share", "parties"):
        answers = set()
        for party in ("chat", "no-such-party", "broken"):
            response = await http(f"{kind}/{party}/room", auth=False)
            answers.add((response.code, response.body))
        assert len(answers) == 1, answers
        ((code, body),) = answers
        assert code == 401 and b"secret" not in body


async def test_a_broken_party_is_explained_to_its_owner_only_and_never_rerun(
    share, connect, http, party_config
):
    grant = await share("broken", "b")
    guest = await connect(f"parties/broken/b?share_token={grant['token']}", auth=False)
    assert await guest.closed() == (4404, "Party 'broken' not found")
    page = await http(f"party-share/broken/b?share_token={grant['token']}", auth=False)
    assert page.code == 404 and b"secret" not in page.body
    owner = await http("parties/broken/b")
    assert owner.code == 404 and b"secret-in-the-traceback" in owner.body
    for _ in range(3):
        await http("parties/broken/b", auth=False)
        await http("parties/broken/b")
    imports = Path(party_config["parties_dir"]) / "broken.imports"
    # Once, when the worker loaded its parties; never again for a file that did not change.
    assert imports.read_text().count("imported") == 1


# -- credentials ------------------------------------------------------------------------------


async def test_party_code_never_sees_the_jupyter_token_or_cookie(connect, http):
    stolen = {"Cookie": "username-x=secret", "X-XSRFToken": "secret"}
    client = await connect("parties/probe/creds", headers=stolen)  # plus the token header
    headers = (await client.recv_json())["headers"]
    assert not {"authorization", "cookie", "x-xsrftoken"} & set(headers), headers
    response = await http("parties/probe/creds", headers=stolen)
    headers = json.loads(response.body)["headers"]
    assert not {"authorization", "cookie", "x-xsrftoken"} & set(headers), headers
    assert "host" in headers  # the others are passed on


async def test_a_foreign_page_with_the_login_cookie_never_reaches_party_code(http, jp_http_port):
    cookie = await _login_cookie(http)
    assert "username-" in cookie
    for method in ("GET", "POST"):
        evil = {"Cookie": cookie, "Origin": "http://evil.example"}
        response = await http("parties/probe/origin", method=method, headers=evil, auth=False)
        # GET: our origin check (403); POST: Jupyter's own check gets there first (404).
        assert response.code in (403, 404), (method, response.body)
    same = {"Cookie": cookie, "Origin": f"http://localhost:{jp_http_port}"}
    events = json.loads((await http("parties/probe/origin", headers=same, auth=False)).body)
    assert events["events"] == ["on_start", "on_request:GET"]  # only this request ran


async def test_share_links_work_from_any_origin(share, connect):
    grant = await share("probe", "anywhere")
    headers = {"Origin": "http://another-site.example"}
    client = await connect(
        f"parties/probe/anywhere?share_token={grant['token']}", headers=headers, auth=False
    )
    assert (await client.recv_json())["type"] == "welcome"


# -- files and waiters ----------------------------------------------------------------------


async def test_the_storage_file_is_readable_by_its_owner_only(tmp_path):
    backend = SQLiteBackend(str(tmp_path / "rooms.db"))
    await backend.put(("p", "r"), {"k": 1})
    await backend.close()
    for name in ("rooms.db", "rooms.db-wal"):
        path = tmp_path / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


async def test_a_log_long_poll_that_timed_out_is_forgotten():
    log = PartyLog()
    for _ in range(3):
        await log.wait(0, 0.01)
    assert log._waiters == []


# -- awareness floods -------------------------------------------------------------------------


def _workers_rss() -> int:
    """Resident memory of the party workers (where rooms keep their state). The server
    process is this test process, whose own clients build the floods."""
    children = psutil.Process().children(recursive=True)
    return sum(c.memory_info().rss for c in children if "runtime.worker" in " ".join(c.cmdline()))


async def _synced(client) -> list[bytes]:
    """Ask for the document and wait for it; returns the awareness frames that came first."""
    await client.send(sync_frame(STEP1, Doc().get_state()))
    seen = []
    while True:
        message = parse_frame(frame := await client.recv())
        if isinstance(message, SyncMessage) and message.step == STEP2:
            return seen
        if isinstance(message, AwarenessMessage):
            seen.append(frame)


@pytest.mark.party_config(awareness_burst=1000)  # the bounds below, not the rate, are tested
async def test_awareness_floods_from_a_read_link_are_bounded(share, connect):
    grant = await share("ydoc", "aware", access="read")
    link = f"parties/ydoc/aware?share_token={grant['token']}"
    state = json.dumps({"junk": "x" * 15_000})  # under the 16 KiB bound of one state
    await _synced(await connect("parties/ydoc/aware"))  # the room and its worker are up
    before = _workers_rss()
    for i in range(10):  # ten 800 KB frames of 50 fresh ids each
        guest = await connect(link, auth=False)
        entries = [AwarenessEntry(100_000 + 50 * i + j, 1, state) for j in range(53)]
        await guest.send(awareness_frame(encode_awareness(entries)))
        assert (await guest.closed())[0] == 1009
    guest = await connect(link, auth=False)  # within the frame bound: fresh ids, 4 at a time
    for i in range(50):
        entries = [AwarenessEntry(200_000 + 4 * i + j, 1, state) for j in range(4)]
        await guest.send(awareness_frame(encode_awareness(entries)))
    await _synced(guest)  # the server has handled every frame the guest sent before
    joiner = await connect("parties/ydoc/aware")
    received = sum(map(len, await _synced(joiner)))
    assert 0 < received < 256 * 1024, received  # the first ids of one connection, no more
    assert before > 0 and _workers_rss() - before < 30 * 1024 * 1024


# -- memory that Y sessions give back ---------------------------------------------------------


@pytest.mark.party_config(room_idle_timeout=0.01)
async def test_y_sessions_give_their_memory_back(connect, http):
    rooms = [f"mem{i}" for i in range(60)]  # each visited again well after its eviction
    for room in rooms:  # each room's document holds 20 KB of text
        client = await YClient(await connect(f"parties/ydoc/{room}")).sync()
        await client.edit(lambda doc: doc.get("text", type=Text).__iadd__("x" * 20_000))
        await client.settled()
        client.ws.close()

    async def sessions(count: int) -> None:
        for n in range(count):  # connect, sync, leave; the idle room is evicted meanwhile
            client = await YClient(await connect(f"parties/ydoc/{rooms[n % len(rooms)]}")).sync()
            client.ws.close()

    async def instances() -> int:
        return json.loads((await http(f"parties/ydoc/{rooms[0]}/instance")).body)["instance"]

    await sessions(100)
    before, started = _workers_rss(), await instances()
    await sessions(600)
    assert await instances() - started > 300  # most sessions loaded a fresh instance
    assert _workers_rss() - before < 8 * 1024 * 1024


@pytest.mark.party_config(max_connections_per_share=3)
async def test_one_share_link_opens_a_bounded_number_of_connections(share, connect):
    grant = await share("probe", "crowd")
    link = f"parties/probe/crowd?share_token={grant['token']}"
    guests = [await connect(link, auth=False) for _ in range(3)]
    for guest in guests:
        await guest.recv_json()
    extra = await connect(link, auth=False)
    assert await extra.closed() == (1013, "too many connections on this share link")
    guests[0].close()
    await guests[0].closed()
    again = await connect(link, auth=False)  # a place is free again
    assert (await again.recv_json())["type"] == "welcome"
