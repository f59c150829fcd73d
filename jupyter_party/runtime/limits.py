"""`Limits`: every limit and timing knob of the room runtime, one `PartyApp` trait each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Limits:
    """Limits in bytes and seconds; docs/configuration.md explains each."""

    max_message_size: int = 1 << 20
    max_connections_per_room: int = 32768
    max_connections_per_share: int = 100
    max_rooms: int = 10000
    room_idle_timeout: float = 60.0
    send_buffer_limit: int = 4 << 20
    ping_interval: float = 30.0
    ping_timeout: float = 30.0
    rate_limit_messages: float = 100.0
    rate_limit_burst: int = 200
    rate_limit_bytes: int = 1 << 20
    rate_limit_window: float = 3.0
    rate_limit_strikes: int = 3
    awareness_rate: float = 10.0
    awareness_burst: int = 20
    stall_warning: float = 0.1
    alarm_retry_base: float = 2.0
    limit_owner: bool = False
