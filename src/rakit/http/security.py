"""The ASGI middleware that authenticates requests (installed only when security is configured).

Internal paths (``rakit.security.internal.is_internal``) must prove the
cluster secret; every other path, when client tokens are configured, must
carry a valid token allowed to do what it asks.  Refusals are the API's JSON
errors: ``401 unauthorized`` / ``403 forbidden``.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from rakit.http.client_auth import admit as admit_client
from rakit.http.json import dumps
from rakit.security.internal import InternalAuth, is_internal
from rakit.security.tokens import ClientAuth


async def _refuse(scope: Scope, send: Send, status: int, code: str, detail: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4401 if status == 401 else 4403, "reason": detail[:120]})
        return
    body = dumps({"error": code, "detail": detail})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, internal: InternalAuth, clients: ClientAuth) -> None:
        self.app = app
        self.internal = internal
        self.clients = clients

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if is_internal(path):
            if self.internal.enabled:
                # Signed headers checked first; an HTTP body is then read (bounded), its hash
                # checked, and replayed to the app. WebSockets: checked at the handshake.
                receive, refusal = await self.internal.admit(scope, receive, headers)
                if refusal is not None:
                    status, code, detail = refusal
                    if status:
                        await _refuse(scope, send, status, code, detail)
                    return None
            return await self.app(scope, receive, send)
        if self.clients.enabled:  # client tokens (rakit.http.client_auth): refused there, or the identity set
            admitted = await admit_client(self.clients, self.internal, scope, receive, send, headers)
            if admitted is None:
                return None
            receive = admitted
        return await self.app(scope, receive, send)
