"""The y-websocket / y-partykit wire protocol, as pure functions on bytes.

Frames are `[message type] body`; integers are lib0 varuints (7 bits a byte, low group first)
and byte strings are varuint-length-prefixed. Every read is bounds-checked: a malformed or
hostile frame raises FrameError and never allocates more than the frame itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SYNC, AWARENESS, AUTH, QUERY_AWARENESS = 0, 1, 2, 3
STEP1, STEP2, UPDATE = 0, 1, 2

CUSTOM_PREFIX = "__YPS:"  # y-partyserver's custom text messages
BATCH_PREFIX = "y-pk-batch#"  # y-partykit's chunking markers for messages over 1 MB

_MAX_VARUINT_BYTES = 8  # 56 bits: Yjs client ids and clocks stay below 2**53


class FrameError(ValueError):
    """A malformed frame; the message says what is wrong with it."""


# -- primitives -------------------------------------------------------------------------------


def write_var_uint(n: int) -> bytes:
    """Encode a non-negative integer as a lib0 varuint."""
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def write_var_bytes(data: bytes) -> bytes:
    """Encode bytes with their varuint length in front."""
    return write_var_uint(len(data)) + data


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode a varuint at `pos`; return (value, position after it)."""
    value = shift = 0
    for i in range(pos, min(pos + _MAX_VARUINT_BYTES, len(data))):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    if len(data) - pos >= _MAX_VARUINT_BYTES:
        raise FrameError("varuint longer than 8 bytes")
    raise FrameError("truncated varuint")


def read_var_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    """Decode length-prefixed bytes at `pos`; the length must fit inside `data`."""
    length, pos = read_var_uint(data, pos)
    end = pos + length
    if end > len(data):
        raise FrameError(f"length prefix {length} runs past the end of the frame")
    return data[pos:end], end


# -- frames -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncMessage:
    """A SYNC frame: `step` is STEP1 (payload = state vector), STEP2 or UPDATE (an update)."""

    step: int
    payload: bytes


@dataclass(frozen=True)
class AwarenessMessage:
    """An AWARENESS frame: the raw awareness update (see decode_awareness)."""

    update: bytes


@dataclass(frozen=True)
class QueryAwareness:
    """A QUERY_AWARENESS frame: the peer asks for every known awareness state."""


def parse_frame(frame: bytes) -> SyncMessage | AwarenessMessage | QueryAwareness | None:
    """Parse one binary frame. Returns None for types a server ignores (AUTH, unknown)."""
    kind, pos = read_var_uint(frame, 0)
    if kind == SYNC:
        step, pos = read_var_uint(frame, pos)
        if step not in (STEP1, STEP2, UPDATE):
            raise FrameError(f"unknown sync step {step}")
        payload, pos = read_var_bytes(frame, pos)
        return SyncMessage(step, payload)
    if kind == AWARENESS:
        update, pos = read_var_bytes(frame, pos)
        return AwarenessMessage(update)
    if kind == QUERY_AWARENESS:
        return QueryAwareness()
    return None


def sync_frame(step: int, payload: bytes) -> bytes:
    """A SYNC frame carrying a state vector (STEP1) or an update (STEP2, UPDATE)."""
    return bytes((SYNC, step)) + write_var_bytes(payload)


def awareness_frame(update: bytes) -> bytes:
    """An AWARENESS frame carrying an encoded awareness update."""
    return bytes((AWARENESS,)) + write_var_bytes(update)


def check_state_vector(state_vector: bytes) -> None:
    """Refuse a state vector whose entry count cannot fit in its bytes: yrs would reserve
    memory for the count it claims before reading a single entry."""
    _check_count(state_vector, 2, "state vector")


def check_update(update: bytes) -> None:
    """Refuse an update whose leading client count cannot fit in its bytes (same hazard)."""
    _check_count(update, 2, "update")


def _check_count(data: bytes, min_entry: int, what: str) -> None:
    count, pos = read_var_uint(data, 0)
    if count * min_entry > len(data) - pos:
        raise FrameError(f"{what} claims {count} entries in {len(data)} bytes")


