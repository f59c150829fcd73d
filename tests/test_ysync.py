"""The y-sync wire protocol, as pure functions on bytes."""

import json

import pytest
from pycrdt import Doc, Text, create_sync_message, create_update_message

from jupyter_party.protocol.ysync import (
    BATCH_PREFIX,
    STEP1,
    UPDATE,
    AwarenessEntry,
    AwarenessMessage,
    BatchAssembler,
    FrameError,
    QueryAwareness,
    SyncMessage,
    check_state_vector,
    check_update,
    decode_awareness,
    encode_awareness,
    parse_frame,
    read_var_uint,
    sync_frame,
    write_var_uint,
)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**32, 2**53 - 1])
def test_var_uint_round_trip(n):
    data = write_var_uint(n)
    assert read_var_uint(data, 0) == (n, len(data))


def test_var_uint_matches_lib0():
    assert write_var_uint(300) == bytes([172, 2])


def test_frames_match_pycrdt():
    doc = Doc()
    doc.get("t", type=Text).__iadd__("hi")
    assert sync_frame(STEP1, doc.get_state()) == create_sync_message(doc)
    update = doc.get_update()
    assert sync_frame(UPDATE, update) == create_update_message(update)
    assert parse_frame(create_update_message(update)) == SyncMessage(UPDATE, update)


def test_parse_other_frames():
    assert parse_frame(b"\x01\x01\x00") == AwarenessMessage(b"\x00")
    assert parse_frame(b"\x03") == QueryAwareness()
    assert parse_frame(b"\x02\x00\x00") is None  # AUTH: a server ignores it


@pytest.mark.parametrize(
    "frame",
    [b"", b"\x00", b"\x00\x09\x00", b"\x00\x02\x05ab", b"\x00\x02" + b"\xff" * 9, b"\x01\x85"],
)
def test_parse_refuses_malformed(frame):
    with pytest.raises(FrameError):
        parse_frame(frame)


def test_awareness_round_trip():
    entries = [AwarenessEntry(1, 2, '{"a":1}'), AwarenessEntry(2**40, 0, "null")]
    assert decode_awareness(encode_awareness(entries)) == entries
    assert entries[1].removed


@pytest.mark.parametrize(
    "update",
    [b"\x05", b"\x01\x01\x01\x03abc", b"\x01\x01\x01\x01{}extra", b"\xff\xff\xff\x7f"],
)
def test_awareness_refuses_malformed(update):
    with pytest.raises(FrameError):
        decode_awareness(update)


def _marker(kind, size, count, id="x"):
    return BATCH_PREFIX + json.dumps({"id": id, "type": kind, "size": size, "count": count})


def test_batch_reassembly():
    batch = BatchAssembler(max_size=100)
    assert batch.feed_text(_marker("start", 5, 2)) is None
    assert batch.active
    batch.feed_binary(b"abc")
    batch.feed_binary(b"de")
    assert batch.feed_text(_marker("end", 5, 2)) == b"abcde"
    assert not batch.active


@pytest.mark.parametrize(
    ("steps", "error"),
    [
        ([("start", 500, 1)], "exceeds"),
        ([("start", 5, 2), ("end", 5, 2)], "received 0 chunks"),
        ([("start", 5, 1), b"abcdef"], "exceed"),
        ([("end", 5, 1)], "without a matching start"),
        ([("start", 5, 1), ("start", 5, 1)], "before the previous"),
        ([("start", 2, 9)], "does not fit"),
    ],
)
def test_batch_refuses_inconsistent_markers(steps, error):
    batch = BatchAssembler(max_size=100)
    with pytest.raises(FrameError, match=error):
        for step in steps:
            if isinstance(step, bytes):
                batch.feed_binary(step)
            else:
                batch.feed_text(_marker(*step))


def test_batch_marker_must_be_well_formed():
    with pytest.raises(FrameError):
        BatchAssembler(10).feed_text(BATCH_PREFIX + "{not json")
    with pytest.raises(FrameError):
        BatchAssembler(10).feed_text(BATCH_PREFIX + json.dumps({"type": "start"}))


def test_counts_that_cannot_fit_are_refused():
    doc = Doc()
    doc.get("t", type=Text).__iadd__("hi")
    check_state_vector(doc.get_state())  # real ones pass
    check_update(doc.get_update())
    check_update(b"\x00\x00")
    with pytest.raises(FrameError, match="claims"):
        check_state_vector(write_var_uint(2**28) + b"\x01\x01")  # yrs would reserve ~0.5 GB
    with pytest.raises(FrameError, match="claims"):
        check_update(write_var_uint(2**40) + b"\x00")
