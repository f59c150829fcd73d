"""Deployed party sources shared by a party cluster, through Redis.

A deploy (or undeploy) accepted by one node is stored in the hash ``jp:parties`` (name →
source) and announced on the channel ``jp:parties``. Every node follows the channel: it writes
the new source into its own ``parties_dir`` (or removes the file) and loads it through its
router, as its file watcher would, so a redeploy restarts the party's rooms (1012) on every
node. Redis pub/sub delivers at most once (a message sent while a node reconnects is lost), so
a node also brings its ``parties_dir`` up to date with the whole hash on start, after a failure,
and every ``RESYNC`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from .redis_storage import PREFIX, connect
from .router import Router

__all__ = ["SharedSources"]

log = logging.getLogger("jupyter_party")

KEY = CHANNEL = f"{PREFIX}parties"
#: Seconds between two attempts to reach Redis again.
RETRY = 1.0
#: Seconds between two comparisons of `parties_dir` with every source in Redis.
RESYNC = 10.0


class SharedSources:
    """This node's side: `publish` what was deployed here, `follow` what other nodes deploy."""

    def __init__(self, redis_url: str, parties_dir: Path, router: Router) -> None:
        self._redis = connect(redis_url)
        self._dir = parties_dir
        self._router = router

    async def publish(self, name: str, source: str | None) -> None:
        """Party `name` was deployed here with `source` (None: undeployed): tell every node."""
        async with self._redis.pipeline(transaction=True) as pipe:
            if source is None:
                pipe.hdel(KEY, name)
            else:
                pipe.hset(KEY, name, source)
            pipe.publish(CHANNEL, name)
            await pipe.execute()

    async def follow(self, stop: asyncio.Event) -> None:
        """Apply the other nodes' deploys until `stop` is set, resubscribing when Redis
        comes back."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    await self._catch_up()
                    synced = loop.time()
                    while not stop.is_set():
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=1
                        )
                        if message is not None:
                            await self._apply(message["data"].decode())
                        if loop.time() - synced >= RESYNC:
                            await self._catch_up()
                            synced = loop.time()
            except Exception as error:
                log.warning("following the party cluster's deploys failed (%s); retrying", error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RETRY)

    async def close(self) -> None:
        await self._redis.aclose()

    async def _catch_up(self) -> None:
        """Apply every source in Redis (what was missed meanwhile)."""
        for name in await self._redis.hkeys(KEY):
            await self._apply(name.decode())

    async def _apply(self, name: str) -> None:
        """Make `parties_dir` hold the cluster's version of party `name`, and load it."""
        source = await self._redis.hget(KEY, name)
        path = self._dir / f"{name}.py"
        if source is None:
            if path.is_file():
                path.unlink()
                await self._router.unload(name)
            return
        text = source.decode()
        if path.is_file() and path.read_text() == text:
            return  # deployed here, or already applied
        temporary = path.with_name(f".{name}.py.{os.getpid()}.tmp")
        temporary.write_text(text)
        temporary.replace(path)  # atomic: the watcher never sees half a file
        result = await self._router.load(name)
        if "error" in result:
            log.warning("party %r deployed on another node fails to load here", name)
