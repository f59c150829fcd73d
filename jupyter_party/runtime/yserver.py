"""`YServer`: a party whose state is a shared `pycrdt.Doc`, synced with Yjs clients.

It speaks the y-websocket / y-partykit wire protocol (protocol/ysync.py) over the room runtime,
so it inherits ordering, bounded send queues and error isolation. Every document change, made
by a client or by party code, is broadcast once to every connection and, with persistence on,
appended to the room's storage before anything else happens to it.

Storage layout (keys of `room.storage`; values are split into parts of at most
MAX_VALUE_BYTES, so a document or an update of any size can be stored):
  `y:snapshot.<part>`     the document compacted into one update
  `y:u:<seq>.<part>`      updates since the snapshot, in order (numbers zero-padded)
  `y:epoch`               the document's incarnation; a new one means clients must reload
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterable
from typing import Any, ClassVar, Literal
from weakref import WeakKeyDictionary

from pycrdt import Doc

from ..protocol.codes import CloseCode
from ..protocol.ysession import (
    Answers,
    AwarenessQuery,
    AwarenessUpdate,
    CustomMessage,
    Event,
    TextMessage,
    Update,
    YSyncSession,
)
from ..protocol.ysync import (
    CUSTOM_PREFIX,
    UPDATE,
    AwarenessEntry,
    FrameError,
    awareness_frame,
    check_update,
    decode_awareness,
    encode_awareness,
    sync_frame,
)
from .clock import Timer
from .connection import Connection
from .outbox import Outgoing
from .ratelimit import RateLimiter
from .room import maybe_await
from .server import ConnectionContext, Server
from .storage import MAX_VALUE_BYTES
from .tasks import spawn

log = logging.getLogger("jupyter_party")

_EMPTY_UPDATE = b"\x00\x00"
_SNAPSHOT, _LOG, _EPOCH = "y:snapshot.", "y:u:", "y:epoch"
_SEQ_DIGITS = 12
# Seconds a step 2 the sessions share is kept after it was encoded: a crowd joining over a
# few seconds shares it, then the memory (as much as the document's) goes back.
_ANSWER_KEPT = 2.0
# Each guest connection's awareness and sync request rates; gone with the connection.
_RATES: WeakKeyDictionary[Connection, dict[str, RateLimiter]] = WeakKeyDictionary()


class YServer(Server):
    """A party whose state is `self.document`, a `pycrdt.Doc` shared with every client.

    Subclasses that override `on_start`, `on_connect`, `on_message` or `on_close` need not
    call super(): the protocol work happens around those hooks, not in them.
    """

    #: "snapshot" (compact on last disconnect), "history" (keep the update log up to the
    #: limits below, then compact), or None (the document lives only in memory).
    persistence: ClassVar[Literal["snapshot", "history"] | None] = None
    history_max_updates: ClassVar[int] = 10_000
    history_max_bytes: ClassVar[int] = 10_000_000
    #: `on_save` runs this long after the last change, and at least this often while busy.
    debounce_wait: ClassVar[float] = 2.0
    debounce_max_wait: ClassVar[float] = 10.0
    #: Largest inbound frame (also the largest y-pk-batch reassembled message), in bytes.
    max_message_size: ClassVar[int] = 16 << 20
    #: A joining client may be sent the whole document plus concurrent updates at once.
    send_buffer_limit: ClassVar[int] = 64 << 20
    #: Over the inbound rate a connection is closed, never thinned: a dropped update would
    #: leave every later update of that client unapplied.
    rate_limit_drops: ClassVar[bool] = False
    #: A read-only client still syncs and shares its awareness; its edits are ignored here.
    read_only_messages: ClassVar[bool] = True
    #: Largest awareness state of one client, in bytes of JSON.
    max_awareness_state: ClassVar[int] = 16 << 10
    #: Largest awareness update frame; a bigger one closes its sender with 1009.
    max_awareness_frame: ClassVar[int] = 64 << 10
    #: Awareness client ids one connection may hold (a Yjs client uses one); more are ignored.
    max_awareness_clients: ClassVar[int] = 4
    #: Bytes of awareness states the room keeps in all; new states past it are ignored.
    max_awareness_bytes: ClassVar[int] = 1 << 20

    def __init__(self, room: Any) -> None:
        super().__init__(room)
        self.document: Doc[Any] = Doc()
        self.epoch = ""
        self._awareness: dict[int, AwarenessEntry] = {}
        self._awareness_bytes = 0  # of the states in _awareness
        self._owners: dict[int, Connection] = {}
        self._owned: dict[Connection, dict[int, None]] = {}  # the same, by connection
        self._sessions: dict[Connection, YSyncSession] = {}
        self._answers = Answers(self.document)  # shared by the sessions
        self._answer: Outgoing | None = None  # the answer kept, as one message for all
        self._answer_timer: Timer | None = None  # when it goes
        self._unlogged: list[bytes] = []
        self._logged: list[str] = []  # keys of the persisted update log
        self._logged_bytes = 0
        self._logged_updates = 0
        self._snapshot: list[str] = []  # keys of the persisted snapshot's parts
        self._seq = 0
        self._broken = False  # set when yrs panicked: see _reset
        self._subscription: Any = None  # the document observer; pycrdt drops it if unreferenced
        self._persisting: asyncio.Task[None] | None = None
        self._save_timer: Timer | None = None
        self._save_deadline: float | None = None

    # -- hooks for subclasses ---------------------------------------------------------------

    def on_load(self) -> Any:
        """Called once per instance, after persisted state (if any) was applied.

        Apply state kept elsewhere here (updates, not freshly authored content: authored
        content would be added again at every load).
        """

    def on_save(self) -> Any:
        """Called (debounced) after changes, on last disconnect and when the room stops."""

    def is_read_only(self, connection: Connection) -> bool:
        """Return True to ignore this connection's edits (its awareness still works)."""
        return False

    def on_custom_message(self, connection: Connection, message: str) -> Any:
        """A `__YPS:` custom message arrived (y-partyserver's `provider.sendMessage`)."""

    def send_custom_message(self, connection: Connection, message: str) -> None:
        """Send a custom message to one connection."""
        connection.send(CUSTOM_PREFIX + message)

    def broadcast_custom_message(self, message: str, without: Iterable[str] = ()) -> None:
        """Send a custom message to every connection whose id is not in `without`."""
        self.room.broadcast(CUSTOM_PREFIX + message, without)

    # -- the protocol layer -----------------------------------------------------------------

    async def _handle_start(self) -> None:
        if self.persistence:
            await self._load()
        else:
            self.epoch = uuid.uuid4().hex
        self._subscription = self.document.observe(self._changed)
        await maybe_await(self.on_load())
        await maybe_await(self.on_start())

    async def _handle_connect(self, connection: Connection, ctx: ConnectionContext) -> None:
        if "epoch" in ctx.request.query:  # our Python provider: it can reload on a new epoch
            if ctx.request.query["epoch"] not in ("", self.epoch):
                connection.close(CloseCode.EPOCH_CHANGED, "the document was recreated: reload it")
                return
            self.send_custom_message(connection, json.dumps({"epoch": self.epoch}))
        session = self._session(connection)
        session.start()
        self._send(connection, session)
        if self._awareness:
            connection.send(awareness_frame(encode_awareness(list(self._awareness.values()))))
        await maybe_await(self.on_connect(connection, ctx))

    def _handle_message(self, message: str | bytes, sender: Connection) -> Any:
        if self._broken:
            return None
        session = self._session(sender)
        try:
            for event in session.receive(message):
                if isinstance(event, CustomMessage):
                    return self.on_custom_message(sender, event.text)
                if isinstance(event, TextMessage):
                    return self.on_message(event.text, sender)
                self._receive(event, sender)
        except _TooBig as error:
            sender.close(CloseCode.TOO_BIG, str(error))
        except Exception as error:  # malformed input: only the sender pays for it
            self._close_malformed(sender, error)
        except BaseException as error:  # pycrdt's PanicException is not an Exception
            if type(error).__name__ != "PanicException":
                raise
            self._close_malformed(sender, error)
            self._reset(error)
        finally:
            self._send(sender, session)  # our step 2, answering the sender's step 1
        return None

    def _send(self, connection: Connection, session: YSyncSession) -> None:
        """Send what the session queued. The answer the sessions share (see `Answers`) goes
        as one `Outgoing` to all its recipients: it crosses to the server process and is
        framed once for those of a loop turn."""
        for frame in session.data_to_send():
            if frame is not self._answers.kept:
                connection.send(frame)
                continue
            if self._answer is None or self._answer.payload is not frame:
                if self._answer_timer is not None:
                    self._answer_timer.cancel()
                self._answer = Outgoing(frame)
                clock = self.room._services.clock
                self._answer_timer = clock.call_later(_ANSWER_KEPT, self._forget_answer)
            connection.send(self._answer)

    def _forget_answer(self) -> None:
        """Let the answer kept go: the document changed, nobody is left to ask, or it was
        kept long enough."""
        if self._answer_timer is not None:
            self._answer_timer.cancel()
            self._answer_timer = None
        self._answers.clear()
        self._answer = None

    def _session(self, connection: Connection) -> YSyncSession:
        session = self._sessions.get(connection)
        if session is None:
            session = self._sessions[connection] = YSyncSession(
                self.document,
                answers=self._answers,
                max_batch=self.max_message_size,
                may_answer=lambda: self._allow(connection, "sync"),  # each encodes the document
            )
        return session

    async def _handle_close(self, connection: Connection, code: int, reason: str) -> None:
        self._sessions.pop(connection, None)
        gone = [self._awareness[client] for client in self._owned.get(connection, ())]
        if gone:
            for entry in gone:
                self._forget_awareness(entry.client)
            removal = [AwarenessEntry(e.client, e.clock + 1, "null") for e in gone]
            self.room.broadcast(awareness_frame(encode_awareness(removal)))
        await maybe_await(self.on_close(connection, code, reason))
        # The room has forgotten this connection already: counting the others costs O(1),
        # where a scan per close would make a crowd leaving at once quadratic.
        if not self.room._connections:
            self._forget_answer()
            await self._make_durable()

    async def _handle_stop(self) -> None:
        await self._make_durable()
        self._release()

    def _release(self) -> None:
        """Let the document go. Its observer holds this instance from inside yrs, where
        Python's garbage collector cannot see the cycle: without this, every stopped room would
        keep its whole document in memory for ever."""
        self._forget_answer()
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            try:
                self.document.unobserve(subscription)
            except BaseException:  # a document yrs gave up on (see _reset): nothing to save
                log.debug("party %r room %r: unobserve failed", self.room.party, self.room.id)

    # -- inbound frames ---------------------------------------------------------------------

    def _receive(self, event: Event, sender: Connection) -> None:
        if isinstance(event, Update):
            if event.payload != _EMPTY_UPDATE and not self._read_only(sender):
                check_update(event.payload)
                self._apply(event.payload)
        elif isinstance(event, AwarenessUpdate):
            if len(event.frame) > self.max_awareness_frame:
                raise _TooBig(f"awareness update over {self.max_awareness_frame} bytes")
            if self._allow(sender, "awareness"):  # a stream of latest states: drop, no close
                self._apply_awareness(event.update, event.frame, sender)
        elif isinstance(event, AwarenessQuery) and self._awareness and self._allow(sender, "sync"):
            sender.send(awareness_frame(encode_awareness(list(self._awareness.values()))))

    def _allow(self, sender: Connection, kind: str) -> bool:
        """A guest's connection gets `awareness_rate` awareness updates, and as many requests
        that make the server encode the document or the awareness map ("sync")."""
        if not sender._limited:
            return True
        limiters = _RATES.get(sender)
        if limiters is None:
            limiters = _RATES[sender] = {}
        limiter = limiters.get(kind)
        if limiter is None:
            limits = self.room._services.limits
            limiter = RateLimiter(limits.awareness_rate, limits.awareness_burst, strikes=0)
            limiters[kind] = limiter
        return limiter.allow()

    def _apply_awareness(self, update: bytes, frame: bytes, sender: Connection) -> None:
        """Keep and forward the sender's own states (to everyone, the sender included: old
        YPartyKitProvider clients treat that echo as their keep-alive), within the room's
        bounds: a few client ids per connection, and a total size for the room."""
        entries = decode_awareness(update)
        if any(len(entry.state) > self.max_awareness_state for entry in entries):
            raise FrameError(f"awareness state over {self.max_awareness_state} bytes")
        accepted = []
        for entry in entries:
            owner = self._owners.get(entry.client)
            if owner is not None and owner is not sender and owner.id != sender.id:
                continue  # another client's id: not this sender's to change
            if entry.removed:
                self._forget_awareness(entry.client)
            elif not self._keep_awareness(entry, sender, owner is None):
                continue
            accepted.append(entry)
        if accepted:
            same = len(accepted) == len(entries)
            self.room.broadcast(frame if same else awareness_frame(encode_awareness(accepted)))

    def _keep_awareness(self, entry: AwarenessEntry, sender: Connection, new: bool) -> bool:
        """Keep a state (a new id, the sender's own, or the same client reconnected), unless
        it would pass the connection's or the room's bounds."""
        if new and len(self._owned.get(sender, ())) >= self.max_awareness_clients:
            return False
        old = self._awareness.get(entry.client)
        size = self._awareness_bytes - (len(old.state) if old else 0) + len(entry.state)
        if size > self.max_awareness_bytes:
            return False
        self._awareness[entry.client] = entry
        self._awareness_bytes = size
        if self._owners.get(entry.client) is not sender:  # new, or its client reconnected
            self._disown(entry.client)
            self._owners[entry.client] = sender
            self._owned.setdefault(sender, {})[entry.client] = None
        return True

    def _forget_awareness(self, client: int) -> None:
        old = self._awareness.pop(client, None)
        self._disown(client)
        if old is not None:
            self._awareness_bytes -= len(old.state)

    def _disown(self, client: int) -> None:
        """`client`'s state no longer belongs to the connection that held it."""
        owner = self._owners.pop(client, None)
        if owner is not None:
            owned = self._owned[owner]
            del owned[client]
            if not owned:
                del self._owned[owner]

    def _apply(self, update: bytes) -> None:
        """Apply a client's update. pycrdt re-raises the party's own observer errors after the
        update is in: those are the party's bug, reported, not the sender's fault."""
        try:
            self.document.apply_update(update)
        except ExceptionGroup as errors:
            spawn(self.room._report_error("document observer", None, errors))

    def _read_only(self, connection: Connection) -> bool:
        # A read-only share link is enforced here, whatever the party's is_read_only says.
        return connection.access == "read" or self.is_read_only(connection)

    def _close_malformed(self, sender: Connection, error: BaseException) -> None:
        log.warning(
            "party %r room %r: closing %r: malformed frame: %s",
            self.room.party,
            self.room.id,
            sender.id,
            error,
        )
        sender.close(CloseCode.INVALID_DATA, f"malformed frame: {error}")

    # -- document changes -------------------------------------------------------------------

    def _changed(self, event: Any) -> None:
        """Doc observer: runs inside every transaction that changed the document.

        It must not raise: pycrdt would re-raise into whoever made the change.
        """
        update = event.update
        try:
            self._forget_answer()
            self.room.broadcast(sync_frame(UPDATE, update))
            if self.persistence:
                self._unlogged.append(update)
                if self._persisting is None or self._persisting.done():
                    self._persisting = spawn(self._persist())
            self._schedule_save()
        except Exception:
            log.exception(
                "party %r room %r: document observer failed", self.room.party, self.room.id
            )

    async def _persist(self) -> None:
        """Append unlogged updates to storage, in order; one put per batch of changes."""
        try:
            while self._unlogged:
                updates, self._unlogged = self._unlogged, []
                entries = {}
                for update in updates:
                    entries.update(_parts(f"{_LOG}{self._seq:0{_SEQ_DIGITS}d}.", update))
                    self._seq += 1
                await self.room.storage.put(entries)
                self._logged += entries
                self._logged_bytes += sum(map(len, updates))
                self._logged_updates += len(updates)
                if self.persistence == "history" and (
                    self._logged_updates > self.history_max_updates
                    or self._logged_bytes > self.history_max_bytes
                ):  # changes made meanwhile are written by the next turn of this loop
                    await self._compact()
        except Exception as error:  # e.g. disk full: the document stays live in memory
            await self.room._report_error("persistence", None, error)

    async def _load(self) -> None:
        storage = self.room.storage
        self.epoch = await storage.get(_EPOCH) or ""
        if not self.epoch:
            self.epoch = uuid.uuid4().hex
            await storage.put(_EPOCH, self.epoch)
        snapshot = await storage.list(prefix=_SNAPSHOT)
        if snapshot:
            self.document.apply_update(b"".join(snapshot.values()))
        self._snapshot = list(snapshot)
        log_entries = await storage.list(prefix=_LOG)
        updates: dict[str, list[bytes]] = {}
        for key, part in log_entries.items():  # keys sort by seq, then part
            updates.setdefault(key[: len(_LOG) + _SEQ_DIGITS], []).append(part)
        for parts in updates.values():
            self.document.apply_update(b"".join(parts))
        self._logged = list(log_entries)
        self._logged_bytes = sum(map(len, log_entries.values()))
        self._logged_updates = len(updates)
        if updates:
            self._seq = int(next(reversed(updates))[len(_LOG) :]) + 1

    async def _compact(self) -> None:
        """Replace the snapshot and the update log by one merged update, atomically."""
        if not self._logged:
            return
        logged, self._logged, self._logged_bytes, self._logged_updates = self._logged, [], 0, 0
        snapshot = _parts(_SNAPSHOT, self.document.get_update())
        stale = [key for key in [*self._snapshot, *logged] if key not in snapshot]
        async with self.room.storage.transaction() as txn:
            await txn.put(snapshot)
            await txn.delete(stale)
        self._snapshot = list(snapshot)

    async def _make_durable(self) -> None:
        """Make everything durable and compact (snapshot mode), then run `on_save`."""
        if self._persisting is not None:
            await self._persisting
        if self._broken:
            return  # never read a document yrs gave up on; storage holds what was observed
        if self.persistence == "snapshot":
            await self._compact()
        await self._save()

    def _reset(self, error: BaseException) -> None:
        """yrs panicked half way through a transaction: this document can no longer be
        trusted (or even read safely). Drop the instance and send everyone to a fresh one,
        rebuilt from storage, which only ever received updates that were fully applied."""
        self._broken = True
        log.error(
            "party %r room %r: the CRDT engine failed (%s); reloading the room",
            self.room.party,
            self.room.id,
            error,
        )
        self.room.discard()
        for connection in self.room.get_connections():
            connection.close(CloseCode.SERVICE_RESTART, "document reset: reconnect")
        self._release()  # a discarded room is never stopped

    def _schedule_save(self) -> None:
        clock = self.room._services.clock
        now = clock.monotonic()
        if self._save_deadline is None:
            self._save_deadline = now + self.debounce_max_wait
        if self._save_timer is not None:
            self._save_timer.cancel()
        delay = min(now + self.debounce_wait, self._save_deadline) - now
        self._save_timer = clock.call_later(delay, lambda: spawn(self._save()))

    async def _save(self) -> None:
        if self._broken:
            return
        if self._save_timer is not None:
            self._save_timer.cancel()
        self._save_timer = self._save_deadline = None
        try:
            await maybe_await(self.on_save())
        except Exception as error:
            await self.room._report_error("on_save", None, error)


class _TooBig(FrameError):
    """A frame over its own limit (close 1009, not 1007: nothing is malformed)."""


def _parts(prefix: str, data: bytes) -> dict[str, bytes]:
    """`data` split into storage values: `prefix000`, `prefix001`, ... in order."""
    size = MAX_VALUE_BYTES
    return {f"{prefix}{i:03d}": data[o : o + size] for i, o in enumerate(range(0, len(data), size))}
