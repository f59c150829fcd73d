"""A minimal Yjs client for tests, speaking raw frames through protocol/ysync.py."""

from __future__ import annotations

import json

from pycrdt import Doc, Map, Text

from jupyter_party.protocol.ysync import (
    CUSTOM_PREFIX,
    STEP1,
    STEP2,
    UPDATE,
    AwarenessEntry,
    AwarenessMessage,
    SyncMessage,
    awareness_frame,
    decode_awareness,
    encode_awareness,
    parse_frame,
    sync_frame,
)


class YClient:
    """Wraps a test WebSocket `Client`: keeps `doc` in sync and records awareness and text."""

    def __init__(self, client) -> None:
        self.ws = client
        self.doc = Doc()
        self.synced = False
        self.states: dict[int, dict] = {}
        self.custom: list[str] = []
        self.text_messages: list[str] = []
        self._outbox: list[bytes] = []
        self._applying = False
        self.doc.observe(self._local_change)

    @property
    def text(self) -> str:
        return str(self.doc.get("text", type=Text))

    @property
    def map(self) -> dict:
        return self.doc.get("map", type=Map).to_py()

    async def sync(self) -> YClient:
        await self.ws.send(sync_frame(STEP1, self.doc.get_state()))
        await self.until(lambda: self.synced)
        return self

    async def edit(self, change) -> None:
        """Run `change(doc)` and send the resulting update."""
        change(self.doc)
        outbox, self._outbox = self._outbox, []
        for update in outbox:
            await self.ws.send(sync_frame(UPDATE, update))

    async def settled(self) -> None:
        """Wait until the server has handled everything sent so far (the `ydoc` test party
        echoes custom messages, in order with everything else)."""
        self._marks = getattr(self, "_marks", 0) + 1
        mark = f"mark-{self._marks}"
        await self.ws.send(CUSTOM_PREFIX + mark)
        await self.until(lambda: f"echo:{mark}" in self.custom)

    async def set_awareness(self, client: int, clock: int, state: dict | None) -> None:
        entry = AwarenessEntry(client, clock, json.dumps(state))
        await self.ws.send(awareness_frame(encode_awareness([entry])))

    async def until(self, predicate, timeout: float = 10.0) -> None:
        """Handle incoming frames until `predicate()` holds."""
        while not predicate():
            message = await self.ws.recv(timeout)
            if message is None:
                raise ConnectionError(f"closed: {self.ws.ws.close_code} {self.ws.ws.close_reason}")
            await self.handle(message)

    async def handle(self, message: str | bytes) -> None:
        if isinstance(message, str):
            if message.startswith(CUSTOM_PREFIX):
                self.custom.append(message[len(CUSTOM_PREFIX) :])
            else:
                self.text_messages.append(message)
            return
        parsed = parse_frame(message)
        if isinstance(parsed, SyncMessage):
            if parsed.step == STEP1:
                await self.ws.send(sync_frame(STEP2, self.doc.get_update(parsed.payload)))
            else:
                self._applying = True
                try:
                    self.doc.apply_update(parsed.payload)
                finally:
                    self._applying = False
                self.synced = self.synced or parsed.step == STEP2
        elif isinstance(parsed, AwarenessMessage):
            for entry in decode_awareness(parsed.update):
                if entry.removed:
                    self.states.pop(entry.client, None)
                else:
                    self.states[entry.client] = json.loads(entry.state)

    def _local_change(self, event) -> None:
        if not self._applying:
            self._outbox.append(event.update)
