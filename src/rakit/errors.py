"""Expected conditions, as one tree of named exceptions.

::

    RakitError
     ├── NotLeader            this node cannot serve a leader-only request
     │    ├── NoLeader        ... and no leader is known right now (503)
     │    └── TransferInProgress  ... it is handing leadership over (503)
     ├── ProposalDropped      leadership changed before the entry committed
     ├── Unavailable          a dependency (peer, Redis) did not answer (503)
     ├── InvalidRequest       malformed input (422)
     ├── TooLarge             a value over the size limit (413)
     ├── TooManyInFlight      a consumer holds too many unacked messages (429)
     ├── NotFound             (404)
     │    ├── NotInFlight     a message not in flight for that consumer
     │    └── SessionNotFound a session id no session has
     ├── Unauthorized         no valid API token (401)
     ├── Forbidden            a valid token, outside its grants (403)
     ├── TooManyWaiters       a resource's wait list is full (429)
     ├── RateLimited          a token's request rate is used up (429)
     ├── TooManyRequests      the node sheds load (429)
     ├── MethodNotAllowed     (405)
     ├── RequestTimeout       a request head or body too slow to arrive (408)
     └── Conflict             a refused operation with its own code (409): ``CONFLICT_CODES``
          ├── ConfChangeRefused     a membership change the leader refuses
          │    ├── ConfChangeInProgress  an earlier change is not committed yet
          │    ├── MemberExists          adding a node that is already a member
          │    ├── UnknownMember         promoting/removing a non-member
          │    ├── LastVoter             removing the only voter
          │    ├── LearnerNotCaughtUp    promoting a learner that lags
          │    └── AlreadyVoter          promoting a voter
          ├── NotAVoter             a leadership transfer to a non-voter
          ├── RevisionMismatch      a KV write whose condition was false (``current_revision``)
          └── NotElected            an election call by a non-leader (409 ``not_leader``)

Each is translated once, at the HTTP boundary, to ``{"error", "detail"}``
(``error_body``), with its class's ``status`` and, when ``retry_after`` is
set (every 503), ``Retry-After: 1``.  This tree is the one source of the
API's error codes: ``CODES`` (code -> status) and ``STATUS_CODES`` (the code
of a bare HTTP status) derive from it, the HTTP edge
(``rakit.http.errors``), the OpenAPI error answers (``rakit.http.openapi``)
and the client's exceptions (``rakit.client.errors``, checked to cover
``CODES``) read them.  Pure: no I/O, importable by the client.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RakitError(Exception):
    status: ClassVar[int] = 500
    code = "internal"
    retry_after: ClassVar[bool] = False  # answered with Retry-After: 1

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.detail, **self.extra)


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The API's error answer: ``{"error": code, "detail": detail, ...extra}`` (every refusal has this shape)."""
    return {"error": code, "detail": detail, **extra}


class NotLeader(RakitError):
    status = 503
    retry_after = True
    code = "not_leader"

    def __init__(self, leader_id: str | None, detail: str = "") -> None:
        super().__init__(detail or f"not the leader (leader: {leader_id})")
        self.leader_id = leader_id


class NoLeader(NotLeader):
    code = "no_leader"

    def __init__(self, detail: str = "no leader is known right now") -> None:
        super().__init__(None, detail)


class TransferInProgress(NotLeader):
    """The leader is handing leadership to ``leader_id`` (thesis 3.10) and takes no proposals.

    A NotLeader, so callers that retry on NotLeader (the driver fails the
    batch, the HTTP relay retries at the next leader) need nothing new.
    """

    code = "transfer_in_progress"

    def __init__(self, target: str, detail: str = "") -> None:
        super().__init__(target, detail or f"leadership is being transferred to {target}")


class ProposalDropped(RakitError):
    status = 503
    retry_after = True
    code = "unavailable"


class Unavailable(RakitError):
    status = 503
    retry_after = True
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


