"""`show(party, room)`: the best widget for a room -- the party's own UI, a document view for
`YServer` parties, else the room console."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, Literal

from ..client.admin import admin_call
from ..client.discovery import find_server
from ..runtime.ui import front_end, ui_text

log = logging.getLogger("jupyter_party.widgets")

Kind = Literal["console", "doc", "ui"]


def show(
    party: Any,
    room: str,
    *,
    ui: str | Path | None = None,
    kind: Kind | None = None,
    server: str | None = None,
    token: str | None = None,
    **kwargs: Any,
):
    """Display a widget on `room` of `party` and return it.

    `party` is a party name, a `Server` subclass or a `DeployResult`. The widget is:

    1. the party's own UI when it declares one (class attribute `ui`: ESM source or a path
       to a .js file next to the party's module), or when `ui=` is given;
    2. a `DocView` for a `YServer` party;
    3. else a `RoomConsole`.

    What the party declares is read from the class when one is given, else from the server's
    admin API (`GET party-api/parties`, fields `ui` and `kind`), else from the locally
    installed entry point of that name. `kind="console" | "doc" | "ui"` forces a choice.
    Other keyword arguments go to the widget (`mode="relay"`, `connection_id=...`, ...).
    """
    from .console import RoomConsole
    from .doc import DocView
    from .ui import PartyUI

    name, info = _what_party_declares(party, server, token, need=kind is None and ui is None)
    source = ui_text(ui, Path.cwd()) if ui is not None else info.get("ui")
    if kind is None:
        kind = "ui" if source else "doc" if info.get("kind") == "yserver" else "console"
    common = {"server": server, "token": token, **kwargs}
    if kind == "ui":
        if not source:
            raise ValueError(f"party {name!r} declares no UI: pass ui=... or another kind")
        widget = PartyUI(name, room, ui_esm=source, **common)
    elif kind == "doc":
        widget = DocView(name, room, **common)
    elif kind == "console":
        widget = RoomConsole(name, room, **common)
    else:
        raise ValueError(f"kind must be 'console', 'doc' or 'ui', not {kind!r}")
    _display(widget)
    return widget


def _display(widget: Any) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - ipywidgets needs IPython
        return
    if get_ipython() is not None:
        display(widget)


def _what_party_declares(
    party: Any, server: str | None, token: str | None, need: bool
) -> tuple[str, dict[str, Any]]:
    """The party's name and what it declares (`ui`, `kind`)."""
    if inspect.isclass(party):
        return party.__name__.lower(), _declared(party)
    if hasattr(party, "name") and not isinstance(party, str):  # a DeployResult
        party = party.name
    if not isinstance(party, str):
        raise TypeError(f"party must be a name, a Server subclass or a DeployResult, not {party!r}")
    if not need:
        return party, {}
    info = _from_server(party, server, token)
    if info is None:
        info = _from_entry_point(party) or {}
    return party, info


def _from_server(party: str, server: str | None, token: str | None) -> dict[str, Any] | None:
    """The admin API's entry for `party`, if the server can be reached and describes it."""
    try:
        parties = admin_call(find_server(server, token), "GET", "parties").get("parties", [])
    except Exception as error:  # no server, refused, offline: fall back
        log.debug("party-api/parties unavailable: %s", error)
        return None
    for entry in parties:
        if entry.get("name") == party:
            if "ui" not in entry and "kind" not in entry:
                return None  # an older server: it does not say; try the local entry point
            return {"ui": entry.get("ui"), "kind": entry.get("kind")}
    return {}


def _from_entry_point(party: str) -> dict[str, Any] | None:
    from importlib.metadata import entry_points

    for entry in entry_points(group="jupyter_party.parties"):
        if entry.name == party:
            try:
                return _declared(entry.load())
            except Exception as error:
                log.debug("entry point %s failed to load: %s", party, error)
                return None
    return None


def _declared(cls: type) -> dict[str, Any]:
    """What a party class declares; a `ui` file it names that cannot be read is an error."""
    described = front_end(cls)
    if "ui_error" in described:
        raise FileNotFoundError(described["ui_error"])
    return described
