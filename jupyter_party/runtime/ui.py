"""What a party shows in the notebook and on its share page: its kind (a plain `Server` or a
`YServer` document) and its own UI, the `ui` class attribute resolved to ESM source text.

`ui` is either the module's source (a string with a newline or an `export`) or a path to a
`.js` file, relative to the file of the module that defines the party class. This is the one
place that answers "is this a YServer, what is its UI": the admin API and the share page get
it from the workers (`describe_party`), the notebook's `show()` from a class directly.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any


def front_end(cls: type) -> dict[str, Any]:
    """`{"kind": "yserver" | "server", "ui": source or None}` for a party class; a `ui` file
    that cannot be read gives `ui: None` and `ui_error` (why) instead of failing."""
    from .yserver import YServer  # pycrdt is loaded only when a party is described

    described: dict[str, Any] = {"kind": "yserver" if issubclass(cls, YServer) else "server"}
    try:
        described["ui"] = party_ui_source(cls)
    except OSError as error:
        described.update(ui=None, ui_error=str(error))
    return described


def party_ui_source(cls: type) -> str | None:
    """The ESM source of `cls.ui`, or None when the party declares no UI.

    Raises FileNotFoundError when `ui` names a file that does not exist.
    """
    ui = getattr(cls, "ui", None)
    if not ui:
        return None
    if not isinstance(ui, (str, Path)):
        raise TypeError(f"{cls.__name__}.ui must be ESM source or a path to a .js file")
    return ui_text(ui, _module_dir(cls))


def ui_text(ui: str | Path, relative_to: Path) -> str:
    """ESM source text from `ui`: the source itself, or the file it names (a relative path
    is taken from `relative_to`)."""
    if isinstance(ui, Path) or _looks_like_path(ui):
        path = Path(ui)
        if not path.is_absolute():
            path = relative_to / path
        return path.read_text(encoding="utf-8")
    return ui


def _looks_like_path(ui: str) -> bool:
    return "\n" not in ui and "export" not in ui and ui.strip().endswith((".js", ".mjs"))


def _module_dir(cls: type) -> Path:
    try:
        return Path(inspect.getfile(cls)).resolve().parent
    except (TypeError, OSError):  # defined in a notebook cell: relative to the working dir
        return Path.cwd()
