"""Durable per-room key/value storage, modelled on Cloudflare Durable Object storage.

Every room is identified by a ``(party, room_id)`` scope. A :class:`Backend` holds the data of
all rooms; a :class:`Storage` is the per-room handle party code sees as ``room.storage``.

Values are any JSON-able Python value or ``bytes``. They are encoded when they are written (so a
bad value fails in the caller, before anything is stored) and decoded when they are read, and both
backends keep only the encoded form, so they behave identically.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime
import json
import math
import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeAlias, TypeVar

from .tasks import spawn

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_VALUE_BYTES",
    "Backend",
    "GroupCommitBackend",
    "MemoryBackend",
    "SQLiteBackend",
    "Storage",
    "Transaction",
    "open_backend",
]

MAX_KEY_BYTES = 2048
MAX_VALUE_BYTES = 2 * 1024 * 1024
MAX_COMMIT_TIMES = 10_000  # commit durations kept between two reports (the rest are dropped)

Scope: TypeAlias = tuple[str, str]
# JSON is stored as ``str`` (SQLite TEXT), binary values as ``bytes`` (SQLite BLOB).
Encoded: TypeAlias = str | bytes
# An SQL operation run on the worker thread inside the batch's transaction.
Op: TypeAlias = Callable[[sqlite3.Connection], Any]
T = TypeVar("T")

_MISSING: Any = object()


# --- Encoding and validation ----------------------------------------------------------------


def _key_bytes(key: str) -> bytes:
    """Validate a key and return its UTF-8 form, which is also its sort order."""
    if not isinstance(key, str):
        raise TypeError(f"storage keys must be str, not {type(key).__name__}")
    data = key.encode()
    if not data:
        raise ValueError("storage keys must not be empty")
    if len(data) > MAX_KEY_BYTES:
        raise ValueError(f"storage key {key[:40]!r}... exceeds {MAX_KEY_BYTES} UTF-8 bytes")
    return data


def _encode(key: str, value: Any) -> Encoded:
    """Encode ``value`` for storage under ``key``, enforcing the value size limit."""
    if isinstance(value, bytes | bytearray):
        encoded: Encoded = bytes(value)
        size = len(encoded)
    else:
        try:
            # allow_nan=False: NaN/Infinity are not JSON, so other readers could not parse them.
            encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"value for storage key {key!r} is not JSON-serializable or bytes: {exc}"
            ) from exc
        size = len(encoded.encode())
    if size > MAX_VALUE_BYTES:
        raise ValueError(
            f"value for storage key {key!r} is {size} bytes encoded; the limit is {MAX_VALUE_BYTES}"
        )
    return encoded


def _decode(encoded: Encoded) -> Any:
    return encoded if isinstance(encoded, bytes) else json.loads(encoded)


def _encode_items(items: Mapping[str, Any]) -> dict[str, Encoded]:
    encoded = {}
    for key, value in items.items():
        _key_bytes(key)
        encoded[key] = _encode(key, value)
    return encoded


def _check_keys(keys: Iterable[str]) -> list[str]:
    """Validate keys and drop duplicates, keeping the first occurrence's position."""
    unique = list(dict.fromkeys(keys))
    for key in unique:
        _key_bytes(key)
    return unique


# --- Key ranges ---------------------------------------------------------------------------------

Bounds: TypeAlias = tuple[bytes | None, bytes | None]


def _bounds(prefix: str | None, start: str | None, end: str | None) -> Bounds:
    """Turn list() filters into one ``[low, high)`` range of UTF-8 keys (None = unbounded)."""
    low = start.encode() if start is not None else None
    high = end.encode() if end is not None else None
    if prefix:
        encoded = prefix.encode()
        # UTF-8 never contains 0xFF, so bumping the last byte gives the first key past the prefix.
        after = encoded[:-1] + bytes([encoded[-1] + 1])
        low = encoded if low is None else max(low, encoded)
        high = after if high is None else min(high, after)
    return low, high


