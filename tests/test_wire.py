"""The worker wire protocol, bytes only: framing, partial reads, hostile input, versions."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_party.protocol import wire


def test_frames_round_trip_in_one_feed():
    data = wire.encode(wire.OPEN, [7, "chat", "lobby", "me", {"url": "/x"}, None])
    data += wire.encode(wire.MESSAGE, [7, False], b"\x00\xffbytes")
    frames = wire.Decoder().feed(data)
    assert frames == [
        wire.Frame(wire.OPEN, [7, "chat", "lobby", "me", {"url": "/x"}, None], b""),
        wire.Frame(wire.MESSAGE, [7, False], b"\x00\xffbytes"),
    ]


@given(st.lists(st.binary(max_size=300), max_size=8), st.integers(1, 50))
def test_any_split_of_the_stream_gives_the_same_frames(payloads, chunk):
    stream = b"".join(wire.encode(wire.SEND, [i, False], p) for i, p in enumerate(payloads))
    decoder = wire.Decoder()
    frames = []
    for at in range(0, len(stream), chunk):
        frames += decoder.feed(stream[at : at + chunk])
    assert [(f.header[0], f.payload) for f in frames] == list(enumerate(payloads))


def test_the_per_message_kinds_have_packed_headers():
    data = wire.encode(wire.MESSAGE, [2**32 - 1, True], "ü".encode())
    data += wire.encode(wire.SEND, [1, False], b"\x00")
    data += wire.encode(wire.ACK, [7, 2**40])
    assert len(wire.encode(wire.ACK, [7, 1])) == 9 + 12  # no JSON on the hot path
    frames = wire.Decoder().feed(data)
    assert [(f.kind, f.header, f.payload) for f in frames] == [
        (wire.MESSAGE, [2**32 - 1, True], "ü".encode()),
        (wire.SEND, [1, False], b"\x00"),
        (wire.ACK, [7, 2**40], b""),
    ]


def test_the_per_socket_kinds_have_packed_headers_with_a_tail():
    """JOINED, ADMITTED, CLOSED, CLOSE and BROADCAST pack their fields; a close's reason and a
    broadcast's `without` follow as the header's tail (nothing for no reason, no one left out)."""
    headers = [
        (wire.JOINED, [2**32 - 1, 5]),
        (wire.ADMITTED, [7]),
        (wire.CLOSED, [7, 4000, "bye ü \n"]),
        (wire.CLOSE, [7, 1000, ""]),
        (wire.BROADCAST, [5, True, []]),
        (wire.BROADCAST, [5, False, ["a", "b ü"]]),
    ]
    data = b"".join(wire.encode(kind, header, b"x") for kind, header in headers)
    frames = wire.Decoder().feed(data)
    assert [(f.kind, f.header, f.payload) for f in frames] == [
        (kind, header, b"x") for kind, header in headers
    ]
    assert len(wire.encode(wire.CLOSE, [7, 1000, ""])) == 9 + 6  # no JSON
    assert len(wire.encode(wire.BROADCAST, [5, True, []])) == 9 + 5


@pytest.mark.parametrize(
    "kind, head",
    [
        (wire.JOINED, b"\x01\x00\x00\x00"),  # short of its packed fields
        (wire.JOINED, b"\x01\x00\x00\x00\x02\x00\x00\x00x"),  # a tail where none is
        (wire.CLOSED, b"\x01\x00\x00\x00\xe8\x03\xff"),  # a reason that is not UTF-8
        (wire.BROADCAST, b"\x01\x00\x00\x00\x01[x"),  # a `without` that is not JSON
    ],
    ids=["short", "extra", "bad-text", "bad-list"],
)
def test_broken_packed_headers_are_refused(kind, head):
    with pytest.raises(wire.ProtocolError):
        wire.Decoder().feed(struct.pack("<IBI", 5 + len(head), kind, len(head)) + head)


def test_text_and_unicode_headers_survive():
    (frame,) = wire.Decoder().feed(wire.encode(wire.LOG, ["p", "r\u00e9", "print", "ü \n x"]))
    assert frame.header == ["p", "r\u00e9", "print", "ü \n x"]


@pytest.mark.parametrize(
    "data",
    [
        struct.pack("<I", 2) + b"xx",  # shorter than kind + header length
        struct.pack("<I", wire.MAX_FRAME + 1),  # claims more than any real frame
        struct.pack("<IBI", 7, wire.SEND, 99) + b"[]",  # header longer than the frame
        struct.pack("<IBI", 7, wire.SEND, 2) + b"{x",  # header that is not JSON
    ],
    ids=["short", "huge", "header-overrun", "bad-json"],
)
def test_broken_frames_are_refused(data):
    with pytest.raises(wire.ProtocolError):
        wire.Decoder().feed(data)


def test_hello_must_speak_our_version():
    good = wire.Frame(wire.HELLO, [wire.VERSION, 123], b"")
    assert wire.check_hello(good) == [wire.VERSION, 123]
    for frame in (
        wire.Frame(wire.HELLO, [wire.VERSION + 1, 123], b""),
        wire.Frame(wire.OPEN, [wire.VERSION], b""),
    ):
        with pytest.raises(wire.ProtocolError):
            wire.check_hello(frame)


def test_a_send_names_one_socket_or_several():
    one = wire.encode(wire.SEND, [7, True], b"hi")
    assert len(one) == 9 + 5 + 2  # one socket: u32 conn, u8 text, as before
    many = wire.encode(wire.SEND, [1, 2**32 - 1, 3, False], b"\x00")
    assert len(many) == 9 + 13 + 1
    frames = wire.Decoder().feed(one + many)
    assert [(f.kind, f.header, f.payload) for f in frames] == [
        (wire.SEND, [7, True], b"hi"),
        (wire.SEND, [1, 2**32 - 1, 3, False], b"\x00"),
    ]
    for head in (b"\x01", b"\x01\x00\x00\x00\x00\x00"):  # no socket; a partial one
        with pytest.raises(wire.ProtocolError):
            wire.Decoder().feed(struct.pack("<IBI", 5 + len(head), wire.SEND, len(head)) + head)


def test_a_request_crosses_with_its_user():
    """A request crosses the worker boundary with its headers (not the credentials) and the
    fields of Jupyter's `User`; a custom identity provider's `User` subclass crosses as the
    `User` it is (its own fields would not fit `User(**fields)` on the other side)."""
    import json
    from dataclasses import dataclass

    from jupyter_server.auth import User
    from tornado.httputil import HTTPHeaders

    from jupyter_party.runtime.http import Request, request_from_wire, request_to_wire

    @dataclass
    class TeamUser(User):
        team: str = "blue"

    headers = HTTPHeaders({"X-Seen": "yes", "Authorization": "token secret"})
    headers.add("x-many", "1")  # a repeated header, in any case, keeps every value
    headers.add("X-Many", "2")
    user = TeamUser("ada", "Ada", "Ada L.", "AL", None, "red")
    request = Request(url="/parties/p/r?a=1", query={"a": "1"}, headers=headers, user=user)
    fields = json.loads(json.dumps(request_to_wire(request)))  # as the channel carries it
    back = request_from_wire(fields, b"body")
    assert back.user == User("ada", "Ada", "Ada L.", "AL", None, "red")
    assert (back.url, back.query, back.body) == ("/parties/p/r?a=1", {"a": "1"}, b"body")
    assert back.headers["X-Seen"] == "yes" and "Authorization" not in back.headers
    assert back.headers.get_list("X-Many") == ["1", "2"] and back.headers["x-many"] == "1,2"
