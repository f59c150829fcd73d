"""The share page in a real browser: headless Chromium driven by Playwright's async API.

A share link is opened in a fresh browser context (no Jupyter cookie, no Jupyter token), so
all the page holds is its share token. It must connect, show what the room sends, send what
is typed, obey its own Content-Security-Policy without tripping over it, and open nothing
else of the Jupyter server.

Playwright's async API runs on the test's event loop, which is also the Jupyter server's:
the sync API would block the server. Needs `playwright` (PyPI) and Debian's `chromium`;
Playwright's own browser download is never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import require

CHROMIUM = os.environ.get("JUPYTER_PARTY_CHROMIUM", "/usr/bin/chromium")
require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
require(find_spec("playwright") is not None, "playwright is not installed (pip install playwright)")
from playwright.async_api import async_playwright, expect  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TIMEOUT_MS = 10_000
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def jp_server_config(jp_server_config):
    # As in test_shares: every handler the page touches must carry an explicit auth rule.
    jp_server_config["ServerApp"]["allow_unauthenticated_access"] = False
    return jp_server_config


@pytest.fixture
def share(jp_fetch):
    async def issue(room: str, access: str = "write", party: str = "probe") -> dict:
        body = {"party": party, "room": room, "access": access, "expires_in": 3600}
        response = await jp_fetch("party-api", "share", method="POST", body=json.dumps(body))
        assert response.code == 201
        return json.loads(response.body)

    return issue


# Runs before the page's own scripts (Playwright injects it, the page's CSP does not apply).
RECORD_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`));
"""


class Console:
    """What the browser reported: console messages, uncaught errors, CSP violations."""

    def __init__(self, page) -> None:
        self.page = page
        self.messages: list[str] = []
        self.errors: list[str] = []
        page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    async def csp_violations(self) -> list[str]:
        events = await self.page.evaluate("window.__csp")
        return events + [m for m in self.messages if "Content Security Policy" in m]

    async def assert_clean(self) -> None:
        assert await self.csp_violations() == [], self.messages
        assert self.errors == [], self.errors


