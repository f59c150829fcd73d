"""A party worker process: `python -m jupyter_party.runtime.worker FD`.

The supervisor (supervisor.py) starts it with one end of a socket pair as FD and sends HELLO
with the configuration; the worker loads the parties, opens storage, arms the alarms of the
rooms it owns, answers HELLO, and then serves its session until the channel closes. It never
outlives the server process: the kernel kills it when its parent dies (Linux), and it exits when
the channel reaches end of file.

Two watchdogs run in here: `faulthandler` prints the Python traceback of a crash (segfault,
abort) to stderr, where the supervisor reads it; and the event loop re-arms a faulthandler
timer every tick, so a loop stuck longer than `handler_timeout` dumps its traceback and exits
even if the stuck code holds the GIL. The board (board.py) tells the supervisor which party,
room and hook that was.
"""

from __future__ import annotations

import asyncio
import ctypes
import faulthandler
import logging
import os
import signal
import socket
import sys
from typing import Any

import jupyter_server.auth  # noqa: F401  now, not by the first room's request (some 20 ms)

from ..protocol import wire
from . import partylog, tuning
from .board import TICK, Board
from .channel import SessionLink
from .leases import RoomLeases
from .limits import Limits
from .registry import Registry
from .router import placement
from .session import Session
from .stall import Steps
from .storage import open_backend

_PR_SET_PDEATHSIG = 1


def main() -> None:
    fd = int(sys.argv[1])
    _die_with_parent()
    faulthandler.enable(file=sys.stderr, all_threads=True)
    asyncio.run(_serve(fd))


async def _serve(fd: int) -> None:
    loop = asyncio.get_running_loop()
    link = SessionLink()
    sock = socket.socket(fileno=fd)
    await loop.create_unix_connection(lambda: link.channel, sock=sock)
    config: dict[str, Any] = wire.check_hello(wire.Frame(wire.HELLO, await link.hello, b""))[1]
    _forward_logs(link, config["log_level"])
    partylog.install()
    board = Board(config["board"])
    _tick(loop, board, config["handler_timeout"])
    index, workers = config["index"], config["workers"]
    backend = open_backend(config["storage_url"])
    leases = None
    if config["redis_url"]:
        leases = RoomLeases(config["redis_url"], config["node"], config["lease_ttl"], backend)
    link.session = session = Session(
        link,
        Registry(config["parties_dir"]),
        backend,
        Limits(**config["limits"]),
        steps=Steps(config["limits"]["stall_warning"], board),
        env=config["env"],
        owns=lambda party, room: placement(party, room, workers) == index,
        leases=leases,
    )
    await session.start()
    tuning.settle_heap()
    link.channel.send(wire.HELLO, [wire.VERSION, os.getpid()])
    await link.channel.lost  # the server process closed the channel (or died)
    await session.close()


def _tick(loop: asyncio.AbstractEventLoop, board: Board, timeout: float) -> None:
    """Every TICK: show the supervisor a live loop, and push the stuck-loop alarm back."""
    board.beat()
    if timeout > 0:
        faulthandler.dump_traceback_later(timeout, exit=True, file=sys.stderr)
    loop.call_later(TICK, _tick, loop, board, timeout)


def _die_with_parent() -> None:
    """Ask Linux to kill this process when the server process dies, even a stuck loop."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # the channel's end of file still stops us
            pass
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(0)


class _Forward(logging.Handler):
    """Server log records made in the worker go to the server process's logging."""

    def __init__(self, link: SessionLink) -> None:
        super().__init__()
        self._link = link

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            fields = [record.name, record.levelno, record.getMessage(), record.exc_text]
            self._link.channel.send(wire.RECORD, fields)
        except Exception:
            self.handleError(record)


def _forward_logs(link: SessionLink, level: int) -> None:
    handler = _Forward(link)
    logger = logging.getLogger("jupyter_party")
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


if __name__ == "__main__":
    main()
