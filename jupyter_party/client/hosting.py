"""`host(...)`: this kernel serves a party itself, with the notebook's live data.

    answers = []

    class Quiz(jupyter_party.Server):
        def on_message(self, message, sender):
            answers.append({"who": sender.id, "answer": message})  # the notebook's own list
            self.room.broadcast({"count": len(answers)})

    quiz = jupyter_party.host(Quiz, name="quiz")  # live at {base}parties/quiz/{room}
    quiz                                          # a widget: rooms, guests, events, stop

The kernel opens `{base}party-api/host/NAME` on its Jupyter server and acts as the worker of
that party, over the same wire protocol as the server's own workers: guests join at the
party's ordinary room URLs (share links, gates, limits, read-only access and close codes as for
any party), and the hooks run here, in the kernel's event loop, between cell executions, where
they see and change the notebook's variables. Storage stays on the server: hosting the party
again finds its data. `stop()`, a kernel restart or a lost connection closes the party's
sockets with 1012; they reconnect once the party is hosted again. Interrupting the kernel
while a hook blocks it ends that hook and stops the party the same way.

Small parties can be written with decorators; each hook gets the room first:

    quiz = jupyter_party.host(name="quiz")

    @quiz.on_message
    def answer(room, message, sender):
        room.broadcast(message)
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import quote

from tornado.httpclient import HTTPRequest

from ..protocol import wire
from ..protocol.codes import CloseCode
from ..protocol.names import check_party_name
from ..runtime.channel import SessionLink, WebSocketStream
from ..runtime.limits import Limits
from ..runtime.registry import Registry
from ..runtime.server import Server
from ..runtime.session import Session
from ..runtime.stall import Steps
from ..runtime.storage_link import RemoteBackend
from ..runtime.tasks import spawn
from ._loop import client_loop
from ._socket import open_socket
from .admin import AdminError, admin_call
from .discovery import ServerInfo, find_server
from .share import share_link

#: Events a hosted party keeps for its widget.
EVENTS = 50
#: Seconds between two updates of the widget, at most.
REFRESH = 0.2
#: Seconds the kernel waits for the server's HELLO.
HELLO_TIMEOUT = 30.0
_HOOKS = ("on_start", "on_connect", "on_message", "on_close", "on_error", "on_request", "on_alarm")

#: The parties this process hosts, by name: hosting a name again replaces its party.
_hosting: dict[str, HostedParty] = {}


class HostError(RuntimeError):
    """The server will not let this kernel host the party; the message says why."""


class KernelInterrupted(Exception):
    """A hook of a hosted party was running when the kernel was interrupted."""


def host(
    party: type[Server] | None = None,
    name: str | None = None,
    *,
    replace: bool = False,
    server: str | None = None,
    token: str | None = None,
) -> HostedParty:
    """Serve `party` (a Server subclass; none for the decorator form) from this kernel as
    party `name` (default: the class name, lowercased). See the module docstring.

    Raises HostError when the name is deployed on the server, or hosted by another kernel
    (unless `replace`). Hosting a name this kernel already hosts replaces it (re-running the
    cell reloads the party).
    """
    if party is not None and not (isinstance(party, type) and issubclass(party, Server)):
        raise TypeError(f"host() takes a jupyter_party.Server subclass, not {party!r}")
    if name is None:
        if party is None:
            raise ValueError("the decorator form needs a name: host(name='quiz')")
        name = party.__name__.lower()
    check_party_name(name)
    info = find_server(server, token)
    previous = _hosting.get(name)
    replace = replace or (previous is not None and not previous.stopped)
    try:
        admin_call(info, "GET", f"host/{quote(name, safe='')}" + ("?replace=1" if replace else ""))
    except AdminError as error:
        raise HostError(str(error)) from None
    if previous is not None:
        previous._replaced()
    hosted = _hosting[name] = HostedParty(party, name, info, replace)
    return hosted


class HostedParty:
    """A party this kernel serves: its state, live rooms and recent events.

    Displayed in a notebook, it is a widget (rooms, guests, events, share links, stop).
    """

    def __init__(self, party: type[Server] | None, name: str, info: ServerInfo, replace: bool):
        self.name = name
        #: The party's HTTP URL; rooms are at `url + ROOM`.
        self.url = f"{info.url}parties/{quote(name, safe='')}/"
        #: "starting", "live", or "stopped: why".
        self.status = "starting"
        #: The latest events, oldest first: dicts with time, kind, room, connection, text.
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=EVENTS)
        self._info = info
        self._replace = replace
        self._hooks: dict[str, Callable[..., Any]] = {}
        self._class = party if party is not None else _decorated(self._hooks)
        self._session: Session | None = None
        self._socket: Any = None
        self._stopping = False  # stop() closes the rooms itself
        self._stopper: asyncio.Future[None] | None = None
        self._why = ""  # why it stopped, when this side knows better than the server
        self._view: Any = None
        self._refreshing: asyncio.Handle | None = None
        # Bound to the loop on first use (the background loop's thread, for a script).
        self._settled = asyncio.Event()  # live, or stopped
        self._ended = asyncio.Event()
        self._loop = loop = client_loop()
        if _running(loop):
            spawn(self._run())
        else:
            asyncio.run_coroutine_threadsafe(self._run(), loop)

    # -- what the notebook sees -------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        return self.status.startswith("stopped")

    def rooms(self) -> list[dict[str, Any]]:
        """The live rooms: party, room, connections, last activity, traffic."""
        return self._session.host.describe() if self._session is not None else []

    def share_link(self, room: str, access: str = "write", expires_in: float = 24 * 3600) -> str:
        """A link that opens `room` of this party, and nothing else of the server."""
        info = self._info
        return share_link(self.name, room, access, expires_in, server=info.url, token=info.token)

    async def ready(self, timeout: float = 30.0) -> None:
        """Wait until the party is live; raises HostError if it stopped instead."""
        await asyncio.wait_for(self._settled.wait(), timeout)
        if self.stopped:
            raise HostError(f"party {self.name!r} {self.status}")

    def stop(self) -> asyncio.Future[None]:
        """Stop serving: the party's clients are closed with 1012 (they reconnect once it is
        hosted again), its rooms finish their writes, the name is free. Await the result to
        wait for all that (each call returns the same stop)."""
        if self._stopper is None:
            if _running(self._loop):
                self._stopper = spawn(self._stop())
            else:
                stopping = asyncio.run_coroutine_threadsafe(self._stop(), self._loop)
                self._stopper = asyncio.wrap_future(stopping)
        return self._stopper

    def __repr__(self) -> str:
        return f"<HostedParty {self.name!r} at {self.url}ROOM: {self.status}>"

    #: Makes the party's widget: set by `jupyter_party.widgets` (a `HostView`), so the client
    #: does not depend on the widgets.
    view_factory: ClassVar[Callable[[HostedParty], Any] | None] = None

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget()._repr_mimebundle_(**kwargs)

    def widget(self) -> Any:
        """The party's widget (one per hosted party; display it anywhere)."""
        if self._view is None:
            if HostedParty.view_factory is None:
                raise RuntimeError("no widget: import jupyter_party.widgets (needs anywidget)")
            self._view = HostedParty.view_factory(self)
            self._refresh()
        return self._view

    # -- the decorator form -----------------------------------------------------------------

    def on_start(self, function: Callable[..., Any]) -> Callable[..., Any]:
        return self._hook("on_start", function)

    def on_connect(self, function: Callable[..., Any]) -> Callable[..., Any]:
        return self._hook("on_connect", function)

    def on_message(self, function: Callable[..., Any]) -> Callable[..., Any]:
        return self._hook("on_message", function)

    def on_close(self, function: Callable[..., Any]) -> Callable[..., Any]:
        return self._hook("on_close", function)

    def on_error(self, function: Callable[..., Any]) -> Callable[..., Any]:
        return self._hook("on_error", function)

    def on_request(self, function: Callable[..., Any]) -> Callable[..., Any]:
        return self._hook("on_request", function)

    def on_alarm(self, function: Callable[..., Any]) -> Callable[..., Any]:
        return self._hook("on_alarm", function)

    def _hook(self, hook: str, function: Callable[..., Any]) -> Callable[..., Any]:
        if self._class is not None and not getattr(self._class, "_decorated", False):
            raise TypeError(f"party {self.name!r} is a class: define {hook} on it")
        self._hooks[hook] = function
        return function

    # -- serving ----------------------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, start the session when the server says HELLO, serve until the socket
        closes, then stop the rooms here too."""
        info, name = self._info, self.name
        path = f"party-api/host/{quote(name, safe='')}" + ("?replace=1" if self._replace else "")
        url = info.websocket_url(path)
        try:
            request = HTTPRequest(url, headers=info.auth)
            self._socket = socket = await open_socket(request, url)
        except Exception as error:
            return self._end(f"could not connect to {info.url}: {error}")
        if self._stopping:  # stop() was called while connecting
            socket.close(CloseCode.NORMAL, "stopped")
            return self._end("")
        link = _HostLink(self)
        link.channel.connection_made(WebSocketStream(socket))
        spawn(_pump(socket, link))
        try:
            waiting: list[asyncio.Future[Any]] = [link.hello, link.channel.lost]
            await asyncio.wait(
                waiting,
                timeout=HELLO_TIMEOUT,
                return_when="FIRST_COMPLETED",
            )
            if not link.hello.done():
                raise ConnectionError(_closed(socket) or "the server did not answer")
            config = wire.check_hello(wire.Frame(wire.HELLO, link.hello.result(), b""))[1]
            registry = Registry(entry_points=False)
            registry.add(name, self._class, f"kernel (pid {os.getpid()})")
            limits = Limits(**config["limits"])
            steps = _Interruptible(limits.stall_warning, self) if _main_thread() else None
            link.session = session = Session(
                link,
                registry,
                RemoteBackend(link.call, name),
                limits,
                steps=steps,
                env=config["env"],
                owns=lambda party, room: party == name,
                watch=self._event,
            )
            await session.start()
        except Exception as error:
            socket.close()
            return self._end(f"could not start: {error}")
        link.channel.send(wire.HELLO, [wire.VERSION, {"pid": os.getpid()}])
        self._session = session
        self._set_status("live")
        await link.channel.lost
        self._session = None
        if not self._stopping:  # the server let go of us: stop the rooms here too
            await session.close(CloseCode.SERVICE_RESTART, "the party stopped")
        self._end(_closed(socket) or "the connection to the server was lost")

    async def _stop(self) -> None:
        if self.stopped:
            return
        self._stopping = True
        self._why = self._why or "by stop()"
        session = self._session
        if session is not None:  # rooms first, while their storage is still reachable
            await session.close(CloseCode.SERVICE_RESTART, f"party {self.name!r} stopped")
        if self._socket is not None:
            self._socket.close(CloseCode.NORMAL, "stopped")
        await self._ended.wait()

    def _replaced(self) -> None:
        """Hosting the same name again in this kernel: the server closes this one's socket."""
        self._why = "hosted again by this kernel"

    def _end(self, why: str) -> None:
        self._set_status(f"stopped: {self._why or why}")
        self._ended.set()

    # -- events and the widget --------------------------------------------------------------

    def _event(self, kind: str, room: str, connection: str, detail: Any) -> None:
        if kind == "message":
            text = detail if isinstance(detail, str) else f"<{len(detail)} bytes>"
            detail = text if len(text) <= 200 else text[:200] + "…"
        elif kind == "leave":
            detail = f"code {detail}"
        self.events.append(
            {
                "time": time.time(),
                "kind": kind,
                "room": room,
                "connection": connection,
                "text": str(detail or ""),
            }
        )
        self._changed_soon()

    def _set_status(self, status: str) -> None:
        self.status = status
        self._settled.set()
        self._changed_soon()

    def _changed_soon(self) -> None:
        """Update the widget, at most every REFRESH seconds."""
        if self._refreshing is None and self._view is not None:
            self._refreshing = self._loop.call_later(REFRESH, self._refresh)

    def _refresh(self) -> None:
        self._refreshing = None
        if self._view is not None:
            self._view.show(self.status, self.rooms(), list(self.events))


