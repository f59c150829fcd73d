"""The layer rules, read from the import statements themselves: each layer imports only the
layers below it (docs/architecture.md), so no import cycle can form between them. Modules of
one layer may import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import jupyter_party

PACKAGE = Path(jupyter_party.__file__).parent

#: layer -> the layers of the package it must not import ("*": the whole package).
FORBIDDEN = {
    "protocol": {"*"},
    "runtime": {"web", "client", "widgets", "extension", "cli"},
    "client": {"widgets", "web", "extension", "cli"},
}


def imported_modules(path: Path) -> set[str]:
    """The package modules `path` imports (absolute names), at any depth of its code."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "jupyter_party"}


def violations() -> list[str]:
    found = []
    for layer, forbidden in FORBIDDEN.items():
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            for name in sorted(imported_modules(path)):
                parts = name.split(".")
                target = parts[1] if len(parts) > 1 else "*"
                if ("*" in forbidden or target in forbidden) and target != layer:
                    found.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return found


def test_each_layer_imports_only_the_layers_below_it():
    assert violations() == []


def test_the_checker_sees_relative_and_nested_imports(tmp_path, monkeypatch):
    """A relative import inside a function is an import too (the checker must not miss it)."""
    fake = tmp_path / "jupyter_party"
    (fake / "runtime").mkdir(parents=True)
    (fake / "protocol").mkdir()
    (fake / "client").mkdir()
    (fake / "runtime" / "x.py").write_text("def f():\n    from ..widgets import show\n")
    (fake / "protocol" / "y.py").write_text("from . import names\nimport jupyter_party.runtime\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert violations() == [
        "protocol/y.py imports jupyter_party.runtime",
        "runtime/x.py imports jupyter_party.widgets",
        "runtime/x.py imports jupyter_party.widgets.show",
    ]