@contextlib.asynccontextmanager
async def fresh_context():
    """A new headless Chromium with one empty context: no cookies, no storage, no token."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context()
            assert await context.cookies() == []
            yield context
        finally:
            await browser.close()


async def open_share_page(context, grant: dict):
    """Open the share link; return (page, console) once its socket says "connected" and the
    probe's welcome is in the log (so the page's connection is in the room)."""
    page = await context.new_page()
    await page.add_init_script(RECORD_CSP)
    console = Console(page)
    response = await page.goto(grant["url"])
    assert response is not None and response.status == 200
    assert response.headers["referrer-policy"] == "no-referrer"
    await expect(page.locator("#status")).to_have_text("connected", timeout=TIMEOUT_MS)
    welcome = page.locator("#log .in").filter(has_text=re.compile(r'"type":\s*"welcome"'))
    await expect(welcome).to_have_count(1, timeout=TIMEOUT_MS)
    return page, console


async def test_share_page_talks_to_its_room(share, connect):
    grant = await share("br1")
    async with fresh_context() as context:
        page, console = await open_share_page(context, grant)
        await expect(page.locator("#title")).to_have_text("probe / br1")
        await expect(page.locator("#who")).to_contain_text("(write)")
        welcome = await page.locator("#log .in").first.text_content()
        assert json.loads(welcome.split(" ← ", 1)[1])["user"].startswith("share-")  # a guest
        # The page's own nonce'd <style> applied (a CSP mismatch would leave it unstyled).
        header = await page.eval_on_selector("header", "h => getComputedStyle(h).backgroundColor")
        assert header == "rgb(36, 41, 47)"

        # Type into the console and send: the probe answers the page alone.
        await page.locator("#message").fill('{"op":"echo","n":5}')
        await page.locator("#send button").click()
        await expect(page.locator("#log .out")).to_contain_text(['{"op":"echo","n":5}'])
        echo = page.locator("#log .in").filter(has_text=re.compile(r'"type":\s*"echo",\s*"n":\s*5'))
        await expect(echo).to_have_count(1, timeout=TIMEOUT_MS)
        await expect(page.locator("#message")).to_have_value("")

        # A second participant, a Jupyter user on a plain WebSocket, broadcasts to the room.
        other = await connect("parties/probe/br1?_pk=jupyteruser")
        assert (await other.recv_json())["type"] == "welcome"
        await other.send({"op": "broadcast", "message": "hello browser"})
        assert await other.recv() == "hello browser"
        hello = page.locator("#log .in").filter(has_text="hello browser")
        await expect(hello).to_have_count(1, timeout=TIMEOUT_MS)
        await expect(page.locator("#status")).to_have_text("connected")

        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "share-page.png"), full_page=True)
        await console.assert_clean()


async def test_share_page_context_opens_nothing_else(share, jp_base_url):
    grant = await share("br1")
    token = grant["token"]
    origin = "{0.scheme}://{0.netloc}".format(urlparse(grant["url"]))
    async with fresh_context() as context:
        page, _console = await open_share_page(context, grant)
        for param in ("share_token", "token"):
            for api in ("api/kernels", "api/contents", "api/sessions", "api/terminals"):
                path = f"{jp_base_url}{api}?{param}={token}"
                # From the page itself (same origin, its CSP allows it) ...
                status = await page.evaluate(
                    "async (path) => (await fetch(path, {redirect: 'manual'})).status", path
                )
                assert status == 403, (path, status)
                # ... and from the context, with whatever cookies the share page left.
                response = await context.request.get(origin + path, max_redirects=0)
                assert response.status == 403, (path, response.status)

            for ui in ("lab", "tree"):
                path = f"{jp_base_url}{ui}?{param}={token}"
                raw = await context.request.get(origin + path, max_redirects=0)
                if raw.status in (301, 302, 303, 307, 308):
                    assert "/login?" in raw.headers["location"], (path, raw.headers["location"])
                else:
                    assert raw.status in (401, 403, 404), (path, raw.status)
                # Followed in a real tab: a login form or an error, never a Jupyter UI.
                tab = await context.new_page()
                response = await tab.goto(origin + path)
                body = await tab.content()
                assert "jupyter-config-data" not in body, (path, tab.url)
                landed = urlparse(tab.url).path
                assert response.status != 200 or landed.endswith("/login"), (path, tab.url)
                await tab.close()
        # The login page may set its _xsrf cookie; nothing ever logs this context in.
        cookies = await context.cookies()
        assert {c["name"] for c in cookies} <= {"_xsrf"}, cookies


async def test_read_share_page(share, connect):
    grant = await share("br-ro", access="read")
    async with fresh_context() as context:
        page, console = await open_share_page(context, grant)
        await expect(page.locator("#who")).to_contain_text("(read)")
        other = await connect("parties/probe/br-ro?_pk=jupyteruser")
        await other.recv_json()
        await other.send({"op": "broadcast", "message": "to the readers"})
        hello = page.locator("#log .in").filter(has_text="to the readers")
        await expect(hello).to_have_count(1, timeout=TIMEOUT_MS)
        await console.assert_clean()


async def test_share_page_of_a_y_room_is_the_document_view(share, http):
    grant = await share("br-doc", party="ydoc")
    async with fresh_context() as context:
        page = await context.new_page()
        await page.add_init_script(RECORD_CSP)
        console = Console(page)
        assert (await page.goto(grant["url"])).status == 200
        status = page.locator(".jp-party-doc .status")
        await expect(status).to_have_text(re.compile("connected|synced"), timeout=TIMEOUT_MS)
        await http("parties/ydoc/br-doc", method="POST", body="from the server. ")
        textarea = page.locator(".jp-party-doc textarea")
        await expect(textarea).to_have_value("from the server. ", timeout=TIMEOUT_MS)
        await textarea.press("End")
        await textarea.type("typed by a guest")

        async def server_text() -> str:
            return json.loads((await http("parties/ydoc/br-doc")).body)["text"]

        deadline = asyncio.get_running_loop().time() + TIMEOUT_MS / 1000
        while await server_text() != "from the server. typed by a guest":
            assert asyncio.get_running_loop().time() < deadline, await server_text()
            await asyncio.sleep(0.05)
        await page.screenshot(path=ARTIFACTS / "share-page-doc.png")
        await console.assert_clean()


async def test_share_page_shows_the_partys_own_ui(share):
    grant = await share("br-ui", party="uiparty")
    async with fresh_context() as context:
        page = await context.new_page()
        await page.add_init_script(RECORD_CSP)
        console = Console(page)
        assert (await page.goto(grant["url"])).status == 200
        await page.locator("#ping").click()
        await expect(page.locator("#reply")).to_have_text("pong:ping", timeout=TIMEOUT_MS)
        await page.screenshot(path=ARTIFACTS / "share-page-ui.png")
        await console.assert_clean()


async def test_the_home_page_opens_the_demo_chat_in_two_pages(url, jp_serverapp):
    """A person with a browser and no notebook: the party home page, a room of the bundled
    chat, and two pages that talk to each other through it."""
    token = jp_serverapp.identity_provider.token
    async with fresh_context() as context:
        home = await context.new_page()
        await home.add_init_script(RECORD_CSP)
        console = Console(home)
        response = await home.goto(url(f"parties?token={token}"))  # sets the login cookie
        assert response is not None and response.status == 200
        chat = home.locator('tr[data-party="chat"]')
        await expect(chat).to_contain_text("server")
        await chat.locator('input[name="room"]').fill("front door")
        await chat.locator("button").click()
        await expect(home).to_have_url(re.compile(r"/party-share/chat/front%20door$"))
        await expect(home.locator("#status")).to_have_text("connected", timeout=TIMEOUT_MS)
        await console.assert_clean()

        other = await context.new_page()
        await other.goto(home.url)
        await expect(other.locator("#status")).to_have_text("connected", timeout=TIMEOUT_MS)
        await home.locator("#message").fill("hello from the first page")
        await home.locator("#send button").click()
        said = other.locator("#log .in").filter(has_text="hello from the first page")
        await expect(said).to_have_count(1, timeout=TIMEOUT_MS)

        listing = await context.new_page()  # the room is live now, with its two pages
        await listing.goto(url("parties"))
        room = listing.locator("#rooms tr").filter(has=listing.get_by_text("chat / front door"))
        await expect(room.locator("td").nth(1)).to_have_text("2")
        ARTIFACTS.mkdir(exist_ok=True)
        await listing.screenshot(path=str(ARTIFACTS / "home-page.png"), full_page=True)
