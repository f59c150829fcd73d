"""Tests for jupyter_party.runtime.storage, run against every backend (SQLite, memory, Redis)."""

import asyncio
import contextlib
import datetime
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jupyter_party.runtime.storage import (
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    SQLiteBackend,
    Storage,
    open_backend,
)

pytest_plugins = ["redis_support"]  # its fixtures: redis_server, redis_url

REPO_ROOT = Path(__file__).resolve().parent.parent
SCOPE = ("chat", "lobby")


@pytest.fixture(params=["sqlite", "memory", "redis"])
def url(request, tmp_path):
    """A backend URL; the backend itself is opened inside each test (no async fixtures)."""
    if request.param == "redis":
        return request.getfixturevalue("redis_url")  # a real redis-server (redis_support.py)
    return f"sqlite:///{tmp_path}/party.db" if request.param == "sqlite" else "memory://"


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/party.db"


@contextlib.asynccontextmanager
async def opened(url):
    backend = open_backend(url)
    try:
        yield backend
    finally:
        await backend.close()


@contextlib.asynccontextmanager
async def room_storage(url, party="chat", room="lobby", on_alarm_change=None):
    async with opened(url) as backend:
        yield Storage(backend, party, room, on_alarm_change)


# --- open_backend -------------------------------------------------------------------------------


def test_open_backend_rejects_unknown_urls():
    for bad in ["postgres://x", "sqlite://", "sqlite:///", "memory:", "file.db"]:
        with pytest.raises(ValueError, match="memory://"):
            open_backend(bad)


async def test_open_backend_accepts_four_slashes_and_creates_parent_dirs(tmp_path):
    path = tmp_path / "a" / "b" / "party.db"
    async with opened(f"sqlite:////{path}") as backend:
        assert isinstance(backend, SQLiteBackend)
    assert path.exists()


# --- Basic operations ---------------------------------------------------------------------------


async def test_single_get_put_delete(url):
    async with room_storage(url) as storage:
        assert await storage.get("k") is None
        await storage.put("k", {"a": 1})
        assert await storage.get("k") == {"a": 1}
        assert await storage.delete("k") is True
        assert await storage.delete("k") is False
        assert await storage.get("k") is None


async def test_batch_get_put_delete(url):
    async with room_storage(url) as storage:
        await storage.put({"a": 1, "b": 2, "c": 3})
        assert await storage.get(["a", "c", "missing"]) == {"a": 1, "c": 3}
        assert await storage.delete(["a", "b", "missing"]) == 2
        assert await storage.get(["a", "b", "c"]) == {"c": 3}


async def test_put_call_forms_are_checked(url):
    async with room_storage(url) as storage:
        with pytest.raises(TypeError):
            await storage.put("k")
        with pytest.raises(TypeError):
            await storage.put({"k": 1}, 2)


async def test_bytes_round_trip(url):
    async with room_storage(url) as storage:
        await storage.put({"b": b"\x00\xffbin", "ba": bytearray(b"xy"), "empty": b""})
        assert await storage.get(["b", "ba", "empty"]) == {
            "b": b"\x00\xffbin",
            "ba": b"xy",
            "empty": b"",
        }
        assert type(await storage.get("ba")) is bytes


async def test_json_types_round_trip(url):
    values = {
        "int": 2**60,
        "float": 1.5,
        "str": "héllo ✓",
        "true": True,
        "none": None,
        "list": [1, "two", [3]],
        "dict": {"nested": {"x": [1.0, None]}},
        "tuple": (1, 2),
    }
    async with room_storage(url) as storage:
        await storage.put(values)
        got = await storage.get(list(values))
    assert got == {**values, "tuple": [1, 2]}
    assert type(got["int"]) is int
    assert type(got["float"]) is float


async def test_mutating_a_value_after_put_does_not_change_storage(url):
    async with room_storage(url) as storage:
        value = {"items": [1]}
        await storage.put("k", value)
        value["items"].append(2)
        got = await storage.get("k")
        got["items"].append(3)
        assert await storage.get("k") == {"items": [1]}


async def test_get_after_put_in_the_same_turn_sees_the_put(url):
    async with room_storage(url) as storage:
        _, got = await asyncio.gather(storage.put("k", 1), storage.get("k"))
    assert got == 1


async def test_delete_all_only_affects_its_room(url):
    async with opened(url) as backend:
        lobby = Storage(backend, "chat", "lobby")
        other_room = Storage(backend, "chat", "other")
        other_party = Storage(backend, "counter", "lobby")
        for storage in (lobby, other_room, other_party):
            await storage.put("k", storage._scope[0] + "/" + storage._scope[1])
        await lobby.set_alarm(1000)
        assert await lobby.get("k") == "chat/lobby"
        assert await other_party.get("k") == "counter/lobby"
        await lobby.delete_all()
        assert await lobby.list() == {}
        assert await other_room.get("k") == "chat/other"
        assert await other_party.get("k") == "counter/lobby"
        assert await lobby.get_alarm() == 1000  # delete_all keeps the alarm


# --- list ---------------------------------------------------------------------------------------

