"""`Board`: a worker's heartbeat and the step of party code it is running, in shared memory.

The worker writes; its supervisor reads. A worker whose event loop is stuck in a step cannot
answer anything, and one that crashed cannot say why: the board still tells which party, room
and hook were running, and since when. Layout (little-endian):

    0   u64  heartbeat, bumped by the worker's event loop every TICK seconds
    8   f64  start of the running step (time.monotonic(), shared by all processes), 0 if idle
    16  u8 hook length, u16 party length, u16 room length
    21  hook (32 bytes), party (64 bytes), room (256 bytes)
"""

from __future__ import annotations

import mmap
import os
import struct
import time

TICK = 0.1
SIZE = 512
_BEAT = struct.Struct("<Q")
_START = struct.Struct("<d")
_NAMES = struct.Struct("<BHH")
_HOOK, _PARTY, _ROOM = 21, 53, 117


class Board:
    """One worker's board, mapped from the file at `path` (created by the supervisor)."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR)
        try:
            if os.fstat(fd).st_size < SIZE:
                os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        self._names: tuple[str, str, str] | None = None
        self._beats = 0

    # -- the worker's side ------------------------------------------------------------------

    def beat(self) -> None:
        self._beats += 1
        _BEAT.pack_into(self._map, 0, self._beats)

    def begin(self, party: str, room: str, hook: str) -> None:
        names = (party, room, hook)
        if names != self._names:
            self._names = names
            h, p, r = hook.encode()[:32], party.encode()[:64], room.encode()[:256]
            _NAMES.pack_into(self._map, 16, len(h), len(p), len(r))
            self._map[_HOOK : _HOOK + len(h)] = h
            self._map[_PARTY : _PARTY + len(p)] = p
            self._map[_ROOM : _ROOM + len(r)] = r
        _START.pack_into(self._map, 8, time.monotonic())

    def end(self) -> None:
        _START.pack_into(self._map, 8, 0.0)

    # -- the supervisor's side --------------------------------------------------------------

    def heartbeat(self) -> int:
        beat: int = _BEAT.unpack_from(self._map, 0)[0]
        return beat

    def step(self) -> tuple[str, str, str, float] | None:
        """`(party, room, hook, seconds running)` of the step in progress, or None."""
        (start,) = _START.unpack_from(self._map, 8)
        if not start:
            return None
        h, p, r = _NAMES.unpack_from(self._map, 16)

        def text(offset: int, length: int) -> str:
            return self._map[offset : offset + length].decode("utf-8", "replace")

        elapsed = time.monotonic() - start
        return text(_PARTY, p), text(_ROOM, r), text(_HOOK, h), elapsed

    def close(self) -> None:
        self._map.close()
