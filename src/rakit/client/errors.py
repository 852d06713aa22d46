"""The client's exceptions: one per error code of the node API, all under ``RakitError``.

Each carries the server's ``error`` code, its ``detail``, the HTTP
``status`` and the whole answer ``body`` (e.g. ``Deadlock.cycle``).

>>> try:
...     client.lock("orders", timeout=0).acquire()
... except LockConflict as exc:
...     print(exc.error, exc.detail)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyHolder",
    "ConnectionFailed",
    "Deadlock",
    "Forbidden",
    "InvalidRequest",
    "LeadershipLost",
    "LimitMismatch",
    "RevisionMismatch",
    "LockConflict",
    "LockLost",
    "LockTimeout",
    "NoLeader",
    "NotFound",
    "NotHolder",
    "NotElected",
    "NotInFlight",
    "PermitsLost",
    "RakitError",
    "ServerError",
    "SessionExists",
    "SessionLost",
    "SessionNotFound",
    "TokenMismatch",
    "TooLarge",
    "TooManyWaiters",
    "Unauthorized",
    "Unavailable",
    "error_from_answer",
]


class RakitError(Exception):
    """Any error a rakit node answered (or the client met talking to one)."""

    error: str = "error"

    def __init__(
        self,
        detail: str = "",
        *,
        status: int | None = None,
        body: dict[str, Any] | None = None,
        node: str | None = None,
    ) -> None:
        super().__init__(detail or self.error)
        self.detail = detail
        self.status = status
        self.body: dict[str, Any] = body or {}
        self.node = node

    def __str__(self) -> str:
        where = f" (from {self.node})" if self.node else ""
        return f"{self.error}: {self.detail}{where}" if self.detail else f"{self.error}{where}"


class InvalidRequest(RakitError):
    """422: a malformed request (a name outside the allowed form, a number out of range...)."""

    error = "invalid_request"


class TooLarge(RakitError):
    """413: a value or message over 1 MiB once encoded."""

    error = "too_large"


class NotFound(RakitError):
    """404: nothing there (a cache key no node holds, an unknown path)."""

    error = "not_found"


class LockConflict(RakitError):
    """409 ``conflict``: the lock is held in an incompatible mode (asked with ``timeout=0``)."""

    error = "conflict"


class LockTimeout(RakitError):
    """409 ``timeout``: the lock was not granted within the acquire's ``timeout``."""

    error = "timeout"


class Deadlock(RakitError):
    """409 ``deadlock``: waiting would close a cycle in the wait-for graph; ``cycle`` names it."""

    error = "deadlock"

    @property
    def cycle(self) -> list[str]:
        return list(self.body.get("cycle", []))


class NotHolder(RakitError):
    """409 ``not_holder``: this client does not hold the lock (released, or its lease ran out)."""

    error = "not_holder"


class TokenMismatch(RakitError):
    """409 ``token_mismatch``: the fencing token given is not the current holder's."""

    error = "token_mismatch"


class TooManyWaiters(RakitError):
    """429 ``too_many_waiters``: the lock's wait list is full (at most 1000 waiters per resource)."""

    error = "too_many_waiters"


class RateLimited(RakitError):
    """429 ``rate_limited``: the API token's request rate at that node is used up; ``retry_after`` seconds."""

    error = "rate_limited"

    @property
    def retry_after(self) -> float | None:
        value = self.body.get("retry_after")
        return float(value) if isinstance(value, int | float) else None


class QuotaExceeded(RakitError):
    """409 ``quota``: the API token already holds or awaits its ``max_locks`` locks."""

    error = "quota"


class Unauthorized(RakitError):
    """401 ``unauthorized``: the cluster wants an API token and got none, or an unknown one
    (``Client(token=...)`` or ``$RAKIT_TOKEN``)."""

    error = "unauthorized"


class Forbidden(RakitError):
    """403 ``forbidden``: the API token is valid but its grants do not cover this operation."""

    error = "forbidden"


class NotInFlight(RakitError):
    """404 ``not_in_flight``: the message is not in flight for that consumer (acked, or redelivered)."""

    error = "not_in_flight"


class SessionNotFound(RakitError):
    """404 ``session_not_found``: no such session (never granted, revoked, or its lease ran out)."""

    error = "session_not_found"