class _Interruptible(Steps):
    """The steps of a hosted party's code. A kernel interrupt (the notebook's stop button)
    during one ends that hook with KernelInterrupted and stops the party (1012), instead of
    being lost: outside a cell's execution, ipykernel ignores interrupts."""

    __slots__ = ("_hosted", "_previous")

    def __init__(self, warning: float, hosted: HostedParty) -> None:
        super().__init__(warning)
        self._hosted = hosted
        self._previous: Any = None

    def begin(self, party: str, room: str, hook: str) -> float:
        self._previous = signal.signal(signal.SIGINT, self._interrupted)
        return super().begin(party, room, hook)

    def end(self, start: float, party: str, room: str, hook: str) -> None:
        signal.signal(signal.SIGINT, self._previous)
        super().end(start, party, room, hook)

    def _interrupted(self, signum: int, frame: Any) -> None:
        hosted = self._hosted
        hosted._why = "the kernel was interrupted"
        hosted._loop.call_soon(hosted.stop)
        raise KernelInterrupted(f"party {hosted.name!r}: the kernel was interrupted")


def _main_thread() -> bool:
    """Signal handlers can only be set from the main thread (where a kernel runs its loop)."""
    return threading.current_thread() is threading.main_thread()


class _HostLink(SessionLink):
    """The kernel's end of the host socket; party errors also reach the notebook."""

    def __init__(self, hosted: HostedParty) -> None:
        super().__init__()
        self._hosted = hosted

    def record(self, party: str, room: str | None, kind: str, text: str) -> None:
        super().record(party, room, kind, text)
        if kind == "error":
            self._hosted._event("error", room or "", "", text.splitlines()[0] if text else "")
            print(f"party {party!r} room {room!r}: {text}", file=sys.stderr)


async def _pump(socket: Any, link: SessionLink) -> None:
    """Feed the socket's messages to the channel until it closes."""
    while (message := await socket.read_message()) is not None:
        if isinstance(message, bytes):
            link.channel.data_received(message)
    link.channel.connection_lost(None)


def _closed(socket: Any) -> str:
    """Why the server closed the socket, if it said."""
    if socket.close_code is None:
        return ""
    return f"closed by the server ({socket.close_code}): {socket.close_reason or 'no reason'}"


def _running(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _decorated(hooks: dict[str, Callable[..., Any]]) -> type[Server]:
    """A Server whose hooks call the functions registered with the decorators (each gets
    the room first), or do what Server does by default."""

    def delegate(hook: str) -> Callable[..., Any]:
        def method(self: Server, *args: Any) -> Any:
            function = hooks.get(hook)
            if function is None:
                return getattr(Server, hook)(self, *args)
            return function(self.room, *args)

        method.__name__ = hook
        return method

    namespace = {hook: delegate(hook) for hook in _HOOKS}
    return type("HostedServer", (Server,), {"_decorated": True, **namespace})
