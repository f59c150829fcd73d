"""Share tokens: bearer secrets for one room, stored only as their hash.

A token is 256 random bits. The server keeps `token_id(token)` (SHA-256), so a leaked
storage file grants nothing, and looks a presented token up by that hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "jps_"
_SHAPE = re.compile(r"jps_[A-Za-z0-9_-]{43}")  # 32 bytes, base64url without padding
ACCESS_LEVELS = ("read", "write")


def new_token() -> str:
    """A fresh share token."""
    return PREFIX + secrets.token_urlsafe(32)


def token_id(token: str) -> str:
    """The stored, public identity of a token: its SHA-256 in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def well_formed(token: str) -> bool:
    """Cheap shape check, so garbage never reaches the store."""
    return bool(_SHAPE.fullmatch(token))


def same_id(a: str, b: str) -> bool:
    """Compare two token ids in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())
