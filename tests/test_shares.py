"""Share links: one room, one access level, nothing else of the Jupyter server.

This module runs its server with `allow_unauthenticated_access=False` and fails on any
Jupyter auth warning, so every handler of ours must carry an explicit auth rule.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import warnings
from re import _parser as sre_parse  # type: ignore[attr-defined]
from urllib.parse import urlparse

import pytest
from jupyter_server.utils import JupyterServerAuthWarning
from pycrdt import Text
from tornado.httpclient import HTTPClientError
from ysupport import YClient

from conftest import eventually
from jupyter_party.protocol.tokens import new_token
from jupyter_party.web.routes import ROUTES


@pytest.fixture
def jp_server_config(jp_server_config):
    jp_server_config["ServerApp"]["allow_unauthenticated_access"] = False
    return jp_server_config


@pytest.fixture(autouse=True)
def no_auth_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", JupyterServerAuthWarning)
        yield
    ours = {handler.__name__ for _, handler in ROUTES}
    auth = [str(w.message) for w in caught if issubclass(w.category, JupyterServerAuthWarning)]
    assert not [m for m in auth if any(name in m for name in ours)], auth


async def test_share_link_opens_its_room(share, connect, http):
    grant = await share()
    assert grant["access"] == "write" and grant["token"].startswith("jps_")
    assert urlparse(grant["url"]).path.endswith("/party-share/probe/r1")
    client = await connect(f"parties/probe/r1?share_token={grant['token']}&_pk=g", auth=False)
    welcome = await client.recv_json()
    assert welcome["user"].startswith("share-")
    await client.send({"op": "echo", "n": 1})
    assert await client.recv_json() == {"type": "echo", "n": 1}
    response = await http(f"parties/probe/r1/x?share_token={grant['token']}&a=1", auth=False)
    assert response.code == 200
    seen = json.loads(response.body)
    assert seen["query"] == {"a": "1"}  # the credential never reaches party code


async def test_share_page_serves_the_console_without_jupyter(share, http):
    grant = await share(room="page")
    path = urlparse(grant["url"])
    page = await http(f"{path.path.split('/', 2)[2]}?{path.query}", auth=False)
    assert page.code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    body = page.body.decode()
    assert '"socketPath": "/a%40b/parties/probe/page"' in body
    assert "://" not in body  # self-contained: nothing loaded from anywhere else
    assert (await http("party-share/probe/page", auth=False)).code == 401
    assert (await http(f"party-share/probe/other?{path.query}", auth=False)).code == 403
    for api in ("api/kernels", "api/contents", "api/sessions", "api/terminals"):
        assert (await http(f"{api}?share_token={grant['token']}", auth=False)).code == 403


async def test_read_share_cannot_write(share, connect, http):
    grant = await share(access="read", room="ro")
    token = grant["token"]
    assert (await http(f"parties/probe/ro?share_token={token}", auth=False)).code == 200
    post = await http(f"parties/probe/ro?share_token={token}", method="POST", auth=False)
    assert post.code == 403
    assert json.loads(post.body) == {"error": "this share link is read-only"}
    client = await connect(f"parties/probe/ro?share_token={token}", auth=False)
    assert (await client.recv_json())["type"] == "welcome"


async def test_read_share_is_read_only_in_a_y_room(share, connect, http):
    grant = await share(party="ydoc", room="yro", access="read")
    writer = await YClient(await connect("parties/ydoc/yro")).sync()
    reader = await YClient(
        await connect(f"parties/ydoc/yro?share_token={grant['token']}", auth=False)
    ).sync()
    await reader.edit(lambda doc: doc.get("text", type=Text).__iadd__("forbidden"))
    await reader.settled()
    await writer.edit(lambda doc: doc.get("text", type=Text).__iadd__("ok"))
    await reader.until(lambda: "ok" in reader.text)
    assert json.loads((await http("parties/ydoc/yro")).body)["text"] == "ok"


@pytest.mark.parametrize("kind", ["forged", "tampered", "garbage", "expired", "other-room"])
async def test_bad_share_tokens_are_refused(share, connect, http, live_rooms, kind):
    grant = await share(room="guarded", expires_in=0.1 if kind == "expired" else 3600)
    token, room, code, reason = grant["token"], "guarded", 4401, "invalid share link"
    if kind == "forged":
        token = new_token()
    elif kind == "tampered":
        token = token[:-1] + ("A" if token[-1] != "A" else "B")
    elif kind == "garbage":
        token = "x" * 5000
    elif kind == "expired":
        await eventually(lambda: time.time() > grant["expires"], message="the link to expire")
        reason = "share link expired"
    else:
        room, code, reason = "elsewhere", 4403, "this share link is for another room"
    client = await connect(f"parties/probe/{room}?share_token={token}", auth=False)
    assert await client.closed() == (code, reason)
    response = await http(f"parties/probe/{room}?share_token={token}", auth=False)
    assert response.code == code - 4000
    assert room not in {r for _, r in await live_rooms()}  # refused before the room was touched


async def test_revoking_closes_live_sockets(share, connect, jp_fetch):
    grant = await share(room="revoke")
    client = await connect(f"parties/probe/revoke?share_token={grant['token']}", auth=False)
    await client.recv_json()
    listed = json.loads((await jp_fetch("party-api", "share")).body)["shares"]
    assert [g["id"] for g in listed] == [grant["id"]]
    assert "token" not in listed[0]  # the secret is shown once, at creation
    await jp_fetch("party-api", "share", grant["id"], method="DELETE")
    assert await client.closed(timeout=1.0) == (4401, "share link revoked")
    again = await connect(f"parties/probe/revoke?share_token={grant['token']}", auth=False)
    assert (await again.closed())[0] == 4401
    with pytest.raises(HTTPClientError) as missing:
        await jp_fetch("party-api", "share", grant["id"], method="DELETE")
    assert missing.value.code == 404


async def test_share_api_validates_its_input(jp_fetch):
    for body in (
        {"party": "probe"},
        {"party": "probe", "room": "r", "access": "admin"},
        {"party": "probe", "room": "r", "expires_in": -1},
        {"party": "Bad Name", "room": "r"},
        {"party": "probe", "room": ".."},
    ):
        with pytest.raises(HTTPClientError) as refused:
            await jp_fetch("party-api", "share", method="POST", body=json.dumps(body))
        assert refused.value.code == 400, body


async def test_share_token_opens_no_other_route(share, jp_serverapp, http):
    """Walk the whole route table: with only a share token, every route answers exactly as
    it does to a request with no credentials at all."""
    grant = await share(room="walk")
    base = jp_serverapp.base_url
    checked = 0
    for rule in jp_serverapp.web_app.wildcard_router.rules:
        pattern = getattr(rule.matcher, "regex", None)
        if pattern is None:
            continue
        path = _sample(pattern)
        if path is None or not path.startswith(base) or not pattern.match(path):
            continue
        relative = path[len(base) :]
        bare = await _outcome(http(relative, auth=False))
        for param in ("share_token", "token"):
            shared = await _outcome(http(f"{relative}?{param}={grant['token']}", auth=False))
            assert shared == bare, (path, param, shared, bare)
        checked += 1
    assert checked >= 30  # the walk really covered the server's routes


async def _outcome(request) -> int | str:
    """A response's status, or the name of the error (some routes just drop the stream)."""
    try:
        return (await request).code
    except Exception as error:
        return type(error).__name__


