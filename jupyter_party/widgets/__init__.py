"""Notebook widgets (anywidget) for jupyter-party rooms.

- `RoomConsole`: status, own id, presence, live message log and a send box for any room;
- `DocView`: the live Map "map" and editable Text "text" of a `YServer` room, with presence;
- `PartyUI`: a party's own front-end module (its `ui` class attribute);
- `show(party, room)`: picks the right one.

In JupyterLab and Notebook 7 the widget's browser side joins the room itself; elsewhere (VS
Code, Colab) the kernel relays. The front-end code is bundled in `static/` (built from `js/`).

Names are imported lazily: importing this package does not load anywidget.
"""

from __future__ import annotations

from typing import Any

from ..client.hosting import HostedParty
from ..client.room import RoomClient

__all__ = ["DocView", "PartyUI", "RoomConsole", "party_ui_source", "show"]

_WHERE = {
    "RoomConsole": ".console",
    "DocView": ".doc",
    "PartyUI": ".ui",
    "party_ui_source": "..runtime.ui",
    "show": "._show",
}


def _console_view(client: RoomClient) -> Any:
    from .console import RoomConsole

    return RoomConsole(client=client)


def _host_view(party: HostedParty) -> Any:
    from .host import HostView

    return HostView(party)


# A kernel's room handle displays as its console, a hosted party as its HostView.
RoomClient.view_factory = _console_view
HostedParty.view_factory = _host_view


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
