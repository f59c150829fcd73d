"""Calls to the server's admin API (`{base}party-api/...`) from a kernel or a script: one
blocking JSON request, authenticated with the Jupyter token, and one error type; and the
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
    request = urllib.request.Request(
        f"{info.url}party-api/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {info.token}", "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raw = error.read().decode("utf-8", "replace")
        detail: dict[str, Any] = {}
        with contextlib.suppress(ValueError):
            loaded = json.loads(raw)
            detail = loaded if isinstance(loaded, dict) else {}
        message = detail.get("error") or detail.get("message") or raw.strip() or error.reason
        raise AdminError(error.code, str(message), detail) from None
    except urllib.error.URLError as error:
        raise ConnectionError(
            f"cannot reach the Jupyter server at {info.url}: {error.reason}"
        ) from None


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
