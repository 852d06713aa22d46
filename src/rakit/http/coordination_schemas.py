"""The answers of ``/session``, ``/semaphore`` and ``/election`` (docs/api.md v2), for the OpenAPI document.

Handlers build these JSON objects by hand (``rakit.http.routes.coordination``);
``tests/unit/test_coordination_http.py`` checks each answer decodes as its Struct.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from rakit.http.schemas import AnyJson, FencingToken

Seconds = Annotated[float, Meta(ge=0, description="Seconds.")]
Term = Annotated[int, Meta(ge=0, description="The election's fencing token: greater than every earlier term.")]


class SessionGranted(Struct):
    """A new session: attach holds with its `session_id`; keep it alive within `ttl` seconds."""

    session_id: str
    client_id: str
    ttl: Seconds


class SessionKept(Struct):
    """The session's lease restarted at its full `ttl`."""

    session_id: str
    ttl: Seconds


class SessionRevoked(Struct):
    revoked: Literal[True]


class SessionView(Struct):
    """A session and everything attached to it (a linearizable read on the leader)."""

    session_id: str
    client_id: str
    ttl: Seconds
    remaining: Annotated[float, Meta(ge=0, description="Seconds left of the lease, by the leader's clock.")]
    lock_delay: Seconds
    locks: list[str]
    semaphores: list[str]
    elections: list[str]
    keys: list[str]


class SemaphoreGrant(Struct):
    """`permits` of the semaphore are held by `client_id` until its lease (or session) ends."""

    acquired: Literal[True]
    name: str
    client_id: str
    permits: int
    limit: int
    available: Annotated[int, Meta(ge=0, description="Permits free right after this grant.")]
    fencing_token: FencingToken
    ttl: Seconds
    again: Annotated[bool, Meta(description="Re-acquired: same permits, same token, lease restarted.")]


class SemaphoreReleased(Struct):
    released: Literal[True]
    permits: int


class Renewed(Struct):
    """The lease restarted at `ttl` seconds."""

    renewed: Literal[True]
    ttl: Seconds


class SemaphoreHolder(Struct):
    client_id: str
    permits: int
    fencing_token: FencingToken


class SemaphoreWaiter(Struct):
    client_id: str
    permits: int


class SemaphoreStatus(Struct):
    """Holders and waiters of a semaphore (a linearizable read); `limit` and `available` are null when unused."""

    name: str
    limit: int | None
    available: int | None
    holders: list[SemaphoreHolder]
    waiters: Annotated[list[SemaphoreWaiter], Meta(description="In arrival order.")]


class ElectionWon(Struct):
    """`leader` leads the election with `term` until its lease (or session) ends or it resigns."""

    elected: Literal[True]
    name: str
    leader: str
    value: AnyJson
    term: Term
    ttl: Seconds
    again: Annotated[bool, Meta(description="Campaigned again while leader: same term, lease restarted.")]


class Proclaimed(Struct):
    name: str
    term: Term
    value: AnyJson


class Resigned(Struct):
    resigned: Literal[True]


class ElectionLeader(Struct):
    """The election's leader (null if none), its value and term, and the candidates waiting (in order)."""

    name: str
    leader: str | None
    value: AnyJson
    term: Term | None
    candidates: list[str]


class ElectionObserved(Struct):
    """`changed`: the election has a term greater than `after_term` (else the timeout passed)."""

    name: str
    leader: str | None
    value: AnyJson
    term: Term | None
    changed: bool


# -- refusals ---------------------------------------------------------------------------------------


class SessionNotFoundError(Struct):
    """No such session: never granted, revoked, or its lease ran out (everything attached ended with it)."""

    error: Literal["session_not_found"]
    detail: str


class SemaphoreRefusedError(Struct):
    """Not granted, nothing changed. `conflict`: not enough permits free (or others wait) and `timeout` was 0;
    `timeout`: not granted within `timeout` seconds (the waiter was removed); `limit_mismatch`: the semaphore is
    in use with another `limit` (given); `already_holder`: this client holds it with another number of permits."""

    error: Literal["conflict", "timeout", "limit_mismatch", "already_holder"]
    detail: str
    acquired: Literal[False]
    limit: Annotated[int, Meta(description="`limit_mismatch`: the semaphore's limit.")] | None = None


class SemaphoreNotHolderError(Struct):
    """The client holds no permit of that semaphore (released, or its lease or session ended)."""

    error: Literal["not_holder"]
    detail: str


