"""The sans-I/O y-sync session, driven with bytes alone: no socket, no event loop."""

from __future__ import annotations

import json

import pytest
from pycrdt import Doc, Text

from jupyter_party.protocol.ysession import (
    Answers,
    AwarenessQuery,
    AwarenessUpdate,
    CustomMessage,
    TextMessage,
    Update,
    YSyncSession,
)
from jupyter_party.protocol.ysync import (
    BATCH_PREFIX,
    CUSTOM_PREFIX,
    QUERY_AWARENESS,
    STEP1,
    STEP2,
    UPDATE,
    FrameError,
    awareness_frame,
    sync_frame,
    write_var_uint,
)


def doc_with(text: str) -> Doc:
    doc = Doc()
    doc["text"] = Text(text)
    return doc


def exchange(a: YSyncSession, b: YSyncSession, docs: dict[int, Doc]) -> None:
    """Carry frames between the two sessions until both are quiet, applying updates."""
    moved = True
    while moved:
        moved = False
        for sender, receiver in ((a, b), (b, a)):
            for frame in sender.data_to_send():
                moved = True
                for event in receiver.receive(frame):
                    assert isinstance(event, Update)
                    docs[id(receiver)].apply_update(event.payload)


def test_two_sessions_converge_both_ways():
    left, right = doc_with("left "), doc_with("right")
    a, b = YSyncSession(left), YSyncSession(right)
    a.start()
    b.start()
    exchange(a, b, {id(a): left, id(b): right})
    assert str(left["text"]) == str(right["text"])
    assert a.handshaken and a.synced and b.handshaken and b.synced


def test_step1_is_answered_with_what_the_peer_lacks():
    doc = doc_with("hello")
    session = YSyncSession(doc)
    assert session.receive(sync_frame(STEP1, Doc().get_state())) == []
    [answer] = session.data_to_send()
    assert answer == sync_frame(STEP2, doc.get_update(Doc().get_state()))
    assert session.handshaken and not session.synced
    assert session.data_to_send() == []


def test_shared_answers_encode_once_per_version_of_the_document():
    doc = doc_with("hello")
    answers = Answers(doc)
    a, b = YSyncSession(doc, answers=answers), YSyncSession(doc, answers=answers)
    empty = sync_frame(STEP1, Doc().get_state())
    a.receive(empty)
    b.receive(empty)
    [first], [second] = a.data_to_send(), b.data_to_send()
    assert first is second is answers.kept  # the same bytes: one encoding, sent once to both
    assert first == sync_frame(STEP2, doc.get_update())
    other = sync_frame(STEP1, doc.get_state())  # another state vector: answered for itself
    b.receive(other)
    [up_to_date] = b.data_to_send()
    assert up_to_date == sync_frame(STEP2, doc.get_update(doc.get_state()))
    assert answers.kept is up_to_date  # one answer kept at most
    doc["text"] += " world"
    answers.clear()  # what the document's observer does
    assert answers.kept is None
    a.receive(empty)
    [fresh] = a.data_to_send()
    assert fresh == sync_frame(STEP2, doc.get_update()) != first


def test_updates_are_events_and_step2_means_synced():
    session = YSyncSession(Doc())
    update = doc_with("x").get_update()
    assert session.receive(sync_frame(UPDATE, update)) == [Update(UPDATE, update)]
    assert not session.synced
    assert session.receive(sync_frame(STEP2, update)) == [Update(STEP2, update)]
    assert session.synced


def test_a_refused_step1_is_dropped_unread():
    session = YSyncSession(Doc(), may_answer=lambda: False)
    assert session.receive(sync_frame(STEP1, b"\xff\xff")) == []  # not even validated
    assert session.data_to_send() == []


def test_a_malformed_state_vector_raises():
    with pytest.raises(FrameError):
        YSyncSession(Doc()).receive(sync_frame(STEP1, b"\x05\x01"))


def test_awareness_custom_and_text_messages():
    session = YSyncSession(Doc())
    frame = awareness_frame(b"\x00")
    assert session.receive(frame) == [AwarenessUpdate(b"\x00", frame)]
    assert session.receive(write_var_uint(QUERY_AWARENESS)) == [AwarenessQuery()]
    assert session.receive(CUSTOM_PREFIX + "hi") == [CustomMessage("hi")]
    assert session.receive("plain") == [TextMessage("plain")]


def test_batches_are_reassembled_only_where_allowed():
    update = doc_with("batched").get_update()
    whole = sync_frame(UPDATE, update)
    half = len(whole) // 2

    def marker(kind: str) -> str:
        body = {"id": "b", "type": kind, "size": len(whole), "count": 2}
        return BATCH_PREFIX + json.dumps(body)

    server = YSyncSession(Doc(), max_batch=1 << 20)
    assert server.receive(marker("start")) == []
    assert server.receive(whole[:half]) == []
    assert server.receive(whole[half:]) == []
    assert server.receive(marker("end")) == [Update(UPDATE, update)]
    client = YSyncSession(Doc())  # no batching: a marker is just text
    assert client.receive(marker("start")) == [TextMessage(marker("start"))]
    with pytest.raises(FrameError):
        YSyncSession(Doc(), max_batch=10).receive(marker("start"))
