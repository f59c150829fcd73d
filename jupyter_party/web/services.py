"""What the Tornado handlers use, kept in the web application's settings under `SETTING`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..runtime.limits import Limits
from ..runtime.router import Router
from ..runtime.shares import Shares
from .activity import Activity

SETTING = "jupyter_party"


@dataclass
class PartyServices:
    """The router to the rooms, share grants, limits, the workers' state, the rooms' share of
    the server's activity, and the configured public URL (`PartyApp.public_url`)."""

    router: Router
    shares: Shares
    limits: Limits
    workers: Callable[[], list[dict[str, Any]]]
    activity: Activity
    public_url: str = ""
