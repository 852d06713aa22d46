"""Client authentication at the ASGI level: the client part of ``rakit.http.security``.

``admit`` runs for every non-internal request when client tokens are
configured (``--auth-tokens``; see ``rakit.security.tokens`` for the file, the
grants and the open paths).  It answers the refusal itself (``401
unauthorized`` with ``WWW-Authenticate: Bearer``, ``403 forbidden``) or puts
the caller's ``Identity`` on the request (``request.state.identity``) and
lets it through.

A request a peer relays for a client (``rakit.http.forward``) carries
``x-rakit-identity`` instead of the client's token.  That header is trusted
only with a valid cluster-secret signature over the method, the path and
query, the identity and the body (``rakit.security.internal``); the body is
read here, bounded, and replayed to the app.  The name is then looked up in
this node's own tokens file and its grants checked again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from starlette.types import Receive, Scope, Send

from rakit.errors import error_body
from rakit.http.json import MAX_BODY_BYTES, dumps
from rakit.security.internal import InternalAuth
from rakit.security.ratelimit import retry_after_header
from rakit.security.tokens import (
    IDENTITY_HEADER,
    OPEN,
    ClientAuth,
    Identity,
    Refusal,
    identity_binding,
)


async def admit(
    clients: ClientAuth, internal: InternalAuth, scope: Scope, receive: Receive, send: Send, headers: Mapping[str, str]
) -> Receive | None:
    """The ``receive`` to run the app with, or None when the request was refused (answered here)."""
    path: str = scope["path"]
    if clients.need(path) is OPEN:
        return receive
    name = headers.get(IDENTITY_HEADER)
    if name is None:
        outcome = clients.check(scope.get("method", "GET"), path, headers)
        if isinstance(outcome, Identity) and outcome.rate is not None:  # counted where the client came in
            wait = clients.limiter.take(outcome.name, outcome.rate, outcome.burst, time.monotonic())
            if wait > 0:
                outcome = Refusal(
                    429,
                    "rate_limited",
                    f"token {outcome.name!r} is limited to {outcome.rate:g} requests/s at this node; "
                    f"retry in {wait:.2f} s",
                    wait,
                )
    else:
        relayed = await _relayed(clients, internal, scope, receive, headers, name)
        if relayed is None:
            return None  # the peer went away
        outcome, receive = relayed
    if isinstance(outcome, Refusal):
        clients.refused += 1
        await refuse(scope, send, outcome)
        return None
    if outcome is not None:
        scope.setdefault("state", {})["identity"] = outcome
    return receive


async def _relayed(
    clients: ClientAuth, internal: InternalAuth, scope: Scope, receive: Receive, headers: Mapping[str, str], name: str
) -> tuple[Identity | Refusal | None, Receive] | None:
    if not internal.enabled:
        return Refusal(401, "unauthorized", f"{IDENTITY_HEADER} is only accepted from a peer node"), receive
    receive, refusal = await internal.admit(
        scope, receive, headers, limit=MAX_BODY_BYTES, bind=lambda body: identity_binding(name, body)
    )
    if refusal is not None:
        status, code, detail = refusal
        if status == 0:
            return None  # the peer went away
        return Refusal(status, code, f"{IDENTITY_HEADER}: {detail}" if status == 401 else detail), receive
    return clients.on_behalf_of(name, scope["path"]), receive


async def refuse(scope: Scope, send: Send, refusal: Refusal) -> None:
    status, code, detail = refusal.status, refusal.code, refusal.detail
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4000 + status, "reason": detail[:120]})
        return
    answer = error_body(code, detail)
    if refusal.retry_after is not None:
        answer["retry_after"] = round(refusal.retry_after, 3)
    body = dumps(answer)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="rakit"'))
    if refusal.retry_after is not None:
        headers.append((b"retry-after", retry_after_header(refusal.retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
