"""A party's own UI: the `ui` class attribute, resolved to ESM source text.

`ui` is either the module's source (a string with a newline or an `export`) or a path to a
`.js` file, relative to the file of the module that defines the party class. Pure Python (no
anywidget), so the server's admin API can call it too.
"""

from __future__ import annotations

import inspect
from pathlib import Path


def party_ui_source(cls: type) -> str | None:
    """The ESM source of `cls.ui`, or None when the party declares no UI.

    Raises FileNotFoundError when `ui` names a file that does not exist.
    """
    ui = getattr(cls, "ui", None)
    if not ui:
        return None
    if isinstance(ui, Path) or _looks_like_path(ui):
        path = Path(ui)
        if not path.is_absolute():
            path = _module_dir(cls) / path
        return path.read_text(encoding="utf-8")
    if not isinstance(ui, str):
        raise TypeError(f"{cls.__name__}.ui must be ESM source or a path to a .js file")
    return ui


def _looks_like_path(ui: object) -> bool:
    return (
        isinstance(ui, str)
        and "\n" not in ui
        and "export" not in ui
        and ui.strip().endswith((".js", ".mjs"))
    )


def _module_dir(cls: type) -> Path:
    try:
        return Path(inspect.getfile(cls)).resolve().parent
    except (TypeError, OSError):  # defined in a notebook cell: relative to the working dir
        return Path.cwd()
