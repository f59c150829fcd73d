"""Calls to the server's admin API (`{base}party-api/...`) from a kernel or a script: one
JSON request, authenticated with the Jupyter token (blocking, or on the event loop), and one
error type; and the
listings and `undeploy` built on it (what `jupyter party list | rooms | undeploy` print)."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from .discovery import ServerInfo, find_server


class AdminError(RuntimeError):
    """The server answered an admin call with an error: `status`, and its JSON `detail`
    (Jupyter's API errors carry a `message`; a refused deploy an `error` and a `traceback`)."""

    def __init__(self, status: int, message: str, detail: dict[str, Any]) -> None:
        super().__init__(message)
        self.status, self.detail = status, detail


def admin_call(
    info: ServerInfo,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> Any:
    """`method` `{info.url}party-api/{path}` with `body` as JSON; the decoded answer.

    Raises AdminError for an HTTP error, ConnectionError when the server cannot be reached.
    """
    url, headers, data = _request(info, path, body)
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise _error(error.code, error.read(), str(error.reason)) from None
    except urllib.error.URLError as error:
        raise _unreachable(info, error.reason) from None


async def admin_call_async(
    info: ServerInfo,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> Any:
    """`admin_call` on the running event loop (a kernel's), for calls that must not block it,
    such as long polls; the same answer and errors."""
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    url, headers, data = _request(info, path, body)
    request = HTTPRequest(
        url,
        method=method,
        headers=headers,
        body=data,
        request_timeout=timeout,
        connect_timeout=min(timeout, 10.0),
        allow_nonstandard_methods=True,
    )
    response = await AsyncHTTPClient().fetch(request, raise_error=False)
    if response.code == 599:
        raise _unreachable(info, response.error)
    if response.code >= 400:
        raise _error(response.code, response.body or b"", response.reason or "")
    return json.loads(response.body)


def _request(
    info: ServerInfo, path: str, body: dict[str, Any] | None
) -> tuple[str, dict[str, str], bytes | None]:
    """The URL, headers (the Jupyter token) and body of one admin call."""
    headers = {**info.auth, "Content-Type": "application/json"}
    return (
        f"{info.url}party-api/{path}",
        headers,
        None if body is None else json.dumps(body).encode(),
    )


def _error(status: int, raw: bytes, reason: str) -> AdminError:
    text = raw.decode("utf-8", "replace")
    detail: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        loaded = json.loads(text)
        detail = loaded if isinstance(loaded, dict) else {}
    message = detail.get("error") or detail.get("message") or text.strip() or reason
    return AdminError(status, str(message), detail)


def _unreachable(info: ServerInfo, reason: object) -> ConnectionError:
    return ConnectionError(f"cannot reach the Jupyter server at {info.url}: {reason}")


def parties(*, server: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    """The server's parties: `name`, `source` (file or entry point), `kind`, and `error` for
    those that failed to load."""
    return admin_call(find_server(server, token), "GET", "parties")["parties"]


def rooms(
    party: str | None = None, *, server: str | None = None, token: str | None = None
) -> list[dict[str, Any]]:
    """The live rooms (of `party`, or all): `party`, `room`, `connections`, traffic."""
    listed = admin_call(find_server(server, token), "GET", "rooms")["rooms"]
    return [room for room in listed if party is None or room["party"] == party]


def undeploy(name: str, *, server: str | None = None, token: str | None = None) -> int:
    """Remove party `name` from the server: its file leaves `parties_dir` and its clients are
    closed with 1012 (storage is kept). Returns how many clients were closed. Installed
    parties (entry points) cannot be undeployed."""
    info = find_server(server, token)
    return admin_call(info, "DELETE", f"parties/{quote(name, safe='')}")["closed"]
