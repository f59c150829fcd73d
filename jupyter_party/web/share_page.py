"""`{base}party-share/{party}/{room}`: the page a share link opens.

It is a self-contained room console (status, live messages, a send box): no Jupyter UI, no
CDN, nothing but the room's own socket. Its share token grants that room and nothing else.
"""

from __future__ import annotations

import html
import json
import secrets
from pathlib import Path

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler

from ..protocol.codes import REFUSALS, CloseCode
from ..protocol.names import InvalidName, split_room_path
from ..runtime.errors import Overloaded
from ..runtime.shares import ShareError
from .room_handler import SHARE_PARAM
from .services import SETTING, PartyServices

_TEMPLATES = Path(__file__).parent / "templates"
_CONSOLE = (_TEMPLATES / "share.html").read_text("utf-8")
_WIDGET = (_TEMPLATES / "share-widget.html").read_text("utf-8")


class SharePageHandler(JupyterHandler):
    """The share page: open to a share link's holder (for its room) and to Jupyter users."""

    auth_resource = "party"

    @allow_unauthenticated
    async def get(self) -> None:
        parties: PartyServices = self.settings[SETTING]
        prefix = f"{self.base_url}party-share/"
        try:
            where = split_room_path("parties/" + self.request.path[len(prefix) :])
        except InvalidName as error:
            return self._error_page(404, str(error))
        access, owner = "write", self.current_user is not None
        if not owner:  # the credential first: strangers learn nothing of the parties
            try:
                token = self.get_query_argument(SHARE_PARAM, "")
                access = (await parties.shares.verify(token, where.party, where.room)).access
            except ShareError as error:
                return self._error_page(error.status, str(error))
        try:
            party = await parties.router.party(where.party)
        except Overloaded as error:
            return self._error_page(503, str(error))
        if party["error"]:  # why it failed to load is for the owner's eyes only
            return self._error_page(404, party["error"] if owner else "no such party")
        config = {
            "party": where.party,
            "room": where.room,
            "access": access,
            "socketPath": f"{self.base_url}parties/{where.party}/{where.room}",
            "baseUrl": self.base_url,
            "final": sorted(int(code) for code in [*REFUSALS, CloseCode.EPOCH_CHANGED]),
        }
        template, widget = _CONSOLE, self._widget(party, config)
        if widget:
            template = _WIDGET
            config.update(widget)
        nonce = secrets.token_urlsafe(16)
        self._protect(nonce, widget=bool(widget))
        page = (
            template.replace("@@TITLE@@", html.escape(f"{where.party} / {where.room}"))
            .replace("@@NONCE@@", nonce)
            .replace("@@CONFIG@@", json.dumps(config).replace("</", "<\\/"))
        )
        self.finish(page)

    def _widget(self, party: dict, config: dict) -> dict | None:
        """The notebook widget this room's page shows instead of the plain console: the
        party's own UI, or the shared-document view of a YServer room."""
        static = f"{self.base_url}static/jupyter_party/"
        ui = party.get("ui")
        if ui:
            return {"module": static + "ui.js", "state": {"ui_esm": ui}}
        if party["kind"] == "yserver":
            return {"module": static + "doc.js", "state": {"user": f"guest ({config['access']})"}}
        return None

    def _protect(self, nonce: str = "", widget: bool = False) -> None:
        # The page URL carries the token: never send it on as a Referer, never frame the page.
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("X-Content-Type-Options", "nosniff")
        scripts = styles = f"'nonce-{nonce}'" if nonce else "'none'"
        if widget:  # our bundled widget (same origin), a party's UI module (a blob), their CSS
            scripts += " 'self' blob:"
            styles = "'self' 'unsafe-inline'"
        self.set_header(
            "Content-Security-Policy",
            f"default-src 'none'; script-src {scripts}; style-src {styles}; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'",
        )

    def _error_page(self, status: int, message: str) -> None:
        self._protect()
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status}: {message}\n")
