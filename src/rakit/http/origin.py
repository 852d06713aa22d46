"""Cross-site requests and DNS rebinding: what a browser on another site cannot make a node do.

Any web page a developer visits can send requests to ``127.0.0.1:8001``: a
form or ``fetch`` POST with a ``text/plain`` body needs no CORS preflight,
and a DNS-rebinding page reaches the node under its own host name.  So, on
every request (pure ASGI, a few header lookups):

1. ``Host`` must name this node: one of ``allowed_hosts`` (by default this
   node's own address, every peer's host, and the loopback names), else
   ``421 misdirected_request``.  ``*`` in the list turns the check off (a
   node behind a load balancer with names of its own: list them instead).
2. A state-changing request (not GET/HEAD/OPTIONS) that a browser marks as
   cross-site (``Sec-Fetch-Site: cross-site``/``same-site``) or whose
   ``Origin`` is not this node's own is ``403 forbidden``.
3. A request with a body that comes from a browser (it carries ``Origin``)
   must say ``Content-Type: application/json``, else ``415
   unsupported_media_type``: the content types a cross-site form can send
   without a preflight are never taken as JSON.  Clients that are not
   browsers (curl, the Python client, other nodes) send no ``Origin`` and are
   not affected.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from rakit.errors import error_body
from rakit.http.json import dumps

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_of(authority: str) -> str:
    """The host part of ``host[:port]`` (an IPv6 literal keeps its brackets), lowercase."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[: authority.find("]") + 1] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def default_hosts(own_host: str, peer_urls: Iterable[str]) -> frozenset[str]:
    hosts = {*LOOPBACK_NAMES, host_of(own_host)}
    for url in peer_urls:
        name = urlsplit(url).hostname
        if name:
            hosts.add(f"[{name}]" if ":" in name else name.lower())
    return frozenset(h for h in hosts if h)


async def _refuse(send: Send, status: int, code: str, detail: str) -> None:
    body = dumps(error_body(code, detail))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class OriginMiddleware:
    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str]) -> None:
        self.app = app
        self.any_host = "*" in allowed_hosts
        self.allowed_hosts = allowed_hosts

    def refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        host = origin = fetch_site = content_type = None
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value
            elif name == b"origin":
                origin = value
            elif name == b"sec-fetch-site":
                fetch_site = value
            elif name == b"content-type":
                content_type = value
        if host is not None and not self.any_host:
            name = host_of(host.decode("latin-1"))
            if name not in self.allowed_hosts:
                return (
                    421,
                    "misdirected_request",
                    f"Host {name[:100]!r} is not a name of this node "
                    f"(a DNS-rebinding page?); list it in --allowed-hosts if it is",
                )
        if scope.get("method", "GET") in SAFE_METHODS:
            return None
        if fetch_site in (b"cross-site", b"same-site"):
            return 403, "forbidden", "cross-site requests may not change anything"
        if origin is not None:
            origin_host = host_of(urlsplit(origin.decode("latin-1")).netloc) if origin != b"null" else "null"
            if host is None or origin_host != host_of(host.decode("latin-1")):
                return (
                    403,
                    "forbidden",
                    f"a request from the page at {origin.decode('latin-1')[:100]!r} may not change anything here",
                )
            media = (content_type or b"").split(b";", 1)[0].strip().lower()
            if media != b"application/json":
                return 415, "unsupported_media_type", "send the body as Content-Type: application/json"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await _refuse(send, *refusal)
                return None
        elif scope["type"] == "websocket" and not self.any_host:
            for name, value in scope.get("headers", ()):
                if name == b"host" and host_of(value.decode("latin-1")) not in self.allowed_hosts:
                    await send({"type": "websocket.close", "code": 4421, "reason": "unknown Host"})
                    return None
        return await self.app(scope, receive, send)
