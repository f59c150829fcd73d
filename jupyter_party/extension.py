"""`PartyApp`: the Jupyter server extension (DESIGN §10)."""

from __future__ import annotations

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

    @default("parties_dir")
    def _default_parties_dir(self) -> str:
        return str(Path(jupyter_data_dir()) / "jupyter_party" / "parties")

    @default("storage_url")
    def _default_storage_url(self) -> str:
        return f"sqlite:///{Path(jupyter_data_dir()) / 'jupyter_party' / 'storage.db'}"

    def initialize_settings(self) -> None:
        limits = Limits(
            max_message_size=self.max_message_size,
            max_connections_per_room=self.max_connections_per_room,
            max_rooms=self.max_rooms,
            room_idle_timeout=self.room_idle_timeout,
            send_buffer_limit=self.send_buffer_limit,
            ping_interval=self.ping_interval,
        )
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
