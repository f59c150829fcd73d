"""YServer through a real server, with raw-frame clients (tests/ysupport.py); what depends
on its timers, in the test kit (its clock is manual)."""

from __future__ import annotations

import base64
import json

import pytest
from pycrdt import Doc, Map, Text
from ysupport import YClient

from conftest import eventually
from jupyter_party import YServer
from jupyter_party.protocol.ysync import (
    BATCH_PREFIX,
    STEP1,
    STEP2,
    UPDATE,
    AwarenessEntry,
    SyncMessage,
    awareness_frame,
    encode_awareness,
    parse_frame,
    sync_frame,
)
from jupyter_party.testing import YClient as KitYClient
from jupyter_party.testing import party_room


@pytest.fixture(params=[1, 0], ids=["worker", "in-process"])
def workers(request):
    """Every test here runs with rooms in a worker process, then in the server process."""
    return request.param


@pytest.fixture
def yjoin(connect):
    async def join(room: str, query: str = "") -> YClient:
        return await YClient(await connect(f"parties/ydoc/{room}{query}")).sync()

    return join


def _append(text: str):
    return lambda doc: doc.get("text", type=Text).__iadd__(text)


async def test_two_clients_converge(yjoin, http):
    a, b = await yjoin("conv"), await yjoin("conv")
    await a.edit(_append("hello "))
    await b.edit(lambda doc: doc.get("map", type=Map).__setitem__("k", 1))
    await a.until(lambda: a.map == {"k": 1.0})
    await b.until(lambda: b.text == "hello ")
    await b.edit(_append("world"))
    await a.until(lambda: a.text == "hello world")
    assert json.loads((await http("parties/ydoc/conv")).body) == {
        "text": "hello world",
        "map": {"k": 1.0},
    }


async def test_late_joiner_gets_the_state(yjoin, connect):
    a = await yjoin("late")
    await a.edit(_append("before"))
    await a.settled()
    b = await yjoin("late")
    assert b.text == "before"


async def test_server_side_edit_reaches_clients(yjoin, http):
    a = await yjoin("srv")
    assert (await http("parties/ydoc/srv", method="POST", body="from server")).code == 200
    await a.until(lambda: a.text == "from server")


async def test_awareness_echo_ownership_and_removal(yjoin, connect):
    a, b = await yjoin("aw"), await yjoin("aw")
    await a.set_awareness(101, 1, {"user": "ann"})
    await a.until(lambda: 101 in a.states)  # echoed to the sender too
    await b.until(lambda: b.states.get(101) == {"user": "ann"})
    await b.set_awareness(101, 2, None)  # b tries to wipe a's state: ignored
    await b.set_awareness(202, 1, {"user": "bob"})
    await a.until(lambda: 202 in a.states)
    assert a.states[101] == {"user": "ann"}
    c = await yjoin("aw")
    assert c.states == {101: {"user": "ann"}, 202: {"user": "bob"}}  # all states on connect
    a.ws.close()
    await b.until(lambda: 101 not in b.states)
    await c.until(lambda: 101 not in c.states)
    assert c.states == {202: {"user": "bob"}}


async def test_read_only_connection_sees_but_cannot_change(yjoin, http):
    writer, reader = await yjoin("ro"), await yjoin("ro", "?readonly=1")
    await reader.edit(_append("forbidden"))
    await writer.edit(_append("allowed"))
    await reader.until(lambda: "allowed" in reader.text)  # merged into its own local edit
    state = json.loads((await http("parties/ydoc/ro")).body)
    assert state["text"] == "allowed"
    await reader.set_awareness(7, 1, {"cursor": 3})  # awareness still works for readers
    await writer.until(lambda: 7 in writer.states)
    writer2 = await yjoin("ro")  # a writer joining after the reader is still a writer
    await writer2.edit(_append("!"))
    await writer.until(lambda: writer.text == "allowed!")


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # varuint longer than 8 bytes
        b"\x00\x02\xa0",  # truncated varuint
        b"\x00\x02\x80\x80\x80\x80\x01abc",  # huge length prefix
        b"\x00\x07\x00",  # unknown sync step
        b"\x00\x02\x05\x01\x02\x03\x04\x05",  # valid header, garbage update
        b"\x01\x05\x01\x01\x01\x01\x7b",  # awareness state that is not JSON
    ],
    ids=["long-varuint", "truncated", "huge-length", "bad-step", "garbage-update", "bad-awareness"],
)
async def test_malformed_frame_closes_only_the_sender(yjoin, connect, frame):
    honest = await yjoin("fuzz")
    await honest.edit(_append("safe"))
    await honest.settled()
    bad = await connect("parties/ydoc/fuzz")
    await bad.send(frame)
    code, reason = await bad.closed()
    assert code == 1007
    assert reason.startswith("malformed frame")
    await honest.edit(_append("!"))
    await honest.settled()
    late = await yjoin("fuzz")
    assert late.text == "safe!"


