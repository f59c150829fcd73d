"""Fixtures: a real Jupyter server with jupyter_party, and real WebSocket/HTTP clients."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

PARTIES = Path(__file__).parent / "parties"


def require(available: bool, reason: str) -> None:
    """Skip a module whose tools are missing on a developer's machine, but fail in CI
    (`CI` is set), where .ci/run installs them: a green CI must not hide skipped tests."""
    if not available:
        if os.environ.get("CI"):
            pytest.fail(f"required in CI: {reason}", pytrace=False)
        pytest.skip(reason, allow_module_level=True)


TIMEOUT = 10.0


@pytest.fixture
def workers() -> int:
    """`PartyApp.workers` of the test server. Modules that override this fixture with
    `params=[1, 0]` run each test with rooms in a worker process and in the server process."""
    return 1


@pytest.fixture
def party_config(request, workers) -> dict[str, Any]:
    """PartyApp traits for the test server. A test sets more with the `party_config` marker,
    `@pytest.mark.party_config(room_idle_timeout=0.05)`: limits are configured before the
    server starts, never changed while it runs (the rooms may live in other processes)."""
    from jupyter_party.extension import PartyApp

    config: dict[str, Any] = {"parties_dir": str(PARTIES), "workers": workers}
    traits = PartyApp.class_traits(config=True)
    for marker in reversed(list(request.node.iter_markers("party_config"))):  # nearest wins
        unknown = set(marker.kwargs) - set(traits)
        assert not unknown, f"party_config marker: no PartyApp trait {sorted(unknown)}"
        config.update(marker.kwargs)
    return config


@pytest.fixture
def jp_server_config(tmp_path, party_config):
    party_config.setdefault("storage_url", f"sqlite:///{tmp_path / 'rooms.db'}")
    return {"ServerApp": {"jpserver_extensions": {"jupyter_party": True}}, "PartyApp": party_config}


@pytest.fixture
def http_server(http_server, jp_base_url):
    """pytest-jupyter's HTTP server, taking room connections as the extension has a Jupyter
    server take them (web/listener.py): room upgrades are read as they arrive."""
    from jupyter_server.utils import url_path_join

    from jupyter_party.web.listener import take_room_connections
    from jupyter_party.web.routes import ROOM_PREFIXES

    take_room_connections(http_server, [url_path_join(jp_base_url, p) for p in ROOM_PREFIXES])
    return http_server


class Client:
    """A WebSocket client whose reads time out instead of hanging a test."""

    def __init__(self, ws: WebSocketClientConnection) -> None:
        self.ws = ws

    async def recv(self, timeout: float = TIMEOUT) -> str | bytes | None:
        return await asyncio.wait_for(self.ws.read_message(), timeout)

    async def recv_json(self, timeout: float = TIMEOUT) -> Any:
        message = await self.recv(timeout)
        assert isinstance(message, str), f"expected a JSON text message, got {message!r}"
        return json.loads(message)

    async def send(self, message: str | bytes | Any) -> None:
        if not isinstance(message, str | bytes):
            message = json.dumps(message)
        await self.ws.write_message(message, binary=isinstance(message, bytes))

    async def closed(self, timeout: float = TIMEOUT) -> tuple[int | None, str | None]:
        """Read until the server closes; return (code, reason)."""
        while await self.recv(timeout) is not None:
            pass
        return self.ws.close_code, self.ws.close_reason

    def close(self, code: int = 1000) -> None:
        self.ws.close(code)

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self.ws.close_reason


@pytest.fixture
def url(jp_serverapp, http_server_client, jp_http_port, jp_base_url):
    """`url(path, scheme)`: an absolute URL under the server's base_url; path is sent raw."""

    def make(path: str, scheme: str = "http") -> str:
        return f"{scheme}://localhost:{jp_http_port}{jp_base_url}{path.lstrip('/')}"

    return make


@pytest.fixture
def connect(jp_serverapp, url, jp_auth_header):
    """`await connect(path, headers=..., auth=True)`: open a WebSocket to a raw path."""
    clients: list[Client] = []

    async def open_(path: str, *, headers: dict[str, str] | None = None, auth: bool = True):
        headers = dict(headers or {})
        if auth:
            headers.update(jp_auth_header)
        request = HTTPRequest(url(path, "ws"), headers=headers, connect_timeout=TIMEOUT)
        client = Client(await websocket_connect(request))
        clients.append(client)
        return client

    yield open_
    for client in clients:
        client.close()


@pytest.fixture
def share(jp_fetch):
    """`await share(party, room, access, expires_in)`: a share grant, with its `token`."""

    async def issue(party="probe", room="r1", access="write", expires_in=3600):
        body = {"party": party, "room": room, "access": access, "expires_in": expires_in}
        response = await jp_fetch("party-api", "share", method="POST", body=json.dumps(body))
        assert response.code == 201
        return json.loads(response.body)

    return issue


