"""What the Tornado handlers use, kept in the web application's settings under `SETTING`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtime.limits import Limits
from ..runtime.party_sources import SharedSources
from ..runtime.router import Router
from ..runtime.shares import Shares
from .activity import Activity

SETTING = "jupyter_party"


@dataclass
class PartyServices:
    """The router to the rooms, share grants, limits, the workers' state, where party files
    live, the rooms' share of the server's activity, the configured public URL
    (`PartyApp.public_url`), the parties' environment (`PartyApp.party_env`, for parties
    hosted by kernels), and in a party cluster the deployed sources shared by its nodes."""

    router: Router
    shares: Shares
    limits: Limits
    workers: Callable[[], list[dict[str, Any]]]
    parties_dir: Path
    activity: Activity
    public_url: str = ""
    party_env: dict[str, str] = field(default_factory=dict)
    sources: SharedSources | None = None
