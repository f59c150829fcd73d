"""The party-worker wire protocol: framing of the messages between a server and its workers.

Pure: bytes in, messages out, and back; no sockets, no event loop. The channel (a Unix socket
pair today; any byte stream will do) is the caller's business.

Every frame is

    u32 length of the rest | u8 kind | u32 header length | header (JSON) | payload (raw bytes)

The header is a small JSON array whose fields depend on the kind (see docs/architecture.md),
except for the kinds sent once per message or per socket (MESSAGE, SEND, ACK, BROADCAST,
JOINED, ADMITTED, CLOSED, CLOSE), whose fields are packed in binary; the payload carries
message data and HTTP bodies untouched, never re-encoded. One SEND carries a message to one
socket or to several (the same message sent to each of them).
Both ends send `HELLO [version, ...]` first; a peer speaking another version is refused.
"""

from __future__ import annotations

import json
import struct
from typing import Any, NamedTuple, cast

VERSION = 3  # 2: OPEN carries the gate's question, OPENED its answer; SEND names 1+ sockets
# 3: BROADCAST, JOINED, CLOSED and CLOSE packed; ADMITTED
MAX_FRAME = 1 << 30  # a frame claiming more is a broken peer, never a real message

# Kinds. "client side" is the server process (or a worker calling another room through it);
# "room side" is the worker that owns the room.
HELLO = 1  # [version, pid] first frame each way; the server's also carries the config
OPEN = 2  # client side: [conn, party, room, id, request, share_id, who]  a socket wants in
# (who: null, or whom the party's gate judges first: "owner", "guest", "anonymous")
OPENED = 3  # room side: [conn, code, reason, answer]  code 0: admitted (on_connect done), else
# refused; answer (to a gated OPEN): {"party": limits}, or {"response": fields}, payload: its body
JOINED = 4  # room side: [conn, room]  the socket counts as a member of room handle `room`
MESSAGE = 5  # client side: [conn, text]  payload: the message
CLOSED = 6  # client side: [conn, code, reason]  the socket closed
SEND = 7  # room side: [conn, ..., text]  payload: one message for each of these sockets
BROADCAST = 8  # room side: [room, text, without]  payload: one message for every member
CLOSE = 9  # room side: [conn, code, reason]  close that socket
ACK = 10  # room side: [conn, cost]  inbound messages handed to the room (flow control)
CALL = 11  # either side: [call, op, args]  payload: a body, if any
REPLY = 12  # either side: [call, error, result]  error is None or a message
LOG = 13  # room side: [party, room, kind, text]  a party's output (print, log, error)
RECORD = 14  # room side: [logger, level, message, traceback]  a log record made in the worker
STATS = 15  # room side: [rooms, commit_seconds]  live rooms, and storage commit times since
ADMITTED = 16  # room side: [conn]  an OPENED with code 0 and nothing to answer (the common one)

_HEAD = struct.Struct("<IBI")
# Headers of the kinds sent once per message or per socket: packed, not JSON (the hot paths).
# After its packed fields, a header may have a tail, its last field: UTF-8 text ("text"), or
# a JSON list, nothing for an empty one ("list").
_PACKED: dict[int, tuple[struct.Struct, str | None]] = {
    MESSAGE: (struct.Struct("<I?"), None),  # conn, text
    ACK: (struct.Struct("<IQ"), None),  # conn, cost
    JOINED: (struct.Struct("<II"), None),  # conn, room
    ADMITTED: (struct.Struct("<I"), None),  # conn
    CLOSED: (struct.Struct("<IH"), "text"),  # conn, code; reason
    CLOSE: (struct.Struct("<IH"), "text"),  # conn, code; reason
    BROADCAST: (struct.Struct("<I?"), "list"),  # room, text; without
}
_SEND_ONE = struct.Struct("<I?")  # SEND: u32 per socket, then text
#: The other headers are JSON (UTF-8): an encoder and a decoder made once (`json.dumps` with
#: arguments makes one per call; `json.loads` of bytes first guesses their encoding).
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_JSON_DECODE = json.JSONDecoder().decode


def _send_header(sockets: int) -> struct.Struct:
    """The packed header of a SEND to `sockets` sockets."""
    return _SEND_ONE if sockets == 1 else struct.Struct(f"<{sockets}I?")


class Frame(NamedTuple):
    kind: int
    header: list[Any]
    payload: bytes


def encode(kind: int, header: list[Any], payload: bytes = b"") -> bytes:
    """One frame."""
    if kind == SEND:
        head = _send_header(len(header) - 1).pack(*header)
    elif kind in _PACKED:
        packer, tail = _PACKED[kind]
        if tail is None:
            head = packer.pack(*header)
        else:
            *fields, last = header
            head = packer.pack(*fields) + _encode_tail(tail, last)
    else:
        head = _JSON.encode(header).encode()
    return _HEAD.pack(5 + len(head) + len(payload), kind, len(head)) + head + payload


def _encode_tail(tail: str, value: Any) -> bytes:
    if tail == "text":
        return cast(str, value).encode()
    return _JSON.encode(value).encode() if value else b""


def _decode_tail(tail: str, data: bytearray) -> Any:
    if tail == "text":
        return data.decode()
    return _JSON_DECODE(data.decode()) if data else []


class ProtocolError(Exception):
    """The peer sent bytes that are not frames of this protocol."""


class Decoder:
    """Bytes in, frames out: `feed(data)` returns every frame completed by `data`."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        buffer = self._buffer
        buffer += data
        frames = []
        offset = 0
        while len(buffer) - offset >= 4:
            (length,) = struct.unpack_from("<I", buffer, offset)
            if length < 5 or length > MAX_FRAME:
                raise ProtocolError(f"bad frame length {length}")
            end = offset + 4 + length
            if len(buffer) < end:
                break
            _, kind, head = _HEAD.unpack_from(buffer, offset)
            start = offset + 9
            if start + head > end:
                raise ProtocolError("header longer than its frame")
            packer, tail = _PACKED.get(kind, (None, None))
            if kind == SEND:
                sockets, odd = divmod(head - 1, 4)
                if odd or sockets < 1:
                    raise ProtocolError(f"a SEND header of {head} bytes")
                packer = _send_header(sockets)
            try:
                if packer is None:
                    header = _JSON_DECODE(buffer[start : start + head].decode())
                else:
                    size = packer.size
                    if head < size or (head > size and tail is None):
                        raise ProtocolError(f"a kind {kind} header of {head} bytes")
                    header = list(packer.unpack_from(buffer, start))
                    if tail is not None:
                        header.append(_decode_tail(tail, buffer[start + size : start + head]))
            except (ValueError, struct.error) as error:
                raise ProtocolError(f"bad header: {error}") from None
            offset = end
            frames.append(Frame(kind, header, bytes(buffer[start + head : end])))
        del buffer[:offset]
        return frames


def check_hello(frame: Frame) -> list[Any]:
    """The peer's HELLO header; raises ProtocolError for anything else or another version."""
    if frame.kind != HELLO or not frame.header or frame.header[0] != VERSION:
        raise ProtocolError(f"expected HELLO version {VERSION}, got {frame.kind} {frame.header}")
    return frame.header
