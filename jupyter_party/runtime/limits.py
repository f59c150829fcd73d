"""`Limits`: every limit and timing knob of the room runtime. Each field is also a `PartyApp`
trait, generated from it (extension.py): its default and help text are written here only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _limit(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class Limits:
    """Limits in bytes and seconds; docs/configuration.md explains each."""

    max_message_size: int = _limit(
        1 << 20, "Largest inbound WebSocket message in bytes (close 1009)."
    )
    max_connections_per_room: int = _limit(32768, "Connections one room accepts (then close 1013).")
    max_connections_per_share: int = _limit(
        100, "Open connections one share link may have at once (then close 1013)."
    )
    max_rooms: int = _limit(10000, "Live rooms per server (then 1013 / HTTP 503).")
    room_idle_timeout: float = _limit(
        60.0, "Seconds a room with no connections and no work stays in memory."
    )
    send_buffer_limit: int = _limit(
        4 << 20, "Bytes queued for one slow client before it is closed with 1013."
    )
    ping_interval: float = _limit(30.0, "Seconds between WebSocket pings; dead peers are reaped.")
    ping_timeout: float = _limit(
        30.0, "Seconds to wait for a pong before closing the socket (at most `ping_interval`)."
    )
    rate_limit_messages: float = _limit(
        100.0,
        "Inbound messages per second per connection (0: no limit); excess ones are dropped.",
    )
    rate_limit_burst: int = _limit(
        200, "Inbound messages one connection may send at once above `rate_limit_messages`."
    )
    rate_limit_bytes: int = _limit(
        1 << 20,
        "Inbound bytes per second per connection, averaged over `rate_limit_window` "
        "(0: no limit); excess messages are dropped.",
    )
    rate_limit_window: float = _limit(3.0, "Seconds over which `rate_limit_bytes` is averaged.")
    rate_limit_strikes: int = _limit(
        3, "Dropped messages within 10 s that close the connection with 1008 (0: never)."
    )
    awareness_rate: float = _limit(
        10.0,
        "Yjs awareness updates per second per connection (0: no limit); excess ones are "
        "dropped silently.",
    )
    awareness_burst: int = _limit(
        20, "Awareness updates one connection may send at once above `awareness_rate`."
    )
    stall_warning: float = _limit(
        0.1,
        "Log a warning when one synchronous step of a party hook blocks the event loop "
        "longer than this many seconds (0: off).",
    )
    alarm_retry_base: float = _limit(
        2.0,
        "Seconds before a failed alarm is retried the first time; the delay doubles with "
        "each retry (6 retries, then the alarm is dropped).",
    )
    limit_owner: bool = _limit(
        False,
        "Apply the rate and awareness limits to connections authenticated as the Jupyter "
        "user too. By default they contain guests only (share links, public rooms): the "
        "owner can run any code on the server anyway.",
    )