def _in_bounds(key: bytes, bounds: Bounds) -> bool:
    low, high = bounds
    return (low is None or key >= low) and (high is None or key < high)


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"list() limit must be a positive int, not {limit!r}")


def _alarm_ms(when: float | int | datetime.datetime) -> float:
    """Convert an alarm time (epoch ms, or a datetime; naive means local time) to epoch ms."""
    if isinstance(when, datetime.datetime):
        return when.timestamp() * 1000
    if isinstance(when, bool) or not isinstance(when, int | float):
        raise TypeError(f"alarm time must be epoch milliseconds or a datetime, not {when!r}")
    if not math.isfinite(when):
        raise ValueError(f"alarm time must be finite, not {when!r}")
    return float(when)


# --- Backends -----------------------------------------------------------------------------------


class Backend(ABC):
    """Storage for every room. Values given to and returned by the public methods are decoded.

    The public key/value methods validate and encode here, in the caller; subclasses implement
    the primitives on encoded values.
    """

    async def get(self, scope: Scope, keys: builtins.list[str]) -> dict[str, Any]:
        """Return the stored values of ``keys``; missing keys are omitted."""
        found = await self._read(scope, _check_keys(keys))
        return {key: _decode(value) for key, value in found.items()}

    async def put(self, scope: Scope, items: Mapping[str, Any]) -> None:
        """Store ``items`` atomically; durable once this returns."""
        await self._write(scope, _encode_items(items), [])

    async def delete(self, scope: Scope, keys: builtins.list[str]) -> int:
        """Delete ``keys`` atomically and return how many of them existed."""
        return await self._write(scope, {}, _check_keys(keys))

    async def commit(
        self, scope: Scope, puts: Mapping[str, Any], deletes: builtins.list[str]
    ) -> None:
        """Apply ``deletes`` then ``puts`` as one atomic write (used by transactions)."""
        await self._write(scope, _encode_items(puts), _check_keys(deletes))

    async def list(
        self,
        scope: Scope,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> dict[str, Any]:
        """Return entries in UTF-8 byte order of key: ``start`` inclusive, ``end`` exclusive."""
        _check_limit(limit)
        found = await self._scan(scope, _bounds(prefix, start, end), limit, reverse)
        return {key: _decode(value) for key, value in found.items()}

    @abstractmethod
    async def _read(self, scope: Scope, keys: builtins.list[str]) -> dict[str, Encoded]: ...

    @abstractmethod
    async def _write(
        self, scope: Scope, puts: dict[str, Encoded], deletes: builtins.list[str]
    ) -> int:
        """Atomically delete then put; return how many deleted keys existed."""

    @abstractmethod
    async def _scan(
        self, scope: Scope, bounds: Bounds, limit: int | None, reverse: bool
    ) -> dict[str, Encoded]: ...

    @abstractmethod
    async def delete_all(self, scope: Scope) -> None:
        """Delete every key of ``scope`` (its alarm is kept)."""

    @abstractmethod
    async def get_alarm(self, scope: Scope) -> float | None:
        """Return the room's alarm time in epoch milliseconds, or None."""

    @abstractmethod
    async def set_alarm(self, scope: Scope, at_ms: float | None) -> None:
        """Set the room's alarm time in epoch milliseconds; None deletes it."""

    @abstractmethod
    async def alarms(self) -> builtins.list[tuple[str, str, float]]:
        """Return every persisted alarm as ``(party, room, at_ms)``, used at startup."""

    @abstractmethod
    async def sync(self) -> None:
        """Return once every operation issued before this call is durable."""

    @abstractmethod
    async def close(self) -> None:
        """Finish pending work and release resources; idempotent."""

    def take_commit_times(self) -> builtins.list[float]:
        """Seconds each commit took since the last call (for the storage latency metric)."""
        return []


class MemoryBackend(Backend):
    """Non-durable backend for tests and throwaway servers; same semantics as SQLite."""

    def __init__(self) -> None:
        self._rooms: dict[Scope, dict[str, Encoded]] = {}
        self._alarms: dict[Scope, float] = {}

    async def _read(self, scope: Scope, keys: list[str]) -> dict[str, Encoded]:
        data = self._rooms.get(scope, {})
        return {key: data[key] for key in keys if key in data}

    async def _write(self, scope: Scope, puts: dict[str, Encoded], deletes: list[str]) -> int:
        data = self._rooms.setdefault(scope, {})
        existed = sum(data.pop(key, None) is not None for key in deletes)
        data.update(puts)
        return existed

    async def _scan(
        self, scope: Scope, bounds: Bounds, limit: int | None, reverse: bool
    ) -> dict[str, Encoded]:
        data = self._rooms.get(scope, {})
        keys = sorted((k for k in data if _in_bounds(k.encode(), bounds)), key=str.encode)
        if reverse:
            keys.reverse()
        return {key: data[key] for key in keys[:limit]}

    async def delete_all(self, scope: Scope) -> None:
        self._rooms.pop(scope, None)

    async def get_alarm(self, scope: Scope) -> float | None:
        return self._alarms.get(scope)

    async def set_alarm(self, scope: Scope, at_ms: float | None) -> None:
        if at_ms is None:
            self._alarms.pop(scope, None)
        else:
            self._alarms[scope] = float(at_ms)

    async def alarms(self) -> list[tuple[str, str, float]]:
        return [(party, room, at_ms) for (party, room), at_ms in self._alarms.items()]

    async def sync(self) -> None:
        """Memory writes are complete when they return; nothing to wait for."""

    async def close(self) -> None:
        """Nothing to release; the data simply goes away with the object."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    party TEXT NOT NULL,
    room TEXT NOT NULL,
    key BLOB NOT NULL,
    value,
    PRIMARY KEY (party, room, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alarms (
    party TEXT NOT NULL,
    room TEXT NOT NULL,
    at_ms REAL NOT NULL,
    PRIMARY KEY (party, room)
) WITHOUT ROWID;
"""


class GroupCommitBackend(Backend):
    """A backend whose operations run in atomic batches, one batch at a time, in issue order.

    Operations issued during one event-loop turn form one batch; operations issued while a batch
    runs form the next, so batches grow with load and one commit (an fsync, a Redis round trip)
    covers many writes. A caller's future resolves only once its batch committed; a cancelled
    caller does not cancel its write. Subclasses define what an operation is and
    :meth:`_execute`, which runs a batch atomically.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self._busy = False
        self._closed = False
        #: Statistic: number of batches committed so far.
        self.commits = 0
        #: Seconds each batch took, from its start to its commit, since `take_commit_times`.
        self._commit_times: list[float] = []
        self._batch_started = 0.0

    @abstractmethod
    async def _execute(self, ops: list[Any]) -> list[Any]:
        """Run ``ops`` as one atomic batch and return their results, in order.

        Raising fails every operation of the batch; a result that is an exception fails only
        its own operation.
        """

    def _enqueue(self, op: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((op, future))
        self._schedule(loop)
        return future

    def _submit(self, op: Any) -> asyncio.Future[Any]:
        if self._closed:
            raise RuntimeError("the storage backend is closed")
        return self._enqueue(op)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # A running batch reschedules on completion, which is what lets the next batch grow.
        if self._pending and not self._busy and not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        self._busy = True
        self._batch_started = loop.time()
        running = spawn(self._execute([op for op, _ in batch]))
        running.add_done_callback(lambda result: self._finish(loop, batch, result))

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[Any, asyncio.Future[Any]]],
        done: asyncio.Future[list[Any]],
    ) -> None:
        self._busy = False
        error = done.exception()
        results = [None] * len(batch) if error else done.result()
        if not error:
            self.commits += 1
            if len(self._commit_times) < MAX_COMMIT_TIMES:
                self._commit_times.append(loop.time() - self._batch_started)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller was cancelled; the write happened regardless
                continue
            if error:
                future.set_exception(error)
            elif isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        self._schedule(loop)

    def take_commit_times(self) -> list[float]:
        times, self._commit_times = self._commit_times, []
        return times


class SQLiteBackend(GroupCommitBackend):
    """All rooms in one SQLite file, written with group commit on a dedicated thread.

    Each batch (see :class:`GroupCommitBackend`) is one SQLite transaction run on the worker
    thread; its futures resolve only after COMMIT returns. If a batch fails, it is rolled back
    and every operation in it fails.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        # Rooms' data is the owner's: readable by nobody else (SQLite gives its -wal and -shm
        # files the same mode).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        # Opening happens once at startup, so doing it on the calling thread is acceptable.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # The server process (share grants) and every worker write to the same file; rooms
        # never overlap, so a writer waiting its turn is all the coordination needed.
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL fsyncs the WAL at every commit: an acknowledged write survives power loss.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="party-storage")

    def _run(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """`op` in the next batch, on the database thread."""
        return self._submit(op)

    async def _execute(self, ops: list[Op]) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_batch, ops)

    def _run_batch(self, ops: list[Op]) -> list[Any]:
        """Run ``ops`` in one transaction on the worker thread; all or nothing."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = [op(conn) for op in ops]
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back by itself (e.g. on SQLITE_FULL).
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        return results

    # Primitives, each a single operation of a batch.

    async def _read(self, scope: Scope, keys: list[str]) -> dict[str, Encoded]:
        def op(conn: sqlite3.Connection) -> dict[str, Encoded]:
            found = {}
            for key in keys:
                row = conn.execute(
                    "SELECT value FROM kv WHERE party = ? AND room = ? AND key = ?",
                    (*scope, key.encode()),
                ).fetchone()
                if row is not None:
                    found[key] = row[0]
            return found

        return await self._run(op)

    async def _write(self, scope: Scope, puts: dict[str, Encoded], deletes: list[str]) -> int:
        def op(conn: sqlite3.Connection) -> int:
            existed = 0
            for key in deletes:
                existed += conn.execute(
                    "DELETE FROM kv WHERE party = ? AND room = ? AND key = ?",
                    (*scope, key.encode()),
                ).rowcount
            conn.executemany(
                "INSERT OR REPLACE INTO kv (party, room, key, value) VALUES (?, ?, ?, ?)",
                [(*scope, key.encode(), value) for key, value in puts.items()],
            )
            return existed

        return await self._run(op)

    async def _scan(
        self, scope: Scope, bounds: Bounds, limit: int | None, reverse: bool
    ) -> dict[str, Encoded]:
        low, high = bounds
        sql = "SELECT key, value FROM kv WHERE party = ? AND room = ?"
        params: list[Any] = [*scope]
        # Keys are BLOBs, so these comparisons and ORDER BY are bytewise (memcmp).
        if low is not None:
            sql += " AND key >= ?"
            params.append(low)
        if high is not None:
            sql += " AND key < ?"
            params.append(high)
        sql += " ORDER BY key DESC" if reverse else " ORDER BY key"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)

        def op(conn: sqlite3.Connection) -> dict[str, Encoded]:
            return {key.decode(): value for key, value in conn.execute(sql, params)}

        return await self._run(op)

    async def delete_all(self, scope: Scope) -> None:
        await self._run(
            lambda conn: conn.execute("DELETE FROM kv WHERE party = ? AND room = ?", scope)
        )

    async def get_alarm(self, scope: Scope) -> float | None:
        def op(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT at_ms FROM alarms WHERE party = ? AND room = ?", scope
            ).fetchone()
            return None if row is None else row[0]

        return await self._run(op)

    async def set_alarm(self, scope: Scope, at_ms: float | None) -> None:
        def op(conn: sqlite3.Connection) -> None:
            if at_ms is None:
                conn.execute("DELETE FROM alarms WHERE party = ? AND room = ?", scope)
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO alarms (party, room, at_ms) VALUES (?, ?, ?)",
                    (*scope, float(at_ms)),
                )

        await self._run(op)

    async def alarms(self) -> list[tuple[str, str, float]]:
        return await self._run(
            lambda conn: conn.execute("SELECT party, room, at_ms FROM alarms").fetchall()
        )

    async def sync(self) -> None:
        # Batches run in order, so an empty operation completes after everything issued before it.
        await self._run(lambda conn: None)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._enqueue(lambda conn: None)
        finally:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
            self._executor.shutdown()


def open_backend(url: str) -> Backend:
    """Open the backend named by ``url``: ``sqlite:///abs/path/file.db``, ``memory://``, or
    ``redis://host:port/db`` (``rediss://`` for TLS; needs the ``redis`` package)."""
    if url == "memory://":
        return MemoryBackend()
    if url.startswith(("redis://", "rediss://")):
        from .redis_storage import RedisBackend

        return RedisBackend(url)
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://").lstrip("/")
        if path:
            # Both sqlite:///abs and sqlite:////abs name the absolute path /abs.
            return SQLiteBackend("/" + path)
    raise ValueError(
        f"unsupported storage URL {url!r}; use 'sqlite:///absolute/path/file.db', "
        "'redis://host:port/db' or 'memory://'"
    )


