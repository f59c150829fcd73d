"""Pure protocol code, tested with strings and bytes alone."""

import struct

import pytest

from jupyter_party.protocol.frames import BINARY, TEXT, close_reason, encode_frame
from jupyter_party.protocol.names import InvalidName, RoomPath, check_room_id, split_room_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("parties/chat/r1", RoomPath("chat", "r1", "")),
        ("/parties/chat/r1/", RoomPath("chat", "r1", "")),
        ("parties/chat/r1/a/b", RoomPath("chat", "r1", "/a/b")),
        ("party/lobby", RoomPath("main", "lobby", "")),
        ("party/lobby/x", RoomPath("main", "lobby", "/x")),
        ("parties/chat/caf%C3%A9", RoomPath("chat", "caf%C3%A9", "")),
    ],
)
def test_split_room_path(path, expected):
    assert split_room_path(path) == expected


@pytest.mark.parametrize(
    "path",
    ["parties/Chat/r", "parties/chat", "parties/chat/", "parties//r", "api/kernels", "party/"],
)
def test_split_room_path_refuses(path):
    with pytest.raises(InvalidName):
        split_room_path(path)


@pytest.mark.parametrize(
    ("room", "rule"),
    [
        ("", "empty"),
        ("x" * 257, "longer than 256"),
        ("a\x00b", "control"),
        ("%00", "control"),
        ("%7F", "control"),
        ("..", "'..'"),
        ("%2e%2E", "'..'"),
        ("%ff", "not UTF-8"),
    ],
)
def test_room_id_rules(room, rule):
    with pytest.raises(InvalidName, match=rule):
        check_room_id(room)


def test_room_id_accepts_unicode_and_escapes():
    assert check_room_id("é" * 128) == "é" * 128  # 256 UTF-8 bytes
    assert check_room_id("a%20b") == "a%20b"


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_encode_frame_lengths(size):
    payload = b"x" * size
    frame = encode_frame(payload, BINARY)
    assert frame[0] == 0x82
    if size < 126:
        assert frame[1] == size and frame[2:] == payload
    elif size < 65536:
        assert frame[1] == 126 and struct.unpack("!H", frame[2:4])[0] == size
        assert frame[4:] == payload
    else:
        assert frame[1] == 127 and struct.unpack("!Q", frame[2:10])[0] == size
        assert frame[10:] == payload


def test_text_frame_opcode():
    assert encode_frame(b"hi", TEXT) == b"\x81\x02hi"


def test_close_reason_fits_a_control_frame():
    assert close_reason("short") == "short"
    cut = close_reason("é" * 100)  # 200 bytes; must not split a character
    assert len(cut.encode()) <= 123
    assert cut == "é" * 61
