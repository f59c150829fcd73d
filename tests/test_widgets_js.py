"""The widgets' front-end modules: vitest + jsdom unit tests, and the committed bundles in
`jupyter_party/widgets/static/` are what `npm run build` makes from `js/src/`.

Needs `npm ci --prefix jupyter_party/widgets/js` (skipped without it, failed in CI)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

from conftest import require

JS = Path(__file__).parent.parent / "jupyter_party" / "widgets" / "js"
STATIC = JS.parent / "static"

require(
    shutil.which("node") is not None and (JS / "node_modules" / "vitest").is_dir(),
    "node and `npm ci --prefix jupyter_party/widgets/js` are needed for the widget JS tests",
)


def test_vitest_passes():
    result = subprocess.run(
        ["npx", "--no-install", "vitest", "run", "--reporter=dot"],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "passed" in result.stdout and "failed" not in result.stdout.split("Tests")[-1]


def test_committed_bundles_are_fresh(tmp_path):
    """Edited js/src/ without `npm run build`? This fails until the bundles are rebuilt."""
    subprocess.run(
        ["node", "build.mjs", str(tmp_path)], cwd=JS, check=True, capture_output=True, timeout=120
    )
    built = sorted(p.name for p in tmp_path.iterdir())
    assert built == ["console.js", "doc.js", "host.js", "ui.js"]
    assert built == sorted(p.name for p in STATIC.iterdir())
    for name in built:
        assert (tmp_path / name).read_bytes() == (STATIC / name).read_bytes(), (
            f"static/{name} is stale: run `npm run build` in jupyter_party/widgets/js"
        )


WS_MODULE = Path(__file__).parent / "interop" / "node_modules" / "ws" / "index.js"


async def test_bundles_against_a_live_server(jp_serverapp, url, jp_auth_header):
    """The committed bundles, in jsdom with a real WebSocket, join real rooms: two doc views
    share a YServer document and presence; the console chats and counts connections."""
    require(WS_MODULE.is_file(), "`npm ci --prefix tests/interop` is needed (for `ws`)")
    token = jp_auth_header["Authorization"].split(" ", 1)[1]
    process = await asyncio.create_subprocess_exec(
        "node",
        "test/live-server.mjs",
        url(""),
        token,
        str(WS_MODULE),
        cwd=JS,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()[-4000:]
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["serverDoc"]["text"] == "hello from A"
    assert seen["presenceB"] == "here: B (you), A"
    assert ["out", "hi"] in seen["console"]
    assert seen["console"][0] == ["info", "connected"]
    assert "1 connection in the room" in seen["consolePresence"]
