"""One side of a y-sync connection (y-websocket / y-partykit), sans I/O: messages in, events
and frames to send out.

The server's rooms (`YServer`), the kernel's document client (`doc()`) and the test kit's
`YClient` all run this session: `start()` queues our sync step 1, `receive(message)` parses
one WebSocket message (reassembling y-partykit's chunked batches where allowed), answers the
peer's step 1 with the step 2 of our document, and returns what the caller must act on:
updates to apply, awareness, custom and plain text messages. `data_to_send()` hands over the
frames to write. Nothing here touches a socket or an event loop, so it is tested with bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .ysync import (
    BATCH_PREFIX,
    CUSTOM_PREFIX,
    STEP1,
    STEP2,
    AwarenessMessage,
    BatchAssembler,
    QueryAwareness,
    SyncMessage,
    check_state_vector,
    parse_frame,
    sync_frame,
)


class Document(Protocol):
    """What the session reads of a Yjs document (a `pycrdt.Doc` has both)."""

    def get_state(self) -> bytes: ...

    def get_update(self, state: bytes | None = None) -> bytes: ...


@dataclass(frozen=True)
class Update:
    """The peer's step 2 or update (`step` is STEP2 or UPDATE): apply `payload`."""

    step: int
    payload: bytes


@dataclass(frozen=True)
class AwarenessUpdate:
    """An awareness update; `frame` is the whole frame it came in (to forward or measure)."""

    update: bytes
    frame: bytes


@dataclass(frozen=True)
class AwarenessQuery:
    """The peer asks for the awareness states."""


@dataclass(frozen=True)
class CustomMessage:
    """A y-partyserver custom text message, without its prefix."""

    text: str


@dataclass(frozen=True)
class TextMessage:
    """A text message that is not part of the protocol."""

    text: str


Event = Update | AwarenessUpdate | AwarenessQuery | CustomMessage | TextMessage


class Answers:
    """The step 2 frames answering the step 1 of every session of one document.

    New clients ask with an empty state vector, clients in sync with each other with the
    same one: the last answer is kept and reused for the same state vector until the
    document changes (`clear()`, from the document's observer), so a crowd joining at once
    costs one encoding of the document, not one each, and its members get the same bytes
    object (which the server sends once to all of them). It keeps one answer at most.
    """

    def __init__(self, document: Document) -> None:
        self.document = document
        self._state: bytes | None = None  # the state vector last answered
        self._frame = b""

    @property
    def kept(self) -> bytes | None:
        """The answer kept, if any."""
        return None if self._state is None else self._frame

    def answer(self, state_vector: bytes) -> bytes:
        """The step 2 frame for `state_vector`: what the document holds beyond it."""
        if state_vector != self._state:
            self._frame = sync_frame(STEP2, self.document.get_update(state_vector))
            self._state = state_vector
        return self._frame

    def clear(self) -> None:
        """Let the answer kept go: the document changed, or its memory is wanted back (the
        answer to an empty state vector is as big as the document)."""
        self._state, self._frame = None, b""


class YSyncSession:
    """The y-sync protocol state of one connection.

    `document` answers the peer's step 1, through `answers` when the sessions of a document
    share theirs (the server). `max_batch`, when set, accepts y-partykit's chunked batches up
    to that many bytes (the server side). `may_answer()` is asked before each answer to a
    step 1 (each may encode the whole document: the server rate-limits guests); a step 1 it
    refuses is dropped. Malformed input raises `FrameError`.
    """

    def __init__(
        self,
        document: Document,
        *,
        answers: Answers | None = None,
        max_batch: int | None = None,
        may_answer: Callable[[], bool] | None = None,
    ) -> None:
        self.document = document
        self._answers = answers
        #: The peer's step 1 arrived: it accepted the connection (our edits may follow).
        self.handshaken = False
        #: The peer's step 2 arrived: we hold its whole document.
        self.synced = False
        self._max_batch = max_batch
        self._batch: BatchAssembler | None = None
        self._may_answer = may_answer
        self._out: list[bytes] = []

    def start(self) -> None:
        """Queue our step 1 (our state vector): the peer answers with what we lack."""
        self._out.append(sync_frame(STEP1, self.document.get_state()))

    def receive(self, message: str | bytes) -> list[Event]:
        """Handle one WebSocket message; the events the caller must act on, in order."""
        if isinstance(message, bytes):
            if self._batch is not None and self._batch.active:
                self._batch.feed_binary(message)
                return []
            return self._frame(message)
        if message.startswith(BATCH_PREFIX) and self._max_batch is not None:
            if self._batch is None:
                self._batch = BatchAssembler(self._max_batch)
            whole = self._batch.feed_text(message)
            return [] if whole is None else self._frame(whole)
        if message.startswith(CUSTOM_PREFIX):
            return [CustomMessage(message[len(CUSTOM_PREFIX) :])]
        return [TextMessage(message)]

    def data_to_send(self) -> list[bytes]:
        """The frames queued for the peer since the last call."""
        out, self._out = self._out, []
        return out

    def _frame(self, frame: bytes) -> list[Event]:
        parsed = parse_frame(frame)
        if isinstance(parsed, SyncMessage):
            if parsed.step != STEP1:
                self.synced = self.synced or parsed.step == STEP2
                return [Update(parsed.step, parsed.payload)]
            self.handshaken = True
            if self._may_answer is None or self._may_answer():
                check_state_vector(parsed.payload)
                if self._answers is not None:
                    self._out.append(self._answers.answer(parsed.payload))
                else:
                    self._out.append(sync_frame(STEP2, self.document.get_update(parsed.payload)))
            return []
        if isinstance(parsed, AwarenessMessage):
            return [AwarenessUpdate(parsed.update, frame)]
        if isinstance(parsed, QueryAwareness):
            return [AwarenessQuery()]
        return []
