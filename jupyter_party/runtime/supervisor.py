"""`Supervisor`: starts the party workers, watches them, and restarts the ones that die.

A worker that crashes (segfault, `os._exit`, out of memory), that stays stuck in one step of
party code longer than `handler_timeout`, or that grows past `worker_memory_limit` is gone or
killed. Its sockets close with 1011 and a reason naming the party, room and hook it was running
(read from its board), the traceback it printed reaches that party's log, and a new worker
takes over its rooms: they restart from storage on their next event, alarms re-armed. A party
that keeps crashing its worker is paused for a while, doubling each time, so the other parties'
rooms keep being served.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from typing import Any

from ..protocol import wire
from . import metrics
from .board import SIZE, Board
from .channel import WorkerLink
from .partylog import PartyLogs
from .router import Router

log = logging.getLogger("jupyter_party")

CHECK = 0.25  # seconds between health checks of each worker
START_TIMEOUT = 120.0  # a worker loads every party before it is ready
STOP_TIMEOUT = 10.0  # for a worker to close its rooms and flush storage at shutdown
STUCK_GRACE = 2.0  # after handler_timeout, before the supervisor kills a worker itself
CRASH_MEMORY = 60.0  # seconds after which a party's earlier crashes are forgiven
MAX_PAUSE = 60.0
TAIL_LINES = 200


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.link: WorkerLink | None = None
        self.board: Board | None = None
        self.board_path = ""
        self.started = 0.0
        self.restarts = 0
        self.quick_deaths = 0
        self.last_exit: str | None = None
        self.cause: str | None = None  # why the supervisor killed it, if it did
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.ready = asyncio.Event()


class Supervisor:
    """The worker processes of one server, each owning the rooms `router.place` gives it."""

    def __init__(
        self,
        router: Router,
        logs: PartyLogs,
        config: dict[str, Any],
        workers: int,
        handler_timeout: float,
        memory_limit: int | None,
    ) -> None:
        self._router = router
        self._logs = logs
        self._config = config
        self._timeout = handler_timeout
        self._memory_limit = memory_limit
        self._workers = [_Worker(i) for i in range(workers)]
        self._crashes: dict[str, tuple[int, float]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    async def start(self) -> None:
        """Start every worker and wait until each is ready."""
        for worker in self._workers:
            self._spawn_task(self._run(worker))
        await asyncio.gather(*(w.ready.wait() for w in self._workers))

    def describe(self) -> list[dict[str, Any]]:
        """The workers, for the admin API: pid, restarts, and why the last one ended."""
        return [
            {
                "worker": w.index,
                "pid": w.process.pid if w.process is not None else None,
                "restarts": w.restarts,
                "last_exit": w.last_exit,
            }
            for w in self._workers
        ]

    async def stop(self) -> None:
        """Close each worker's channel (it closes its rooms and storage) and wait for it."""
        self._stopping = True
        for worker in self._workers:
            if worker.link is not None:
                worker.link.channel.close()
        for worker in self._workers:
            process = worker.process
            if process is not None and process.returncode is None:
                try:
                    await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        for task in self._tasks:
            task.cancel()
        for worker in self._workers:
            self._drop_board(worker)

    # -- one worker's life ------------------------------------------------------------------

    async def _run(self, worker: _Worker) -> None:
        """Start the worker, watch it, and start it again after it ends, until shutdown."""
        while not self._stopping:
            try:
                await self._start(worker)
                returncode = await self._watch(worker)
            except Exception as error:  # could not even start it: try again, slower
                log.error("party worker %d failed to start: %s", worker.index, error)
                returncode = None
            if self._stopping:
                return
            self._lost(worker, returncode)
            lived = time.monotonic() - worker.started
            worker.quick_deaths = worker.quick_deaths + 1 if lived < 5 else 0
            if worker.quick_deaths:
                await asyncio.sleep(min(0.25 * 2**worker.quick_deaths, 10.0))
            worker.restarts += 1
            metrics.WORKER_RESTARTS.inc()

    async def _start(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._drop_board(worker)
        fd, worker.board_path = tempfile.mkstemp(prefix="jupyter-party-worker-")
        os.ftruncate(fd, SIZE)
        os.close(fd)
        worker.board, worker.cause, worker.started = (
            Board(worker.board_path),
            None,
            time.monotonic(),
        )
        worker.tail.clear()
        with theirs:
            worker.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "jupyter_party.runtime.worker",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        self._spawn_task(self._read_stderr(worker, worker.process))
        worker.link = link = WorkerLink(self._router, worker.index)
        await loop.create_unix_connection(lambda: link.channel, sock=ours)
        config = {**self._config, "index": worker.index, "board": worker.board_path}
        link.channel.send(wire.HELLO, [wire.VERSION, config])
        exited = asyncio.ensure_future(worker.process.wait())
        waiting: list[asyncio.Future[Any]] = [link.hello, exited]
        try:
            await asyncio.wait(waiting, timeout=START_TIMEOUT, return_when="FIRST_COMPLETED")
        finally:
            exited.cancel()
        if not link.hello.done():
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()
            raise RuntimeError(
                "it ended while loading parties" if exited.done() else "it did not answer"
            )
        wire.check_hello(wire.Frame(wire.HELLO, link.hello.result(), b""))
        self._router.attach(worker.index, link)
        worker.ready.set()
        log.info("party worker %d started (pid %d)", worker.index, worker.process.pid)

    async def _watch(self, worker: _Worker) -> int:
        """Wait until the worker ends; kill it if it is stuck or too big. Its return code."""
        process, board = worker.process, worker.board
        assert process is not None and board is not None, "watching a worker that never started"
        beat, beat_at = board.heartbeat(), time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(process.wait()), CHECK)
            now = time.monotonic()
            if board.heartbeat() != beat:
                beat, beat_at = board.heartbeat(), now
            elif self._timeout > 0 and now - beat_at > self._timeout + STUCK_GRACE:
                self._kill(worker, "timeout")  # its own timer should have fired: it is frozen
            limit = self._memory_limit
            if limit and _rss(process.pid) > limit:
                self._kill(worker, "memory")

    def _kill(self, worker: _Worker, cause: str) -> None:
        worker.cause = worker.cause or cause
        if worker.process is not None:
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()

    def _lost(self, worker: _Worker, returncode: int | None) -> None:
        """The worker ended: say why, to its clients, the party's log, and the server log."""
        worker.ready.clear()
        step = worker.board.step() if worker.board is not None else None
        tail = "".join(worker.tail)
        if worker.cause == "memory":
            what = f"went over worker_memory_limit ({self._memory_limit} bytes)"
        elif worker.cause == "timeout" or "Timeout (" in tail:
            what = f"ran over handler_timeout ({self._timeout:g} s)"
        elif returncode is not None and returncode < 0:
            what = f"crashed its worker ({signal.Signals(-returncode).name})"
        else:
            what = f"ended its worker (exit code {returncode})"
        party = room = None
        if returncode is None:  # it never answered HELLO
            reason = f"party worker {worker.index} failed to start"
        elif step is not None:
            party, room, hook, _ = step
            where = f" room {room!r}" if room else ""
            reason = f"{hook} of party {party!r}{where} {what}"
        else:
            reason = f"party worker {worker.index}: {what.replace(' its worker', '')}"
        worker.last_exit = reason
        self._router.detach(worker.index, reason)
        pid = worker.process.pid if worker.process is not None else None
        log.error("party worker %d (pid %s) is gone: %s", worker.index, pid, reason)
        if party is not None:
            trace = _traceback(tail)
            self._logs.record(party, room, "error", reason + (f"\n{trace}" if trace else ""))
            self._pause(party, room)

    def _pause(self, party: str, room: str | None) -> None:
        """A party that keeps crashing its worker waits longer and longer before it runs."""
        count, last = self._crashes.get(party, (0, 0.0))
        now = time.monotonic()
        count = count + 1 if now - last < CRASH_MEMORY else 1
        self._crashes[party] = (count, now)
        if count > 1:
            pause = min(2.0 ** (count - 2), MAX_PAUSE)
            self._router.pause(party, pause)
            self._logs.record(
                party,
                room,
                "error",
                f"party {party!r} crashed its worker {count} times in a row: "
                f"paused for {pause:g} s",
            )

    async def _read_stderr(self, worker: _Worker, process: asyncio.subprocess.Process) -> None:
        """Pass the worker's stderr on, keeping its last lines (a crash's traceback)."""
        stderr = process.stderr
        assert stderr is not None, "the worker is started with stderr=PIPE"
        while line := await stderr.readline():
            text = line.decode("utf-8", "replace")
            if process is worker.process:
                worker.tail.append(text)
            sys.stderr.write(text)

    def _spawn_task(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _drop_board(self, worker: _Worker) -> None:
        if worker.board is not None:
            worker.board.close()
            worker.board = None
        if worker.board_path:
            with contextlib.suppress(OSError):
                os.unlink(worker.board_path)
            worker.board_path = ""


def _rss(pid: int) -> int:
    """Resident memory of process `pid` in bytes (Linux), 0 if unknown."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _traceback(tail: str) -> str:
    """What faulthandler printed for the crash or the timeout, from the worker's stderr."""
    for marker in ("Fatal Python error", "Timeout ("):
        at = tail.rfind(marker)
        if at >= 0:
            return tail[at:].strip()
    return ""
