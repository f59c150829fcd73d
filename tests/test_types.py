"""The type annotations are checked: mypy as pyproject.toml's [tool.mypy] says (strict for
protocol/ and runtime/, basic elsewhere) and the TypeScript compiler on the JupyterLab
extension's sources and the widgets' front-end modules."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from mypy import api as mypy

ROOT = Path(__file__).resolve().parent.parent
LABEXTENSION = ROOT / "labextension"


def test_mypy_passes():
    config = ROOT / "pyproject.toml"
    files = [
        str(ROOT / name) for name in tomllib.loads(config.read_text())["tool"]["mypy"]["files"]
    ]
    out, err, status = mypy.run(["--config-file", str(config), "--cache-dir", "/dev/null", *files])
    assert status == 0, out + err


@pytest.mark.parametrize(
    "project", [LABEXTENSION, ROOT / "jupyter_party" / "widgets" / "js"], ids=["lab", "widgets"]
)
def test_tsc_passes(project):
    """The labextension's TypeScript, and the widgets' JavaScript (checkJs, JSDoc types)."""
    tsc = LABEXTENSION / "node_modules" / ".bin" / "tsc"
    assert tsc.exists(), "no tsc: `pip install -e .` (or `npm ci --prefix labextension`)"
    assert shutil.which("node"), "Node.js is needed"
    result = subprocess.run(
        [str(tsc), "--noEmit", "-p", str(project)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
