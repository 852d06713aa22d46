"""Expected conditions, as one tree of named exceptions.

::

    RakitError
     ├── NotLeader            this node cannot serve a leader-only request
     │    └── NoLeader        ... and no leader is known right now (503)
     ├── ProposalDropped      leadership changed before the entry committed
     ├── Unavailable          a dependency (peer, Redis) did not answer (503)
     ├── InvalidRequest       malformed input (422)
     ├── TooLarge             a value over the size limit (413)
     ├── TooManyInFlight      a consumer holds too many unacked messages (429)
     ├── NotFound             (404)
     ├── Unauthorized         no valid API token (401)
     ├── Forbidden            a valid token, outside its grants (403)
     ├── TooManyWaiters       a resource's wait list is full (429)
     └── Conflict             a refused operation with its own code (409)

Each is translated once, at the HTTP boundary, to ``{"error", "detail"}``.
"""

from __future__ import annotations

from typing import Any


class RakitError(Exception):
    status = 500
    code = "internal"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}


class NotLeader(RakitError):
    status = 503
    code = "not_leader"

    def __init__(self, leader_id: str | None, detail: str = "") -> None:
        super().__init__(detail or f"not the leader (leader: {leader_id})")
        self.leader_id = leader_id


class NoLeader(NotLeader):
    code = "no_leader"

    def __init__(self, detail: str = "no leader is known right now") -> None:
        super().__init__(None, detail)


class ProposalDropped(RakitError):
    status = 503
    code = "unavailable"


class Unavailable(RakitError):
    status = 503
    code = "unavailable"


class InvalidRequest(RakitError):
    status = 422
    code = "invalid_request"


class TooLarge(RakitError):
    status = 413
    code = "too_large"


class TooManyInFlight(RakitError):
    status = 429
    code = "too_many_in_flight"


class NotFound(RakitError):
    status = 404
    code = "not_found"


class Unauthorized(RakitError):
    status = 401
    code = "unauthorized"


class Forbidden(RakitError):
    status = 403
    code = "forbidden"


class TooManyWaiters(RakitError):
    status = 429
    code = "too_many_waiters"


class Conflict(RakitError):
    status = 409

    def __init__(self, code: str, detail: str = "", **extra: Any) -> None:
        self.code = code
        super().__init__(detail or code, **extra)