def _sample(pattern: re.Pattern) -> str | None:
    """A string matching `pattern` (enough of regex syntax for URL routes)."""
    out: list[str] = []

    def walk(items) -> None:
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(arg))
            elif name == "NOT_LITERAL" or name == "ANY":
                out.append("x" if arg != ord("x") else "y")
            elif name == "IN":
                out.append(_first_in(arg))
            elif name in ("MAX_REPEAT", "MIN_REPEAT"):
                low, _high, sub = arg
                for _ in range(max(low, 1)):
                    walk(sub)
            elif name == "SUBPATTERN":
                walk(arg[-1])
            elif name == "BRANCH":
                walk(arg[1][0])
            elif name in ("AT", "GROUPREF", "ASSERT", "ASSERT_NOT"):
                continue
            else:
                raise ValueError(name)

    try:
        walk(sre_parse.parse(pattern.pattern))
    except ValueError:
        return None
    return "".join(out)


def _first_in(items) -> str:
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            return chr(arg)
        if name == "RANGE":
            return chr(arg[0])
        if name == "CATEGORY":
            return "1" if "DIGIT" in str(arg) else "a"
    return "a"


async def test_share_link_from_python(jp_serverapp, url, connect):
    from jupyter_party import share_link

    token = jp_serverapp.identity_provider.token
    loop = asyncio.get_running_loop()  # share_link blocks: keep the server's loop free
    link = await loop.run_in_executor(
        None, lambda: share_link("probe", "py", "read", 60, server=url(""), token=token)
    )
    assert "/party-share/probe/py?share_token=jps_" in link
    query = urlparse(link).query
    client = await connect(f"parties/probe/py?{query}", auth=False)
    assert (await client.recv_json())["type"] == "welcome"
