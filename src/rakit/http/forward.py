"""Any node accepts any request: leader-only work runs here or is forwarded.

``on_leader(request, body, handler)`` runs ``handler`` when this node leads;
otherwise it relays the request (same method, path, query and body) to the
leader and relays the answer back.  It retries, within a bounded deadline,
only where the command certainly did not take effect: this node or the
leader said "not the leader" before proposing, the proposal was overwritten
by another leader's entry, or the leader could not be connected to.  While
no leader is known it waits for one briefly, then answers ``503 no_leader``.

With client tokens, the relayed request carries the caller's identity
(``x-rakit-identity``, signed with the cluster secret: ``identity_headers``),
not the client's token; the leader checks the signature and the grants.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from rakit.errors import NoLeader, NotLeader, ProposalDropped, Unavailable
from rakit.hops import HOPS_HEADER, MAX_LEADER_HOPS, REMAINING_HEADER, answer_within, hops_in
from rakit.http.identity import identity_of
from rakit.security.tokens import IDENTITY_HEADER, Identity, identity_binding

if TYPE_CHECKING:
    from rakit.node.runtime import NodeRuntime

RETRY_DEADLINE = 5.0
RETRY_PAUSE = 0.05
RELAY_TIMEOUT = 10.0

Handler = Callable[[], Awaitable[Response]]
T = TypeVar("T")


def hops_of(request: Request) -> int:
    """The relay count a peer put on ``request`` (0 when absent or malformed)."""
    return hops_in(request.headers.get(HOPS_HEADER))


def remaining_seconds(request: Request, wanted: float) -> float:
    """``wanted``, cut to what a relaying node says its caller still waits."""
    header = request.headers.get(REMAINING_HEADER)
    try:
        return max(0.0, min(wanted, float(header))) if header else wanted
    except ValueError:
        return wanted


async def on_leader(
    runtime: NodeRuntime,
    request: Request,
    body: bytes,
    handler: Handler,
    *,
    wait: float = 0.0,
    idempotent: bool = False,
) -> Response:
    """Run ``handler`` on the leader, here or by relay.

    ``wait``: seconds the request may legitimately wait at the leader (a lock
    acquire's timeout); retries stay within it plus RETRY_DEADLINE.
    ``idempotent``: repeating the request is harmless, so a relay that broke
    after sending (e.g. the leader was killed) is retried at the next leader.
    Answered within ``wait + MAX_OVERRUN`` seconds in any case.
    """
    return await answer_within(wait, _on_leader(runtime, request, body, handler, wait, idempotent))


async def _on_leader(
    runtime: NodeRuntime, request: Request, body: bytes, handler: Handler, wait: float, idempotent: bool
) -> Response:
    driver = runtime.driver
    started = time.monotonic()
    deadline = started + wait + RETRY_DEADLINE
    hops = hops_of(request)
    last_error: Exception = NoLeader()
    while True:
        if driver.is_leader:
            try:
                return await handler()
            except (NotLeader, ProposalDropped) as exc:
                last_error = exc
        else:
            leader = driver.leader_id
            if leader is None:
                leader = await driver.wait_for_leader(max(0.0, deadline - time.monotonic()))
            if leader is not None and leader != runtime.node_id and hops < MAX_LEADER_HOPS:
                remaining = max(0.0, started + wait - time.monotonic())
                response = await relay(runtime, request, body, leader, hops, remaining if wait else None, idempotent)
                if response is not None:
                    return response
                last_error = Unavailable(f"the leader {leader} could not be reached")
            elif leader is None:
                last_error = NoLeader()
        if time.monotonic() >= deadline:
            if isinstance(last_error, ProposalDropped):
                raise Unavailable(str(last_error))
            raise last_error
        await asyncio.sleep(RETRY_PAUSE)


def identity_headers(
    request: Request,
    peer: str,
    body: bytes,
    *,
    method: str | None = None,
    target: str | None = None,
    identity: Identity | None = None,
) -> dict[str, str]:
    """Headers carrying the caller's identity to ``peer``, signed with the cluster secret; {} without one.

    ``method`` and ``target`` (path and ``?query``) default to ``request``'s own (a relay);
    ``identity`` to the request's caller (``rakit.security.tokens``).
    """
    identity = identity or identity_of(request)
    internal = getattr(request.app.state, "internal_auth", None)
    if identity is None or internal is None or not internal.enabled:
        return {}
    if target is None:
        target = request.url.path + ("?" + request.url.query if request.url.query else "")
    headers = internal.headers(method or request.method, target, identity_binding(identity.name, body), dst=peer)
    headers[IDENTITY_HEADER] = identity.name
    return headers  # type: ignore[no-any-return]


async def relay(
    runtime: NodeRuntime,
    request: Request,
    body: bytes,
    leader: str,
    hops: int,
    remaining: float | None,
    idempotent: bool,
) -> Response | None:
    """The leader's answer, or None when retrying elsewhere is safe."""
    base = runtime.driver.addresses.get(leader)
    if base is None:
        return None  # a leader this node has no address for yet: ask again once it has
    url = base + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    headers = {"content-type": request.headers.get("content-type", "application/json")}
    headers.update(identity_headers(request, leader, body))
    runtime.metrics.forwarded.inc()
    answer = await runtime.relay.call(
        leader,
        request.method,
        url,
        body,
        headers,
        hops=hops,
        remaining=remaining,
        slack=RELAY_TIMEOUT,
        retry_safe=idempotent,
        what="the leader",
    )
    if answer is None:
        return None
    if answer.status == 503 and (b'"not_leader"' in answer.body or b'"no_leader"' in answer.body):
        return None
    return Response(answer.body, status_code=answer.status, headers=answer.headers)
