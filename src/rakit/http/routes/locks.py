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

from starlette.responses import Response

from rakit.http.bodies import AcquireBody, ReleaseBody, RenewBody
from rakit.http.identity import identity_of
from rakit.http.json import json_response
from rakit.http.prologue import Call
from rakit.statemachines import locks as L


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


async def acquire(call: Call[AcquireBody]) -> Response:
    req, identity = call.body, identity_of(call.request)
    quota = identity.max_locks if identity is not None else None
    command = L.Acquire(
        req.resource,
        req.client_id,
        req.mode,
        req.ttl,
        call.remaining(),
        req.lock_delay,
        call.owner,
        req.secret,
        quota,
        req.session_id,
    )
    return json_response(granted_body(await call.runtime.locks.acquire(command)))


async def release(call: Call[ReleaseBody]) -> Response:
    req = call.body
    await call.runtime.locks.release(L.Release(req.resource, req.client_id, req.fencing_token, call.owner, req.secret))
    return json_response({"released": True})


async def renew(call: Call[RenewBody]) -> Response:
    req = call.body
    result = await call.runtime.locks.renew(req.resource, req.client_id, req.ttl, call.owner, req.secret)
    return json_response({"renewed": True, "ttl": result.ttl, "fencing_token": result.token})


async def status(call: Call[None]) -> Response:
    return json_response(await call.runtime.locks.status(call.names["resource"]))


async def watch(call: Call[None]) -> Response:
    names = call.names
    return json_response(await call.runtime.locks.watch(names["resource"], names["client_id"], call.remaining()))
