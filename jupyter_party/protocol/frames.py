"""WebSocket frames (RFC 6455 §5): server frames built once and shared by many sockets, and
`Reader`, the parser of a client's frames, sans I/O (bytes in, messages out).

Tornado builds a frame per `write_message` call, so a broadcast to N sockets would frame the same
payload N times. Framing here lets a broadcast encode once and hand the same bytes to every
recipient's stream. Server frames are never masked, and we never negotiate compression, so a
frame is just a header plus the payload.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from .codes import CloseCode

CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA
_FIN = 0x80

#: The close code of a frame breaking RFC 6455 (never sent by a room: not in CloseCode).
PROTOCOL_ERROR = 1002
#: Codes a peer may not send in a close frame (RFC 6455 §7.4.1): reserved, or only reported.
_UNSENDABLE = frozenset({1004, 1005, 1006, 1015})


def encode_frame(payload: bytes, opcode: int) -> bytes:
    """Return one final, unmasked frame carrying `payload` with `opcode`."""
    first = _FIN | opcode
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, 126, n)
    else:
        header = struct.pack("!BBQ", first, 127, n)
    return header + payload


def encode_close(code: int, reason: str) -> bytes:
    """A close frame with `code` and `reason` (cut to fit, see `close_reason`)."""
    return encode_frame(struct.pack("!H", code) + close_reason(reason).encode("utf-8"), CLOSE)


def close_reason(reason: str) -> str:
    """`reason` cut to fit a close frame: control frames carry at most 123 bytes of reason."""
    data = reason.encode("utf-8")
    return reason if len(data) <= 123 else data[:123].decode("utf-8", "ignore")


def unmask(key: bytes, data: bytes) -> bytes:
    """XOR `data` with the 4-byte masking `key`, as one big-integer operation."""
    n = len(data)
    mask = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(mask, "little")).to_bytes(n, "little")


class FrameError(Exception):
    """The client broke the protocol: the socket must close with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class Reader:
    """The parser of one client's frames: `feed` it bytes, then take what `next` returns.

    `next` returns one event at a time, or None until more bytes come: `(TEXT, str)`,
    `(BINARY, bytes)`, `(PING, bytes)`, `(PONG, bytes)` or `(CLOSE, (code, reason))`, a code of
    1005 when the frame has none. One event at a time, so a caller that must stop reading
    (flow control) leaves the rest in the buffer. Fragmented messages are reassembled (control
    frames may come between fragments); a message over `max_size` bytes, a frame breaking
    RFC 6455 (unmasked, reserved bits or opcode, oversized or fragmented control frame) or a
    text that is not UTF-8 raises `FrameError` with its close code.
    """

    __slots__ = ("_buffer", "_opcode", "_parts", "_pos", "_size", "_unmask", "max_size")

    def __init__(self, max_size: int, unmask: Callable[[bytes, bytes], bytes] = unmask) -> None:
        self.max_size = max_size
        self._unmask = unmask  # Tornado's C version, where the web layer has it
        self._buffer = bytearray()
        self._pos = 0  # where the next frame starts in _buffer
        self._opcode = 0  # of the fragmented message in progress, if any
        self._parts: list[bytes] | None = None  # its fragments so far
        self._size = 0  # their total size

    def feed(self, data: bytes | bytearray) -> None:
        """Append bytes received from the client."""
        buffer = self._buffer
        if self._pos:  # drop what was parsed; a rare copy, only with a partial frame left
            del buffer[: self._pos]
            self._pos = 0
        buffer += data

    def next(self) -> tuple[int, object] | None:
        """The next event, or None until more bytes come. Raises FrameError."""
        while True:
            buffer, pos = self._buffer, self._pos
            available = len(buffer) - pos
            if available < 2:
                return None
            first, second = buffer[pos], buffer[pos + 1]
            if first & 0x70:
                raise FrameError(PROTOCOL_ERROR, "reserved bits set")
            if not second & 0x80:
                raise FrameError(PROTOCOL_ERROR, "client frames must be masked")
            opcode, length, start = first & 0x0F, second & 0x7F, pos + 6
            if length == 126:
                if available < 4:
                    return None
                (length,) = struct.unpack_from("!H", buffer, pos + 2)
                start += 2
            elif length == 127:
                if available < 10:
                    return None
                (length,) = struct.unpack_from("!Q", buffer, pos + 2)
                start += 8
            if opcode >= CLOSE:
                if opcode > PONG:
                    raise FrameError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
                if not first & _FIN or length > 125:
                    raise FrameError(PROTOCOL_ERROR, "fragmented or oversized control frame")
            elif opcode > BINARY:
                raise FrameError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
            elif (opcode == CONTINUATION) != (self._parts is not None):
                raise FrameError(PROTOCOL_ERROR, "unexpected continuation or data frame")
            elif self._size + length > self.max_size:  # before its bytes are buffered
                raise FrameError(CloseCode.TOO_BIG, "message too big")
            end = start + length
            if len(buffer) < end:
                return None
            payload = self._unmask(bytes(buffer[start - 4 : start]), bytes(buffer[start:end]))
            if end == len(buffer):
                buffer.clear()
                self._pos = 0
            else:
                self._pos = end
            if opcode >= CLOSE:
                return opcode, _close(payload) if opcode == CLOSE else payload
            if not first & _FIN:  # a fragment: keep it, the message is not complete
                if self._parts is None:
                    self._opcode, self._parts = opcode, []
                self._parts.append(payload)
                self._size += length
                continue
            if self._parts is not None:
                self._parts.append(payload)
                payload, opcode = b"".join(self._parts), self._opcode
                self._parts, self._size = None, 0
            if opcode == BINARY:
                return BINARY, payload
            try:
                return TEXT, payload.decode("utf-8")
            except UnicodeDecodeError:
                raise FrameError(CloseCode.INVALID_DATA, "text message is not UTF-8") from None


def _close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a client's close frame. Raises FrameError."""
    if not payload:
        return CloseCode.NO_STATUS, ""
    if len(payload) < 2:
        raise FrameError(PROTOCOL_ERROR, "close frame of one byte")
    (code,) = struct.unpack_from("!H", payload)
    if code < 1000 or code in _UNSENDABLE or 1016 <= code < 3000 or code >= 5000:
        raise FrameError(PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(CloseCode.INVALID_DATA, "close reason is not UTF-8") from None
