"""Admin REST API under `{base}party-api/` (DESIGN §4): Jupyter authentication only."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from .room_handler import HOST_SETTING


class _AdminHandler(APIHandler):
    auth_resource = "party"

    @property
    def host(self):
        return self.settings[HOST_SETTING]


class PartiesHandler(_AdminHandler):
    """`GET party-api/parties`: deployed parties, and those that failed to load with why."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        registry = self.host.registry
        parties = [
            {"name": n, "source": registry.source(n), "error": None} for n in registry.names()
        ]
        parties += [
            {"name": n, "source": None, "error": error}
            for n, error in sorted(registry.errors.items())
            if n not in registry.names()
        ]
        self.finish({"parties": parties})


class RoomsHandler(_AdminHandler):
    """`GET party-api/rooms`: live rooms with their connection counts."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        self.finish({"rooms": self.host.describe()})
