"""`Request` and `Response`: what party hooks receive and return for HTTP and upgrades."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

from tornado.httputil import HTTPHeaders


@dataclass
class Request:
    """An HTTP request (or WebSocket upgrade request) addressed to a room.

    `path` is the part of the URL path after the room id: `""` at the room itself,
    `"/items/1"` for a sub-path. `url` is the full URL with its query (credentials removed).
    `user` is the Jupyter identity that made the request; `access` is "write", or "read" for
    a read-only share link.
    """

    method: str = "GET"
    url: str = ""
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    headers: HTTPHeaders = field(default_factory=HTTPHeaders)
    body: bytes = b""
    user: Any = None
    access: str = "write"

    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body or b"null")

    def copy(self, **changes: Any) -> Request:
        """A copy with `changes` applied and its own headers, for gates that rewrite requests."""
        headers = HTTPHeaders(changes.pop("headers", self.headers))
        return replace(self, headers=headers, query=dict(self.query), **changes)


@dataclass
class Response:
    """An HTTP response returned by `on_request`, `on_before_request` or `on_before_connect`."""

    body: str | bytes = ""
    status: int = 200
    headers: dict[str, str] | None = None

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        """A JSON response."""
        return cls(dumps(value), status, {"Content-Type": "application/json"})

    def body_bytes(self) -> bytes:
        """The body as bytes (str bodies are UTF-8)."""
        return self.body.encode("utf-8") if isinstance(self.body, str) else bytes(self.body)


def to_response(value: Any) -> Response:
    """Turn what `on_request` returned into a Response.

    A Response passes through; `str` becomes text/plain, `bytes` application/octet-stream,
    `None` an empty 204, and any other value JSON.
    """
    if isinstance(value, Response):
        return value
    if value is None:
        return Response(status=204)
    if isinstance(value, str):
        return Response(value, 200, {"Content-Type": "text/plain; charset=utf-8"})
    if isinstance(value, bytes | bytearray | memoryview):
        return Response(bytes(value), 200, {"Content-Type": "application/octet-stream"})
    return Response.json(value)


def dumps(value: Any) -> str:
    """Compact JSON text, as sent for dict and list messages."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- across the worker boundary: JSON-able headers plus the body as the frame's payload ------

#: Request headers party code never sees: the Jupyter token and login cookie stay with the server.
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "x-xsrftoken", "x-xsrf-token"})


def request_to_wire(request: Request) -> dict[str, Any]:
    """A request as JSON-able fields (its body travels separately, untouched)."""
    user = request.user
    return {
        "method": request.method,
        "url": request.url,
        "path": request.path,
        "query": request.query,
        "headers": [
            [k, v] for k, v in request.headers.get_all() if k.lower() not in CREDENTIAL_HEADERS
        ],
        "user": _user_fields(user) if is_dataclass(user) and not isinstance(user, type) else None,
        "access": request.access,
    }


def _user_fields(user: Any) -> dict[str, Any]:
    """The fields of Jupyter's `User` that `user` has: what `User(**fields)` takes back on the
    other side (a subclass's own fields would not fit there). Not `asdict`: 5x slower."""
    return {name: getattr(user, name, None) for name in _user_names()}


@functools.cache
def _user_names() -> tuple[str, ...]:
    from jupyter_server.auth import User

    return tuple(f.name for f in fields(User))


def request_from_wire(fields: dict[str, Any], body: bytes) -> Request:
    """The request `request_to_wire` described."""
    from jupyter_server.auth import User

    headers, seen = HTTPHeaders(), set()
    for name, value in fields["headers"]:  # `add` alone tests each name with a KeyError: 2x slower
        key = name.lower()
        if key in seen:
            headers.add(name, value)  # a repeated header keeps all its values
        else:
            seen.add(key)
            headers[name] = value
    user = fields.get("user")
    return Request(
        method=fields["method"],
        url=fields["url"],
        path=fields["path"],
        query=fields["query"],
        headers=headers,
        body=body,
        user=User(**user) if user is not None else None,
        access=fields["access"],
    )


def response_to_wire(response: Response) -> tuple[dict[str, Any], bytes]:
    fields = {
        "status": response.status,
        "headers": response.headers,
        "text": isinstance(response.body, str),
    }
    return fields, response.body_bytes()


def response_from_wire(fields: dict[str, Any], body: bytes) -> Response:
    return Response(
        body.decode("utf-8") if fields["text"] else body, fields["status"], fields["headers"]
    )
