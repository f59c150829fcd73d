"""`PartyApp`: the Jupyter server extension; its traits are documented in docs/configuration.md.

Party code never runs in the server process (unless `workers = 0`): the extension starts and
supervises worker processes (runtime/supervisor.py) and routes every room's traffic to the
worker that owns the room (runtime/router.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import socket
from dataclasses import asdict, fields
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from tornado.httpserver import HTTPServer
from traitlets import Bool, Dict, Enum, Float, Int, TraitType, Unicode, default
from traitlets.config import Application

from .runtime import partylog, tuning
from .runtime.cluster import Cluster
from .runtime.leases import RoomLeases
from .runtime.limits import Limits
from .runtime.party_sources import SharedSources
from .runtime.partylog import PartyLogs
from .runtime.registry import Registry
from .runtime.router import Router
from .runtime.session import Session
from .runtime.shares import Shares
from .runtime.storage import open_backend
from .runtime.supervisor import Supervisor
from .runtime.tasks import spawn
from .runtime.watcher import watch_parties
from .web.activity import Activity
from .web.listener import take_room_connections
from .web.routes import ROOM_PREFIXES, ROUTES
from .web.services import SETTING, PartyServices

RUNTIME_LOG = logging.getLogger("jupyter_party")


def _limit_traits() -> dict[str, TraitType]:
    """One configurable trait per `Limits` field, its default and help taken from the field."""
    kinds: dict[str, type[TraitType]] = {"int": Int, "float": Float, "bool": Bool}
    return {
        field.name: kinds[str(field.type)](field.default, help=field.metadata["help"]).tag(
            config=True
        )
        for field in fields(Limits)
    }


class PartyApp(ExtensionApp):
    """Hosts parties' rooms on the Jupyter server, under `{base}parties/...`."""

    name = "jupyter_party"
    description = "Stateful, on-demand, programmable real-time rooms in your Jupyter server."
    load_other_extensions = True
    #: This process is ours (`jupyter party serve`), not a Jupyter server we are a guest in.
    own_process = False
    #: The widgets' bundled front end, served at {base}static/jupyter_party/ (the share page).
    static_paths = [str(Path(__file__).parent / "widgets" / "static")]
    default_url = "/parties"  # `jupyter party serve` prints it: the party home page

    parties_dir = Unicode(
        help="Directory of party modules: `name.py` defines party `name` (default: "
        "`<jupyter data dir>/jupyter_party/parties`).",
    ).tag(config=True)
    watch_parties = Enum(
        ["on", "poll", "off"],
        "on",
        help="Reload a party when its file in `parties_dir` changes (like a deploy: its "
        "clients reconnect with 1012; a file that fails to import is refused and the "
        "traceback goes to the party's log) and unload it when the file is removed. `poll` "
        "looks at the files' sizes and modification times every 0.3 s instead of waiting for "
        "file notifications (network filesystems send none); `off` does not watch.",
    ).tag(config=True)
    storage_url = Unicode(
        help="Room storage: `sqlite:///path/to/file.db` (default: a file in the Jupyter data "
        "dir), `redis://host:port/db` (default when `redis_url` is set) or `memory://`.",
    ).tag(config=True)
    redis_url = Unicode(
        "",
        help="`redis://host:port/db`: the servers sharing this Redis form one party cluster, "
        "where each room has one owner (a lease in Redis, renewed while the room lives) and "
        "any node serves any room (relaying to its owner). See docs/scale-out.md.",
    ).tag(config=True)
    lease_ttl = Float(
        10.0,
        help="Seconds a room's lease outlives its owner: a node that dies or pauses loses its "
        "rooms to another node after this long (and relays to a node silent this long end).",
    ).tag(config=True)
    node_name = Unicode(
        help="This server's name in the party cluster (default: `hostname:pid`).",
    ).tag(config=True)
    # One trait per `Limits` field (max_message_size, max_rooms, rate_limit_*, ...).
    locals().update(_limit_traits())
    workers = Int(
        1,
        help="Worker processes that run party code (rooms are placed by party and room id). "
        "0 runs rooms in the server process itself: for debugging only, since a handler that "
        "blocks or crashes then blocks or crashes the whole Jupyter server.",
    ).tag(config=True)
    handler_timeout = Float(
        30.0,
        help="Seconds one step of party code may run without returning to its event loop; "
        "past it the worker is killed and restarted (its rooms' sockets close with 1011). "
        "0: no limit.",
    ).tag(config=True)
    worker_memory_limit = Int(
        None,
        allow_none=True,
        help="Bytes of resident memory a worker may use; past it the worker is restarted like "
        "a crash. None: no limit.",
    ).tag(config=True)

    public_url = Unicode(
        "",
        help="This server's public base URL, e.g. `https://hub.example.org/user/alice/` (a URL "
        "without a path gets the server's base_url): what share links made by kernels and "
        "scripts are built on. Default: JupyterHub's `JUPYTERHUB_PUBLIC_URL`, else the address "
        "the request came to. Links asked for by a browser use the browser's address.",
    ).tag(config=True)
    room_activity_timeout = Float(
        300.0,
        help="Seconds without a message from any client after which open room connections "
        "stop counting as server activity (what `/api/status`, "
        "`shutdown_no_activity_timeout` and JupyterHub's idle culler see).",
    ).tag(config=True)
    party_env = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="Settings and secrets for party code, as `room.env` and `lobby.env` of every "
        "party; a `.env` file next to a party's module adds to it (and wins). Never logged "
        "or shown by any API.",
    ).tag(config=True)

    @default("parties_dir")
    def _default_parties_dir(self) -> str:
        return str(Path(jupyter_data_dir()) / "jupyter_party" / "parties")

    @default("node_name")
    def _default_node_name(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    @default("storage_url")
    def _default_storage_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        return f"sqlite:///{Path(jupyter_data_dir()) / 'jupyter_party' / 'storage.db'}"

    def initialize_settings(self) -> None:
        # Every Limits field has a trait of the same name (test_limits_are_all_configurable).
        self.limits = Limits(**{f.name: getattr(self, f.name) for f in fields(Limits)})
        Path(self.parties_dir).expanduser().mkdir(parents=True, exist_ok=True)
        self.logs = PartyLogs()
        partylog.install()
        # The runtime logs to "jupyter_party" (workers' records are replayed there): show it
        # where this server's own log goes.
        self._log_handlers = [h for h in self.log.handlers if h not in RUNTIME_LOG.handlers]
        for handler in self._log_handlers:
            RUNTIME_LOG.addHandler(handler)
        self.router = Router(self.workers, self.logs)
        if self.redis_url and not self.storage_url.startswith(("redis://", "rediss://")):
            raise ValueError(
                f"PartyApp.redis_url is set, so storage_url must be a redis:// URL (the rooms' "
                f"storage fenced by their leases), not {self.storage_url!r}"
            )
        self.backend = open_backend(self.storage_url)  # share grants (and rooms, if workers = 0)
        self.shares = Shares(self.backend, shared=bool(self.redis_url))
        self.session: Session | None = None
        self.supervisor: Supervisor | None = None
        self._starting: asyncio.Task[None] | None = None
        self.router.starter = self._start_rooms
        self._watching: asyncio.Task[None] | None = None
        self._following: asyncio.Task[None] | None = None
        self._stop_watching = asyncio.Event()
        self.sources = None
        self.cluster = None
        if self.redis_url:  # deploys and events reach every node of the party cluster
            parties_dir = Path(self.parties_dir).expanduser()
            self.sources = SharedSources(self.redis_url, parties_dir, self.router)
            self.cluster = Cluster(self.redis_url, self.node_name, self.lease_ttl, self.router)
        assert self.serverapp is not None, "an extension is initialised by its server"
        self.activity = Activity(
            self.serverapp.web_app.settings["last_activity_times"], self.room_activity_timeout
        )
        self.settings[SETTING] = PartyServices(
            self.router,
            self.shares,
            self.limits,
            self._describe_workers,
            Path(self.parties_dir).expanduser(),
            self.activity,
            self.public_url,
            dict(self.party_env),
            self.sources,
        )

    def initialize_handlers(self) -> None:
        self.handlers.extend(ROUTES)

    async def _start_jupyter_server_extension(self, serverapp) -> None:
        server = getattr(serverapp, "http_server", None)  # none if the app serves on its own
        if isinstance(server, HTTPServer):
            rooms = [url_path_join(serverapp.base_url, prefix) for prefix in ROOM_PREFIXES]
            take_room_connections(server, rooms)
        _skip_unseen_records(serverapp)
        await self._start_rooms()
        if self.own_process:
            tuning.settle_heap()

    def _start_rooms(self) -> asyncio.Task[None]:
        """Start the workers (or the in-process session), once: at server start, or on the
        first event, whichever comes first (an embedding app may never call the start hook)."""
        if self._starting is None:
            # In a context of its own: the first event's would keep that request's handler
            # (Jupyter holds it in a context variable) for as long as the server runs.
            loop = asyncio.get_running_loop()
            self._starting = loop.create_task(self._start(), context=contextvars.Context())
        return self._starting

    async def _start(self) -> None:
        self.activity.start()
        parties_dir = str(Path(self.parties_dir).expanduser())
        if self.workers == 0:
            leases = None
            if self.redis_url:
                leases = RoomLeases(self.redis_url, self.node_name, self.lease_ttl, self.backend)
            self.session = Session(
                self.router.uplink(0),
                Registry(parties_dir),
                self.backend,
                self.limits,
                env=dict(self.party_env),
                leases=leases,
            )
            await self.session.start()
            self.router.attach(0, self.session)
        else:
            config = {
                "parties_dir": parties_dir,
                "storage_url": self.storage_url,
                "redis_url": self.redis_url,
                "lease_ttl": self.lease_ttl,
                "node": self.node_name,
                "limits": asdict(self.limits),
                "env": dict(self.party_env),
                "workers": self.workers,
                "handler_timeout": self.handler_timeout,
                "log_level": RUNTIME_LOG.getEffectiveLevel(),
            }
            self.supervisor = Supervisor(
                self.router,
                self.logs,
                config,
                self.workers,
                self.handler_timeout,
                self.worker_memory_limit,
            )
            await self.supervisor.start()
        if self.watch_parties != "off":
            self._watching = spawn(
                watch_parties(
                    Path(parties_dir),
                    self.router,
                    self.logs,
                    self._stop_watching,
                    poll=self.watch_parties == "poll",
                )
            )
        if self.sources is not None:
            self._following = spawn(self.sources.follow(self._stop_watching))
        if self.cluster is not None:
            self.cluster.start()
        self.log.info(
            "jupyter_party: %s, parties from %s, storage %s%s",
            f"{self.workers} worker process(es)" if self.workers else "rooms in this process",
            parties_dir,
            self.storage_url,
            f", node {self.node_name!r} of the party cluster on {self.redis_url}"
            if self.redis_url
            else "",
        )

    def _describe_workers(self) -> list[dict]:
        if self.supervisor is not None:
            return self.supervisor.describe()
        return [{"worker": 0, "pid": None, "restarts": 0, "last_exit": None}]

    async def stop_extension(self) -> None:
        for handler in self._log_handlers:
            RUNTIME_LOG.removeHandler(handler)
        self.activity.stop()
        self.router.shutdown()
        if self._starting is not None and not self._starting.done():
            await self._starting
        self._stop_watching.set()
        if self._watching is not None:
            await self._watching
        if self._following is not None:
            await self._following
        if self.sources is not None:
            await self.sources.close()
        if self.cluster is not None:
            await self.cluster.close()
        if self.session is not None:
            await self.session.close()  # closes the shared backend too
            return
        if self.supervisor is not None:
            await self.supervisor.stop()
        await self.backend.close()


def _skip_unseen_records(app: Application) -> None:
    """Keep `app`'s logger at the lowest level of the handlers its records reach.

    traitlets leaves an application's logger at DEBUG and lets its handlers filter, so every
    `log.debug` on Jupyter's request path (two per token-authenticated request) builds a
    record, walking the stack for its caller, that every handler then drops: a tenth of the
    CPU of a room connect. A record no handler would show is now not made at all; the level
    follows the app's logging settings (traitlets resets the logger when they change). As with
    any logger, a handler added by hand later shows debug records once the level is lowered.
    """

    def tighten(_change: object = None) -> None:
        log = app.log
        levels: list[int] = []
        logger: logging.Logger | None = log
        while logger is not None:
            levels += [handler.level for handler in logger.handlers]
            logger = logger.parent if logger.propagate else None
        if levels and min(levels) > log.level:
            log.setLevel(min(levels))

    tighten()
    app.observe(tighten, ["log_datefmt", "log_format", "log_level", "logging_config"])
