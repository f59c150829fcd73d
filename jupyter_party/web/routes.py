"""The one route table, used by the Jupyter extension and by `jupyter party serve`.

Paths are relative: the Jupyter extension machinery prefixes the server's base_url.
"""

from __future__ import annotations

from .api import (
    DeployHandler,
    LogsHandler,
    PartiesHandler,
    RoomAdminHandler,
    RoomsHandler,
    ShareHandler,
    SharesHandler,
    StorageKeyHandler,
)
from .home_page import HomePageHandler
from .host_handler import HostHandler
from .room_handler import RoomHandler
from .share_page import SharePageHandler

#: Where rooms are, below the base_url: the upgrades to read as they arrive (listener.py).
ROOM_PREFIXES = ("parties/", "party/")

ROUTES = [
    (r"/parties/?", HomePageHandler),  # before the rooms: `parties` alone is no room
    (r"/parties(?:/.*)?", RoomHandler),
    (r"/party(?:/.*)?", RoomHandler),
    (r"/party-api/parties/?", PartiesHandler),
    (r"/party-api/parties/([a-z0-9_-]{1,64})", DeployHandler),
    (r"/party-api/parties/([a-z0-9_-]{1,64})/logs", LogsHandler),
    (r"/party-api/rooms/?", RoomsHandler),
    (r"/party-api/rooms/[a-z0-9_-]{1,64}/[^/]+", RoomAdminHandler),
    (r"/party-api/rooms/[a-z0-9_-]{1,64}/[^/]+/storage/.+", StorageKeyHandler),
    (r"/party-api/host/([a-z0-9_-]{1,64})", HostHandler),
    (r"/party-api/share/?", SharesHandler),
    (r"/party-api/share/([0-9a-f]{64})", ShareHandler),
    (r"/party-share/.*", SharePageHandler),
]
