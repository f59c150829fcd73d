"""`{base}parties`: the party home page, for a person with a browser and no notebook.

It lists the parties (with why one failed to load), the live rooms and the workers, and opens
any room's console (the share page, which the owner may open too). Jupyter authentication
only: a browser without the login cookie is sent to Jupyter's login page.
"""

from __future__ import annotations

import html
import secrets
import time
from pathlib import Path
from urllib.parse import quote, unquote

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from ..protocol.names import InvalidName, check_party_name, check_room_id
from .services import SETTING, PartyServices

_PAGE = (Path(__file__).parent / "templates" / "home.html").read_text("utf-8")


class HomePageHandler(JupyterHandler):
    """The party home page; `?party=P&room=R` opens room R of party P."""

    auth_resource = "party"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        party, room = self.get_query_argument("party", ""), self.get_query_argument("room", "")
        if party and room:
            try:
                check_party_name(party)
                check_room_id(room)
            except InvalidName as error:
                raise web.HTTPError(400, str(error)) from None
            self.redirect(self._room_page(party, quote(room, safe="")))
            return
        services: PartyServices = self.settings[SETTING]
        parties = await services.router.parties()
        rooms = await services.router.rooms()
        nonce = secrets.token_urlsafe(16)
        self.set_header(
            "Content-Security-Policy",
            f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'",
        )
        page = (
            _PAGE.replace("@@NONCE@@", nonce)
            .replace("@@PARTIES@@", "\n".join(map(self._party_row, parties)))
            .replace("@@ROOMS@@", "\n".join(map(self._room_row, sorted(rooms, key=_key))) or _NONE)
            .replace("@@WORKERS@@", "\n".join(map(_worker_row, services.workers())))
        )
        self.finish(page)

    def _room_page(self, party: str, room: str) -> str:
        """The room's console: its share page, which a Jupyter user may open as is."""
        return f"{self.base_url}party-share/{party}/{room}"

    def _party_row(self, party: dict) -> str:
        name = html.escape(party["name"])
        if party["error"]:
            failed = f"failed to load<pre>{html.escape(party['error'])}</pre>"
            return _row(name, failed, "", attrs=' class="failed"')
        form = (
            f'<form method="get" action="{html.escape(self.base_url)}parties">'
            f'<input type="hidden" name="party" value="{name}">'
            f'<input name="room" required placeholder="room id" aria-label="room id of {name}">'
            "<button>open</button></form>"
        )
        return _row(name, party["kind"], form, attrs=f' data-party="{name}"')

    def _room_row(self, room: dict) -> str:
        link = html.escape(self._room_page(room["party"], room["room"]))
        label = html.escape(f"{room['party']} / {unquote(room['room'])}")
        when = time.strftime("%H:%M:%S", time.localtime(room["last_activity"]))
        return _row(f'<a href="{link}">{label}</a>', str(room["connections"]), when)


_NONE = '<tr><td class="muted" colspan="3">none yet: open one above</td></tr>'


def _key(room: dict) -> tuple[str, str]:
    return room["party"], room["room"]


def _worker_row(worker: dict) -> str:
    where = f"pid {worker['pid']}" if worker["pid"] else "the server process"
    last = html.escape(worker["last_exit"] or "")
    return _row(str(worker["worker"]), where, str(worker["restarts"]), last)


def _row(*cells: str, attrs: str = "") -> str:
    """A table row of cells that are HTML already."""
    return f"<tr{attrs}>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"
