"""`share_link(...)`: ask the Jupyter server for a room's share link."""

from __future__ import annotations

import warnings
from typing import Any

from .admin import AdminError, admin_call
from .discovery import find_server


class ShareLinkError(RuntimeError):
    """The server refused to issue a share link; the message says why."""


class LocalShareLinkWarning(UserWarning):
    """A share link on a loopback address: only this machine can open it."""


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
    `expires_in` seconds, with `access` "write" or "read". Revoke it with the admin API.

    The link is built on the server's public address (`PartyApp.public_url`, else
    JupyterHub's); one that only this machine can open comes with a LocalShareLinkWarning.
    """
    answer = request_share(party, room, access, expires_in, server=server, token=token)
    if answer.get("local"):
        warnings.warn(
            f"{answer['url'].split('?')[0]} can only be opened on the server's own machine: "
            "set PartyApp.public_url to the address others reach the server at (on JupyterHub, "
            "set JupyterHub.public_url), or make the link in the browser (the Parties panel, or "
            "a room console's Share link button)",
            LocalShareLinkWarning,
            stacklevel=2,
        )
    return answer["url"]


def request_share(
    party: str,
    room: str,
    access: str = "write",
    expires_in: float = 24 * 3600,
    *,
    server: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """The share API's whole answer (`url`, `local`, `id`, `expires`, ...); see share_link."""
    info = find_server(server, token)
    body = {"party": party, "room": room, "access": access, "expires_in": expires_in}
    try:
        return admin_call(info, "POST", "share", body)
    except AdminError as error:
        message = f"{info.url} refused the share link ({error.status}): {error}"
        raise ShareLinkError(message) from None
