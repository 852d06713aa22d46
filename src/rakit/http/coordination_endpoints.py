"""The session, semaphore and election endpoints (docs/api.md v2), declared once: see ``rakit.http.endpoints``."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from rakit.http import bodies as B
from rakit.http import coordination_schemas as C
from rakit.http.declare import BODY, Endpoint, Param, key_param
from rakit.http.prologue import Handler
from rakit.http.routes import coordination as coord
from rakit.security.tokens import Need


def _coordination(
    method: str, path: str, tag: str, summary: str, handler: Handler, access: Need, **facts: Any
) -> Endpoint:
    """A session, semaphore or election endpoint: served by the leader, may answer like one."""
    return Endpoint(method, path, tag, summary, handler=handler, access=access, leader=True, **facts)


SEMAPHORE = key_param("name", "The semaphore's name")
ELECTION = key_param("name", "The election's name")
SESSION_ID = key_param("session_id", "The session")
# A long poll's wait: the observe endpoint's `timeout`.
ObserveTimeout = Annotated[float, msgspec.Meta(ge=0, le=300)]

COORDINATION: tuple[Endpoint, ...] = (
    _coordination(
        "POST",
        "/session/grant",
        "sessions",
        "Grant a session",
        coord.session_grant,
        Need("sessions", "write"),
        body=B.SessionGrantBody,
        ok=C.SessionGranted,
        errors=BODY,
    ),
    _coordination(
        "POST",
        "/session/keepalive",
        "sessions",
        "Keep a session alive",
        coord.session_keepalive,
        Need("sessions", "write"),
        body=B.SessionBody,
        ok=C.SessionKept,
        errors=(*BODY, "SessionNotFound"),
        idempotent=True,
    ),
    _coordination(
        "POST",
        "/session/revoke",
        "sessions",
        "Revoke a session",
        coord.session_revoke,
        Need("sessions", "write"),
        body=B.SessionBody,
        ok=C.SessionRevoked,
        errors=(*BODY, "SessionNotFound"),
    ),
    _coordination(
        "GET",
        "/session/{session_id}",
        "sessions",
        "Read a session",
        coord.session_get,
        Need("sessions", "read"),
        params=(SESSION_ID,),
        ok=C.SessionView,
        errors=("InvalidRequest", "SessionNotFound"),
        idempotent=True,
    ),
    _coordination(
        "POST",
        "/semaphore/acquire",
        "semaphores",
        "Acquire permits",
        coord.semaphore_acquire,
        Need("semaphores", "write", "name"),
        body=B.SemaphoreAcquireBody,
        ok=C.SemaphoreGrant,
        errors=(*BODY, "SemaphoreRefused", "SessionNotFound", "TooManyWaiters"),
        wait="timeout",
        idempotent=True,
        admit=coord.checked_permits,
    ),
    _coordination(
        "POST",
        "/semaphore/release",
        "semaphores",
        "Release permits",
        coord.semaphore_release,
        Need("semaphores", "write", "name"),
        body=B.SemaphoreReleaseBody,
        ok=C.SemaphoreReleased,
        errors=(*BODY, "SemaphoreNotHolder"),
    ),
    _coordination(
        "POST",
        "/semaphore/renew",
        "semaphores",
        "Renew a semaphore hold",
        coord.semaphore_renew,
        Need("semaphores", "write", "name"),
        body=B.SemaphoreRenewBody,
        ok=C.Renewed,
        errors=(*BODY, "SemaphoreNotHolder"),
        idempotent=True,
    ),
    _coordination(
        "GET",
        "/semaphore/status/{name}",
        "semaphores",
        "Semaphore status",
        coord.semaphore_status,
        Need("semaphores", "read", "name"),
        params=(SEMAPHORE,),
        ok=C.SemaphoreStatus,
        errors=("InvalidRequest", "NoRoute"),
        idempotent=True,
    ),
    _coordination(
        "POST",
        "/election/campaign",
        "elections",
        "Campaign for leadership",
        coord.election_campaign,
        Need("elections", "write", "name"),
        body=B.CampaignBody,
        ok=C.ElectionWon,
        errors=(*BODY, "ElectionRefused", "SessionNotFound", "TooManyWaiters"),
        wait="timeout",
        idempotent=True,
        admit=coord.checked_campaign,
    ),
    _coordination(
        "POST",
        "/election/renew",
        "elections",
        "Renew leadership",
        coord.election_renew,
        Need("elections", "write", "name"),
        body=B.ElectionRenewBody,
        ok=C.Renewed,
        errors=(*BODY, "NotElected"),
        idempotent=True,
    ),
    _coordination(
        "POST",
        "/election/proclaim",
        "elections",
        "Publish a new value",
        coord.election_proclaim,
        Need("elections", "write", "name"),
        body=B.ProclaimBody,
        ok=C.Proclaimed,
        errors=(*BODY, "NotElected"),
        idempotent=True,
        admit=coord.checked_proclaim,
    ),
    _coordination(
        "POST",
        "/election/resign",
        "elections",
        "Resign leadership (or candidacy)",
        coord.election_resign,
        Need("elections", "write", "name"),
        body=B.ResignBody,
        ok=C.Resigned,
        errors=(*BODY, "NotElected"),
    ),
    _coordination(
        "GET",
        "/election/leader/{name}",
        "elections",
        "The election's leader",
        coord.election_leader,
        Need("elections", "read", "name"),
        params=(ELECTION,),
        ok=C.ElectionLeader,
        errors=("InvalidRequest", "NoRoute"),
        idempotent=True,
    ),
    _coordination(
        "GET",
        "/election/observe/{name}",
        "elections",
        "Wait for a change of leader",
        coord.election_observe,
        Need("elections", "read", "name"),
        params=(
            ELECTION,
            Param(
                "after_term",
                "query",
                Annotated[int, msgspec.Meta(ge=0)],
                "Answer once the term is greater.",
                required=False,
            ),
            Param("timeout", "query", ObserveTimeout, "Seconds to wait.", required=False, default=30.0),
        ),
        ok=C.ElectionObserved,
        errors=("InvalidRequest", "NoRoute"),
        wait="timeout",
        idempotent=True,
    ),
)
