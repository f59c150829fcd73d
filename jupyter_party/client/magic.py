"""The `%%party NAME` cell magic: the cell is a party's module, deployed to the Jupyter server.

    %load_ext jupyter_party        # or just `import jupyter_party` in IPython

    %%party chat
    from jupyter_party import Server

    class Chat(Server):
        def on_message(self, message, sender):
            print("got", message)          # shows up under this cell
            self.room.broadcast(message)

Options: `--server URL --token T` (default: this kernel's Jupyter server), `--no-logs`.

On success the cell prints one line (party, URL, connections reloaded) and then keeps showing
the party's output (its prints, log records and uncaught errors) under the cell, until the
party is deployed again from any cell. A refused deploy shows the server's traceback and the
previous version keeps running. The cell body is not run in the kernel.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import shlex
import sys
import time
from collections import deque
from typing import Any
from urllib.parse import quote

from ._loop import background_loop
from .admin import AdminError, admin_call
from .deploy import DeployError, post_deploy
from .discovery import ServerInfo, ServerNotFound, find_server
from .logs import fetch_logs

#: How many lines of a party's output a cell keeps showing.
MAX_LINES = 500
#: Long-poll duration of the logs API, seconds.
POLL_WAIT = 25.0

#: The running log watcher of each party (one per party: the newest deploy's cell).
_watchers: dict[str, LogWatcher] = {}


class LogView:
    """The party output shown under a deploying cell (updated in place via a display id)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: deque[tuple[str, str]] = deque(maxlen=MAX_LINES)  # (kind, line)
        self.stopped = ""

    def add(self, record: dict[str, Any]) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.get("time") or time.time()))
        room = record.get("room") or "-"
        kind = record.get("kind", "print")
        text = str(record.get("text", ""))
        self.lines.append((kind, f"{stamp} [{room}] {kind}: {text}"))

    def __repr__(self) -> str:
        lines = [line for _, line in self.lines] or [f"(no output from party {self.name!r} yet)"]
        if self.stopped:
            lines.append(f"({self.stopped})")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = []
        for kind, line in self.lines:
            style = ' style="color:#c00"' if kind == "error" else ""
            rows.append(f"<span{style}>{html.escape(line)}</span>")
        if not rows:
            rows.append(f"<i>no output from party {html.escape(self.name)!s} yet</i>")
        if self.stopped:
            rows.append(f"<i>({html.escape(self.stopped)})</i>")
        body = "\n".join(rows)
        return f'<pre class="jupyter-party-log" style="max-height:20em;overflow:auto">{body}</pre>'


class LogWatcher:
    """Long-polls `party-api/parties/NAME/logs` and shows new records under the cell."""

    def __init__(self, info: ServerInfo, name: str, after: int, display: Any = None) -> None:
        self.info, self.name, self.after = info, name, after
        self.view = LogView(name)
        self._display = display
        self._handle: Any = None
        self._task: asyncio.Task[None] | asyncio.Future[None] | None = None
        self._concurrent: Any = None

    def start(self) -> None:
        if self._display is not None:
            self._handle = self._display(self.view, display_id=True)
        try:
            loop = asyncio.get_running_loop()  # in a kernel: its own loop
        except RuntimeError:
            loop = None
        if loop is not None:
            self._task = loop.create_task(self._run())
        else:  # a terminal IPython: no loop between cells
            self._concurrent = asyncio.run_coroutine_threadsafe(self._run(), background_loop())

    def stop(self, why: str = "stopped") -> None:
        self.view.stopped = why
        self._refresh()
        if self._task is not None:
            self._task.cancel()
        if self._concurrent is not None:
            self._concurrent.cancel()

    def _refresh(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._handle.update(self.view)

    def _show(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.view.add(record)
            if self._handle is None:  # no display: print (lands in the running cell)
                stream = sys.stderr if record.get("kind") == "error" else sys.stdout
                print(f"[{self.name}] {self.view.lines[-1][1]}", file=stream)
        self._refresh()

    async def _run(self) -> None:
        delay = 0.5
        while True:
            status, records, following = await fetch_logs(
                self.info, self.name, self.after, POLL_WAIT
            )
            if status in (401, 403, 404):
                self.view.stopped = f"party output unavailable: HTTP {status}"
                self._refresh()
                return
            if status != 200:  # server restarting or unreachable: try again
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            if following < self.after:  # the server restarted, and its numbering with it
                self.after = 0
                continue
            self.after = following
            if records:
                self._show(records)


def _cursor(info: ServerInfo, name: str) -> int:
    """The party's newest log record number (0 if unknown): output after it is this deploy's."""
    try:
        path = f"parties/{quote(name, safe='')}/logs?after=0"
        return int(admin_call(info, "GET", path).get("next", 0))
    except (AdminError, ConnectionError, ValueError):
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="%%party", add_help=False, exit_on_error=False)
    parser.add_argument("name")
    parser.add_argument("--server")
    parser.add_argument("--token")
    parser.add_argument("--no-logs", action="store_true")
    return parser


def party(line: str, cell: str) -> Any:
    """`%%party NAME [--server URL] [--token T] [--no-logs]`: deploy the cell as party NAME."""
    from IPython.display import display

    try:
        args = _parser().parse_args(shlex.split(line))
    except (argparse.ArgumentError, SystemExit, ValueError) as error:
        print(f"%%party: {error}\nusage: %%party NAME [--server URL] [--token T] [--no-logs]")
        return None
    try:
        info = find_server(args.server, args.token)
    except ServerNotFound as error:
        print(f"%%party: {error}", file=sys.stderr)
        return None
    after = 0 if args.no_logs else _cursor(info, args.name)
    try:
        result = post_deploy(info, args.name, cell)
    except DeployError as error:
        print(str(error), file=sys.stderr)
        print("(the previous version, if any, keeps running)", file=sys.stderr)
        return None
    except ConnectionError as error:
        print(f"%%party: {error}", file=sys.stderr)
        return None
    print(result)
    previous = _watchers.pop(args.name, None)
    if previous is not None:
        previous.stop("redeployed: the newer cell shows the output")
    if not args.no_logs:
        watcher = _watchers[args.name] = LogWatcher(info, args.name, after, display)
        watcher.start()
    return None


def load_ipython_extension(ipython: Any) -> None:
    """Register the `%%party` cell magic (once per shell)."""
    if getattr(ipython, "_jupyter_party_magic", False):
        return
    ipython.register_magic_function(party, magic_kind="cell", magic_name="party")
    ipython._jupyter_party_magic = True


def unload_ipython_extension(ipython: Any) -> None:
    """Stop every log watcher started from this kernel."""
    for watcher in list(_watchers.values()):
        watcher.stop()
    _watchers.clear()
