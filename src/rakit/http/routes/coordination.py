"""``/session``, ``/semaphore`` and ``/election``: sessions, counting semaphores and leader election (docs/api.md v2).

Served by the Raft leader from any node (declared ``leader`` in
``rakit.http.endpoints``; the prologue forwards them).  Each handler builds
its command from the decoded body and answers the JSON of the contract; the
refusals are the error tree's (``rakit.node.coordination_service``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from rakit.errors import InvalidRequest
from rakit.http.bodies import (
    MAX_ELECTION_VALUE,
    CampaignBody,
    ElectionRenewBody,
    ProclaimBody,
    ResignBody,
    SemaphoreAcquireBody,
    SemaphoreReleaseBody,
    SemaphoreRenewBody,
    SessionBody,
    SessionGrantBody,
)
from rakit.http.json import json_response, query_number
from rakit.http.prologue import Call
from rakit.raft.messages import MAX_WIRE_INT
from rakit.statemachines import elections as EL
from rakit.statemachines import semaphores as SM

MAX_OBSERVE = 300.0


def _value(raw: bytes | None) -> msgspec.Raw | None:
    return msgspec.Raw(raw) if raw else None


def _checked_value(raw: msgspec.Raw) -> bytes:
    value = bytes(raw)
    if len(value) > MAX_ELECTION_VALUE:
        raise InvalidRequest(f"value is {len(value)} bytes encoded, over {MAX_ELECTION_VALUE}", field="value")
    return value


# -- sessions ------------------------------------------------------------------------------------


async def session_grant(call: Call[SessionGrantBody]) -> Response:
    req = call.body
    granted = await call.runtime.coordination.grant_session(req.client_id, req.ttl, req.lock_delay)
    return json_response({"session_id": granted.session_id, "client_id": granted.client_id, "ttl": granted.ttl})


async def session_keepalive(call: Call[SessionBody]) -> Response:
    kept = await call.runtime.coordination.keepalive(call.body.session_id)
    return json_response({"session_id": kept.session_id, "ttl": kept.ttl})


async def session_revoke(call: Call[SessionBody]) -> Response:
    await call.runtime.coordination.revoke(call.body.session_id)
    return json_response({"revoked": True})


async def session_get(call: Call[None]) -> Response:
    return json_response(await call.runtime.coordination.session(call.names["session_id"]))


# -- semaphores ----------------------------------------------------------------------------------


def semaphore_grant(g: SM.SemGranted) -> dict[str, Any]:
    return {
        "acquired": True,
        "name": g.name,
        "client_id": g.client_id,
        "permits": g.permits,
        "limit": g.limit,
        "available": g.available,
        "fencing_token": g.token,
        "ttl": g.ttl,
        "again": g.again,
    }


def checked_permits(call: Call[SemaphoreAcquireBody]) -> None:
    """Where the request came in: ``permits`` within 1..``limit``."""
    if call.body.permits > call.body.limit:
        raise InvalidRequest(
            f"permits ({call.body.permits}) must not exceed limit ({call.body.limit})", field="permits"
        )


async def semaphore_acquire(call: Call[SemaphoreAcquireBody]) -> Response:
    req = call.body
    command = SM.SemAcquire(
        req.name, req.client_id, req.limit, req.permits, req.ttl, call.remaining(), req.session_id, req.secret
    )
    return json_response(semaphore_grant(await call.runtime.coordination.acquire(command)))


async def semaphore_release(call: Call[SemaphoreReleaseBody]) -> Response:
    released = await call.runtime.coordination.release(call.body.name, call.body.client_id, call.body.secret)
    return json_response({"released": True, "permits": released.permits})


async def semaphore_renew(call: Call[SemaphoreRenewBody]) -> Response:
    req = call.body
    renewed = await call.runtime.coordination.renew(req.name, req.client_id, req.ttl, req.secret)
    return json_response({"renewed": True, "ttl": renewed.ttl})


async def semaphore_status(call: Call[None]) -> Response:
    return json_response(await call.runtime.coordination.semaphore_status(call.names["name"]))


# -- elections -----------------------------------------------------------------------------------


def election_won(e: EL.Elected) -> dict[str, Any]:
    return {
        "elected": True,
        "name": e.name,
        "leader": e.leader,
        "value": _value(e.value),
        "term": e.term,
        "ttl": e.ttl,
        "again": e.again,
    }


def checked_campaign(call: Call[CampaignBody]) -> None:
    _checked_value(call.body.value)


async def election_campaign(call: Call[CampaignBody]) -> Response:
    req = call.body
    command = EL.Campaign(
        req.name, req.candidate_id, _checked_value(req.value), req.ttl, call.remaining(), req.session_id, req.secret
    )
    return json_response(election_won(await call.runtime.coordination.campaign(command)))


async def election_renew(call: Call[ElectionRenewBody]) -> Response:
    req = call.body
    renewed = await call.runtime.coordination.renew_leadership(req.name, req.candidate_id, req.ttl, req.secret)
    return json_response({"renewed": True, "ttl": renewed.ttl})


def checked_proclaim(call: Call[ProclaimBody]) -> None:
    _checked_value(call.body.value)


async def election_proclaim(call: Call[ProclaimBody]) -> Response:
    req = call.body
    value = _checked_value(req.value)
    done = await call.runtime.coordination.proclaim(req.name, req.candidate_id, req.term, value, req.secret)
    return json_response({"name": done.name, "term": done.term, "value": _value(done.value)})


async def election_resign(call: Call[ResignBody]) -> Response:
    await call.runtime.coordination.resign(call.body.name, call.body.candidate_id, call.body.secret)
    return json_response({"resigned": True})


def _view(view: dict[str, Any]) -> dict[str, Any]:
    return {**view, "value": _value(view["value"])}


async def election_leader(call: Call[None]) -> Response:
    return json_response(_view(await call.runtime.coordination.leader(call.names["name"])))


async def election_observe(call: Call[None]) -> Response:
    after = call.request.query_params.get("after_term")
    after_term = None if after is None else int(query_number(call.request, "after_term", 0, 0, MAX_WIRE_INT))
    view = await call.runtime.coordination.observe(call.names["name"], after_term, call.remaining())
    return json_response(_view(view))
