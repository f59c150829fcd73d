"""`logs(party)`: what a party printed, logged and raised, from the server's admin API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .admin import AdminError, admin_call_async
from .discovery import ServerInfo, find_server


async def fetch_logs(
    info: ServerInfo, party: str, after: int = 0, wait: float = 0
) -> tuple[int, list[dict[str, Any]], int]:
    """One call of `GET party-api/parties/PARTY/logs`: (HTTP status, records, next cursor);
    status 599 when the server cannot be reached.

    With `wait`, the server holds the request until a record newer than `after` exists.
    """
    path = f"parties/{quote(party, safe='')}/logs?after={after}&wait={wait:g}"
    try:
        body = await admin_call_async(info, "GET", path, timeout=wait + 15)
    except AdminError as error:
        return error.status, [], after
    except ConnectionError:
        return 599, [], after
    return 200, body.get("records", []), int(body.get("next", after))


async def logs(
    party: str,
    *,
    after: int = 0,
    wait: float = 0,
    server: str | None = None,
    token: str | None = None,
) -> list[dict[str, Any]]:
    """The party's recent output records (`seq`, `time`, `room`, `kind`, `text`) newer than
    `after`; with `wait`, waits up to that many seconds for a new one."""
    info = find_server(server, token)
    status, records, _ = await fetch_logs(info, party, after, wait)
    if status != 200:
        raise ConnectionError(f"{info.url} answered {status} for the logs of party {party!r}")
    return records
