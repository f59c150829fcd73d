"""How notebook-side code finds its Jupyter server: explicit arguments, else the environment.

Order: explicit `server`/`token`; `JUPYTER_PARTY_URL` / `JUPYTER_PARTY_TOKEN` (any process:
VS Code, a remote kernel, a script); the running server whose pid is the kernel's
`JPY_PARENT_PID`; JupyterHub's `JUPYTERHUB_SERVICE_URL` (or `JUPYTERHUB_HOST` +
`JUPYTERHUB_SERVICE_PREFIX`) with `JUPYTERHUB_API_TOKEN`; the only running server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

_WILDCARDS = ("", "0.0.0.0", "::", "*")
URL_VAR = "JUPYTER_PARTY_URL"
TOKEN_VAR = "JUPYTER_PARTY_TOKEN"
_HINT = (
    f"set {URL_VAR}=http://host:port/base_url/ and {TOKEN_VAR}=<that server's token> in this "
    "process's environment, or pass server= and token="
)


class ServerNotFound(LookupError):
    """No Jupyter server could be found, or it cannot be used with a token."""


@dataclass(frozen=True)
class ServerInfo:
    """Where a Jupyter server is: `url` is its http(s) base URL (ending with '/')."""

    url: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        """The token as a request header: every request of the kernel clients carries it."""
        return {"Authorization": f"token {self.token}"}

    def room_url(self, party: str, room: str) -> str:
        """The WebSocket URL of a room (without query)."""
        return self.websocket_url(f"parties/{quote(party, safe='')}/{quote(room, safe='')}")

    def websocket_url(self, path: str) -> str:
        """The WebSocket URL of `path` under the server's base URL."""
        scheme, rest = self.url.split("://", 1)
        ws = {"http": "ws", "https": "wss"}.get(scheme, scheme)
        return f"{ws}://{rest}{path}"


def find_server(server: str | None = None, token: str | None = None) -> ServerInfo:
    """Find the Jupyter server to talk to; explicit `server` and `token` win, then the
    `JUPYTER_PARTY_URL` / `JUPYTER_PARTY_TOKEN` environment variables, then discovery.

    Raises ServerNotFound with a message saying what to set instead.
    """
    server = server or os.environ.get(URL_VAR) or None
    if token is None:
        token = os.environ.get(TOKEN_VAR) or None
    if server:
        url = _normalise(server)
        if token is None:
            token = _token_for(url)
        return ServerInfo(url, _check_token(token, url))
    found = _discover()
    if found is None:
        raise ServerNotFound(
            "no Jupyter server found (this process was not started by a Jupyter server, and "
            f"none runs here): {_HINT}"
        )
    url, discovered_token = found
    return ServerInfo(url, _check_token(token if token is not None else discovered_token, url))


def _discover() -> tuple[str, str] | None:
    servers = _running_servers()
    parent = os.environ.get("JPY_PARENT_PID", "")
    if parent.isdigit():
        for info in servers:
            if info.get("pid") == int(parent):
                return _server_url(info), info.get("token") or ""
    hub_token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    hub_url = os.environ.get("JUPYTERHUB_SERVICE_URL", "")
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "")
    hub_host = os.environ.get("JUPYTERHUB_HOST", "")
    if hub_token and (hub_url or (prefix and hub_host)):
        return _normalise(hub_url or hub_host.rstrip("/") + "/" + prefix.lstrip("/")), hub_token
    if len(servers) == 1:
        return _server_url(servers[0]), servers[0].get("token") or ""
    return None


def _running_servers() -> list[dict[str, Any]]:
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:  # pragma: no cover - jupyter_server is a dependency
        return []
    return list(list_running_servers())


def _server_url(info: dict[str, Any]) -> str:
    if info.get("sock"):
        raise ServerNotFound(
            f"the Jupyter server listens on a unix socket ({info['sock']}), which this client "
            f"cannot use: {_HINT}"
        )
    host = info.get("hostname") or ""
    host = "127.0.0.1" if host in _WILDCARDS else host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    scheme = "https" if info.get("secure") else "http"
    base = "/" + (info.get("base_url") or "/").strip("/") + "/"
    return f"{scheme}://{host}:{info['port']}{base.replace('//', '/')}"


def _token_for(url: str) -> str | None:
    """The token of a running server at `url` (the same host and port), else the hub's, but
    only for the hub's own addresses: the hub token must never reach another server."""
    for info in _running_servers():
        try:
            if _server_url(info) == url or info.get("url", "").rstrip("/") == url.rstrip("/"):
                return info.get("token") or ""
        except ServerNotFound:
            continue
    if _origin(url) in _hub_origins():
        return os.environ.get("JUPYTERHUB_API_TOKEN")
    return None


def _hub_origins() -> set[str]:
    """scheme://host:port of the hub and of this user's server, from JupyterHub's variables."""
    names = ("JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_HOST", "JUPYTERHUB_API_URL")
    return {_origin(os.environ[name]) for name in names if "://" in os.environ.get(name, "")}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme.lower(), parts.scheme.lower())
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def _normalise(server: str) -> str:
    scheme, sep, rest = server.partition("://")
    if not sep:
        raise ServerNotFound(f"server must be a URL such as http://localhost:8888/, not {server!r}")
    scheme = {"ws": "http", "wss": "https"}.get(scheme.lower(), scheme.lower())
    if scheme not in ("http", "https"):
        raise ServerNotFound(f"server must be an http(s) URL, not {server!r}")
    return f"{scheme}://{rest.rstrip('/')}/"


def _check_token(token: str | None, url: str) -> str:
    if not token:
        raise ServerNotFound(
            f"no token for the Jupyter server at {url} (it may use a password or no "
            f"authentication): set {TOKEN_VAR}=<its token>, or pass token="
        )
    return token
