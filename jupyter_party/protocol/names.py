"""Party names, room ids and room URL paths."""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote

PARTY_NAME = re.compile(r"[a-z0-9_-]{1,64}")
MAX_ROOM_ID_BYTES = 256
DEFAULT_PARTY = "main"


class InvalidName(ValueError):
    """A party name or room id that breaks the rules; the message says which rule."""


class RoomPath(NamedTuple):
    """The parts of a room URL: party, raw room id, and the rest of the path ('' or '/...')."""

    party: str
    room: str
    rest: str


def check_party_name(name: str) -> str:
    """Return `name` if it is a valid party name, else raise InvalidName."""
    if not PARTY_NAME.fullmatch(name):
        raise InvalidName(f"invalid party name {name[:80]!r}: expected ^[a-z0-9_-]{{1,64}}$")
    return name


def check_room_id(room: str) -> str:
    """Return `room` if it is a valid room id, else raise InvalidName.

    Room ids are taken raw from the URL, as PartyKit does; the percent-decoded form is checked
    too, so `%00` or `%2e%2e` cannot smuggle a control character or a dot segment past us.
    """
    if not room:
        raise InvalidName("invalid room id: it is empty")
    if len(room.encode("utf-8", "surrogatepass")) > MAX_ROOM_ID_BYTES:
        raise InvalidName(f"invalid room id: longer than {MAX_ROOM_ID_BYTES} UTF-8 bytes")
    try:
        decoded = unquote(room, errors="strict")
    except UnicodeDecodeError:
        raise InvalidName("invalid room id: its percent-escapes are not UTF-8") from None
    for form in (room, decoded):
        if form in (".", ".."):
            raise InvalidName("invalid room id: '.' and '..' are not room ids")
        if any(ch < " " or ch == "\x7f" for ch in form):
            raise InvalidName("invalid room id: it contains a control character")
    return room


def split_room_path(path: str) -> RoomPath:
    """Split a raw URL path relative to the server's base URL into a RoomPath.

    Accepts `parties/{party}/{room}[/{rest}]` and the legacy `party/{room}[/{rest}]` (party
    `main`). Raises InvalidName when the path is not a room path or a part breaks the rules.
    """
    head, _, tail = path.lstrip("/").partition("/")
    if head == "parties":
        party, _, tail = tail.partition("/")
        check_party_name(party)
    elif head == "party":
        party = DEFAULT_PARTY
    else:
        raise InvalidName(f"not a room path: {path[:80]!r}")
    room, slash, rest = tail.partition("/")
    return RoomPath(party, check_room_id(room), slash + rest if rest else "")
