"""WebSocket close codes: the one list the server, the kernel clients and the widgets' front
ends use (the JS copy, widgets/js/src/codes.js, is checked against it by a test)."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """Every close code jupyter-party sends or reports, and what each means to a client."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down
    NO_STATUS = 1005  # reported for a close frame without a code; never sent
    ABNORMAL = 1006  # reported for a connection lost without a close frame; never sent
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


#: The server's refusals: reconnecting cannot help, so no client retries after one.
REFUSALS = frozenset(
    {
        CloseCode.BAD_REQUEST,
        CloseCode.UNAUTHENTICATED,
        CloseCode.FORBIDDEN,
        CloseCode.UNKNOWN_PARTY,
    }
)
