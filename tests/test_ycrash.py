"""Y persistence under kill -9: a standalone server is killed and restarted on the same SQLite
file, again and again; every acknowledged edit is there exactly once, and clients that kept
their old document can reconnect without duplicating anything."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter

from pycrdt import Doc, Text
from test_process import TOKEN, party_serve, request
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect
from ysupport import YClient

from conftest import TIMEOUT, Client

CYCLES = 4  # kill/restart cycles
WRITERS = 3
EDITS = 8  # acknowledged edits per writer and cycle
PATH = "/parties/ycrash/doc"
TOKEN_RE = re.compile(r"\[[a-z0-9]+\]")


async def _join(port: int, doc: Doc | None = None) -> YClient:
    """A YClient on a new connection; `doc` (kept from an earlier connection) or a fresh one."""
    url = f"ws://127.0.0.1:{port}{PATH}"
    ws = await websocket_connect(
        HTTPRequest(url, headers={"Authorization": f"token {TOKEN}"}, connect_timeout=TIMEOUT)
    )
    return await YClient(Client(ws), doc or Doc()).sync()


def _append(token: str):
    return lambda doc: doc.get("text", type=Text).__iadd__(token)


def _check(text: str, acked: set[str], maybe: set[str] = frozenset()) -> None:
    """Every acknowledged token exactly once; unacknowledged ones at most once; nothing else."""
    assert TOKEN_RE.sub("", text) == "", f"foreign content: {text!r}"
    counts = Counter(TOKEN_RE.findall(text))
    duplicated = {t: n for t, n in counts.items() if n > 1}
    assert not duplicated, f"duplicated edits: {duplicated}"
    missing = acked - set(counts)
    assert not missing, f"{len(missing)} acknowledged edits lost, e.g. {sorted(missing)[:5]}"
    unknown = set(counts) - acked - set(maybe)
    assert not unknown, f"edits nobody made: {unknown}"


async def _server_text(port: int) -> str:
    status, body = await asyncio.to_thread(request, port, "GET", PATH)
    assert status == 200, body
    return json.loads(body)["text"]


async def _write(client: YClient, prefix: str, acked: set[str]) -> None:
    """EDITS appends; every few, wait for the durable acknowledgement of all sent so far."""
    mine = []
    for i in range(EDITS):
        mine.append(f"[{prefix}n{i}]")
        await client.edit(_append(mine[-1]))
        if i % 3 == 2 or i == EDITS - 1:
            await client.settled()
            acked.update(mine)


async def test_y_document_survives_kill_9(tmp_path):
    db = tmp_path / "y.db"
    acked: set[str] = set()  # edits the server acknowledged as durable
    in_flight: set[str] = set()  # sent, not acknowledged, when the server was killed
    old_docs: list[Doc] = []  # the writers' documents at the time of the kill
    for cycle in range(CYCLES + 1):
        server = party_serve(tmp_path, db)
        try:
            await asyncio.to_thread(server.start)
            port = server.port
            # A new client with an empty document gets every acknowledged edit, once.
            fresh = await _join(port)
            _check(fresh.text, acked, in_flight)
            _check(await _server_text(port), acked, in_flight)
            # Clients that kept their old document reconnect: merging the same items again
            # must not duplicate them, and their unacknowledged edits come back, once.
            returning = [await _join(port, doc) for doc in old_docs]
            for client in returning:
                await client.settled()
                _check(client.text, acked, in_flight)
            acked |= {
                t for doc in old_docs for t in TOKEN_RE.findall(str(doc.get("text", type=Text)))
            }
            in_flight -= acked
            await fresh.until(lambda f=fresh, a=acked: a <= set(TOKEN_RE.findall(f.text)))
            _check(fresh.text, acked, in_flight)
            _check(await _server_text(port), acked, in_flight)
            for client in returning:
                await client.until(lambda c=client, f=fresh: c.text == f.text)
            if cycle == CYCLES:
                break

            # Writers: the returning clients and new ones, editing concurrently.
            writers = returning + [await _join(port) for _ in range(WRITERS - len(returning))]

            await asyncio.gather(
                *(_write(c, f"c{cycle}w{w}", acked) for w, c in enumerate(writers))
            )
            # Kill with edits in flight: sent, not acknowledged.
            for w, client in enumerate(writers):
                token = f"[c{cycle}w{w}x]"
                in_flight.add(token)
                await client.edit(_append(token))
            if cycle % 2:  # everyone leaves: the kill races the compaction into a snapshot
                for client in [*writers, fresh]:
                    client.ws.close()
            server.kill()
            old_docs = [client.doc for client in writers]
        finally:
            server.kill()
    assert len(acked) >= CYCLES * WRITERS * EDITS
