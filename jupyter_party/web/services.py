"""What the Tornado handlers use, kept in the web application's settings under `SETTING`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runtime.limits import Limits
from ..runtime.router import Router
from ..runtime.shares import Shares

SETTING = "jupyter_party"


@dataclass
class PartyServices:
    """The router to the rooms, share grants, limits, the workers' state, and where party
    files live."""

    router: Router
    shares: Shares
    limits: Limits
    workers: Callable[[], list[dict[str, Any]]]
    parties_dir: Path