async def test_chunked_batch_is_reassembled(yjoin, connect, http):
    source = Doc()
    source.get("text", type=Text).__iadd__("x" * 2_500_000)
    frame = sync_frame(UPDATE, source.get_update())
    chunks = [frame[i : i + 1_000_000] for i in range(0, len(frame), 1_000_000)]
    marker = {"id": "b1", "size": len(frame), "count": len(chunks)}
    sender = await connect("parties/ydoc/batch")
    await sender.send(BATCH_PREFIX + json.dumps({**marker, "type": "start"}))
    for chunk in chunks:
        await sender.send(chunk)
    await sender.send(BATCH_PREFIX + json.dumps({**marker, "type": "end"}))
    observer = await yjoin("batch")
    await observer.until(lambda: len(observer.text) == 2_500_000)


async def test_batch_with_lying_size_is_refused(connect):
    sender = await connect("parties/ydoc/batchlie")
    marker = {"id": "b1", "size": 10, "count": 1, "type": "start"}
    await sender.send(BATCH_PREFIX + json.dumps(marker))
    await sender.send(b"x" * 11)
    assert (await sender.closed())[0] == 1007


async def test_custom_message_round_trip(yjoin):
    client = await yjoin("custom")
    await client.ws.send("__YPS:ping")
    await client.until(lambda: client.custom == ["echo:ping"])


@pytest.mark.party_config(room_idle_timeout=0.05)
async def test_snapshot_persistence_survives_eviction(yjoin, http, live_rooms):
    a = await yjoin("persist")
    await a.edit(_append("durable"))
    await a.settled()
    a.ws.close()
    await eventually(lambda: live_rooms.gone("ydoc", "persist"), message="eviction")
    b = await yjoin("persist")
    assert b.text == "durable"
    keys = await _stored(http, "parties/ydoc/persist")
    assert set(keys) == {"y:snapshot.000", "y:epoch"}  # compacted on last disconnect
    assert b.text.count("durable") == 1


async def test_a_crowd_joining_during_edits_gets_each_step2_in_order(yjoin, connect):
    """Joiners asking at once share one answer (one SEND to all of them); none may get it
    after an update it lacks, and none may miss an update."""
    writer = await yjoin("crowd")
    await writer.edit(_append("x" * 10_000))
    joiners = [await connect("parties/ydoc/crowd") for _ in range(12)]
    for i, joiner in enumerate(joiners):  # all at once, the writer editing in between
        await joiner.send(sync_frame(STEP1, Doc().get_state()))
        if i % 4 == 1:
            await writer.edit(_append(f"<{i}>"))
    await writer.settled()
    for joiner in joiners:
        doc, step2, before = Doc(), None, []
        while step2 is None or str(doc.get("text", type=Text)) != writer.text:
            message = await joiner.recv()
            parsed = parse_frame(message) if isinstance(message, bytes) else None
            if not isinstance(parsed, SyncMessage) or parsed.step == STEP1:
                continue
            if parsed.step == STEP2:
                assert step2 is None
                step2 = parsed.payload
            elif step2 is None:
                before.append(parsed.payload)
            doc.apply_update(parsed.payload)
        # Updates that came first must be in the step 2: applied to it, they change nothing.
        # (The first one it lacked would depend on nothing it lacks, and be integrated.)
        answered = Doc()
        answered.apply_update(step2)
        state = answered.get_state()
        for update in before:
            answered.apply_update(update)
            assert answered.get_state() == state, "an update overtook the step 2 it was not in"


async def test_the_answer_joiners_share_goes_with_a_change_or_after_a_while():
    """What a room keeps for its joiners (as big as its document) does not outlive its use."""
    async with party_room(YServer, "kept") as room:
        alice = await KitYClient(await room.connect(id="alice")).sync()
        kept = room.server._answers
        assert kept.kept is not None  # alice's answer, for the next joiner
        bob = await KitYClient(await room.connect(id="bob")).sync()
        await alice.edit(_append("changed"))
        await bob.until(lambda: str(bob.doc.get("text", type=Text)) == "changed")
        assert kept.kept is None
        await KitYClient(await room.connect(id="carol")).sync()
        assert kept.kept is not None
        room.clock.advance(1.9)
        assert kept.kept is not None
        room.clock.advance(0.2)
        assert kept.kept is None


