"""The ASGI middleware that authenticates requests (installed only when security is configured).

Internal paths (``rakit.security.internal.is_internal``) must prove the
cluster secret; so must operator calls (``is_operator``: membership changes
and leader transfer), whether or not client tokens are on, and no token can
stand in for it: signed by an operator (``rakit member``, ``Client(cluster_secret=...)``),
a joining node (``--join``), or a peer relaying one of those to the leader
(it then names the node identity, ``x-rakit-identity: @node``, signed with
the body).  With client tokens on, an operator's call must also carry a
token with the ``members`` grant (so each change names who made it, and one
person's access can be revoked), and a call a node signs as itself may only
add that node (``POST /cluster/members`` with its own id: ``--join``) and
read the configuration (a signed ``GET /cluster/members``).
Every other path, when client tokens are configured, must carry
a valid token allowed to do what it asks.  Refusals are the API's JSON
errors: ``401 unauthorized`` / ``403 forbidden``.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from rakit.errors import error_body
from rakit.http.client_auth import admit as admit_client
from rakit.http.json import dumps
from rakit.security.internal import (
    NODE_HEADER,
    OPERATOR_CALLER,
    InternalAuth,
    is_internal,
    is_operator,
    is_signed_listing,
)
from rakit.security.tokens import IDENTITY_HEADER, NODE_IDENTITY, SYSTEM, ClientAuth, Refusal, identity_binding

log = logging.getLogger(__name__)

#: Where a call a node signed as itself puts that node's id (``scope["state"]``): it may add only itself.
JOINING_NODE = "joining_node"

OPERATOR_BODY_LIMIT = 64 * 1024  # what a membership change or a leader transfer can carry


async def _refuse(scope: Scope, send: Send, status: int, code: str, detail: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4401 if status == 401 else 4403, "reason": detail[:120]})
        return
    body = dumps(error_body(code, detail))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _operator_call(
    internal: InternalAuth, scope: Scope, receive: Receive, headers: dict[str, str]
) -> tuple[Receive, tuple[int, str, str] | None]:
    """Check an operator call's signature: plain (an operator, a joining node) or a peer's relay of one."""
    name = headers.get(IDENTITY_HEADER)
    if name is None:
        receive, refusal = await internal.admit(scope, receive, headers, limit=OPERATOR_BODY_LIMIT)
        if refusal is not None and refusal[0] == 401:
            refusal = (
                401,
                "unauthorized",
                f"membership changes and leader transfer must be signed with the "
                f"cluster secret (rakit member ... with CLUSTER_SECRET set): {refusal[2]}",
            )
        return receive, refusal
    if name != NODE_IDENTITY:
        return receive, (401, "unauthorized", f"membership changes are relayed only for {NODE_IDENTITY}")
    receive, refusal = await internal.admit(
        scope, receive, headers, limit=OPERATOR_BODY_LIMIT, bind=lambda body: identity_binding(name, body)
    )
    if refusal is not None and refusal[0] == 401:
        refusal = (401, "unauthorized", f"{IDENTITY_HEADER}: {refusal[2]}")
    return receive, refusal


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, internal: InternalAuth, clients: ClientAuth) -> None:
        self.app = app
        self.internal = internal
        self.clients = clients

    def _operator_token(self, scope: Scope, path: str, headers: dict[str, str]) -> tuple[int, str, str] | None:
        """With tokens on: an operator needs the ``members`` grant; a node may only add itself."""
        caller = headers.get(NODE_HEADER, "")
        if caller != OPERATOR_CALLER:
            if path.rstrip("/") == "/cluster/members" and scope.get("method") in ("GET", "POST"):
                scope.setdefault("state", {})[JOINING_NODE] = caller  # the route checks the id it adds
                return None
            return (
                403,
                "forbidden",
                f"a call signed by node {caller!r} may only add that node; operators sign as "
                f"{OPERATOR_CALLER!r} and need a token with the 'members' grant",
            )
        outcome = self.clients.operator(headers)
        if isinstance(outcome, Refusal):
            return outcome.status, outcome.code, outcome.detail
        log.info("operator call %s %s by token %r", scope.get("method"), path, outcome.name)
        return None

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
        method = scope.get("method", "GET")
        if self.internal.enabled and (is_operator(method, path) or is_signed_listing(method, path, headers)):
            receive, refusal = await _operator_call(self.internal, scope, receive, headers)
            if refusal is not None:
                status, code, detail = refusal
                if status:
                    await _refuse(scope, send, status, code, detail)
                return None
            if self.clients.enabled and IDENTITY_HEADER not in headers:  # not a peer's relay
                refusal = self._operator_token(scope, path, headers)
                if refusal is not None:
                    self.clients.refused += 1
                    await _refuse(scope, send, *refusal)
                    return None
            scope.setdefault("state", {})["identity"] = SYSTEM  # a relay to the leader signs as the node
            return await self.app(scope, receive, send)
        if self.clients.enabled:  # client tokens (rakit.http.client_auth): refused there, or the identity set
            admitted = await admit_client(self.clients, self.internal, scope, receive, send, headers)
            if admitted is None:
                return None
            receive = admitted
        return await self.app(scope, receive, send)
