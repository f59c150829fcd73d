"""Where parties come from: `*.py` files in `parties_dir` and `jupyter_party.parties` entry points.

A file `name.py` defines party `name` (`main.py` is the default party). A file wins over an
entry point of the same name, so a user can shadow a bundled demo. Load errors are kept per
party, so the admin API can show why a party is missing instead of a bare 404.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import traceback
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from ..protocol.names import check_party_name
from .errors import UnknownParty
from .server import Server

log = logging.getLogger("jupyter_party")
ENTRY_POINT_GROUP = "jupyter_party.parties"


class Registry:
    """Party classes by name."""

    def __init__(self, parties_dir: str | Path | None = None) -> None:
        self.parties_dir = Path(parties_dir).expanduser() if parties_dir else None
        self.errors: dict[str, str] = {}
        self._classes: dict[str, type[Server]] = {}
        self._sources: dict[str, str] = {}
        self._load_entry_points()
        for path in sorted(self.parties_dir.glob("*.py")) if self.parties_dir else ():
            self._load_file(path)

    def names(self) -> list[str]:
        """Names of the parties that loaded."""
        return sorted(self._classes)

    def source(self, name: str) -> str:
        """Where party `name` came from: a file path or an entry point."""
        return self._sources[name]

    def get(self, name: str) -> type[Server]:
        """The class of party `name`; a file added to `parties_dir` since start-up is loaded."""
        if name not in self._classes and self.parties_dir is not None:
            path = self.parties_dir / f"{name}.py"
            if path.is_file():
                self._load_file(path)
        try:
            return self._classes[name]
        except KeyError:
            hint = (
                f": it failed to load ({self.errors[name].splitlines()[-1]})"
                if name in self.errors
                else ""
            )
            raise UnknownParty(f"Party {name!r} not found{hint}") from None

    def add(self, name: str, server_class: type[Server], source: str) -> None:
        """Register `server_class` as party `name`."""
        check_party_name(name)
        if not (isinstance(server_class, type) and issubclass(server_class, Server)):
            raise TypeError(
                f"party {name!r}: {server_class!r} is not a jupyter_party.Server subclass"
            )
        self._classes[name] = server_class
        self._sources[name] = source
        self.errors.pop(name, None)

    def _load_entry_points(self) -> None:
        for point in entry_points(group=ENTRY_POINT_GROUP):
            self._guarded(point.name, f"entry point {point.value}", point.load)

    def _load_file(self, path: Path) -> None:
        self._guarded(path.stem, str(path), lambda: _party_class(_import_file(path)))

    def _guarded(self, name: str, source: str, load) -> None:
        try:
            check_party_name(name)
            self.add(name, load(), source)
        except Exception:
            self.errors[name] = traceback.format_exc()
            log.error("party %r from %s failed to load", name, source, exc_info=True)


def _import_file(path: Path) -> ModuleType:
    name = f"jupyter_party_parties.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _party_class(module: ModuleType) -> type[Server]:
    """The one Server subclass a module defines (the most derived, if it defines a family)."""
    defined = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Server) and obj.__module__ == module.__name__
    ]
    leaves = [c for c in defined if not any(o is not c and issubclass(o, c) for o in defined)]
    if len(leaves) != 1:
        found = ", ".join(c.__name__ for c in leaves) or "none"
        raise TypeError(f"{module.__file__}: define exactly one Server subclass (found {found})")
    return leaves[0]
