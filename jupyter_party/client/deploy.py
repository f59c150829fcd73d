"""`deploy(...)`: send a party's module to the Jupyter server, which stores it and hot-reloads it.

    jupyter_party.deploy("parties/chat.py")          # a file: party "chat"
    jupyter_party.deploy(source, name="chat")        # module source text
    jupyter_party.deploy(Chat)                       # a class: party "chat"

A class is sent as the source of its whole module file; for a class defined in a notebook
cell, as the source of that cell. Either way the source must be self-contained: its own
imports, no names that only exist in the kernel, exactly one `Server` subclass.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .admin import AdminError, admin_call
from .discovery import ServerInfo, find_server

_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")


class DeployError(RuntimeError):
    """The server refused the deploy; `traceback` is the server's traceback (may be "")."""

    def __init__(self, name: str, error: str, traceback: str = "", status: int = 400) -> None:
        message = f"deploy of party {name!r} refused: {error}"
        if traceback:
            message += "\n\n" + traceback.rstrip()
        super().__init__(message)
        self.name, self.error, self.traceback, self.status = name, error, traceback, status


@dataclass(frozen=True)
class DeployResult:
    """A successful deploy: `path` is where the server stored the module, `reloaded` whether
    live connections were closed (with 1012) to pick up the new code, `closed` how many."""

    name: str
    path: str | None
    reloaded: bool
    closed: int
    url: str  # the party's HTTP URL on the server, e.g. http://host/base/parties/NAME/

    def __str__(self) -> str:
        closed = f"{self.closed} connection{'s' if self.closed != 1 else ''}"
        how = f"reloaded, {closed} reconnecting" if self.reloaded else "live"
        return f"party {self.name!r} deployed at {self.url}ROOM ({how})"


def party_source(obj: Any) -> tuple[str, str]:
    """`(source, default_name)` for source text, a path, or a `Server` subclass."""
    if isinstance(obj, Path) or (isinstance(obj, str) and _is_path(obj)):
        path = Path(obj)
        return path.read_text(encoding="utf-8"), path.stem
    if isinstance(obj, str):
        return obj, ""
    if inspect.isclass(obj):
        return _class_source(obj), obj.__name__.lower()
    raise TypeError(
        f"deploy() takes the module's source, a path to a .py file, or a Server subclass, "
        f"not {type(obj).__name__}"
    )


def _is_path(text: str) -> bool:
    return "\n" not in text and text.endswith(".py") and Path(text).is_file()


def _class_source(cls: type) -> str:
    module = inspect.getmodule(cls)
    if module is not None and getattr(module, "__file__", None):
        return inspect.getsource(module)
    cell = _cell_defining(cls.__name__)
    if cell is not None:
        return cell
    with contextlib.suppress(OSError, TypeError):
        return inspect.getsource(cls)  # no imports: only works for self-contained classes
    raise ValueError(
        f"cannot find the source of {cls.__name__}: pass the module's source text or a file, "
        "or use the %%party cell magic"
    )


def _cell_defining(class_name: str) -> str | None:
    """The newest IPython cell (raw input, magics dropped) that defines `class_name`."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None:
        return None
    for raw in reversed(shell.history_manager.input_hist_raw):
        if f"class {class_name}" not in raw:
            continue
        lines = raw.splitlines()
        if lines and lines[0].startswith("%%"):
            continue  # a cell magic's body is not Python (a %%party cell was deployed already)
        source = "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        if any(isinstance(n, ast.ClassDef) and n.name == class_name for n in tree.body):
            return source + "\n"
    return None


def deploy(
    source_or_class_or_path: Any,
    name: str | None = None,
    *,
    server: str | None = None,
    token: str | None = None,
    timeout: float = 60.0,
) -> DeployResult:
    """Deploy (or redeploy) a party on the Jupyter server; see the module docstring.

    `name` defaults to the file's stem or the class name lowercased. Raises `DeployError`
    (with the server's traceback) when the module fails to compile or import, or defines no
    `Server` subclass: the previous version keeps running.
    """
    source, default = party_source(source_or_class_or_path)
    name = name or default
    if not name:
        raise ValueError("deploying source text needs a party name: deploy(source, name=...)")
    if not _NAME.match(name):
        raise ValueError(f"party names must match {_NAME.pattern}, not {name!r}")
    return post_deploy(find_server(server, token), name, source, timeout)


def post_deploy(info: ServerInfo, name: str, source: str, timeout: float = 60.0) -> DeployResult:
    """POST the source to `party-api/parties/NAME`; the blocking HTTP call of `deploy`."""
    try:
        body = admin_call(
            info, "POST", f"parties/{quote(name, safe='')}", {"source": source}, timeout
        )
    except AdminError as error:
        detail = error.detail
        raise DeployError(name, str(error), detail.get("traceback") or "", error.status) from None
    return DeployResult(
        name=body.get("name", name),
        path=body.get("path"),
        reloaded=bool(body.get("reloaded")),
        closed=int(body.get("closed") or 0),
        url=f"{info.url}parties/{quote(name, safe='')}/",
    )
