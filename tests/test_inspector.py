"""The room inspector's admin API: a room's storage (shown, edited, deleted by the owner),
its alarm, its connections, and a YServer room's document."""

from __future__ import annotations

import json

from pycrdt import Text
from ysupport import YClient


async def inspect(http, path: str) -> dict:
    response = await http(f"party-api/rooms/{path}")
    assert response.code == 200, response.body
    return json.loads(response.body)


async def test_the_inspector_shows_and_edits_what_a_party_stored(http, connect):
    client = await connect("parties/probe/insp?_pk=ann&tags=blue")
    await client.recv_json()
    await client.send({"op": "remember", "text": "hello"})
    assert (await client.recv_json())["texts"] == ["hello"]  # durable now

    seen = await inspect(http, "probe/insp")
    assert seen["live"] and seen["alarm"] is None
    assert seen["storage"] == [
        {"key": "remembered", "size": len('[\n  "hello"\n]'), "json": '[\n  "hello"\n]'}
    ]
    (ann,) = seen["connections"]
    assert (ann["id"], ann["access"], ann["tags"], ann["guest"]) == (
        "ann",
        "write",
        ["blue"],
        False,
    )
    assert ann["messages_in"] == 1 and ann["messages_out"] == 2  # welcome, remembered
    assert ann["since"] > 0 and ann["user"]

    body = json.dumps({"value": ["edited", 2]})
    edited = await http("party-api/rooms/probe/insp/storage/remembered", method="PUT", body=body)
    assert edited.code == 204
    read = await http("parties/probe/insp/stored?key=remembered")  # the party reads it
    assert json.loads(read.body) == {"value": ["edited", 2]}

    gone = await http("party-api/rooms/probe/insp/storage/remembered", method="DELETE")
    assert gone.code == 204
    assert (await inspect(http, "probe/insp"))["storage"] == []
    again = await http("party-api/rooms/probe/insp/storage/remembered", method="DELETE")
    assert again.code == 404
    bad = await http("party-api/rooms/probe/insp/storage/k", method="PUT", body="{}")
    assert bad.code == 400


async def test_the_inspector_shows_a_y_rooms_document_and_binary_values(http, connect):
    client = await YClient(await connect("parties/ydoc/insp")).sync()
    await client.edit(lambda doc: doc.get("text", type=Text).__iadd__("hello"))
    await client.settled()
    seen = await inspect(http, "ydoc/insp")
    assert seen["document"]["bytes"] > len("hello")
    assert "text" in seen["document"]["types"]
    binary = [entry for entry in seen["storage"] if "bytes" in entry]
    assert binary and all(entry["size"] > 0 for entry in binary)
    assert all(set(entry["bytes"]) <= set("0123456789abcdef …") for entry in binary)


async def test_a_room_need_not_be_live_to_be_inspected(http):
    seen = await inspect(http, "probe/never-opened")
    assert seen == {
        "live": False,
        "storage": [],
        "truncated": False,
        "alarm": None,
        "connections": [],
        "document": None,
    }
