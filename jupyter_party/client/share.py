"""`share_link(...)`: ask the Jupyter server for a room's share link."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request

from .discovery import find_server


class ShareLinkError(RuntimeError):
    """The server refused to issue a share link; the message says why."""


def share_link(
    party: str,
    room: str,
    access: str = "write",
    expires_in: float = 24 * 3600,
    *,
    server: str | None = None,
    token: str | None = None,
) -> str:
    """Return a URL that opens `(party, room)` — and nothing else of the server — for
    `expires_in` seconds, with `access` "write" or "read". Revoke it with the admin API."""
    info = find_server(server, token)
    body = {"party": party, "room": room, "access": access, "expires_in": expires_in}
    request = urllib.request.Request(
        info.url + "party-api/share",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"token {info.token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["url"]
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")
        with contextlib.suppress(ValueError):  # Jupyter's API errors are JSON with a message
            detail = json.loads(detail).get("message") or detail
        message = f"{info.url} refused the share link ({error.code}): {detail}"
        raise ShareLinkError(message) from None
