"""Server-to-client WebSocket frames (RFC 6455 §5.2), built once and shared by many sockets.

Tornado builds a frame per `write_message` call, so a broadcast to N sockets would frame the same
payload N times. Framing here lets a broadcast encode once and hand the same bytes to every
recipient's stream. Server frames are never masked, and we never negotiate compression, so a
frame is just a header plus the payload.
"""

from __future__ import annotations

import struct

TEXT = 0x1
BINARY = 0x2
_FIN = 0x80


def encode_frame(payload: bytes, opcode: int) -> bytes:
    """Return one final, unmasked frame carrying `payload` with `opcode` (TEXT or BINARY)."""
    first = _FIN | opcode
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, 126, n)
    else:
        header = struct.pack("!BBQ", first, 127, n)
    return header + payload


def close_reason(reason: str) -> str:
    """`reason` cut to fit a close frame: control frames carry at most 123 bytes of reason."""
    data = reason.encode("utf-8")
    return reason if len(data) <= 123 else data[:123].decode("utf-8", "ignore")
