"""The party home page, `{base}parties`, over plain HTTP (tests/test_share_browser.py has it
in a real browser)."""

from __future__ import annotations

from urllib.parse import urlparse


async def test_the_home_page_lists_parties_rooms_and_workers(http, connect):
    client = await connect("parties/chat/lobby")
    await client.recv_json()
    page = await http("parties")
    assert page.code == 200 and page.headers["Content-Type"].startswith("text/html")
    body = page.body.decode()
    assert '<tr data-party="chat">' in body and '<tr data-party="probe">' in body
    assert "party-share/chat/lobby" in body  # a live room links to its console
    assert "pid " in body  # the worker running the rooms
    assert "Content-Security-Policy" in page.headers


async def test_opening_a_room_leads_to_its_console(http):
    opened = await http("parties?party=chat&room=a%20b%2Fc", follow=False)
    assert opened.code == 302
    assert urlparse(opened.headers["Location"]).path.endswith("/party-share/chat/a%20b%2Fc")
    bad = await http("parties?party=Not-A-Party&room=x")
    assert bad.code == 400


async def test_the_home_page_is_for_jupyter_users_only(http):
    anonymous = await http("parties", auth=False, follow=False)
    assert anonymous.code in (302, 403)  # to Jupyter's login page, never the listing
    assert b"data-party" not in (anonymous.body or b"")
