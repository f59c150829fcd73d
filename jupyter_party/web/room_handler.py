"""The room URL: WebSocket upgrades and plain HTTP on the same path.

Authentication is checked here rather than by Jupyter's decorators, so a WebSocket client is
told *why* it was refused with a close code (4401, 4403, 4404) instead of a bare failed
handshake, which browsers only report as 1006.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any
from urllib.parse import urlencode

from jupyter_server.auth import User
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler

from ..protocol.codes import CloseCode
from ..protocol.names import InvalidName, RoomPath, split_room_path
from ..runtime.errors import Overloaded
from ..runtime.http import Request, Response, request_to_wire
from ..runtime.ratelimit import RateLimiter
from ..runtime.room import maybe_await
from ..runtime.router import Refused, Socket
from ..runtime.shares import Grant, ShareError
from .services import SETTING, PartyServices
from .websocket import CLEAN, Pinger, WebSocket, switching_protocols

#: The query parameter carrying a share token. Jupyter's access log hides any parameter whose
#: name contains "token", so the secret never reaches a log line.
SHARE_PARAM = "share_token"


class RequestRefused(Exception):
    """A request the room must not see.

    Carries the HTTP response to send and, for WebSocket clients, the close code to send
    after accepting the upgrade. A party's own gate response has no code: it is sent as is.
    """

    def __init__(self, response: Response, code: int | None = None, message: str = "") -> None:
        super().__init__(message)
        self.response, self.code = response, code

    @classmethod
    def error(cls, status: int, code: int, message: str) -> RequestRefused:
        """A refusal of ours: HTTP `status` with a JSON `error`, close `code` for sockets."""
        return cls(Response.json({"error": message}, status), code, message)


class RoomSocket(WebSocket):
    """An open room socket: what stays of a connection once its handler has returned.

    It is the router's transport for the socket, and passes the client's messages to the
    router through the socket's rate limit.
    """

    __slots__ = ("_counted", "_expiry", "_limiter", "_parties", "_where", "socket")

    def __init__(
        self, parties: PartyServices, pinger: Pinger | None, where: RoomPath | None
    ) -> None:
        super().__init__(parties.limits.max_message_size, pinger)
        self._parties = parties
        self._where = where
        self.socket: Socket | None = None  # once the room admitted it
        self._limiter: RateLimiter | None = None  # None: not limited (the owner)
        self._expiry: asyncio.TimerHandle | None = None  # a share link's end
        self._counted = False  # this socket is among the activity's open ones

    def admitted(self, socket: Socket, limited: bool) -> None:
        """The room admitted it as `socket`, with its party's limits; `limited`: its messages
        are rate-limited (a guest, or `limit_owner`)."""
        self.socket = socket
        self.max_message_size = socket.limits.get("max_message_size") or self.max_message_size
        if not limited:
            return
        limits = self._parties.limits
        self._limiter = RateLimiter(
            limits.rate_limit_messages,
            limits.rate_limit_burst,
            limits.rate_limit_bytes,
            limits.rate_limit_window,
            limits.rate_limit_strikes,
        )

    def expire_in(self, seconds: float) -> None:
        """The share link's expiry ends the socket too."""
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(seconds, self._expired, context=CLEAN)

    def _expired(self) -> None:
        if self.socket is not None:
            self.socket.outbox.close(CloseCode.UNAUTHENTICATED, "share link expired")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.socket is not None:
            self._counted = True
            self._parties.activity.opened()
        super().connection_made(transport)

    def on_message(self, message: str | bytes) -> asyncio.Future[Any] | None:
        socket = self.socket
        if socket is None:
            return None
        parties = self._parties
        parties.activity.event()
        limiter = self._limiter
        if limiter is None or limiter.allow(len(message)):  # text: in characters
            return parties.router.message(socket, message)
        drops = socket.limits.get("rate_limit_drops", True)
        if (not drops or limiter.strike()) and not socket.outbox.closed:  # or dropped
            where = self._where
            logging.getLogger("jupyter_party").warning(
                "party %r room %r: closing %r: rate limit exceeded",
                where.party if where else None,
                where.room if where else None,
                socket.id,
            )
            socket.outbox.close(CloseCode.POLICY, "rate limit exceeded")
        return None

    def on_close(self, code: int, reason: str) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        socket, self.socket = self.socket, None
        if self._counted:
            self._counted = False
            self._parties.activity.closed()
        if socket is not None:
            self._parties.router.closed(socket, code, reason)


