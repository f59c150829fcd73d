"""What party code prints, logs and raises, kept per party and streamed back.

Hooks run with `current_room` set to `(sink, party, room id)`; tasks that party code starts
from a hook inherit it. While it is set, `print` output (of party modules) and log records go
to the sink: in a worker process, the uplink to the server process; there, each party's
bounded `PartyLog`, so the notebook that deployed a party sees its output instead of a server
log, and it outlives a worker that crashed.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any, Protocol


class LogSink(Protocol):
    """Where party output goes."""

    def record(self, party: str, room: str | None, kind: str, text: str) -> None: ...


current_room: ContextVar[tuple[LogSink, str, str] | None] = ContextVar(
    "jupyter_party_room", default=None
)

MAX_RECORDS = 1000


@dataclass(frozen=True)
class Record:
    seq: int
    time: float
    room: str | None
    kind: str  # "print", "log" or "error"
    text: str
    node: str | None = None  # in a party cluster: the node the record was made on


class PartyLog:
    """One party's most recent records, numbered, with waiting for new ones."""

    def __init__(self, maxlen: int = MAX_RECORDS) -> None:
        self.records: deque[Record] = deque(maxlen=maxlen)
        self._seq = 0
        self._waiters: list[asyncio.Future[None]] = []

    def append(self, kind: str, room: str | None, text: str, node: str | None = None) -> None:
        self._seq += 1
        self.records.append(Record(self._seq, time.time(), room, kind, text, node))
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def after(self, seq: int) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.records if r.seq > seq]

    @property
    def last(self) -> int:
        return self._seq

    async def wait(self, seq: int, timeout: float) -> None:
        """Return once a record newer than `seq` exists, or after `timeout` seconds."""
        if self._seq > seq or timeout <= 0:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait([waiter], timeout=timeout)
        finally:  # timed out, or the client went away: forget it
            if waiter in self._waiters:
                self._waiters.remove(waiter)


class PartyLogs(dict[str, PartyLog]):
    """Every party's log, created on first use. In a party cluster, `node` names this node
    and `shared` sends each record made here to the other nodes (cluster.py)."""

    node: str | None = None
    shared: Callable[[str, str | None, str, str], None] | None = None

    def __missing__(self, party: str) -> PartyLog:
        log = self[party] = PartyLog()
        return log

    def record(self, party: str, room: str | None, kind: str, text: str) -> None:
        """Append one record to `party`'s log."""
        self[party].append(kind, room, text, self.node)
        if self.shared is not None:
            self.shared(party, room, kind, text)


def error_text(hook: str, error: BaseException) -> str:
    """How a handler error reads in the party's log: the hook, then the traceback."""
    text = "".join(traceback.format_exception(error)).rstrip()
    return f"{hook} raised:\n{text}"


def party_print(
    *args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
) -> None:
    """`print` as party modules see it: printed as usual, and kept in the party's log.

    The registry puts it in each party module's globals, so it works whatever a host
    process (a test runner, a notebook) does with sys.stdout.
    """
    builtins.print(*args, sep=sep, end=end, file=file, flush=flush)
    where = current_room.get()
    if where is not None and file in (None, sys.stdout, sys.stderr):
        sink, party, room = where
        for line in (" " if sep is None else sep).join(map(str, args)).split("\n"):
            sink.record(party, room, "print", line)


class _LogHandler(logging.Handler):
    """Log records emitted while a party hook runs. Our own error reports are left out:
    they are recorded with their traceback by `PartyLogs.error`."""

    def emit(self, record: logging.LogRecord) -> None:
        where = current_room.get()
        if where is not None and record.name != "jupyter_party":
            sink, party, room = where
            sink.record(party, room, "log", f"{record.levelname} {record.getMessage()}")


def install() -> None:
    """Capture party log records process-wide (once); `current_room` routes them per party."""
    root = logging.getLogger()
    if not any(isinstance(handler, _LogHandler) for handler in root.handlers):
        root.addHandler(_LogHandler())
        logging.getLogger("jupyter_party_parties").setLevel(logging.INFO)
