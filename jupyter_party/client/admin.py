"""Calls to the server's admin API (`{base}party-api/...`) from a kernel or a script: one
blocking JSON request, authenticated with the Jupyter token, and one error type."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from typing import Any

from .discovery import ServerInfo


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
