"""``/lock/*``: distributed locks (docs/api.md, "Locks"), served by the leader from any node.

With client tokens (``rakit.security.tokens``) acquire, release and renew need
``locks:write`` on the resource, and the caller's token name is the *owner*
recorded with the hold: a hold is released or renewed only under the token
that took it (``409 not_holder`` otherwise).  Without tokens, a hold taken
with a ``secret`` is released or renewed only with that secret (lock table
rule 15): the client id, which ``/lock/status`` shows, is not enough.  ``/lock/status`` and
``/lock/watch`` need ``locks:read`` (checked by the middleware, from the path).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rakit.errors import InvalidRequest
from rakit.http.disconnect import ClientGone, unless_disconnected
from rakit.http.forward import on_leader, remaining_seconds
from rakit.http.identity import identity_of, owner_of, require
from rakit.http.json import Key, Name, decode, json_response, path_key, path_name, read_body
from rakit.raft.messages import MAX_WIRE_INT
from rakit.statemachines import locks as L

Timeout = Annotated[float, msgspec.Meta(ge=0, le=300)]
Ttl = Annotated[float, msgspec.Meta(ge=1, le=3600)]
LockDelay = Annotated[float, msgspec.Meta(ge=0, le=60)]
# A holder secret (lock table rule 15): made up by the client, e.g. secrets.token_urlsafe(24).
Secret = Annotated[str, msgspec.Meta(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$(?!\n)")]
# A fencing token is a Raft log index: bounded like one (a bigger int would not fit the command's msgpack).
Token = Annotated[int, msgspec.Meta(ge=0, le=MAX_WIRE_INT)]


class AcquireBody(msgspec.Struct):
    resource: Key
    client_id: Name
    mode: Literal["exclusive", "shared"] = "exclusive"
    timeout: Timeout = 0.0
    ttl: Ttl = 30.0
    lock_delay: LockDelay | None = None
    secret: Secret | None = None


class ReleaseBody(msgspec.Struct):
    resource: Key
    client_id: Name
    fencing_token: Token | None = None
    secret: Secret | None = None


class RenewBody(msgspec.Struct):
    resource: Key
    client_id: Name
    ttl: Ttl | None = None
    secret: Secret | None = None


def granted_body(g: L.Granted) -> dict[str, object]:
    return {
        "acquired": True,
        "resource": g.resource,
        "client_id": g.client_id,
        "mode": g.mode,
        "fencing_token": g.token,
        "ttl": g.ttl,
        "again": g.again,
        "upgraded": g.upgraded,
    }


async def acquire(request: Request) -> Response:
    runtime = request.app.state.runtime
    body = await read_body(request)
    req = decode(body, AcquireBody)
    require(request, "locks", "write", req.resource)
    owner = owner_of(request)
    identity = identity_of(request)
    quota = identity.max_locks if identity is not None else None

    async def leader() -> Response:
        wait = remaining_seconds(request, req.timeout)
        command = L.Acquire(
            req.resource, req.client_id, req.mode, req.ttl, wait, req.lock_delay, owner, req.secret, quota
        )
        return json_response(granted_body(await runtime.locks.acquire(command)))

    work = on_leader(runtime, request, body, leader, wait=req.timeout, idempotent=True)
    if req.timeout <= 0:
        return await work
    try:
        return await unless_disconnected(request, work)
    except ClientGone:
        return Response(status_code=499)  # nobody is listening


async def release(request: Request) -> Response:
    runtime = request.app.state.runtime
    body = await read_body(request)
    req = decode(body, ReleaseBody)
    require(request, "locks", "write", req.resource)
    owner = owner_of(request)

    async def leader() -> Response:
        await runtime.locks.release(L.Release(req.resource, req.client_id, req.fencing_token, owner, req.secret))
        return json_response({"released": True})

    return await on_leader(runtime, request, body, leader)


async def renew(request: Request) -> Response:
    runtime = request.app.state.runtime
    body = await read_body(request)
    req = decode(body, RenewBody)
    require(request, "locks", "write", req.resource)
    owner = owner_of(request)

    async def leader() -> Response:
        result = await runtime.locks.renew(req.resource, req.client_id, req.ttl, owner, req.secret)
        return json_response({"renewed": True, "ttl": result.ttl, "fencing_token": result.token})

    return await on_leader(runtime, request, body, leader, idempotent=True)


async def status(request: Request) -> Response:
    runtime = request.app.state.runtime
    resource = path_key(request.path_params["resource"], "resource")

    async def leader() -> Response:
        return json_response(await runtime.locks.status(resource))

    return await on_leader(runtime, request, b"", leader, idempotent=True)


async def watch(request: Request) -> Response:
    runtime = request.app.state.runtime
    resource = path_key(request.path_params["resource"], "resource")
    client_id = path_name(request.query_params.get("client_id", ""), "client_id")
    try:
        timeout = float(request.query_params.get("timeout", "30"))
    except ValueError:
        raise InvalidRequest("timeout must be a number of seconds", field="timeout") from None
    if not 0 <= timeout <= 300:
        raise InvalidRequest("timeout must be between 0 and 300 seconds", field="timeout")

    async def leader() -> Response:
        wait = remaining_seconds(request, timeout)
        return json_response(await runtime.locks.watch(resource, client_id, wait))

    try:
        return await unless_disconnected(
            request, on_leader(runtime, request, b"", leader, wait=timeout, idempotent=True)
        )
    except ClientGone:
        return Response(status_code=499)


routes = [
    Route("/lock/acquire", acquire, methods=["POST"]),
    Route("/lock/release", release, methods=["POST"]),
    Route("/lock/renew", renew, methods=["POST"]),
    Route("/lock/status/{resource:whole}", status, methods=["GET"]),
    Route("/lock/watch/{resource:whole}", watch, methods=["GET"]),
]
