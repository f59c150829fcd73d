"""`share_link(...)`: ask the Jupyter server for a room's share link."""

from __future__ import annotations

from .admin import AdminError, admin_call
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
    try:
        return admin_call(info, "POST", "share", body)["url"]
    except AdminError as error:
        message = f"{info.url} refused the share link ({error.status}): {error}"
        raise ShareLinkError(message) from None
