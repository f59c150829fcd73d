"""`{base}party-api/host/{party}`: a kernel serves a party itself (`jupyter_party.host`).

The kernel opens this WebSocket with the user's Jupyter credentials and speaks the worker wire
protocol in binary messages: to the router it is one more worker, which owns every room of the
party (see router.py). A GET without the upgrade answers whether the name can be hosted (409
says why not), so `host()` fails at once, with the reason. When the socket closes (`stop()`, a
kernel restart or shutdown, a lost connection) the party's clients are closed with 1012 and the
name is free again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import ensure_async
from tornado import web
from tornado.websocket import WebSocketHandler

from ..protocol import wire
from ..protocol.codes import CloseCode
from ..protocol.frames import close_reason
from ..runtime.channel import WebSocketStream, WorkerLink
from ..runtime.tasks import spawn
from .services import SETTING, PartyServices

log = logging.getLogger("jupyter_party")

#: How long a kernel may take to start its session and answer HELLO.
HELLO_TIMEOUT = 30.0


class HostHandler(WebSocketHandler, JupyterHandler):
    """The socket of one kernel hosting one party."""

    auth_resource = "party"

    def initialize(self) -> None:
        self.parties: PartyServices = self.settings[SETTING]
        self._party = ""
        self._index: int | None = None
        self._link: WorkerLink | None = None

    @allow_unauthenticated  # checked below, with the answer a kernel can show
    async def get(self, party: str) -> None:
        user = self.current_user
        if user is None:
            raise web.HTTPError(401, "hosting a party needs the Jupyter server's token")
        if not await ensure_async(self.authorizer.is_authorized(self, user, "write", "party")):
            raise web.HTTPError(403, "not authorized to write on parties")
        why = await self.parties.router.why_not_host(party, self._replace)
        if why is not None:
            self.set_status(409)
            await self.finish({"message": why})
            return
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            await self.finish({"party": party, "available": True})
            return
        self._party = party
        await WebSocketHandler.get(self, party)

    @property
    def _replace(self) -> bool:
        return self.get_query_argument("replace", "") in ("1", "true")

    def check_origin(self, origin: str = "") -> bool:
        return JupyterHandler.check_origin(self, origin)

    def open(self, party: str) -> None:
        router = self.parties.router
        index = router.claim(party, self._replace, self._release)
        if index is None:  # another kernel got here since the check
            return self.close(CloseCode.FORBIDDEN, f"party {party!r} is already hosted")
        self._index = index
        self._link = link = WorkerLink(router, index)
        link.channel.connection_made(WebSocketStream(self))
        limits = asdict(self.parties.limits)
        config = {"party": party, "limits": limits, "env": self.parties.party_env}
        link.channel.send(wire.HELLO, [wire.VERSION, config])
        spawn(self._attach(link, index))

    async def _attach(self, link: WorkerLink, index: int) -> None:
        """The kernel's session is up (it answered HELLO): route the party's rooms to it."""
        try:
            hello = await asyncio.wait_for(asyncio.shield(link.hello), HELLO_TIMEOUT)
            wire.check_hello(wire.Frame(wire.HELLO, hello, b""))
        except (TimeoutError, wire.ProtocolError) as error:
            reason = "the kernel did not answer" if isinstance(error, TimeoutError) else str(error)
            return self.close(CloseCode.BAD_REQUEST, reason)
        if self._index != index or self._link is not link:
            return  # closed meanwhile
        self.parties.router.attach(index, link)
        pid = hello[1].get("pid") if len(hello) > 1 and isinstance(hello[1], dict) else None
        log.info("party %r is hosted by a kernel (pid %s)", self._party, pid)
        self.parties.router.logs.record(self._party, None, "log", f"hosted by a kernel (pid {pid})")

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        super().close(code, close_reason(reason) if reason else reason)

    def _release(self, reason: str) -> None:
        """The router let this kernel go (another one hosts the party now)."""
        self.close(CloseCode.SERVICE_RESTART, reason)

    def on_message(self, message: str | bytes) -> None:
        if self._link is None:
            return
        if isinstance(message, str):
            return self.close(CloseCode.BAD_REQUEST, "the wire protocol is binary")
        self._link.channel.data_received(message)

    def on_close(self) -> None:
        link, index = self._link, self._index
        self._link = self._index = None
        if link is None or index is None:
            return
        link.channel.connection_lost(None)
        reason = f"the kernel hosting party {self._party!r} stopped"
        self.parties.router.unhost(index, reason)
        self.parties.router.logs.record(self._party, None, "log", reason)
