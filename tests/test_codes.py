"""The close codes exist once: the Python enum, and the widgets' JS copy checked against it."""

from __future__ import annotations

import re
from pathlib import Path

import jupyter_party
from jupyter_party.protocol.codes import REFUSALS, CloseCode

PACKAGE = Path(jupyter_party.__file__).parent
JS_CODES = PACKAGE / "widgets" / "js" / "src" / "codes.js"


def test_the_js_close_codes_are_the_python_ones():
    source = JS_CODES.read_text("utf-8")
    enum = re.search(r"CloseCode = Object\.freeze\(\{(.*?)\}\)", source, re.S)
    assert enum, "codes.js has no CloseCode"
    js = {name: int(value) for name, value in re.findall(r"(\w+): (\d+)", enum.group(1))}
    assert js == {code.name: code.value for code in CloseCode}
    refusals = re.search(r"REFUSALS = Object\.freeze\(\[(.*?)\]\)", source, re.S)
    assert refusals, "codes.js has no REFUSALS"
    names = set(re.findall(r"CloseCode\.(\w+)", refusals.group(1)))
    assert names == {code.name for code in REFUSALS}


def test_no_close_code_literal_outside_the_lists():
    """A close code written as a number elsewhere is a copy that can drift from the list."""
    literal = re.compile(
        r"\b(?:(?:close|closed|shut|_stop)\(\s*(?:\w+,\s*)?|code: int = )(?:10\d\d|44\d\d)\b"
    )
    js_literal = re.compile(r"(?:code ===?|close\()\s*(?:10\d\d|44\d\d)\b|\[\s*44\d\d")
    found = []
    for path in PACKAGE.rglob("*"):
        if "node_modules" in path.parts or "static" in path.parts or not path.is_file():
            continue
        if path.suffix not in {".py", ".js", ".html"} or path in {JS_CODES}:
            continue
        text = path.read_text("utf-8")
        if literal.search(text) or js_literal.search(text):
            found.append(str(path.relative_to(PACKAGE)))
    assert found == []
