"""The KV's endpoints (docs/api.md v2 "KV"), declared once: see ``rakit.http.endpoints``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from rakit.http import kv_bodies as KB
from rakit.http import kv_schemas as KS
from rakit.http.declare import BODY, Endpoint, Param, key_param, name_param
from rakit.http.json import KEY_PATTERN
from rakit.http.routes import kv, kv_watch
from rakit.security.tokens import Need

KV_KEY = key_param("key", "The key")
# Optional names in a query: checked by the handler (not ``Key``, which the prologue would demand).
QueryKey = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=KEY_PATTERN, description="A key, if given.")
]
Consistency = Literal["linearizable", "serializable"]
RangeLimit = Annotated[int, msgspec.Meta(ge=1, le=KB.MAX_RANGE_LIMIT)]
WatchWait = Annotated[float, msgspec.Meta(ge=0, le=KB.MAX_WATCH_WAIT)]

CONSISTENCY = Param(
    "consistency",
    "query",
    Consistency,
    "`serializable`: answer from this node's own state (possibly stale) without a leader round trip.",
    required=False,
    default="linearizable",
)
READ_ERRORS = ("InvalidRequest", "LeaderUnavailable")

KV: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/kv/put",
        "kv",
        "Put a value",
        body=KB.KvPutBody,
        ok=KS.KvPut,
        errors=(*BODY, "RevisionMismatch", "SessionNotFound"),
        leader=True,
        access=Need("kv", "write", "key"),
        handler=kv.put,
    ),
    Endpoint(
        "POST",
        "/kv/delete",
        "kv",
        "Delete a key or a prefix",
        body=KB.KvDeleteBody,
        ok=KS.KvDeleted,
        errors=(*BODY, "RevisionMismatch"),
        leader=True,
        access=Need("kv", "write"),
        handler=kv.delete,
    ),
    Endpoint(
        "POST",
        "/kv/incr",
        "kv",
        "Increment an integer",
        body=KB.IncrBody,
        ok=KS.KvIncremented,
        errors=BODY,
        leader=True,
        access=Need("kv", "write", "key"),
        handler=kv.incr,
    ),
    Endpoint(
        "POST",
        "/kv/txn",
        "kv",
        "A transaction: compares, then ops",
        body=KB.TxnBody,
        ok=KS.KvTxn,
        errors=BODY,
        leader=True,
        access=Need("kv", "write"),
        handler=kv.txn,
    ),
    Endpoint(
        "GET",
        "/kv/get/{key}",
        "kv",
        "Get a value",
        params=(KV_KEY, CONSISTENCY),
        ok=KS.KvValue,
        errors=(*READ_ERRORS, "NotFound"),
        access=Need("kv", "read", "key"),
        handler=kv.get,
    ),
    Endpoint(
        "GET",
        "/kv/range",
        "kv",
        "List keys by prefix",
        params=(
            Param("prefix", "query", KB.Prefix, "Keys starting with this (default: every key).", required=False),
            Param("after", "query", QueryKey, "Only keys after this one (the last key of the page before).", False),
            Param("limit", "query", RangeLimit, "At most this many.", required=False, default=1000),
            CONSISTENCY,
        ),
        ok=KS.KvRange,
        errors=READ_ERRORS,
        access=Need("kv", "read"),
        handler=kv.range_,
    ),
    Endpoint(
        "GET",
        "/kv/watch",
        "kv",
        "Watch a key or a prefix",
        params=(
            Param("key", "query", QueryKey, "The key to watch (or `prefix`).", required=False),
            Param("prefix", "query", KB.Prefix, "Watch every key starting with this (or `key`).", required=False),
            Param(
                "from_revision",
                "query",
                KB.Revision,
                "Changes at or after this revision (default: the next).",
                required=False,
            ),
            Param("format", "query", Literal["sse", "json"], "`json`: a long poll.", required=False, default="sse"),
            Param("wait", "query", WatchWait, "Long poll: seconds to wait for an event.", required=False, default=0),
        ),
        ok=KS.KvWatchBatch,
        responses={
            "200": {
                "description": "`text/event-stream` (default) or, with `format=json`, a batch of events.",
                "content": {
                    "text/event-stream": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"$ref": "#/components/schemas/KvWatchBatch"}},
                },
            }
        },
        errors=("InvalidRequest",),
        access=Need("kv", "read"),
        handler=kv_watch.watch,
        wait="wait",
    ),
    Endpoint(
        "GET",
        "/kv/internal/read_index",
        "internal",
        "The leader's read index",
        params=(name_param("node", "The follower asking (it is sent the commit index at once)", "query"),),
        ok=KS.ReadIndex,
        errors=("InvalidRequest", "LeaderUnavailable"),
        access=Need("kv", "read"),
        handler=kv.read_index,
    ),
)
