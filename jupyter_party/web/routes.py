"""The one route table, used by the Jupyter extension and by `jupyter party serve`.

Paths are relative: the Jupyter extension machinery prefixes the server's base_url.
"""

from __future__ import annotations

from .api import PartiesHandler, RoomsHandler
from .room_handler import RoomHandler

ROUTES = [
    (r"/parties(?:/.*)?", RoomHandler),
    (r"/party(?:/.*)?", RoomHandler),
    (r"/party-api/parties/?", PartiesHandler),
    (r"/party-api/rooms/?", RoomsHandler),
]