# --- The per-room handle ------------------------------------------------------------------------


class Transaction:
    """Buffered writes to one room, committed atomically when the transaction block ends.

    Reads see the transaction's own writes overlaid on storage. Writes made outside the
    transaction meanwhile are visible too: this gives atomicity, not isolation.
    """

    def __init__(self, backend: Backend, scope: Scope) -> None:
        self._backend = backend
        self._scope = scope
        # Encoded values (snapshotted at put time); None marks a deletion.
        self._writes: dict[str, Encoded | None] = {}
        self._finished = False

    def _check_active(self) -> None:
        if self._finished:
            raise RuntimeError("this transaction has already been committed or rolled back")

    async def get(self, key_or_keys: str | list[str]) -> Any:
        """Like :meth:`Storage.get`, seeing this transaction's writes."""
        self._check_active()
        keys = [key_or_keys] if isinstance(key_or_keys, str) else _check_keys(key_or_keys)
        stored = await self._backend.get(self._scope, [k for k in keys if k not in self._writes])
        found = {}
        for key in keys:
            if key in self._writes:
                encoded = self._writes[key]
                if encoded is not None:
                    found[key] = _decode(encoded)
            elif key in stored:
                found[key] = stored[key]
        return found.get(key_or_keys) if isinstance(key_or_keys, str) else found

    async def put(self, key_or_mapping: str | Mapping[str, Any], value: Any = _MISSING) -> None:
        """Like :meth:`Storage.put`, buffered until commit."""
        self._check_active()
        self._writes.update(_encode_items(_put_items(key_or_mapping, value)))

    async def delete(self, key_or_keys: str | list[str]) -> bool | int:
        """Like :meth:`Storage.delete`, buffered until commit."""
        self._check_active()
        keys = [key_or_keys] if isinstance(key_or_keys, str) else key_or_keys
        existed = await self.get(_check_keys(keys))
        self._writes.update(dict.fromkeys(keys))
        return bool(existed) if isinstance(key_or_keys, str) else len(existed)

    async def list(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> dict[str, Any]:
        """Like :meth:`Storage.list`, seeing this transaction's writes."""
        self._check_active()
        _check_limit(limit)
        bounds = _bounds(prefix, start, end)
        deletes = sum(value is None for value in self._writes.values())
        # Each buffered delete can hide at most one stored entry, so fetch that many extra.
        stored = await self._backend.list(
            self._scope,
            prefix=prefix,
            start=start,
            end=end,
            limit=None if limit is None else limit + deletes,
            reverse=reverse,
        )
        for key, encoded in self._writes.items():
            if not _in_bounds(key.encode(), bounds):
                continue
            if encoded is None:
                stored.pop(key, None)
            else:
                stored[key] = _decode(encoded)
        keys = sorted(stored, key=str.encode, reverse=reverse)[:limit]
        return {key: stored[key] for key in keys}

    def rollback(self) -> None:
        """Discard every buffered write; nothing of this transaction will be committed."""
        self._writes.clear()
        self._finished = True

    async def _commit(self) -> None:
        if self._finished:
            return
        self._finished = True
        puts = {k: _decode(v) for k, v in self._writes.items() if v is not None}
        deletes = [k for k, v in self._writes.items() if v is None]
        if puts or deletes:
            await self._backend.commit(self._scope, puts, deletes)


def _put_items(key_or_mapping: str | Mapping[str, Any], value: Any) -> Mapping[str, Any]:
    """Normalise the two put() call forms, ``put(key, value)`` and ``put(mapping)``."""
    if isinstance(key_or_mapping, str):
        if value is _MISSING:
            raise TypeError("put(key, value) needs a value")
        return {key_or_mapping: value}
    if value is not _MISSING:
        raise TypeError("put(mapping) takes no separate value")
    return key_or_mapping


class Storage:
    """The per-room handle exposed to party code as ``room.storage``."""

    def __init__(
        self,
        backend: Backend,
        party: str,
        room: str,
        on_alarm_change: Callable[[float | None], None] | None = None,
    ) -> None:
        self._backend = backend
        self._scope: Scope = (party, room)
        self._on_alarm_change = on_alarm_change
        # Transactions on one room run one after another.
        self._transaction_lock = asyncio.Lock()

    async def get(self, key_or_keys: str | list[str]) -> Any:
        """``get(key)`` returns the value or None; ``get(keys)`` returns a dict of found keys."""
        if isinstance(key_or_keys, str):
            found = await self._backend.get(self._scope, [key_or_keys])
            return found.get(key_or_keys)
        return await self._backend.get(self._scope, key_or_keys)

    async def put(self, key_or_mapping: str | Mapping[str, Any], value: Any = _MISSING) -> None:
        """``put(key, value)`` or ``put(mapping)``; atomic, and durable once it returns."""
        await self._backend.put(self._scope, _put_items(key_or_mapping, value))

    async def delete(self, key_or_keys: str | list[str]) -> bool | int:
        """``delete(key)`` returns whether it existed; ``delete(keys)`` how many existed."""
        if isinstance(key_or_keys, str):
            return await self._backend.delete(self._scope, [key_or_keys]) == 1
        return await self._backend.delete(self._scope, key_or_keys)

    async def delete_all(self) -> None:
        """Delete every key of this room (the alarm is kept)."""
        await self._backend.delete_all(self._scope)

    async def list(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> dict[str, Any]:
        """Return entries in UTF-8 byte order of key: ``start`` inclusive, ``end`` exclusive."""
        return await self._backend.list(
            self._scope, prefix=prefix, start=start, end=end, limit=limit, reverse=reverse
        )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Buffer writes and commit them atomically at the end of the ``async with`` block.

        An exception in the block (which propagates) or ``txn.rollback()`` discards them.
        """
        async with self._transaction_lock:
            txn = Transaction(self._backend, self._scope)
            try:
                yield txn
            except BaseException:
                txn.rollback()
                raise
            await txn._commit()

    async def get_alarm(self) -> float | None:
        """Return the alarm time in epoch milliseconds, or None."""
        return await self._backend.get_alarm(self._scope)

    async def set_alarm(self, when: float | int | datetime.datetime) -> None:
        """Set the alarm: epoch milliseconds (as in PartyKit) or a datetime (naive = local)."""
        at_ms = _alarm_ms(when)
        await self._backend.set_alarm(self._scope, at_ms)
        self._notify_alarm(at_ms)

    async def delete_alarm(self) -> None:
        """Cancel the alarm, if any."""
        await self._backend.set_alarm(self._scope, None)
        self._notify_alarm(None)

    def _notify_alarm(self, at_ms: float | None) -> None:
        # Only called after the backend write is durable, so the scheduler never runs ahead of it.
        if self._on_alarm_change is not None:
            self._on_alarm_change(at_ms)

    async def sync(self) -> None:
        """Return once every write issued before this call is durable."""
        await self._backend.sync()
