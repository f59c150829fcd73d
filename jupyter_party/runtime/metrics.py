"""jupyter-party's Prometheus metrics, served with jupyter-server's own at `{base}metrics`.

They live in the server process (prometheus_client's default registry). What only a worker
sees (its live rooms, storage commit latency) reaches them through `Router.stats`, which each
session calls about once a second.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROOMS = Gauge("jupyter_party_rooms", "Live rooms, by worker process", ["worker"])
CONNECTIONS = Gauge("jupyter_party_connections", "Open room connections, by access", ["access"])
MESSAGES = Counter(
    "jupyter_party_messages", "Room messages: in from clients, out to clients", ["direction"]
)
BYTES = Counter("jupyter_party_message_bytes", "Bytes of room messages, in and out", ["direction"])
CLOSES = Counter("jupyter_party_closes", "Closed room connections, by close code", ["code"])
HANDLER_ERRORS = Counter(
    "jupyter_party_handler_errors", "Exceptions raised by party code, by party", ["party"]
)
WORKER_RESTARTS = Counter("jupyter_party_worker_restarts", "Party worker processes restarted")
COMMIT_SECONDS = Histogram(
    "jupyter_party_storage_commit_seconds",
    "Time from a storage batch's start to its durable commit",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
SHARE_LINKS = Counter("jupyter_party_share_links", "Share links, issued and revoked", ["event"])

MESSAGES_IN, MESSAGES_OUT = MESSAGES.labels("in"), MESSAGES.labels("out")
BYTES_IN, BYTES_OUT = BYTES.labels("in"), BYTES.labels("out")

#: How often a session reports its rooms and commit times (seconds).
STATS_INTERVAL = 1.0
