"""Storage across the worker boundary, for parties hosted by a kernel.

A kernel that hosts a party (`jupyter_party.host`) keeps its rooms' data in the server's
storage, so the data outlives the kernel and is there again when the party is hosted again.
`RemoteBackend`, on the kernel's side, sends each backend primitive as one `storage` call;
`serve_storage`, in the worker that placement gives the room, runs it on that worker's backend
(group commit and durability included: a write is answered once it is committed). Values
travel encoded, as backends keep them: JSON text in the header, bytes in the payload.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .storage import Backend, Bounds, Encoded, Scope

Call = Callable[[str, dict[str, Any], bytes], Awaitable[tuple[Any, bytes]]]


class RemoteBackend(Backend):
    """The storage of one hosted party, kept by the server: each primitive is a `call`."""

    def __init__(self, call: Call, party: str) -> None:
        self._call = call
        self._party = party

    async def _do(self, do: str, room: str, payload: bytes = b"", **args: Any) -> tuple[Any, bytes]:
        args.update(do=do, party=self._party, room=room)
        return await self._call("storage", args, payload)

    async def _read(self, scope: Scope, keys: list[str]) -> dict[str, Encoded]:
        return _unpack(*await self._do("read", scope[1], keys=keys))

    async def _write(self, scope: Scope, puts: dict[str, Encoded], deletes: list[str]) -> int:
        header, payload = _pack(puts)
        existed, _ = await self._do("write", scope[1], payload, puts=header, deletes=deletes)
        return int(existed)

    async def _scan(
        self, scope: Scope, bounds: Bounds, limit: int | None, reverse: bool
    ) -> dict[str, Encoded]:
        hexed = [None if bound is None else bound.hex() for bound in bounds]
        found = await self._do("scan", scope[1], bounds=hexed, limit=limit, reverse=reverse)
        return _unpack(*found)

    async def delete_all(self, scope: Scope) -> None:
        await self._do("delete_all", scope[1])

    async def get_alarm(self, scope: Scope) -> float | None:
        at_ms, _ = await self._do("get_alarm", scope[1])
        return None if at_ms is None else float(at_ms)

    async def set_alarm(self, scope: Scope, at_ms: float | None) -> None:
        await self._do("set_alarm", scope[1], at_ms=at_ms)

    async def alarms(self) -> list[tuple[str, str, float]]:
        return [tuple(alarm) for alarm in (await self._do("alarms", ""))[0]]

    async def sync(self) -> None:
        """Every write was answered once committed: nothing is pending here."""

    async def close(self) -> None:
        """The server's backend is not this kernel's to close."""


async def serve_storage(
    backend: Backend, do: str, party: str, room: str, payload: bytes, **args: Any
) -> tuple[Any, bytes]:
    """Run one `RemoteBackend` primitive on `backend`; its `(result, payload)`."""
    scope = (party, room)
    if do == "read":
        return _pack(await backend._read(scope, args["keys"]))
    if do == "write":
        return await backend._write(scope, _unpack(args["puts"], payload), args["deletes"]), b""
    if do == "scan":
        low, high = (None if bound is None else bytes.fromhex(bound) for bound in args["bounds"])
        return _pack(await backend._scan(scope, (low, high), args["limit"], args["reverse"]))
    if do == "delete_all":
        await backend.delete_all(scope)
        return None, b""
    if do == "get_alarm":
        return await backend.get_alarm(scope), b""
    if do == "set_alarm":
        await backend.set_alarm(scope, args["at_ms"])
        return None, b""
    if do == "alarms":
        return [alarm for alarm in await backend.alarms() if alarm[0] == party], b""
    raise ValueError(f"unknown storage operation {do!r}")


def _pack(values: dict[str, Encoded]) -> tuple[dict[str, Any], bytes]:
    """Encoded values as a JSON-able header (text as is, bytes as a [start, end) slice of the
    payload) and the payload."""
    header: dict[str, Any] = {}
    chunks: list[bytes] = []
    at = 0
    for key, value in values.items():
        if isinstance(value, bytes):
            header[key] = [at, at + len(value)]
            chunks.append(value)
            at += len(value)
        else:
            header[key] = value
    return header, b"".join(chunks)


def _unpack(header: dict[str, Any], payload: bytes) -> dict[str, Encoded]:
    return {
        key: payload[value[0] : value[1]] if isinstance(value, list) else value
        for key, value in header.items()
    }