# -- awareness --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwarenessEntry:
    """One client's awareness state; `state` is JSON text, `"null"` when the client left."""

    client: int
    clock: int
    state: str

    @property
    def removed(self) -> bool:
        return self.state == "null"


def decode_awareness(update: bytes) -> list[AwarenessEntry]:
    """Decode an awareness update; raises FrameError unless every state is valid JSON."""
    count, pos = read_var_uint(update, 0)
    if count > len(update):  # each entry takes at least 3 bytes: a cheap bound on hostile counts
        raise FrameError(f"awareness update claims {count} entries")
    entries = []
    for _ in range(count):
        client, pos = read_var_uint(update, pos)
        clock, pos = read_var_uint(update, pos)
        raw, pos = read_var_bytes(update, pos)
        try:
            state = raw.decode("utf-8")
            json.loads(state)
        except (ValueError, RecursionError):
            raise FrameError(f"awareness state of client {client} is not JSON") from None
        entries.append(AwarenessEntry(client, clock, state))
    if pos != len(update):
        raise FrameError("trailing bytes after the awareness update")
    return entries


def encode_awareness(entries: list[AwarenessEntry]) -> bytes:
    """Encode entries as an awareness update."""
    parts = [write_var_uint(len(entries))]
    for entry in entries:
        parts += (
            write_var_uint(entry.client),
            write_var_uint(entry.clock),
            write_var_bytes(entry.state.encode("utf-8")),
        )
    return b"".join(parts)


# -- y-pk-batch chunking ----------------------------------------------------------------------


class BatchAssembler:
    """Reassembles y-partykit's chunked messages: a start marker, `count` binary chunks, an end.

    `feed_text` takes the markers, `feed_binary` the frames in between; the latter returns the
    whole message once the end marker has validated it (id, count and size must match).
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._batch: dict[str, Any] | None = None
        self._chunks: list[bytes] = []
        self._received = 0

    @property
    def active(self) -> bool:
        """True between a start marker and its end marker."""
        return self._batch is not None

    def feed_text(self, text: str) -> bytes | None:
        """Handle a `y-pk-batch#` marker; returns the reassembled message at the end marker."""
        marker = _parse_marker(text)
        if marker["type"] == "start":
            if self._batch is not None:
                raise FrameError("a batch started before the previous one ended")
            size, count = marker["size"], marker["count"]
            if size > self.max_size:
                raise FrameError(f"batch of {size} bytes exceeds the {self.max_size} byte limit")
            if count < 1 or count > size + 1:
                raise FrameError(f"batch chunk count {count} does not fit its size {size}")
            self._batch, self._chunks, self._received = marker, [], 0
            return None
        batch = self._batch
        self._batch = None
        if batch is None or marker["id"] != batch["id"]:
            raise FrameError("batch end marker without a matching start")
        if (marker["count"], marker["size"]) != (batch["count"], batch["size"]):
            raise FrameError("batch end marker disagrees with its start")
        if len(self._chunks) != batch["count"] or self._received != batch["size"]:
            raise FrameError(
                f"batch received {len(self._chunks)} chunks / {self._received} bytes, "
                f"announced {batch['count']} / {batch['size']}"
            )
        message, self._chunks = b"".join(self._chunks), []
        return message

    def feed_binary(self, chunk: bytes) -> None:
        """Take one chunk of the active batch."""
        batch = self._batch
        if batch is None:
            raise FrameError("a batch chunk without a start marker")
        if len(self._chunks) >= batch["count"] or self._received + len(chunk) > batch["size"]:
            self._batch = None
            raise FrameError("batch chunks exceed what the start marker announced")
        self._chunks.append(chunk)
        self._received += len(chunk)


def _parse_marker(text: str) -> dict[str, Any]:
    try:
        marker = json.loads(text[len(BATCH_PREFIX) :])
    except (ValueError, RecursionError):
        raise FrameError("batch marker is not JSON") from None
    if not isinstance(marker, dict) or not (
        marker.get("type") in ("start", "end")
        and isinstance(marker.get("id"), str)
        and all(type(marker.get(k)) is int and marker[k] >= 0 for k in ("size", "count"))
    ):
        raise FrameError("batch marker needs id (str), type start|end, size and count (int)")
    return marker
