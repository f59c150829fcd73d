"""Where parties come from: `*.py` files in `parties_dir` and `jupyter_party.parties` entry points.

A file `name.py` defines party `name` (`main.py` is the default party). A file wins over an
entry point of the same name, so a user can shadow a bundled demo. Load errors are kept per
party, so the admin API can show why a party is missing instead of a bare 404.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import os
import sys
import traceback
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from ..protocol.names import check_party_name
from .env import FILE_NAME, read_env_file
from .errors import UnknownParty
from .partylog import party_print
from .server import Server

log = logging.getLogger("jupyter_party")
ENTRY_POINT_GROUP = "jupyter_party.parties"
MODULE_PREFIX = "jupyter_party_parties."


class RefusedDeploy(Exception):
    """A deploy was refused; `traceback` is the full text, for the deploying notebook."""

    def __init__(self, message: str, traceback: str) -> None:
        super().__init__(message)
        self.traceback = traceback


class Registry:
    """Party classes by name."""

    def __init__(self, parties_dir: str | Path | None = None, entry_points: bool = True) -> None:
        self.parties_dir = Path(parties_dir).expanduser() if parties_dir else None
        self.errors: dict[str, str] = {}
        self._failed: dict[str, int] = {}  # party -> mtime of the file that failed to load
        self._classes: dict[str, type[Server]] = {}
        self._sources: dict[str, str] = {}
        self._digests: dict[str, str] = {}  # party -> digest of the file content it runs
        self._env_files: dict[str, dict[str, str]] = {}
        if entry_points:
            self._load_entry_points()
        for path in sorted(self.parties_dir.glob("[!.]*.py")) if self.parties_dir else ():
            self._load_file(path)

    def names(self) -> list[str]:
        """Names of the parties that loaded."""
        return sorted(self._classes)

    def source(self, name: str) -> str:
        """Where party `name` came from: a file path or an entry point."""
        return self._sources[name]

    def env_file(self, name: str) -> dict[str, str]:
        """The `.env` file next to party `name`'s module, as read when the party loaded."""
        return self._env_files.get(name, {})

    def get(self, name: str) -> type[Server]:
        """The class of party `name`; a file added to `parties_dir` since start-up is loaded.

        A file that failed to load is tried again only once it changed: a request for a broken
        party must not run its module's code again each time.
        """
        if name not in self._classes and self.parties_dir is not None:
            path = self.parties_dir / f"{name}.py"
            if path.is_file() and self._failed.get(name) != path.stat().st_mtime_ns:
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
        env = _env_file_of(server_class)  # a malformed file fails the load, saying where
        self._classes[name] = server_class
        self._sources[name] = source
        self._env_files[name] = env
        self.errors.pop(name, None)

    def deploy(self, name: str, source: str) -> type[Server]:
        """Make `source` party `name`, stored in `parties_dir` so it survives restarts.

        The source is imported first; if that fails (syntax error, import error, no Server
        subclass) RefusedDeploy carries the traceback and the running version is untouched.
        """
        check_party_name(name)
        if self.parties_dir is None:
            raise RefusedDeploy("this server has no parties_dir to deploy into", "")
        self.parties_dir.mkdir(parents=True, exist_ok=True)
        path = self.parties_dir / f"{name}.py"
        staged = self.parties_dir / f".{name}.deploying.py"
        staged.write_text(source, "utf-8")
        try:
            server_class = _import_party(staged, name)
        except RefusedDeploy:
            staged.unlink(missing_ok=True)
            raise
        os.replace(staged, path)  # atomic: a crash leaves the old file or the new one
        self.add(name, server_class, str(path))
        self._digests[name] = _digest(source.encode("utf-8"))
        return server_class

    def load(self, name: str) -> bool:
        """Import party `name` again from its file in `parties_dir` (it was edited), unless
        its content is what is loaded already; returns whether a new version was loaded.

        Like a deploy, a file that fails to import raises RefusedDeploy with the traceback and
        leaves the running version untouched.
        """
        if self.parties_dir is None:
            raise RefusedDeploy("this server has no parties_dir", "")
        path = self.parties_dir / f"{name}.py"
        content = path.read_bytes()
        if name in self._classes and self._digests.get(name) == _digest(content):
            return False
        try:
            server_class = _import_party(path, name)
        except RefusedDeploy as error:
            self.errors[name] = error.traceback
            self._failed[name] = path.stat().st_mtime_ns
            raise
        self.add(name, server_class, str(path))
        self._digests[name] = _digest(content)
        self._failed.pop(name, None)
        return True

    def unload(self, name: str) -> bool:
        """Forget party `name`, whose file left `parties_dir`; an installed party of the same
        name (entry point) takes its place again. Returns False if it had no file here."""
        if self.parties_dir is None:
            return False
        self._failed.pop(name, None)
        if self._sources.get(name) != str(self.parties_dir / f"{name}.py"):
            if name not in self._classes:
                self.errors.pop(name, None)  # it never loaded: nothing left to explain
            return False
        del self._classes[name], self._sources[name]
        self._digests.pop(name, None)
        for point in entry_points(group=ENTRY_POINT_GROUP, name=name):
            self._guarded(point.name, f"entry point {point.value}", point.load)
        return True

    def reload(self, name: str) -> None:
        """Import party `name` again from `parties_dir` (deployed by another process)."""
        if self.parties_dir is not None:
            self._load_file(self.parties_dir / f"{name}.py")

    def _load_entry_points(self) -> None:
        for point in entry_points(group=ENTRY_POINT_GROUP):
            self._guarded(point.name, f"entry point {point.value}", point.load)

    def _load_file(self, path: Path) -> None:
        self._failed.pop(path.stem, None)
        content = path.read_bytes()
        self._guarded(path.stem, str(path), lambda: _party_class(_import_file(path)))
        if path.stem in self.errors:
            self._failed[path.stem] = path.stat().st_mtime_ns
        else:
            self._digests[path.stem] = _digest(content)

    def _guarded(self, name: str, source: str, load: Callable[[], Any]) -> None:
        try:
            check_party_name(name)
            self.add(name, load(), source)
        except Exception:
            self.errors[name] = traceback.format_exc()
            log.error("party %r from %s failed to load", name, source, exc_info=True)


def _import_file(path: Path, party: str | None = None) -> ModuleType:
    """Import a party module; its logger is `jupyter_party_parties.<party>`."""
    name = f"{MODULE_PREFIX}{party or path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be imported as a module")
    module = importlib.util.module_from_spec(spec)
    module.__dict__["print"] = party_print  # what the party prints reaches its log
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    return module


def _import_party(path: Path, name: str) -> type[Server]:
    """The party class of the module at `path`; RefusedDeploy (with the traceback) if it fails
    to import or defines no single Server subclass."""
    try:
        server_class = _party_class(_import_file(path, name))
        _env_file_of(server_class)  # a malformed `.env` refuses the party, saying where
        return server_class
    except Exception as error:
        summary = traceback.format_exception_only(error)[-1].strip()
        raise RefusedDeploy(summary, traceback.format_exc()) from None


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _env_file_of(server_class: type[Server]) -> dict[str, str]:
    try:
        module_file = Path(inspect.getfile(server_class))
    except (TypeError, OSError):  # defined where there is no file: no `.env` either
        return {}
    return read_env_file(module_file.parent / FILE_NAME)


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
