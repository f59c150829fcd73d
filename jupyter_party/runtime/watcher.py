"""Hot reload from `parties_dir`: a party file that changes is loaded like a deploy (its rooms'
clients reconnect with 1012; a file that fails to import is refused, the running version stays
and the traceback goes to the party's log), and a file that is removed unloads its party.

The server process watches, with `watchfiles` (the platform's file notifications) or, for
network filesystems that send none, by polling the files' sizes and modification times; it
asks the router, which loads the file in the workers as it would a deploy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from watchfiles import awatch

from ..protocol.names import InvalidName, check_party_name
from .errors import Overloaded
from .partylog import PartyLogs
from .router import Router

log = logging.getLogger("jupyter_party")

#: Seconds between two looks at the directory when polling.
POLL_INTERVAL = 0.3


async def watch_parties(
    parties_dir: Path, router: Router, logs: PartyLogs, stop: asyncio.Event, *, poll: bool = False
) -> None:
    """Reload or unload the parties whose files change in `parties_dir`, until `stop` is set."""
    changes = _polled(parties_dir, stop) if poll else _notified(parties_dir, stop)
    try:
        async for names in changes:
            for name in sorted(names):
                try:
                    await _apply(parties_dir / f"{name}.py", name, router, logs)
                except (Overloaded, ConnectionError, OSError) as error:  # a worker restarting
                    log.warning("reloading party %r from %s failed: %s", name, parties_dir, error)
    except Exception:
        log.exception("stopped watching %s: edited parties now need a deploy", parties_dir)


async def _notified(parties_dir: Path, stop: asyncio.Event) -> AsyncIterator[set[str]]:
    """Names of the party files that changed, from the platform's file notifications."""
    filter = lambda change, path: _is_party_file(Path(path))  # noqa: E731
    async for batch in awatch(parties_dir, watch_filter=filter, recursive=False, stop_event=stop):
        yield {Path(path).stem for _, path in batch}


async def _polled(parties_dir: Path, stop: asyncio.Event) -> AsyncIterator[set[str]]:
    """Names of the party files that changed (size or modification time), looking every
    POLL_INTERVAL seconds."""
    seen = _scan(parties_dir)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_INTERVAL)
        now = _scan(parties_dir)
        changed = {name for name in seen.keys() | now.keys() if seen.get(name) != now.get(name)}
        seen = now
        if changed:
            yield changed


def _scan(parties_dir: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for path in parties_dir.glob("*.py"):
        with contextlib.suppress(FileNotFoundError):  # removed while we looked
            if _is_party_file(path):
                stat = path.stat()
                found[path.stem] = (stat.st_mtime_ns, stat.st_size)
    return found


async def _apply(path: Path, name: str, router: Router, logs: PartyLogs) -> None:
    # What is on disk now decides, not the kind of change: editors save by replacing files.
    if not path.is_file():
        await router.unload(name)
        return
    result = await router.load(name)
    if "error" in result:
        refused = f"reload of {path} refused: {result['error']}"
        logs.record(name, None, "error", f"{refused}\n{result['traceback']}")
        log.warning("party %r: %s", name, refused)


def _is_party_file(path: Path) -> bool:
    """`NAME.py` for a valid party name; not the hidden files a deploy stages."""
    if path.suffix != ".py" or path.name.startswith("."):
        return False
    try:
        check_party_name(path.stem)
    except InvalidName:
        return False
    return True
