"""What the session, semaphore and election operations send (API v2), shared by both clients.

Like ``rakit.client.calls``: each function builds one ``Call``.  Also here,
because both clients need them alike: ``LeaderChange`` (what ``observe``
yields) and ``next_wait`` (how a wait longer than the API's 300 s, or
without end, is cut into bounded long-polls).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rakit.client.calls import Call, key_path

__all__ = ["MAX_WAIT", "LeaderChange", "next_wait"]

#: The longest ``timeout`` one request may ask the server to wait (the API's bound).
MAX_WAIT = 300.0


@dataclass(frozen=True, slots=True)
class LeaderChange:
    """One state of an election as ``observe`` sees it: ``leader`` None means vacant (resigned, expired)."""

    name: str
    leader: str | None
    value: Any
    term: int | None


def next_wait(deadline: float | None, now: float) -> float:
    """The ``timeout`` of the next request of a wait ending at ``deadline`` (None: never): at most
    ``MAX_WAIT``, never negative."""
    if deadline is None:
        return MAX_WAIT
    return max(0.0, min(MAX_WAIT, deadline - now))


def _change(body: Any) -> LeaderChange:
    return LeaderChange(body["name"], body.get("leader"), body.get("value"), body.get("term"))


# -- sessions ------------------------------------------------------------------


def session_grant(client_id: str, ttl: float, lock_delay: float | None) -> Call:
    body: dict[str, Any] = {"client_id": client_id, "ttl": ttl}
    if lock_delay is not None:
        body["lock_delay"] = lock_delay
    return Call("POST", "/session/grant", body)


def session_keepalive(session_id: str) -> Call:
    return Call("POST", "/session/keepalive", {"session_id": session_id})


def session_revoke(session_id: str) -> Call:
    # A retry after a lost answer finds the session gone already.
    return Call(
        "POST",
        "/session/revoke",
        {"session_id": session_id},
        retry_success="session_not_found",
        retry_result={"revoked": True},
    )


def session_info(session_id: str) -> Call:
    return Call("GET", "/session/" + key_path(session_id))


# -- semaphores ----------------------------------------------------------------


def semaphore_acquire(
    name: str,
    client_id: str,
    limit: int,
    permits: int,
    ttl: float,
    timeout: float,
    session_id: str | None,
    secret: str | None = None,
) -> Call:
    body: dict[str, Any] = {
        "name": name,
        "client_id": client_id,
        "limit": limit,
        "permits": permits,
        "ttl": ttl,
        "timeout": timeout,
    }
    if session_id is not None:
        body["session_id"] = session_id
    return Call("POST", "/semaphore/acquire", _with_secret(body, secret), wait=timeout)


def semaphore_release(name: str, client_id: str, secret: str | None = None) -> Call:
    return Call(
        "POST",
        "/semaphore/release",
        _with_secret({"name": name, "client_id": client_id}, secret),
        retry_success="not_holder",
        retry_result={"released": True},
    )


def semaphore_renew(name: str, client_id: str, ttl: float | None, secret: str | None = None) -> Call:
    body: dict[str, Any] = {"name": name, "client_id": client_id}
    if ttl is not None:
        body["ttl"] = ttl
    return Call("POST", "/semaphore/renew", _with_secret(body, secret))


def semaphore_status(name: str) -> Call:
    return Call("GET", "/semaphore/status/" + key_path(name))


# -- elections -----------------------------------------------------------------


def campaign(
    name: str,
    candidate_id: str,
    value: Any,
    ttl: float,
    timeout: float,
    session_id: str | None,
    secret: str | None = None,
) -> Call:
    body: dict[str, Any] = {"name": name, "candidate_id": candidate_id, "value": value, "ttl": ttl, "timeout": timeout}
    if session_id is not None:
        body["session_id"] = session_id
    return Call("POST", "/election/campaign", _with_secret(body, secret), wait=timeout)


def election_renew(name: str, candidate_id: str, ttl: float | None, secret: str | None = None) -> Call:
    body: dict[str, Any] = {"name": name, "candidate_id": candidate_id}
    if ttl is not None:
        body["ttl"] = ttl
    return Call("POST", "/election/renew", _with_secret(body, secret))


def proclaim(name: str, candidate_id: str, term: int, value: Any, secret: str | None = None) -> Call:
    body = {"name": name, "candidate_id": candidate_id, "term": term, "value": value}
    return Call("POST", "/election/proclaim", _with_secret(body, secret))


def resign(name: str, candidate_id: str, secret: str | None = None) -> Call:
    return Call(
        "POST",
        "/election/resign",
        _with_secret({"name": name, "candidate_id": candidate_id}, secret),
        retry_success="not_leader",
        retry_result={"resigned": True},
    )


def election_leader(name: str) -> Call:
    return Call("GET", "/election/leader/" + key_path(name))


def observe(name: str, after_term: int, timeout: float) -> Call:
    """One long-poll; the answer's ``changed`` is kept next to the ``LeaderChange``."""
    return Call(
        "GET",
        "/election/observe/" + key_path(name),
        params={"after_term": after_term, "timeout": timeout},
        wait=timeout,
        parse=lambda body: (_change(body), bool(body.get("changed"))),
    )


def _with_secret(body: dict[str, Any], secret: str | None) -> dict[str, Any]:
    """The holder secret (made by the handle, never shown by a read) rides on every call about the hold."""
    if secret is not None:
        body["secret"] = secret
    return body