class RevisionMismatch(RakitError):
    """409 ``revision_mismatch``: a KV write's condition was false (``current_revision``: the key's, None if absent)."""

    error = "revision_mismatch"

    @property
    def current_revision(self) -> int | None:
        value = self.body.get("current_revision")
        return value if isinstance(value, int) else None


class LimitMismatch(RakitError):
    """409 ``limit_mismatch``: the semaphore is in use with another ``limit`` (``limit`` holds it)."""

    error = "limit_mismatch"

    @property
    def limit(self) -> int | None:
        value = self.body.get("limit")
        return value if isinstance(value, int) else None


class AlreadyHolder(RakitError):
    """409 ``already_holder``: this client holds the semaphore with another number of permits."""

    error = "already_holder"


class SessionExists(RakitError):
    """409 ``session_exists``: that session id was granted to another client."""

    error = "session_exists"


class NotElected(RakitError):
    """409 ``not_leader``: this candidate does not lead the election (with that term)."""

    error = "not_leader"


class NoLeader(RakitError):
    """503 ``no_leader``: no Raft leader is known right now (an election is running)."""

    error = "no_leader"


class Unavailable(RakitError):
    """503 ``unavailable``: the node cannot serve this now (Redis down, cache cut off...)."""

    error = "unavailable"


class ServerError(RakitError):
    """An answer the client did not expect (a 5xx, or a body that is not the API's JSON)."""

    error = "server_error"


class ConnectionFailed(RakitError):
    """No node could be reached (every attempt failed to connect or timed out)."""

    error = "connection_failed"


class LockLost(RakitError):
    """The lock was lost while held: a renewal was refused or could not reach the cluster in time."""

    error = "lock_lost"


class SessionLost(RakitError):
    """The session ended while in use: a keepalive got ``session_not_found`` or could not reach the
    cluster before the session's ttl ran out.  Every hold attached to it ended with it."""

    error = "session_lost"


class PermitsLost(RakitError):
    """A semaphore's permits were lost while held: a renewal was refused or came too late."""

    error = "permits_lost"


class LeadershipLost(RakitError):
    """The leadership of an election was lost while the block ran: a renewal got ``not_leader`` or
    could not reach the cluster before the lease ran out."""

    error = "leadership_lost"


_BY_CODE: dict[str, type[RakitError]] = {
    cls.error: cls
    for cls in (
        InvalidRequest,
        TooLarge,
        NotFound,
        LockConflict,
        LockTimeout,
        Deadlock,
        NotHolder,
        TokenMismatch,
        NotInFlight,
        NoLeader,
        Unavailable,
        SessionNotFound,
        LimitMismatch,
        RevisionMismatch,
        AlreadyHolder,
        SessionExists,
        TooManyWaiters,
        RateLimited,
        QuotaExceeded,
        Unauthorized,
        Forbidden,
    )
}

#: The node's other error codes (``rakit.errors.CODES``): answered as ``ServerError`` (5xx) or the plain
#: ``RakitError`` (4xx), with ``error`` set to the code.  ``tests/unit/test_endpoints.py`` checks that
#: ``_BY_CODE`` and these cover every code of the server's error tree.
GENERIC_CODES = frozenset(
    {
        "internal",
        "not_leader",
        "transfer_in_progress",
        "too_many_in_flight",
        "too_many_requests",
        "method_not_allowed",
        "request_timeout",
        "conf_change_refused",
        "conf_change_in_progress",
        "member_exists",
        "unknown_member",
        "last_voter",
        "learner_not_caught_up",
        "already_voter",
        "not_a_voter",
    }
)


def error_from_answer(status: int, body: Any, node: str | None = None) -> RakitError:
    """The exception for a non-2xx answer of the API (``{"error", "detail", ...}``)."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        cls = NotElected if (body["error"], status) == ("not_leader", 409) else _BY_CODE.get(body["error"])
        if cls is None:
            cls = ServerError if status >= 500 else RakitError
        err = cls(str(body.get("detail", "")), status=status, body=body, node=node)
        if cls is RakitError or cls is ServerError:
            err.error = body["error"]
        return err
    return ServerError(f"HTTP {status}: {str(body)[:200]}", status=status, node=node)
