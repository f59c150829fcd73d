"""The room URL: WebSocket upgrades and plain HTTP on the same path.

Authentication is checked here rather than by Jupyter's decorators, so a WebSocket client is
told *why* it was refused with a close code (4401, 4403, 4404) instead of a bare failed
handshake, which browsers only report as 1006.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from jupyter_server.auth import User
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado.httputil import HTTPHeaders
from tornado.iostream import IOStream
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..protocol.codes import CloseCode
from ..protocol.frames import close_reason
from ..protocol.names import InvalidName, RoomPath, split_room_path
from ..runtime.errors import Overloaded
from ..runtime.http import Request, Response, request_to_wire
from ..runtime.outbox import Outgoing
from ..runtime.ratelimit import RateLimiter
from ..runtime.room import maybe_await
from ..runtime.router import Refused, Socket
from ..runtime.shares import Grant, ShareError
from .services import SETTING, PartyServices

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


class _SocketTransport:
    """Writes pre-framed messages straight to the socket's stream (see protocol/frames.py).

    The room admits the socket before the handshake is answered, so a client that has its
    101 is in the room: what the room sends before the upgrade waits here until it is done.
    """

    __slots__ = ("_early", "_handler")

    def __init__(self, handler: RoomHandler) -> None:
        self._handler = handler
        self._early: list[bytes | tuple[int, str]] | None = []  # None once upgraded

    def write(self, batch: list[Outgoing]) -> Any:
        data = batch[0].frame if len(batch) == 1 else b"".join([m.frame for m in batch])
        if self._early is not None:
            self._early.append(data)
            return None
        return self._stream().write(data)

    def close(self, code: int, reason: str) -> None:
        if self._early is not None:
            self._early.append((code, reason))
        else:
            self._handler.close(code, reason)

    @property
    def upgraded(self) -> bool:
        return self._early is None

    def upgrade(self) -> None:
        """The handshake is done: send what waited, in order."""
        early, self._early = self._early or [], None
        for item in early:
            if isinstance(item, tuple):
                self.close(*item)
                return
            self._stream().write(item)

    def _stream(self) -> IOStream:
        connection = self._handler.ws_connection
        if connection is None or connection.stream is None:  # it closed under us
            raise WebSocketClosedError()
        return connection.stream


class RoomHandler(WebSocketHandler, JupyterHandler):
    """`{base}parties/{party}/{room}[/{rest}]` and `{base}party/{room}[/{rest}]`.

    Identity (Jupyter auth or a share link) is settled here, in the server process; the
    party's gate and the room itself run in the worker that owns the room (see router.py).
    """

    auth_resource = "party"

    def initialize(self) -> None:
        self.parties: PartyServices = self.settings[SETTING]
        self._refusal: RequestRefused | None = None
        self._socket: Socket | None = None
        self._party_limits: dict[str, Any] = {}
        self._grant: Grant | None = None
        self._limited = True  # rate limits apply (a guest, or limit_owner)
        self._expiry: asyncio.TimerHandle | None = None
        self._transport = _SocketTransport(self)
        self._counted = False  # this socket is among the activity's open ones

    # -- HTTP -------------------------------------------------------------------------------

    @allow_unauthenticated
    async def get(self, *args: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
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
        # Jupyter's rule, not Tornado's: cross-origin is refused for cookie-authenticated
        # sockets and allowed for token-authenticated ones (the token proves intent). A share
        # token is such a token: a request carrying one ignores cookies (see _who).
        if self.get_query_argument(SHARE_PARAM, ""):
            return True
        return JupyterHandler.check_origin(self, origin)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        super().close(code, close_reason(reason) if reason else reason)

    @property
    def max_message_size(self) -> int:
        return self._party_limits.get("max_message_size") or self.parties.limits.max_message_size

    @property
    def ping_interval(self) -> float:
        return self.parties.limits.ping_interval

    @property
    def ping_timeout(self) -> float:
        # Tornado >= 6.5 caps the timeout at the interval (with a warning): do it quietly.
        return min(self.parties.limits.ping_timeout, self.parties.limits.ping_interval)

    @cached_property
    def _limiter(self) -> RateLimiter:
        limits = self.parties.limits
        return RateLimiter(
            limits.rate_limit_messages,
            limits.rate_limit_burst,
            limits.rate_limit_bytes,
            limits.rate_limit_window,
            limits.rate_limit_strikes,
        )

    async def _upgrade(self) -> None:
        try:
            self._where, request, who = await self._identify("connect")
            await self._join(request, who)
        except RequestRefused as refused:
            self._refusal = refused
        except Overloaded as error:
            self._refusal = RequestRefused.error(503, CloseCode.OVERLOADED, str(error))
        if self._refusal is not None and self._refusal.code is None:
            self._respond(self._refusal.response)  # the party's gate answered: no upgrade
            return
        try:
            await WebSocketHandler.get(self)  # returns once the socket is closed
        finally:
            if self._socket is not None and not self._transport.upgraded:  # no handshake
                socket, self._socket = self._socket, None
                self.parties.router.closed(socket, CloseCode.ABNORMAL, "the handshake failed")

    async def _join(self, request: Request, who: str) -> None:
        """Admit the socket to its room, through the party's gate (`on_before_connect`, then
        `on_connect` run), before the handshake is answered. Raises RequestRefused."""
        where, grant, router = self._where, self._grant, self.parties.router
        if grant and router.shared(grant.id) >= self.parties.limits.max_connections_per_share:
            message = "too many connections on this share link"
            raise RequestRefused.error(503, CloseCode.OVERLOADED, message)
        try:
            self._socket = await router.open(
                self._transport,
                where.party,
                where.room,
                request.query.get("_pk") or uuid.uuid4().hex,
                request_to_wire(request),
                share_id=grant.id if grant else None,
                who=who,
                send_buffer_limit=self.parties.limits.send_buffer_limit,
            )
        except Refused as refused:  # the gate or the room refused the socket
            if refused.response is not None:
                raise RequestRefused(refused.response) from None
            raise RequestRefused.error(403, refused.code, str(refused)) from None
        self._party_limits = self._socket.limits
        if grant is not None:  # the link's expiry ends the socket too
            left = grant.expires - self.parties.shares.clock()
            self._expiry = asyncio.get_running_loop().call_later(left, self._expired)

    def open(self, *args: Any) -> None:
        self._transport.upgrade()
        self._release_request()
        if self._refusal is not None:
            self.close(self._refusal.code, str(self._refusal))
        elif self._socket is not None:
            self._counted = True
            self.parties.activity.opened()

    def _release_request(self) -> None:
        """The handshake is answered: keep nothing of the upgrade request for the socket's
        life but its summary (method, URI, address) that Tornado's logs use. Its headers,
        query and parsed cookies were about 3 KB per idle connection (the party's `Request`
        keeps what the room was given)."""
        request = self.request
        request.headers = _NO_HEADERS
        request.query_arguments, request.arguments = {}, {}
        request.__dict__.pop("_cookies", None)
        self._headers = _NO_HEADERS  # the 101's, sent
        self.__dict__.pop("_new_cookie", None)  # Jupyter's login cookie, sent with the 101

    def _expired(self) -> None:
        if self._socket is not None:
            self._socket.outbox.close(CloseCode.UNAUTHENTICATED, "share link expired")

    def on_message(self, message: str | bytes) -> Any:
        socket = self._socket
        if socket is None:
            return None
        self.parties.activity.event()
        if not self._limited or self._limiter.allow(len(message)):  # text: in characters
            return self.parties.router.message(socket, message)
        drops = self._party_limits.get("rate_limit_drops", True)
        if (not drops or self._limiter.strike()) and not socket.outbox.closed:  # or dropped
            logging.getLogger("jupyter_party").warning(
                "party %r room %r: closing %r: rate limit exceeded",
                self._where.party,
                self._where.room,
                socket.id,
            )
            socket.outbox.close(CloseCode.POLICY, "rate limit exceeded")
        return None

    def on_close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        socket, self._socket = self._socket, None
        if self._counted:
            self._counted = False
            self.parties.activity.closed()
        if socket is not None:
            self.parties.router.closed(
                socket, self.close_code or CloseCode.NO_STATUS, self.close_reason or ""
            )

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


_ACTIONS = {"GET": "read", "HEAD": "read", "OPTIONS": "read"}
_NO_HEADERS = HTTPHeaders()  # what an open socket's request keeps (never written to)
_CREDENTIALS = {"token", SHARE_PARAM}  # never shown to party code, never logged by it


def share_user(grant: Grant) -> User:
    """The identity of a share link's holder, as `ctx.user` shows it."""
    return User(username=f"share-{grant.id[:12]}", name=f"Guest ({grant.access})")
