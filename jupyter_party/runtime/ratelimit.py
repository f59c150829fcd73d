"""Per-connection inbound rate limits: token buckets for messages and bytes.

Pure: no sockets, no event loop. The clock is injectable so tests can drive time by hand.

A `RateLimiter` holds up to two buckets that refill continuously:
- messages: `rate` per second, holding at most `burst` (so a client may send `burst` messages
  at once after a quiet period, then `rate` per second);
- bytes: `bytes_per_second`, holding at most `bytes_per_second * bytes_window`, i.e. the byte
  rate averaged over `bytes_window` seconds. A message larger than that allowance is accepted
  when the allowance is full, and empties it (so one large, legitimate message, e.g. a Yjs
  document, is never refused for its size alone: `max_message_size` bounds that).

A rate of 0 turns that bucket off. A refused message is a *violation*: `strike()` counts it
and says when `strikes` violations happened within `STRIKE_WINDOW` seconds (then the caller
closes the connection).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

STRIKE_WINDOW = 10.0  # seconds: violations older than this are forgiven


class RateLimiter:
    """Token buckets for one connection; `allow(size)` costs one clock read and a few ops."""

    __slots__ = (
        "_burst",
        "_byte_burst",
        "_byte_rate",
        "_bytes",
        "_clock",
        "_first_strike",
        "_messages",
        "_rate",
        "_stamp",
        "strikes",
        "violations",
    )

    def __init__(
        self,
        rate: float,
        burst: float,
        bytes_per_second: float = 0.0,
        bytes_window: float = 3.0,
        strikes: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = float(rate) if rate > 0 else 0.0
        self._burst = float(max(burst, 1)) if rate > 0 else math.inf
        self._byte_rate = float(bytes_per_second) if bytes_per_second > 0 else 0.0
        self._byte_burst = (
            max(bytes_per_second * bytes_window, 1.0) if bytes_per_second > 0 else math.inf
        )
        self._messages = self._burst  # buckets start full
        self._bytes = self._byte_burst
        self._clock = clock
        self._stamp = clock()
        self.strikes = strikes  # violations (within STRIKE_WINDOW) that call for a close
        self.violations = 0  # in the current strike window
        self._first_strike = -math.inf

    @property
    def enabled(self) -> bool:
        return bool(self._rate or self._byte_rate)

    def allow(self, size: int = 0) -> bool:
        """Take one message of `size` bytes from the buckets; False if it is over the rate."""
        now = self._clock()
        elapsed = now - self._stamp
        self._stamp = now
        messages = self._messages + elapsed * self._rate
        if messages > self._burst:
            messages = self._burst
        allowance = self._bytes + elapsed * self._byte_rate
        if allowance > self._byte_burst:
            allowance = self._byte_burst
        cost = size if size < self._byte_burst else self._byte_burst
        if messages >= 1.0 and allowance >= cost:
            self._messages = messages - 1.0
            self._bytes = allowance - cost
            return True
        self._messages, self._bytes = messages, allowance
        return False

    def strike(self) -> bool:
        """Count a violation; True when it is the `strikes`-th within STRIKE_WINDOW seconds."""
        now = self._clock()
        if now - self._first_strike > STRIKE_WINDOW:
            self._first_strike, self.violations = now, 0
        self.violations += 1
        return 0 < self.strikes <= self.violations
