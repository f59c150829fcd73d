"""The rooms' share of the Jupyter server's last activity.

Jupyter reads `web_app.settings["last_activity_times"]` for `/api/status`, for
`ServerApp.shutdown_no_activity_timeout`, and (on JupyterHub) for the activity it reports to
the hub, which the hub's idle culler acts on. Room traffic is written there under `KEY`, the
way kernels and terminals count: a connection opening or closing, a client message or an HTTP
request to a room makes the server active, and so does every open connection until no client
of any room has sent anything for `timeout` seconds; then the rooms stop counting, so a
forgotten tab cannot keep a server alive forever.

Each event only stores a number; the timestamp Jupyter reads is written at most once a second.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from tornado.ioloop import PeriodicCallback

KEY = "jupyter_party"
PUBLISH_EVERY = 1.0  # seconds


class Activity:
    """Counts room events and open sockets; publishes them to Jupyter's activity times."""

    def __init__(self, times: dict[str, Any], timeout: float) -> None:
        self._times = times
        self._timeout = timeout
        self._open = 0
        self._last = -float("inf")  # monotonic time of the last event
        self._published = -float("inf")  # monotonic time of the last timestamp written
        self._ticker = PeriodicCallback(self._publish, PUBLISH_EVERY * 1000)

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> None:
        self._ticker.stop()

    def event(self) -> None:
        """A client message or HTTP request reached a room."""
        self._last = time.monotonic()

    def opened(self) -> None:
        self._open += 1
        self.event()

    def closed(self) -> None:
        self._open -= 1
        self.event()

    def _publish(self) -> None:
        now = time.monotonic()
        busy = self._open > 0 and now - self._last < self._timeout
        if busy or self._last > self._published:
            self._times[KEY] = datetime.now(UTC)
            self._published = now
