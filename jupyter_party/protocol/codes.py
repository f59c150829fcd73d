"""WebSocket close codes the server sends, and what each means to a client."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down
    INVALID_DATA = 1007  # a malformed frame (Y rooms)
    POLICY = 1008  # over the rate limit
    TOO_BIG = 1009  # a message over max_message_size
    HANDLER_ERROR = 1011  # on_connect raised, the room failed to start, or its worker died
    SERVICE_RESTART = 1012  # redeployed or evicted: reconnect now
    OVERLOADED = 1013  # a limit was reached (rooms, connections, send buffer)
    BAD_REQUEST = 4400  # an invalid room id or path
    UNAUTHENTICATED = 4401  # no valid credential; or a share link revoked
    FORBIDDEN = 4403  # a credential that does not open this room
    UNKNOWN_PARTY = 4404
    EPOCH_CHANGED = 4409  # the document was recreated (our Python provider reloads)
