"""What the KV operations send (API v2 "KV") and the records they answer, shared by both clients.

Like ``rakit.client.calls``: each function builds one ``Call``.  Revisions:
every change of the map gets one cluster-wide ``revision`` (its Raft index);
a record's ``create_revision`` / ``mod_revision`` are the revisions of the
put that created it / last changed it, ``version`` counts its puts since
creation, and ``revision`` is the map's revision at the read.

Which writes are safe to repeat after a lost answer (``Call.idempotent``):
an unconditional put or delete (the same state again), a prefix delete;
not an ``incr``, a put or delete with ``if_revision``/``if_absent`` (a repeat
of an applied one meets its own write: ``revision_mismatch``), nor a txn with
a write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rakit.client.calls import Call, key_path
from rakit.client.errors import ServerError
from rakit.client.kv_txn import Compare, Op

__all__ = ["KvPage", "KvPut", "KvRecord", "TxnResult"]

#: The most keys one ``range`` request may ask for (the API's bound).
MAX_PAGE = 10000


@dataclass(frozen=True, slots=True)
class KvRecord:
    """One key as read: its value and revisions (``revision``: the map's revision at the read)."""

    key: str
    value: Any
    create_revision: int
    mod_revision: int
    version: int
    revision: int


@dataclass(frozen=True, slots=True)
class KvPut:
    """A put's answer: the revision it made and the key's ``mod_revision`` before (None: it was absent)."""

    key: str
    revision: int
    previous_revision: int | None


@dataclass(frozen=True, slots=True)
class KvPage:
    """One page of a ``range``: ``items`` in key order, ``more`` if keys are left, all read at ``revision``."""

    items: list[KvRecord]
    more: bool
    revision: int


@dataclass(frozen=True, slots=True)
class TxnResult:
    """A txn's answer: which branch ran, its revision, and one result per op of that branch
    (put: ``{"revision"}``, delete: ``{"revision", "deleted"}``, get: a ``KvRecord`` or None)."""

    succeeded: bool
    revision: int
    results: list[Any]


def record(body: dict[str, Any], revision: int | None = None) -> KvRecord:
    return KvRecord(
        body["key"],
        body.get("value"),
        body["create_revision"],
        body["mod_revision"],
        body["version"],
        body["revision"] if revision is None else revision,
    )


def cas_record(key: str, old: KvRecord | None, value: Any, put: KvPut) -> KvRecord:
    """The record a successful ``cas`` wrote (what a get right after it would read)."""
    created = old.create_revision if old is not None else put.revision
    return KvRecord(key, value, created, put.revision, (old.version if old is not None else 0) + 1, put.revision)


def next_after(page: KvPage, after: str | None) -> str | None:
    """The ``after`` of the page following ``page`` (None: it was the last); a page that does not
    move forward is the server's fault (it would loop forever)."""
    if not page.more or not page.items:
        return None
    last = page.items[-1].key
    if after is not None and last <= after:
        raise ServerError(f"range did not move past {after!r}")
    return last


def session_id(session: Any) -> str | None:
    """The id of ``session`` (a ``Session``/``AsyncSession``, or its id; ``ValueError`` before its grant)."""
    return session if session is None or isinstance(session, str) else session.require()


def _consistency(serializable: bool) -> dict[str, Any]:
    return {"consistency": "serializable"} if serializable else {}


def get(key: str, serializable: bool) -> Call:
    return Call(
        "GET",
        "/kv/get/" + key_path(key),
        params=_consistency(serializable) or None,
        parse=record,
        absent=(404, "not_found"),
    )


def put(
    key: str,
    value: Any,
    if_revision: int | None,
    if_absent: bool,
    ttl: float | None,
    session_id: str | None,
) -> Call:
    body: dict[str, Any] = {"key": key, "value": value}
    if if_revision is not None:
        body["if_revision"] = if_revision
    if if_absent:
        body["if_absent"] = True
    if ttl is not None:
        body["ttl"] = ttl
    if session_id is not None:
        body["session_id"] = session_id
    return Call(
        "POST",
        "/kv/put",
        body,
        parse=lambda b: KvPut(b["key"], b["revision"], b.get("previous_revision")),
        idempotent=if_revision is None and not if_absent,
    )


def delete(key: str, if_revision: int | None) -> Call:
    body: dict[str, Any] = {"key": key}
    if if_revision is not None:
        body["if_revision"] = if_revision
    return Call("POST", "/kv/delete", body, parse=lambda b: b["deleted"], idempotent=if_revision is None)


def delete_prefix(prefix: str) -> Call:
    return Call("POST", "/kv/delete", {"prefix": prefix}, parse=lambda b: b["deleted"])


def range_(prefix: str, limit: int, after: str | None, serializable: bool) -> Call:
    params: dict[str, Any] = {"prefix": prefix, "limit": limit, **_consistency(serializable)}
    if after is not None:
        params["after"] = after

    def parse(b: dict[str, Any]) -> KvPage:
        return KvPage([record(item, b["revision"]) for item in b["items"]], bool(b["more"]), b["revision"])

    return Call("GET", "/kv/range", params=params, parse=parse)


def incr(key: str, delta: int) -> Call:
    return Call("POST", "/kv/incr", {"key": key, "delta": delta}, parse=lambda b: b["value"], idempotent=False)


def txn(compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> Call:
    body = {
        "compare": [c.to_json() for c in compare],
        "success": [o.to_json() for o in success],
        "failure": [o.to_json() for o in failure],
    }
    reads_only = all(o.kind == "get" for o in (*success, *failure))

    def parse(b: dict[str, Any]) -> TxnResult:
        ops = success if b["succeeded"] else failure
        results = [
            (record(r) if r is not None else None) if i < len(ops) and ops[i].kind == "get" else r
            for i, r in enumerate(b["results"])
        ]
        return TxnResult(bool(b["succeeded"]), b["revision"], results)

    return Call("POST", "/kv/txn", body, parse=parse, idempotent=reads_only)