LIST_KEYS = ["a", "b", "ba", "bb", "c", "Z", "é", "z"]


async def test_list_is_in_utf8_byte_order(url):
    async with room_storage(url) as storage:
        await storage.put({key: i for i, key in enumerate(LIST_KEYS)})
        listed = await storage.list()
    # "Z" < lowercase < "é" (0xC3 0xA9) bytewise.
    assert list(listed) == ["Z", "a", "b", "ba", "bb", "c", "z", "é"]
    assert listed["é"] == LIST_KEYS.index("é")


async def test_list_filters(url):
    async with room_storage(url) as storage:
        await storage.put({key: key for key in LIST_KEYS})
        assert list(await storage.list(prefix="b")) == ["b", "ba", "bb"]
        assert list(await storage.list(start="b", end="c")) == ["b", "ba", "bb"]
        assert list(await storage.list(start="ba")) == ["ba", "bb", "c", "z", "é"]
        assert list(await storage.list(end="b")) == ["Z", "a"]
        assert list(await storage.list(limit=2)) == ["Z", "a"]
        assert list(await storage.list(reverse=True, limit=2)) == ["é", "z"]
        assert list(await storage.list(prefix="b", start="ba", reverse=True)) == ["bb", "ba"]
        assert list(await storage.list(prefix="é")) == ["é"]
        assert await storage.list(prefix="q") == {}
        with pytest.raises(ValueError):
            await storage.list(limit=0)


# --- Transactions -------------------------------------------------------------------------------


async def test_transaction_commits_atomically(url):
    async with room_storage(url) as storage:
        await storage.put({"old": 1, "keep": 2})
        async with storage.transaction() as txn:
            await txn.put("new", 3)
            assert await txn.delete("old") is True
            assert await storage.get("new") is None  # buffered until the block ends
        assert await storage.list() == {"keep": 2, "new": 3}


async def test_transaction_rolls_back_on_exception(url):
    async with room_storage(url) as storage:
        await storage.put("k", 1)
        with pytest.raises(RuntimeError, match="boom"):
            async with storage.transaction() as txn:
                await txn.put("k", 2)
                await txn.delete("k")
                raise RuntimeError("boom")
        assert await storage.list() == {"k": 1}


async def test_transaction_explicit_rollback(url):
    async with room_storage(url) as storage:
        async with storage.transaction() as txn:
            await txn.put("k", 2)
            txn.rollback()
        assert await storage.get("k") is None
        with pytest.raises(RuntimeError):
            await txn.put("k", 3)


async def test_transaction_reads_see_own_writes(url):
    async with room_storage(url) as storage:
        await storage.put({"a": 1, "b": 2, "c": 3, "d": 4})
        async with storage.transaction() as txn:
            await txn.put({"b": 20, "bb": 25})
            assert await txn.delete(["a", "c", "nope"]) == 2
            assert await txn.get("b") == 20
            assert await txn.get("a") is None
            assert await txn.get(["a", "b", "d"]) == {"b": 20, "d": 4}
            assert await txn.list() == {"b": 20, "bb": 25, "d": 4}
            assert await txn.list(limit=2) == {"b": 20, "bb": 25}
            assert await txn.list(reverse=True, limit=2) == {"d": 4, "bb": 25}
            assert await txn.list(prefix="b") == {"b": 20, "bb": 25}


async def test_transactions_on_one_storage_run_one_after_another(url):
    async with room_storage(url) as storage:
        await storage.put("n", 0)

        async def increment():
            async with storage.transaction() as txn:
                value = await txn.get("n")
                await asyncio.sleep(0)
                await txn.put("n", value + 1)

        await asyncio.gather(*(increment() for _ in range(10)))
        assert await storage.get("n") == 10


# --- Validation ---------------------------------------------------------------------------------


async def test_bad_value_raises_type_error_and_writes_nothing(url):
    async with room_storage(url) as storage:
        with pytest.raises(TypeError, match="'bad'"):
            await storage.put({"good": 1, "bad": object()})
        with pytest.raises(TypeError, match="'nan'"):
            await storage.put("nan", float("nan"))
        async with storage.transaction() as txn:
            with pytest.raises(TypeError, match="'bad'"):
                await txn.put("bad", {1, 2})
        assert await storage.list() == {}


