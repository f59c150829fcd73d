"""The client-frame parser (protocol/frames.py `Reader`), bytes in, events out: every close
code it can ask for, fragmentation, control frames between fragments, and split input."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_party.protocol.frames import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    FrameError,
    Reader,
    encode_close,
    unmask,
)


def frame(
    payload: bytes, opcode: int = TEXT, fin: bool = True, masked: bool = True, rsv: int = 0
) -> bytes:
    """A client frame (masked unless told otherwise)."""
    n = len(payload)
    first = (0x80 if fin else 0) | rsv | opcode
    bit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", first, bit | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, bit | 127, n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def events(data: bytes, max_size: int = 1 << 20) -> list[tuple[int, object]]:
    reader = Reader(max_size)
    reader.feed(data)
    found = []
    while (event := reader.next()) is not None:
        found.append(event)
    return found


def refusal(data: bytes, max_size: int = 1 << 20) -> int:
    with pytest.raises(FrameError) as error:
        events(data, max_size)
    return error.value.code


def test_messages_of_every_length():
    for size in (0, 125, 126, 65535, 65536):
        assert events(frame(b"x" * size, BINARY)) == [(BINARY, b"x" * size)]
    assert events(frame("héllo".encode())) == [(TEXT, "héllo")]


def test_unmasked_reserved_bits_and_unknown_opcodes_are_protocol_errors():
    assert refusal(frame(b"hi", masked=False)) == 1002
    assert refusal(frame(b"hi", rsv=0x40)) == 1002  # compression was never negotiated
    assert refusal(frame(b"hi", opcode=0x3)) == 1002
    assert refusal(frame(b"", opcode=0xB)) == 1002


def test_control_frames_are_short_and_whole():
    assert refusal(frame(b"x" * 126, PING)) == 1002
    assert refusal(frame(b"", PING, fin=False)) == 1002


def test_continuation_needs_a_message_and_a_message_needs_its_end():
    assert refusal(frame(b"x", CONTINUATION)) == 1002
    assert refusal(frame(b"x", TEXT, fin=False) + frame(b"y", TEXT)) == 1002


def test_text_must_be_utf8():
    assert refusal(frame(b"\xff")) == 1007


def test_too_big_is_refused_before_its_bytes_arrive():
    reader = Reader(100)
    reader.feed(frame(b"x" * 101, BINARY)[:4])  # the header alone says it is too big
    with pytest.raises(FrameError) as error:
        reader.next()
    assert error.value.code == 1009
    # The limit is on the whole message, not on each fragment.
    two = frame(b"x" * 60, BINARY, fin=False) + frame(b"x" * 60, CONTINUATION)
    assert refusal(two, 100) == 1009
    assert events(two, 120) == [(BINARY, b"x" * 120)]


def test_fragmented_text_split_inside_a_character():
    data = "é€".encode()  # 2 + 3 bytes, cut inside the euro sign
    message = frame(data[:3], TEXT, fin=False) + frame(data[3:], CONTINUATION)
    assert events(message) == [(TEXT, "é€")]


def test_ping_between_fragments_comes_first():
    message = (
        frame(b"ab", BINARY, fin=False)
        + frame(b"?", PING)
        + frame(b"cd", CONTINUATION, fin=False)
        + frame(b"!", PONG)
        + frame(b"ef", CONTINUATION)
    )
    assert events(message) == [(PING, b"?"), (PONG, b"!"), (BINARY, b"abcdef")]


def test_close_frames():
    assert events(frame(struct.pack("!H", 4000) + "à bientôt".encode(), CLOSE)) == [
        (CLOSE, (4000, "à bientôt"))
    ]
    assert events(frame(b"", CLOSE)) == [(CLOSE, (1005, ""))]
    assert refusal(frame(b"\x03", CLOSE)) == 1002  # one byte: half a code
    assert refusal(frame(struct.pack("!H", 1005), CLOSE)) == 1002  # reported, never sent
    assert refusal(frame(struct.pack("!H", 999), CLOSE)) == 1002
    assert refusal(frame(struct.pack("!H", 1000) + b"\xff", CLOSE)) == 1007


def test_encode_close_cuts_the_reason():
    data = encode_close(1000, "é" * 100)
    assert data[0] == 0x88 and data[1] == 2 + 122 and struct.unpack("!H", data[2:4]) == (1000,)


def test_one_event_at_a_time_leaves_the_rest_buffered():
    """What flow control relies on: a caller that stops after one message finds the next
    one later, even after more bytes came."""
    reader = Reader(1 << 20)
    reader.feed(frame(b"one") + frame(b"two"))
    assert reader.next() == (TEXT, "one")
    reader.feed(frame(b"three"))
    assert [reader.next(), reader.next(), reader.next()] == [(TEXT, "two"), (TEXT, "three"), None]


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=5), st.integers(1, 50))
def test_any_split_of_the_bytes_gives_the_same_messages(payloads, step):
    data = b"".join(frame(p, BINARY) for p in payloads)
    reader = Reader(1 << 20)
    found = []
    for i in range(0, len(data), step):
        reader.feed(data[i : i + step])
        while (event := reader.next()) is not None:
            found.append(event)
    assert found == [(BINARY, p) for p in payloads]


def test_unmask_agrees_with_the_definition():
    key = b"\x01\x02\x03\x04"
    for size in (0, 1, 3, 4, 5, 1000):
        data = os.urandom(size)
        assert unmask(key, data) == bytes(b ^ key[i % 4] for i, b in enumerate(data))