async def test_a_crowd_leaving_is_removed_from_awareness_and_the_last_persists(
    yjoin, connect, http
):
    watcher = await yjoin("leave")
    crowd = [await yjoin("leave") for _ in range(3)]
    for i, client in enumerate(crowd):  # two client ids each
        await client.set_awareness(10 * i + 1, 1, {"n": i})
        await client.set_awareness(10 * i + 2, 1, {"n": i})
    old = await yjoin("leave", "?_pk=same")
    await old.set_awareness(99, 1, {"socket": "old"})
    new = await yjoin("leave", "?_pk=same")  # the same client, reconnected: takes 99 over
    await new.set_awareness(99, 2, {"socket": "new"})
    await watcher.until(lambda: len(watcher.states) == 7 and watcher.states[99]["socket"] == "new")
    await crowd[0].edit(_append("kept"))
    for client in [*crowd[1:], old]:
        client.ws.close()
    await watcher.until(lambda: set(watcher.states) == {1, 2, 99})  # announced to the others
    late = await yjoin("leave")
    assert set(late.states) == {1, 2, 99}  # and forgotten by the room
    await watcher.settled()
    assert any(key.startswith("y:u:") for key in await _stored(http, "parties/ydoc/leave"))
    new.ws.close()
    await watcher.until(lambda: set(watcher.states) == {1, 2})
    for client in (watcher, crowd[0], late):
        client.ws.close()

    async def compacted() -> bool:  # when the last one left
        return set(await _stored(http, "parties/ydoc/leave")) == {"y:snapshot.000", "y:epoch"}

    await eventually(compacted, message="the snapshot on last disconnect")
    kept = json.loads((await http("parties/ydoc/leave/bookkeeping")).body)
    assert kept["awareness"] == [] and kept["owners"] == []


async def test_awareness_frame_for_foreign_and_own_clients_is_filtered(yjoin):
    a, b = await yjoin("mixaw"), await yjoin("mixaw")
    await a.set_awareness(1, 1, {"a": 1})
    await b.until(lambda: 1 in b.states)
    both = [AwarenessEntry(1, 9, json.dumps({"stolen": True})), AwarenessEntry(2, 1, "{}")]
    await b.ws.send(awareness_frame(encode_awareness(both)))
    await a.until(lambda: 2 in a.states)
    assert a.states[1] == {"a": 1}


async def test_history_log_stays_within_its_bound(connect, http):
    client = await YClient(await connect("parties/yhistory/h1")).sync()
    for n in range(23):
        await client.edit(_append(str(n % 10)))
    await client.settled()
    stored = await _stored(http, "parties/yhistory/h1")  # once the last appends are durable
    log = [k for k in stored if k.startswith("y:u:")]
    assert len(log) <= 5  # compacted each time it passed 5 updates
    assert "y:snapshot.000" in stored
    rebuilt = Doc()
    rebuilt.apply_update(stored["y:snapshot.000"])
    for key in log:
        rebuilt.apply_update(stored[key])
    assert str(rebuilt.get("text", type=Text)) == client.text


@pytest.mark.party_config(room_idle_timeout=0.05)
async def test_on_load_and_debounced_on_save(connect, http, live_rooms):
    client = await YClient(await connect("parties/yhistory/h2")).sync()
    await client.edit(_append("a"))
    await client.edit(_append("b"))
    calls = []

    async def saved():
        calls[:] = json.loads((await http("parties/yhistory/h2")).body)["calls"]
        return "save:h2:ab" in calls

    await eventually(saved)
    assert calls[0] == "load:h2:"
    assert calls.count("save:h2:ab") == 1  # two quick edits, one debounced save
    client.ws.close()
    await eventually(lambda: live_rooms.gone("yhistory", "h2"), message="eviction")
    await YClient(await connect("parties/yhistory/h2")).sync()
    await eventually(saved)
    assert "load:h2:ab" in calls  # on_load runs after persisted state was applied


async def test_stale_epoch_is_told_to_reload(connect):
    first = await connect("parties/ydoc/epoch?epoch=")
    announcement = await first.recv()
    epoch = json.loads(announcement.removeprefix("__YPS:"))["epoch"]
    again = await connect(f"parties/ydoc/epoch?epoch={epoch}")
    assert (await again.recv()).startswith("__YPS:")
    stale = await connect("parties/ydoc/epoch?epoch=0123456789abcdef")
    assert await stale.closed() == (4409, "the document was recreated: reload it")


async def _stored(http, room_path: str) -> dict:
    """Everything the room stored (the test party's `/storage`), bytes decoded."""
    stored = json.loads((await http(f"{room_path}/storage")).body)
    return {
        key: base64.b64decode(value["base64"]) if isinstance(value, dict) else value
        for key, value in stored.items()
    }
