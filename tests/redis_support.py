"""A real ``redis-server`` for tests: its own free port and directory, started and stopped here."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import redis

from conftest import require

READY = "Ready to accept connections"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A redis-server process with an fsynced append-only file (``appendfsync always``)."""

    def __init__(self, directory: Path, *, appendonly: bool = True) -> None:
        self.directory = directory
        self.port = _free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart, on the same port and data) and return once it accepts clients."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always",
                "--save", "",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        seen = []
        # redis-server logs its readiness on stdout; a server that fails to start ends it.
        for line in self.process.stdout:
            seen.append(line)
            if READY in line:
                return
        raise RuntimeError("redis-server did not start:\n" + "".join(seen))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGKILL: a crash) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)
            self.process.stdout.close()
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


def start_redis(directory: Path, **options: bool) -> RedisServer:
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    server = RedisServer(directory, **options)
    server.start()
    return server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One redis-server for the session; `redis_url` empties it before each test."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def new_redis(tmp_path):
    """Start more redis-servers for one test: ``new_redis(appendonly=False)``; stopped after it."""
    servers = []

    def start(**options: bool) -> RedisServer:
        servers.append(start_redis(tmp_path / f"redis{len(servers)}", **options))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def redis_url(redis_server):
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url