class ElectionRefusedError(Struct):
    """Not elected, nothing changed. `conflict`: another candidate leads and `timeout` was 0; `timeout`: not
    elected within `timeout` seconds (the candidacy was withdrawn); `already_holder`: the candidate campaigns
    in another session."""

    error: Literal["conflict", "timeout", "already_holder"]
    detail: str
    elected: Literal[False]


class NotElectedError(Struct):
    """This candidate does not lead the election (with that term); for resign: neither leads nor waits."""

    error: Literal["not_leader"]
    detail: str


# -- the operations' descriptions (rakit.http.openapi adds them to the declared endpoints) ----------

LEADER_SERVED = "Served by the Raft leader; any node forwards."
DESCRIPTIONS: dict[tuple[str, str], str | tuple[str, str]] = {
    ("POST", "/session/grant"): (
        "A session is one lease that many holds share: locks, semaphore permits and candidacies acquired with "
        "its `session_id` live exactly as long as it does (their own `ttl` is ignored). Keep it alive within "
        "`ttl` seconds; when it expires or is revoked everything attached ends in one Raft entry, the waiters "
        "behind are granted in that entry, and `lock_delay` keeps its locks ungranted that long. " + LEADER_SERVED,
        "Granted.",
    ),
    ("POST", "/session/keepalive"): ("Restarts the session's lease at its full `ttl`. " + LEADER_SERVED, "Kept."),
    ("POST", "/session/revoke"): (
        "Ends the session and everything attached to it, in one Raft entry. " + LEADER_SERVED,
        "Revoked.",
    ),
    ("GET", "/session/{session_id}"): (
        "The session, the time left of its lease by the leader's clock, and what is attached to it. "
        "A linearizable read. " + LEADER_SERVED,
        "The session.",
    ),
    ("POST", "/semaphore/acquire"): (
        "Weighted permits, at most `limit` held at any instant. The first acquire of an unused name creates the "
        "semaphore with `limit`; another `limit` while it is in use is `409 limit_mismatch`. Granted at once only "
        "if enough permits are free and nobody waits ahead (a waiter for many permits is not overtaken); else "
        "waits FIFO up to `timeout` seconds, or `409 conflict` with `timeout: 0`. Re-acquiring is idempotent "
        "(same token, lease restarted); `fencing_token` strictly increases across grants. " + LEADER_SERVED,
        "Granted.",
    ),
    ("POST", "/semaphore/release"): ("Gives the client's permits back. " + LEADER_SERVED, "Released."),
    ("POST", "/semaphore/renew"): (
        "Restarts the lease (at `ttl`, or the hold's own ttl when absent). " + LEADER_SERVED,
        "Renewed.",
    ),
    ("GET", "/semaphore/status/{name}"): (
        "Holders (with permits and tokens) and waiters in arrival order. A linearizable read. " + LEADER_SERVED,
        "The semaphore.",
    ),
    ("POST", "/election/campaign"): (
        "Candidates wait FIFO; the first is leader until it resigns or its lease (or session) ends, and the next "
        "is elected in that same Raft entry. `term` is a fencing token: strictly greater than every earlier term. "
        "Not elected within `timeout`: `409 timeout` (the candidacy is withdrawn); with `timeout: 0` and another "
        "leader: `409 conflict`. Campaigning again while leader is idempotent. " + LEADER_SERVED,
        "Elected.",
    ),
    ("POST", "/election/renew"): ("Restarts the leader's lease. " + LEADER_SERVED, "Renewed."),
    ("POST", "/election/proclaim"): (
        "Updates the leader's value without a new term (only the leader with that `term`). " + LEADER_SERVED,
        "Proclaimed.",
    ),
    ("POST", "/election/resign"): (
        "The leader steps down (the next candidate is elected in the same entry), or a candidate leaves the "
        "queue. " + LEADER_SERVED,
        "Resigned.",
    ),
    ("GET", "/election/leader/{name}"): (
        "The leader, its value and term, and the waiting candidates. A linearizable read. " + LEADER_SERVED,
        "The election.",
    ),
    ("GET", "/election/observe/{name}"): (
        "A long poll: answers as soon as the election has a term greater than `after_term` (a new leader, or a "
        "vacancy counted as a change), else at `timeout` with the current state and `changed: false`. " + LEADER_SERVED,
        "The election.",
    ),
}