class NotInFlight(NotFound):
    code = "not_in_flight"


class SessionNotFound(NotFound):
    """A session id no session has (never granted, revoked or expired)."""

    code = "session_not_found"


class Unauthorized(RakitError):
    status = 401
    code = "unauthorized"


class Forbidden(RakitError):
    status = 403
    code = "forbidden"


class TooManyWaiters(RakitError):
    status = 429
    code = "too_many_waiters"


class RateLimited(RakitError):
    status = 429
    code = "rate_limited"


class TooManyRequests(RakitError):
    status = 429
    code = "too_many_requests"


class MethodNotAllowed(RakitError):
    status = 405
    code = "method_not_allowed"


class RequestTimeout(RakitError):
    status = 408
    code = "request_timeout"


#: The codes a plain ``Conflict(code)`` answers with (lock and quota refusals; the lock table's results).
CONFLICT_CODES = (
    "conflict",
    "timeout",
    "deadlock",
    "not_holder",
    "token_mismatch",
    "quota",
    "limit_mismatch",  # a semaphore asked with another limit while in use
    "already_holder",  # a holder asking for another number of permits (or another session)
    "session_exists",  # a session id already granted to another client
)


class Conflict(RakitError):
    status = 409

    def __init__(self, code: str, detail: str = "", **extra: Any) -> None:
        self.code = code
        super().__init__(detail or code, **extra)


class ConfChangeRefused(Conflict):
    """A membership change the leader refuses; nothing changed.  Each subclass has its code."""

    code = "conf_change_refused"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(type(self).code, detail, **extra)


class ConfChangeInProgress(ConfChangeRefused):
    code = "conf_change_in_progress"


class MemberExists(ConfChangeRefused):
    code = "member_exists"


class UnknownMember(ConfChangeRefused):
    code = "unknown_member"


class LastVoter(ConfChangeRefused):
    code = "last_voter"


class LearnerNotCaughtUp(ConfChangeRefused):
    code = "learner_not_caught_up"


class AlreadyVoter(ConfChangeRefused):
    code = "already_voter"


class NotAVoter(Conflict):
    """A leadership transfer to a node that is not a voter."""

    code = "not_a_voter"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(type(self).code, detail, **extra)


class RevisionMismatch(Conflict):
    """A KV put, delete or txn condition on a key's revision that was false; nothing changed."""

    code = "revision_mismatch"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(type(self).code, detail, **extra)


class NotElected(Conflict):
    """An election call by a candidate that does not lead it (with that term): ``409 not_leader``.

    The code is the contract's (docs/api.md, "Leader election") and is also the Raft
    ``NotLeader``'s, which answers 503: a client tells them apart by the status.  ``CODES``
    keeps the Raft one (a code maps to one status there); ``ELECTION_CODES`` lists this.
    """

    code = "not_leader"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(type(self).code, detail, **extra)


def _tree(cls: type[RakitError]) -> list[type[RakitError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _tree(sub))]


#: Every class of the tree, the root first.
TREE: tuple[type[RakitError], ...] = tuple(_tree(RakitError))

#: Every error code the API answers with -> its HTTP status.
CODES: dict[str, int] = {
    **{cls.code: cls.status for cls in TREE if cls is not Conflict and cls is not NotElected},
    **dict.fromkeys(CONFLICT_CODES, Conflict.status),
}

#: Codes answered at a second status besides the one in ``CODES``: (code, status).
ELECTION_CODES: tuple[tuple[str, int], ...] = ((NotElected.code, NotElected.status),)

#: The code of an answer that carries only an HTTP status (Starlette's HTTPException, a refused request head).
STATUS_CODES: dict[int, str] = {
    **{
        cls.status: cls.code
        for cls in (NotFound, MethodNotAllowed, RequestTimeout, TooLarge, InvalidRequest, TooManyRequests, Unavailable)
    },
    400: InvalidRequest.code,
    431: TooLarge.code,
}