class RoomHandler(JupyterHandler):
    """`{base}parties/{party}/{room}[/{rest}]` and `{base}party/{room}[/{rest}]`.

    Identity (Jupyter auth or a share link) is settled here, in the server process; the
    party's gate and the room itself run in the worker that owns the room (see router.py).
    A WebSocket upgrade is answered here too, then the socket is handed to a `RoomSocket`
    and the handler returns: Tornado keeps nothing of it (see websocket.py).
    """

    auth_resource = "party"

    def initialize(self) -> None:
        self.parties: PartyServices = self.settings[SETTING]
        self._grant: Grant | None = None
        self._limited = True  # rate limits apply (a guest, or limit_owner)

    # -- HTTP -------------------------------------------------------------------------------

    @property
    def _upgrading(self) -> bool:
        """A WebSocket upgrade: its 101 is written by hand (websocket.py)."""
        return self.request.headers.get("Upgrade", "").lower() == "websocket"

    @allow_unauthenticated
    async def get(self, *args: Any) -> None:
        if self._upgrading:
            await self._upgrade()
        else:
            await self._http()

    @allow_unauthenticated
    async def post(self, *args: Any) -> None:
        await self._http()

    put = patch = delete = options = post

    async def _http(self) -> None:
        try:
            where, request, who = await self._identify("request")
            response = await self.parties.router.request(where.party, where.room, request, who)
        except RequestRefused as refused:
            response = refused.response
        except Overloaded as error:
            response = Response.json({"error": str(error)}, 503)
        if response.status < 400:  # refused strangers do not keep the server alive
            self.parties.activity.event()
        self._respond(response)

    def _respond(self, response: Response) -> None:
        self.set_status(response.status)
        for name, value in (response.headers or {}).items():
            self.set_header(name, value)
        # Tornado refuses a body with 204 and 304; an empty `finish` is what HTTP wants there.
        self.finish(response.body_bytes() if response.status not in (204, 304) else None)

    # -- WebSocket --------------------------------------------------------------------------

    def check_xsrf_cookie(self) -> None:
        # XSRF protects cookie sessions. A share-token request ignores any cookie (see
        # _identify), and a page that can forge it must already hold the token; a request
        # with no cookie at all (a script, curl, a public room's client) has no session to
        # forge, and is judged by the party's gate like any stranger.
        if self.request.cookies and not self.get_query_argument(SHARE_PARAM, ""):
            super().check_xsrf_cookie()

    def check_origin(self, origin: str = "") -> bool:
        # Jupyter's rule: cross-origin is refused for cookie-authenticated sockets and
        # allowed for token-authenticated ones (the token proves intent). A share token is
        # such a token: a request carrying one ignores cookies (see _who).
        if self.get_query_argument(SHARE_PARAM, ""):
            return True
        return JupyterHandler.check_origin(self, origin)

    def set_secure_cookie(self, name: str, value: str | bytes, *args: Any, **kwargs: Any) -> None:
        # A room upgrade does not log the client in (Jupyter's identity provider would, on
        # every token-authenticated request): a room socket authenticates each connect, and
        # its 101 carries no cookie, so signing one would be wasted (~5 % of a connect).
        if not self._upgrading:
            super().set_secure_cookie(name, value, *args, **kwargs)

    def set_cors_headers(self) -> None:
        # CORS is for what a page's script reads: no script reads a WebSocket's handshake.
        if not self._upgrading:
            super().set_cors_headers()

    def set_default_headers(self) -> None:
        # Jupyter's (a content security policy, nosniff) are for pages; the 101 carries none of
        # the handler's headers, and building them was ~4 % of a connect.
        if not self._upgrading:
            super().set_default_headers()

    def _bad_upgrade(self) -> bool:
        """Answer an upgrade request that cannot be accepted (as Tornado did): True if so."""
        headers = self.request.headers
        connection = {s.strip().lower() for s in headers.get("Connection", "").split(",")}
        if not (headers.get("Host") and headers.get("Sec-WebSocket-Key")) or (
            "upgrade" not in connection
        ):
            status, message = 400, "Missing/Invalid WebSocket headers"
        elif headers.get("Sec-WebSocket-Version") != "13":
            status, message = 426, "Upgrade Required"
            self.set_header("Sec-WebSocket-Version", "13")
        elif not self.check_origin(headers.get("Origin", "")):
            status, message = 403, "Cross origin websockets not allowed"
        else:
            return False
        self.set_status(status)
        self.finish(message)
        return True

    async def _upgrade(self) -> None:
        """Admit the socket to its room (`on_connect` runs) before the handshake is answered,
        then answer it and hand the socket over. A refusal is a close code after the 101."""
        if self._bad_upgrade():
            return
        socket: RoomSocket | None = None
        try:
            where, request, who = await self._identify("connect")
            socket = RoomSocket(self.parties, self._pinger(), where)
            await self._join(socket, where, request, who)
        except RequestRefused as refused:
            if refused.code is None:  # the party's gate answered: send that, do not upgrade
                self._respond(refused.response)
                return
            socket = socket or RoomSocket(self.parties, None, None)
            socket.close(refused.code, str(refused))
        except Overloaded as error:
            socket = socket or RoomSocket(self.parties, None, None)
            socket.close(CloseCode.OVERLOADED, str(error))
        self.set_status(101)
        # Jupyter logs a 101 at debug level, building its line (and a request-duration
        # metric, where room sockets have their own) first: ~4 % of a connect, for nothing
        # unless debug records are shown.
        if self.log.isEnabledFor(logging.DEBUG):
            self.application.log_request(self)
        await socket.take_over(
            self.detach(), switching_protocols(self.request.headers["Sec-WebSocket-Key"])
        )
        # What Tornado does when a handler finishes (a detached one never does): its `ui`
        # refers back to it, and a cycle leaves the handler to the garbage collector.
        self._break_cycles()

    async def _join(self, socket: RoomSocket, where: RoomPath, request: Request, who: str) -> None:
        """Admit `socket` to its room, through the party's gate (`on_before_connect`, then
        `on_connect` run), before the handshake is answered. Raises RequestRefused."""
        grant, router, limits = self._grant, self.parties.router, self.parties.limits
        if grant and router.shared(grant.id) >= limits.max_connections_per_share:
            message = "too many connections on this share link"
            raise RequestRefused.error(503, CloseCode.OVERLOADED, message)
        try:
            opened = await router.open(
                socket,
                where.party,
                where.room,
                request.query.get("_pk") or secrets.token_hex(16),
                request_to_wire(request),
                share_id=grant.id if grant else None,
                who=who,
                send_buffer_limit=limits.send_buffer_limit,
            )
        except Refused as refused:  # the gate or the room refused the socket
            if refused.response is not None:
                raise RequestRefused(refused.response) from None
            raise RequestRefused.error(403, refused.code, str(refused)) from None
        socket.admitted(opened, self._limited)
        if grant is not None:
            socket.expire_in(grant.expires - self.parties.shares.clock())

    def _pinger(self) -> Pinger | None:
        """The one pinger of this server's room sockets (none if `ping_interval` is 0)."""
        limits = self.parties.limits
        if limits.ping_interval <= 0:
            return None
        pinger = self.settings.get(_PINGER)
        if pinger is None:
            pinger = self.settings[_PINGER] = Pinger(limits.ping_interval, limits.ping_timeout)
        return pinger

    # -- identity ---------------------------------------------------------------------------

    async def _identify(self, kind: str) -> tuple[RoomPath, Request, str]:
        """Check the path and who is asking; returns where to, the request as party code
        sees it, and who asks: "owner" (the Jupyter user), "guest" (a share link's holder) or
        "anonymous" (whom only the party's gate may admit). Raises RequestRefused."""
        path = self.request.path
        base = self.base_url
        try:
            where = split_room_path(path[len(base) :] if path.startswith(base) else path)
        except InvalidName as error:
            raise RequestRefused.error(400, CloseCode.BAD_REQUEST, str(error)) from None
        user, grant = await self._who(where, kind)
        self._grant = grant
        who = "anonymous" if user is None else "guest" if grant is not None else "owner"
        self._limited = who != "owner" or self.parties.limits.limit_owner
        request = self._party_request(where, user, grant.access if grant else "write")
        return where, request, who

    async def _who(self, where: RoomPath, kind: str) -> tuple[Any, Grant | None]:
        """Who is asking: a share link's holder, a Jupyter user the authorizer lets in, or
        (None, None): nobody, whom only the party's gate may admit (a public room).

        A request carrying a share token is judged by that token alone, never by a login
        cookie that came along (see check_xsrf_cookie).
        """
        token = self.get_query_argument(SHARE_PARAM, "")
        user = None if token else self.current_user
        if user is not None and not JupyterHandler.check_origin(self):  # a foreign page
            # carrying the login cookie: refused before any party code runs
            raise RequestRefused.error(403, CloseCode.FORBIDDEN, "cross-origin request refused")
        if user is not None:
            action = "execute" if kind == "connect" else _ACTIONS.get(self.request.method, "write")
            if not await maybe_await(self.authorizer.is_authorized(self, user, action, "party")):
                message = f"not authorized to {action} on parties"
                raise RequestRefused.error(403, CloseCode.FORBIDDEN, message)
            return user, None
        if not token:
            return None, None
        try:
            grant = await self.parties.shares.verify(token, where.party, where.room)
        except ShareError as error:
            code = CloseCode.UNAUTHENTICATED if error.status == 401 else CloseCode.FORBIDDEN
            raise RequestRefused.error(error.status, code, str(error)) from None
        if grant.access == "read" and kind == "request" and self.request.method not in _ACTIONS:
            raise RequestRefused.error(403, CloseCode.FORBIDDEN, "this share link is read-only")
        return share_user(grant), grant

    def _party_request(self, where: RoomPath, user: Any, access: str) -> Request:
        """The request as party code sees it: credentials are removed from the URL (and from
        the headers, when it crosses to the worker)."""
        r = self.request
        query = {
            k: v[-1].decode("utf-8", "replace")
            for k, v in r.query_arguments.items()
            if k not in _CREDENTIALS
        }
        return Request(
            method=r.method,
            url=f"{r.protocol}://{r.host}{r.path}" + (f"?{urlencode(query)}" if query else ""),
            path=where.rest,
            query=query,
            headers=r.headers,
            body=r.body,
            user=user,
            access=access,
        )


_PINGER = "jupyter_party_pinger"  # its key in the web application's settings
_ACTIONS = {"GET": "read", "HEAD": "read", "OPTIONS": "read"}
_CREDENTIALS = {"token", SHARE_PARAM}  # never shown to party code, never logged by it


def share_user(grant: Grant) -> User:
    """The identity of a share link's holder, as `ctx.user` shows it."""
    return User(username=f"share-{grant.id[:12]}", name=f"Guest ({grant.access})")
