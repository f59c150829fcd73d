"""`PartyApp`: the Jupyter server extension (DESIGN §10)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Int, Unicode, default

from .runtime.host import Host, Limits
from .runtime.registry import Registry
from .web.room_handler import HOST_SETTING
from .web.routes import ROUTES


class PartyApp(ExtensionApp):
    """Hosts parties' rooms on the Jupyter server, under `{base}parties/...`."""

    name = "jupyter_party"
    description = "Stateful, on-demand, programmable real-time rooms in your Jupyter server."
    load_other_extensions = True
    #: The widgets' bundled front end, served at {base}static/jupyter_party/ (the share page).
    static_paths = [str(Path(__file__).parent / "widgets" / "static")]
    default_url = "/party-api/parties"

    parties_dir = Unicode(
        help="Directory of party modules: `name.py` defines party `name` (default: "
        "`<jupyter data dir>/jupyter_party/parties`).",
    ).tag(config=True)
    storage_url = Unicode(
        help="Room storage: `sqlite:///path/to/file.db` (default: a file in the Jupyter data "
        "dir) or `memory://`.",
    ).tag(config=True)
    max_message_size = Int(
        Limits.max_message_size, help="Largest inbound WebSocket message in bytes (close 1009)."
    ).tag(config=True)
    max_connections_per_room = Int(
        Limits.max_connections_per_room, help="Connections one room accepts (then close 1013)."
    ).tag(config=True)
    max_rooms = Int(Limits.max_rooms, help="Live rooms per server (then 1013 / HTTP 503).").tag(
        config=True
    )
    room_idle_timeout = Float(
        Limits.room_idle_timeout,
        help="Seconds a room with no connections and no work stays in memory.",
    ).tag(config=True)
    send_buffer_limit = Int(
        Limits.send_buffer_limit,
        help="Bytes queued for one slow client before it is closed with 1013.",
    ).tag(config=True)
    ping_interval = Float(
        Limits.ping_interval, help="Seconds between WebSocket pings; dead peers are reaped."
    ).tag(config=True)
    ping_timeout = Float(
        Limits.ping_timeout,
        help="Seconds to wait for a pong before closing the socket (at most `ping_interval`).",
    ).tag(config=True)
    rate_limit_messages = Float(
        Limits.rate_limit_messages,
        help="Inbound messages per second per connection (0: no limit); excess ones are dropped.",
    ).tag(config=True)
    rate_limit_burst = Int(
        Limits.rate_limit_burst,
        help="Inbound messages one connection may send at once above `rate_limit_messages`.",
    ).tag(config=True)
    rate_limit_bytes = Int(
        Limits.rate_limit_bytes,
        help="Inbound bytes per second per connection, averaged over `rate_limit_window` "
        "(0: no limit); excess messages are dropped.",
    ).tag(config=True)
    rate_limit_window = Float(
        Limits.rate_limit_window, help="Seconds over which `rate_limit_bytes` is averaged."
    ).tag(config=True)
    rate_limit_strikes = Int(
        Limits.rate_limit_strikes,
        help="Dropped messages within 10 s that close the connection with 1008 (0: never).",
    ).tag(config=True)
    awareness_rate = Float(
        Limits.awareness_rate,
        help="Yjs awareness updates per second per connection (0: no limit); excess ones "
        "are dropped silently.",
    ).tag(config=True)
    awareness_burst = Int(
        Limits.awareness_burst,
        help="Awareness updates one connection may send at once above `awareness_rate`.",
    ).tag(config=True)
    stall_warning = Float(
        Limits.stall_warning,
        help="Log a warning when one synchronous step of a party hook blocks the event loop "
        "longer than this many seconds (0: off).",
    ).tag(config=True)
    alarm_retry_base = Float(
        Limits.alarm_retry_base,
        help="Seconds before a failed alarm is retried the first time; the delay doubles "
        "with each retry (6 retries, then the alarm is dropped).",
    ).tag(config=True)

    @default("parties_dir")
    def _default_parties_dir(self) -> str:
        return str(Path(jupyter_data_dir()) / "jupyter_party" / "parties")

    @default("storage_url")
    def _default_storage_url(self) -> str:
        return f"sqlite:///{Path(jupyter_data_dir()) / 'jupyter_party' / 'storage.db'}"

    def initialize_settings(self) -> None:
        # Every Limits field has a trait of the same name (test_limits_are_all_configurable).
        limits = Limits(**{field.name: getattr(self, field.name) for field in fields(Limits)})
        parties_dir = Path(self.parties_dir).expanduser()
        parties_dir.mkdir(parents=True, exist_ok=True)
        self.host = Host(Registry(parties_dir), self.storage_url, limits)
        self.settings[HOST_SETTING] = self.host
        self.log.info(
            "jupyter_party: parties %s from %s, storage %s",
            self.host.registry.names(),
            self.parties_dir,
            self.storage_url,
        )

    def initialize_handlers(self) -> None:
        self.handlers.extend(ROUTES)

    async def _start_jupyter_server_extension(self, serverapp) -> None:
        await self.host.start()

    async def stop_extension(self) -> None:
        await self.host.close()