async def test_oversize_key_or_value_raises_value_error(url):
    async with room_storage(url) as storage:
        await storage.put("é" * (MAX_KEY_BYTES // 2), 1)  # exactly at the limit
        with pytest.raises(ValueError, match="key"):
            await storage.put("é" * (MAX_KEY_BYTES // 2) + "x", 1)
        with pytest.raises(ValueError, match="empty"):
            await storage.put("", 1)
        await storage.put("max", b"x" * MAX_VALUE_BYTES)
        with pytest.raises(ValueError, match="limit"):
            await storage.put("big", b"x" * (MAX_VALUE_BYTES + 1))
        with pytest.raises(ValueError, match="limit"):
            await storage.put("big", "x" * MAX_VALUE_BYTES)  # JSON quotes push it over
        assert await storage.get("big") is None
        assert len(await storage.get("max")) == MAX_VALUE_BYTES


# --- Alarms and sync ----------------------------------------------------------------------------


async def test_alarms(url):
    changes = []
    async with opened(url) as backend:
        storage = Storage(backend, "chat", "lobby", changes.append)
        other = Storage(backend, "counter", "c1")
        assert await storage.get_alarm() is None
        await storage.set_alarm(1_700_000_000_000)
        await other.set_alarm(5.5)
        assert await storage.get_alarm() == 1_700_000_000_000
        assert sorted(await backend.alarms()) == [
            ("chat", "lobby", 1_700_000_000_000),
            ("counter", "c1", 5.5),
        ]
        await storage.delete_alarm()
        assert await storage.get_alarm() is None
        assert await backend.alarms() == [("counter", "c1", 5.5)]
        with pytest.raises(TypeError):
            await storage.set_alarm("soon")
    assert changes == [1_700_000_000_000, None]


async def test_set_alarm_with_datetime(url):
    aware = datetime.datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.UTC)
    naive = datetime.datetime(2030, 1, 2, 3, 4, 5)
    async with room_storage(url) as storage:
        await storage.set_alarm(aware)
        assert await storage.get_alarm() == 1_893_553_445_678
        await storage.set_alarm(naive)
        assert await storage.get_alarm() == naive.timestamp() * 1000


async def test_sync_waits_for_earlier_writes(url):
    async with room_storage(url) as storage:
        pending = asyncio.ensure_future(storage.put("k", 1))
        await asyncio.sleep(0)  # let the put be issued
        await storage.sync()
        assert pending.done()
        assert await storage.get("k") == 1


# --- SQLite specifics ---------------------------------------------------------------------------


async def test_sqlite_data_survives_reopen(sqlite_url):
    async with room_storage(sqlite_url) as storage:
        await storage.put({"a": [1], "b": b"bin"})
        await storage.set_alarm(42)
    async with room_storage(sqlite_url) as storage:
        assert await storage.list() == {"a": [1], "b": b"bin"}
        assert await storage.get_alarm() == 42


async def test_sqlite_pragmas(sqlite_url, tmp_path):
    async with opened(sqlite_url) as backend:
        # Ask the backend's own connection, through its worker queue.
        synchronous = await backend._submit(
            lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]
        )
        assert synchronous == 2  # FULL
        other = sqlite3.connect(tmp_path / "party.db")
        try:
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            other.close()


async def test_sqlite_group_commit(sqlite_url):
    async with opened(sqlite_url) as backend:
        before = backend.commits
        await asyncio.gather(*(backend.put(SCOPE, {f"k{i}": i}) for i in range(200)))
        assert backend.commits - before <= 2
        assert len(await backend.list(SCOPE)) == 200


async def test_sqlite_ops_issued_during_a_batch_form_the_next_batch(sqlite_url):
    async with opened(sqlite_url) as backend:
        running, release = threading.Event(), threading.Event()

        def hold(conn):  # occupies the worker thread until the test releases it
            running.set()
            release.wait(10)

        before = backend.commits
        first = backend._submit(hold)
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, running.wait, 10)
        later = [asyncio.ensure_future(backend.put(SCOPE, {f"k{i}": i})) for i in range(50)]
        await asyncio.sleep(0)  # one loop turn: every put is now queued behind the held batch
        assert not any(task.done() for task in later)
        release.set()
        await asyncio.gather(first, *later)
        assert backend.commits - before == 2  # the held batch, then all 50 puts together
        assert len(await backend.list(SCOPE)) == 50


async def test_sqlite_failed_batch_fails_all_its_operations(sqlite_url):
    async with opened(sqlite_url) as backend:
        await backend.put(SCOPE, {"earlier": 1})
        # Cap the file at its current size so the next big write hits SQLITE_FULL.
        await backend._submit(
            lambda conn: conn.execute(
                f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}"
            )
        )
        results = await asyncio.gather(
            backend.put(SCOPE, {"small": 1}),
            backend.put(SCOPE, {"big": b"x" * 1_000_000}),
            return_exceptions=True,
        )
        assert all(isinstance(r, sqlite3.Error) for r in results), results
        assert await backend.list(SCOPE) == {"earlier": 1}
        await backend.put(SCOPE, {"later": 2})  # the backend keeps working afterwards
        assert await backend.list(SCOPE) == {"earlier": 1, "later": 2}


CHILD = """
import asyncio, sys
from jupyter_party.runtime.storage import open_backend

async def main():
    backend = open_backend(sys.argv[1])
    i = 0
    while True:
        await backend.put(("p", "r"), {f"k{i}": i})
        print(i, flush=True)
        i += 1

asyncio.run(main())
"""


async def test_sqlite_acknowledged_writes_survive_sigkill(sqlite_url):
    for _ in range(5):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, sqlite_url],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            acked = [int(child.stdout.readline()) for _ in range(50)]
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        async with opened(sqlite_url) as backend:
            stored = await backend.get(("p", "r"), [f"k{i}" for i in acked])
            assert stored == {f"k{i}": i for i in acked}
            await backend.delete_all(("p", "r"))