@pytest.fixture
def http(jp_serverapp, url, jp_auth_header):
    """`await http(path, method=..., body=..., auth=True, follow=True)`: an HTTP request that
    never raises."""

    async def fetch(
        path: str,
        *,
        method: str = "GET",
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        follow: bool = True,
    ) -> HTTPResponse:
        headers = dict(headers or {})
        if auth:
            headers.update(jp_auth_header)
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        request = HTTPRequest(
            url(path),
            method=method,
            body=body,
            headers=headers,
            request_timeout=TIMEOUT,
            follow_redirects=follow,
        )
        return await AsyncHTTPClient().fetch(request, raise_error=False)

    return fetch


class LiveRooms:
    """The server's live rooms, as its admin API lists them (`GET party-api/rooms`).

    `await live_rooms()` is the set of `(party, room)` pairs; `has`, `gone` and `connections`
    ask about one room, and suit `eventually`: `await eventually(lambda: live_rooms.gone(...))`.
    """

    def __init__(self, http) -> None:
        self._http = http

    async def listing(self) -> dict[tuple[str, str], dict[str, Any]]:
        response = await self._http("party-api/rooms")
        assert response.code == 200, response.body
        return {(r["party"], r["room"]): r for r in json.loads(response.body)["rooms"]}

    async def __call__(self) -> set[tuple[str, str]]:
        return set(await self.listing())

    async def has(self, party: str, room: str) -> bool:
        return (party, room) in await self.listing()

    async def gone(self, party: str, room: str) -> bool:
        return (party, room) not in await self.listing()

    async def connections(self, party: str, room: str) -> int | None:
        """The room's open connections, or None if it is not live."""
        entry = (await self.listing()).get((party, room))
        return None if entry is None else entry["connections"]


@pytest.fixture
def live_rooms(http) -> LiveRooms:
    return LiveRooms(http)


async def eventually(predicate, timeout: float = TIMEOUT, message: str = "") -> None:
    """Wait until `predicate()` is true, checking every few milliseconds, or fail the test.
    `predicate` may be async (or return an awaitable, e.g. `lambda: live_rooms.gone(...)`)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {message or predicate}")
        await asyncio.sleep(0.01)


# -- real kernels ------------------------------------------------------------------------------

KERNEL_TIMEOUT = 90.0


class Kernel:
    """A real ipykernel; every iopub message is recorded in `messages`."""

    def __init__(self, manager, client) -> None:
        self.manager, self.client = manager, client
        self.messages: list[dict] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            self.messages.append(await self.client.get_iopub_msg())

    def outputs(self, msg_id: str) -> list[dict]:
        return [m for m in self.messages if m["parent_header"].get("msg_id") == msg_id]

    async def run(self, code: str, timeout: float = 60.0) -> tuple[str, str]:
        """Execute a cell; returns (msg_id, its output text). Fails the test on an error."""
        msg_id = self.client.execute(textwrap.dedent(code))
        deadline = time.monotonic() + timeout
        while True:
            reply = await self.client.get_shell_msg(timeout=max(deadline - time.monotonic(), 1))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        await eventually(
            lambda: any(
                m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"
                and m["parent_header"].get("msg_id") == msg_id
                for m in self.messages
            ),
            message="kernel idle",
        )
        text = output_text(self.outputs(msg_id))
        if reply["content"]["status"] != "ok":
            pytest.fail(f"cell failed:\n{code}\n{text}")
        return msg_id, text

    async def stop(self) -> None:
        self._reader.cancel()
        self.client.stop_channels()
        await self.manager.shutdown_kernel(now=True)


def output_text(messages: list[dict]) -> str:
    parts = []
    for message in messages:
        content = message["content"]
        if message["msg_type"] == "stream":
            parts.append(content["text"])
        elif message["msg_type"] in ("display_data", "update_display_data", "execute_result"):
            parts.append(content["data"].get("text/plain", ""))
        elif message["msg_type"] == "error":
            parts.append("\n".join(content["traceback"]))
    return "\n".join(parts)


@pytest.fixture
def kernels(jp_asyncio_loop):
    """`await start()`: a started kernel of this Python (/work/venv), stopped after the test."""
    from jupyter_client import AsyncKernelManager

    started: list[Kernel] = []

    async def start() -> Kernel:
        manager = AsyncKernelManager(kernel_name="python3")
        await manager.start_kernel()
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=KERNEL_TIMEOUT)
        kernel = Kernel(manager, client)
        started.append(kernel)
        return kernel

    yield start
    for kernel in started:
        jp_asyncio_loop.run_until_complete(kernel.stop())
