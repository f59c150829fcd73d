"""The server's public address: what a share link is built on.

A kernel reaches its server at `127.0.0.1:port`, which nobody else can open, so a share link
takes its base from, in order:

1. the browser's own address, when a browser asks (the Lab panel, a widget: the request's
   `Origin` is this very server as the browser sees it);
2. `PartyApp.public_url`;
3. JupyterHub's `JUPYTERHUB_PUBLIC_URL` (set by the hub when `JupyterHub.public_url` is
   configured or users get subdomains; Binder's hubs included);
4. the address the request was sent to; a loopback one is flagged as local.

A base without a path (`https://hub.example.org`) gets the server's `base_url` appended.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from tornado.httputil import HTTPServerRequest

HUB_PUBLIC_URL = "JUPYTERHUB_PUBLIC_URL"


def public_base(request: HTTPServerRequest, base_url: str, configured: str = "") -> str:
    """The public base URL (ending with '/') of this server, for links made by `request`."""
    origin = request.headers.get("Origin", "")
    if origin and urlsplit(origin).netloc.lower() == request.host.lower():
        return _with_base(origin, base_url)
    for candidate in (configured, os.environ.get(HUB_PUBLIC_URL, "")):
        if candidate:
            return _with_base(candidate, base_url)
    return f"{request.protocol}://{request.host}{base_url}"


def is_local(url: str) -> bool:
    """Whether only this machine can open `url` (a loopback host)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _with_base(url: str, base_url: str) -> str:
    parts = urlsplit(url)
    path = parts.path.strip("/") or base_url.strip("/")
    return f"{parts.scheme}://{parts.netloc}/" + (f"{path}/" if path else "")
