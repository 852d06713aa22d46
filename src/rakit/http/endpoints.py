"""Each HTTP endpoint of the node, declared once.

An ``Endpoint`` holds an endpoint's facts: method, path (OpenAPI form,
``/lock/status/{resource}``), tag, summary, the request and answer msgspec
Structs, the path and query parameters, the error answers it may give (names
in ``rakit.http.openapi.ERRORS``, each an error class of ``rakit.errors``) and
what an API token needs to call it (``access``: a ``rakit.security.tokens.Need``
whose ``name`` is the path parameter carrying the checked name; ``OPEN``: no
token).  ``ENDPOINTS`` lists them all (the dashboard's, which exist only with
``rakit.http.routes.ui``, are declared in ``rakit.http.openapi``).

Derived from it: the OpenAPI operations (``rakit.http.openapi`` adds only the
descriptions) and their ``security``.  ``tests/unit/test_endpoints.py``
checks that the app serves every declared endpoint and nothing else, that
the token permission table (``rakit.security.tokens.need``, which sits
below the HTTP layer and so cannot import this) answers each path with its
declared ``access``, and that every error named here exists in the error tree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from rakit.http import schemas as S
from rakit.http.json import Key, Name
from rakit.http.routes import cache, kv, locks, members, queue
from rakit.security.tokens import AUTHENTICATED, OPEN, Need

JSON = "application/json"
MSGPACK = "application/msgpack"


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" | "query"
    type: Any  # an (annotated) type: its msgspec JSON schema is the parameter's schema
    description: str
    required: bool = True
    default: Any = None

    def render(self) -> dict[str, Any]:
        schema = msgspec.json.schema(self.type)
        if self.default is not None:
            schema["default"] = self.default
        return {
            "name": self.name,
            "in": self.where,
            "required": self.where == "path" or self.required,
            "description": self.description,
            "schema": schema,
        }


def key_param(name: str, what: str) -> Param:
    return Param(name, "path", Key, f"{what}: 1-128 characters of `[A-Za-z0-9_.:-]`.")


def name_param(name: str, what: str, where: str = "path") -> Param:
    return Param(name, where, Name, f"{what}: 1-128 characters of `[A-Za-z0-9_.-]`.")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # OpenAPI form: /lock/status/{resource}
    tag: str
    summary: str
    body: type | None = None  # request Struct (JSON)
    ok: type | None = None  # 200 answer Struct (JSON)
    params: tuple[Param, ...] = ()
    errors: tuple[str, ...] = ()  # names in rakit.http.openapi.ERRORS
    responses: Mapping[str, Any] = field(default_factory=dict)  # further literal responses
    request: Mapping[str, Any] | None = None  # a literal requestBody (non-JSON bodies)
    access: Need | None = AUTHENTICATED  # what a token needs (name: the path parameter); OPEN: nothing
    leader: bool = False  # served by the Raft leader: any node forwards it there (rakit.http.forward.on_leader)

    @property
    def answers(self) -> tuple[str, ...]:
        """Every error answer (names in ``rakit.http.openapi.ERRORS``), with the leader's when forwarded."""
        return (*self.errors, *LEADER) if self.leader else self.errors

    @property
    def needs_token(self) -> bool:
        """Does a client call need an API token (when tokens are on)?  Internal paths use the cluster secret."""
        return self.tag != "internal" and self.access is not OPEN


BODY = ("InvalidRequest", "TooLarge")  # every JSON body: decoding and size
LEADER = ("LeaderUnavailable",)

RESOURCE = key_param("resource", "The lock's resource name")
NODE_ID = name_param("id", "A member's node id")
TOPIC = name_param("topic", "The topic")
CONSUMER = name_param("consumer_id", "The consumer")
CACHE_KEY = key_param("key", "The cache key")
KV_KEY = key_param("key", "The key")

# The query parameters that handlers parse by hand, with the bounds they check.
DeadLimit = Annotated[int, msgspec.Meta(ge=1, le=queue.MAX_DEAD_LIMIT)]

NO_MESSAGE = {"204": {"description": "Nothing ready on the topic (within `wait` seconds)."}}


def _msgpack_request(what: str, limit: int) -> dict[str, Any]:
    return {
        "required": True,
        "description": f"{what} Internal binary format (msgpack); at most {limit} bytes.",
        "content": {MSGPACK: {}},
    }


def _msgpack_answer(what: str) -> dict[str, Any]:
    return {"200": {"description": what, "content": {MSGPACK: {}}}}


def raft_rpc(path: str, what: str) -> Endpoint:
    return Endpoint(
        "POST",
        path,
        "internal",
        f"Raft RPC: {what}",
        request=_msgpack_request("A `rakit.raft.messages.Batch`.", 256 * 1024 * 1024),
        responses=_msgpack_answer("A `rakit.raft.messages.Batch` for the sender."),
        errors=BODY,
    )


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/health", "cluster", "Liveness", ok=S.Health, access=OPEN),
    Endpoint("GET", "/status", "cluster", "Raft status of this node", ok=S.NodeStatus, access=Need("status")),
    Endpoint(
        "GET",
        "/metrics",
        "cluster",
        "Prometheus metrics",
        responses={"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        access=Need("admin"),
    ),
    Endpoint(
        "GET",
        "/debug/digest",
        "cluster",
        "Diagnostic: digest of the replicated state",
        ok=S.Digest,
        access=Need("admin"),
    ),
    Endpoint(
        "GET", "/cluster/consistency", "cluster", "Do the replicas' logs agree?", ok=S.Consistency, access=Need("admin")
    ),
    Endpoint(
        "POST",
        "/lock/acquire",
        "locks",
        "Acquire a lock",
        body=locks.AcquireBody,
        ok=S.LockGrant,
        errors=(
            *BODY,
            "LockRefused",
            "TooManyWaiters",
        ),
        leader=True,
        access=Need("locks", "write"),
    ),
    Endpoint(
        "POST",
        "/lock/release",
        "locks",
        "Release a lock",
        body=locks.ReleaseBody,
        ok=S.LockReleased,
        errors=(
            *BODY,
            "ReleaseRefused",
        ),
        leader=True,
        access=Need("locks", "write"),
    ),
    Endpoint(
        "POST",
        "/lock/renew",
        "locks",
        "Renew a lock's lease",
        body=locks.RenewBody,
        ok=S.LockRenewed,
        errors=(
            *BODY,
            "NotHolder",
        ),
        leader=True,
        access=Need("locks", "write"),
    ),
    Endpoint(
        "GET",
        "/lock/status/{resource}",
        "locks",
        "Lock status",
        params=(RESOURCE,),
        ok=S.LockStatus,
        errors=(
            "InvalidRequest",
            "NoRoute",
        ),
        leader=True,
        access=Need("locks", "read", "resource"),
    ),
    Endpoint(
        "GET",
        "/lock/watch/{resource}",
        "locks",
        "Wait for a hold to end",
        params=(
            RESOURCE,
            name_param("client_id", "The holder to watch", "query"),
            Param("timeout", "query", locks.Timeout, "Seconds to wait.", required=False, default=30.0),
        ),
        ok=S.LockWatch,
        errors=(
            "InvalidRequest",
            "NoRoute",
        ),
        leader=True,
        access=Need("locks", "read", "resource"),
    ),
    Endpoint("GET", "/cluster/members", "cluster", "List the members", ok=S.Members, access=Need("admin")),
    Endpoint(
        "POST",
        "/cluster/members",
        "cluster",
        "Add a member (as a learner)",
        body=members.AddMemberBody,
        ok=S.MembershipChanged,
        errors=(
            *BODY,
            "ConfChangeRefused",
        ),
        leader=True,
        access=Need("admin"),
    ),
    Endpoint(
        "POST",
        "/cluster/members/{id}/promote",
        "cluster",
        "Promote a learner to voter",
        params=(NODE_ID,),
        body=members.PromoteBody,
        ok=S.MembershipChanged,
        errors=(
            *BODY,
            "ConfChangeRefused",
        ),
        leader=True,
        access=Need("admin"),
    ),
    Endpoint(
        "DELETE",
        "/cluster/members/{id}",
        "cluster",
        "Remove a member",
        params=(NODE_ID,),
        ok=S.MembershipChanged,
        errors=(
            "InvalidRequest",
            "ConfChangeRefused",
        ),
        leader=True,
        access=Need("admin"),
    ),
    Endpoint(
        "POST",
        "/cluster/transfer-leader",
        "cluster",
        "Transfer Raft leadership",
        body=members.TransferBody,
        ok=S.LeaderTransferred,
        errors=(
            *BODY,
            "NotAVoter",
        ),
        leader=True,
        access=Need("admin"),
    ),
    Endpoint(
        "POST",
        "/kv/put",
        "kv",
        "Put a value (demo map)",
        body=kv.PutBody,
        ok=S.KvPut,
        errors=BODY,
        leader=True,
        access=Need("kv", "write"),
    ),
    Endpoint(
        "POST",
        "/kv/delete",
        "kv",
        "Delete a key (demo map)",
        body=kv.KeyBody,
        ok=S.KvDeleted,
        errors=BODY,
        leader=True,
        access=Need("kv", "write"),
    ),
    Endpoint(
        "POST",
        "/kv/incr",
        "kv",
        "Increment an integer (demo map)",
        body=kv.IncrBody,
        ok=S.KvValue,
        errors=BODY,
        leader=True,
        access=Need("kv", "write"),
    ),
    Endpoint(
        "GET",
        "/kv/get/{key}",
        "kv",
        "Get a value (demo map)",
        params=(KV_KEY,),
        ok=S.KvValue,
        errors=(
            "InvalidRequest",
            "NotFound",
        ),
        leader=True,
        access=Need("kv", "read", "key"),
    ),
    Endpoint(
        "POST",
        "/cache/set",
        "cache",
        "Set a cache entry",
        body=cache.SetBody,
        ok=S.CacheSet,
        errors=(*BODY, "Unavailable"),
        access=Need("cache", "write"),
    ),
    Endpoint(
        "GET",
        "/cache/get/{key}",
        "cache",
        "Get a cache entry",
        params=(CACHE_KEY,),
        ok=cache.GetAnswer,
        errors=("InvalidRequest", "NotFound", "Unavailable"),
        access=Need("cache", "read", "key"),
    ),
    Endpoint(
        "POST",
        "/cache/delete",
        "cache",
        "Delete a cache entry",
        body=cache.KeyBody,
        ok=S.CacheDeleted,
        errors=(*BODY, "Unavailable"),
        access=Need("cache", "write"),
    ),
    Endpoint("GET", "/cache/stats", "cache", "Cache statistics", ok=S.CacheStats, access=Need("cache", "read")),
    Endpoint(
        "POST",
        "/cache/invalidate",
        "internal",
        "Apply one invalidation (tools)",
        body=cache.InvalidateBody,
        ok=S.CacheInvalidated,
        errors=BODY,
        access=Need("cache", "write"),
    ),
    Endpoint(
        "POST",
        "/cache/internal/batch",
        "internal",
        "Cache peer batch (msgpack)",
        request=_msgpack_request("A `rakit.cache.rules.messages.Batch`.", cache.MAX_BATCH_BODY),
        responses=_msgpack_answer("A `rakit.cache.rules.messages.BatchReply`."),
        errors=BODY,
        access=Need("cache", "write"),
    ),
    Endpoint(
        "POST",
        "/queue/push",
        "queue",
        "Push a message",
        body=queue.PushBody,
        ok=S.QueuePushed,
        errors=(*BODY, "Unavailable"),
        access=Need("queue", "write"),
    ),
    Endpoint(
        "GET",
        "/queue/pop/{topic}/{consumer_id}",
        "queue",
        "Pop a message",
        params=(
            TOPIC,
            CONSUMER,
            Param(
                "visibility_timeout",
                "query",
                queue.VisibilityTimeout,
                "Seconds the message stays in flight before it is delivered again.",
                required=False,
                default=queue.DEFAULT_VISIBILITY,
            ),
            Param(
                "wait",
                "query",
                queue.Wait,
                "Seconds to wait for a message when none is ready.",
                required=False,
                default=0.0,
            ),
        ),
        ok=S.Delivery,
        responses=NO_MESSAGE,
        errors=("InvalidRequest", "NoRoute", "TooManyInFlight", "Unavailable"),
        access=Need("queue", "read", "topic"),
    ),
    Endpoint(
        "POST",
        "/queue/ack",
        "queue",
        "Acknowledge a message",
        body=queue.MessageBody,
        ok=S.Acked,
        errors=(*BODY, "NotInFlight", "Unavailable"),
        access=Need("queue", "write"),
    ),
    Endpoint(
        "POST",
        "/queue/nack",
        "queue",
        "Give a message back",
        body=queue.MessageBody,
        ok=S.Nacked,
        errors=(*BODY, "NotInFlight", "Unavailable"),
        access=Need("queue", "write"),
    ),
    Endpoint(
        "POST",
        "/queue/extend",
        "queue",
        "Extend a message's visibility timeout",
        body=queue.ExtendBody,
        ok=S.Extended,
        errors=(*BODY, "NotInFlight", "Unavailable"),
        access=Need("queue", "write"),
    ),
    Endpoint(
        "GET",
        "/queue/stats/{topic}",
        "queue",
        "Topic statistics",
        params=(TOPIC,),
        ok=S.QueueStats,
        errors=("InvalidRequest", "NoRoute", "Unavailable"),
        access=Need("queue", "read", "topic"),
    ),
    Endpoint(
        "GET",
        "/queue/dead/{topic}",
        "queue",
        "List dead letters",
        params=(TOPIC, Param("limit", "query", DeadLimit, "At most this many.", required=False, default=100)),
        ok=S.DeadLetters,
        errors=("InvalidRequest", "NoRoute", "Unavailable"),
        access=Need("queue", "read", "topic"),
    ),
    Endpoint(
        "POST",
        "/queue/redrive",
        "queue",
        "Redrive dead letters",
        body=queue.RedriveBody,
        ok=S.Redriven,
        errors=(*BODY, "Unavailable"),
        access=Need("queue", "write"),
    ),
    Endpoint(
        "POST",
        "/queue/internal/push",
        "internal",
        "Relayed push (served here)",
        body=queue.InternalPushBody,
        ok=S.QueuePushed,
        errors=(*BODY, "Unavailable"),
        access=Need("queue", "write"),
    ),
    Endpoint(
        "POST",
        "/queue/internal/pop",
        "internal",
        "Relayed pop (served here)",
        body=queue.PopBody,
        ok=S.Delivery,
        responses=NO_MESSAGE,
        errors=(*BODY, "TooManyInFlight", "Unavailable"),
        access=Need("queue", "write"),
    ),
    Endpoint(
        "POST",
        "/queue/internal/ack",
        "internal",
        "Relayed ack (served here)",
        body=queue.MessageBody,
        ok=S.Acked,
        errors=(*BODY, "NotInFlight", "Unavailable"),
        access=Need("queue", "write"),
    ),
    Endpoint(
        "POST",
        "/queue/internal/nack",
        "internal",
        "Relayed nack (served here)",
        body=queue.MessageBody,
        ok=S.Nacked,
        errors=(*BODY, "NotInFlight", "Unavailable"),
        access=Need("queue", "write"),
    ),
    Endpoint(
        "POST",
        "/queue/internal/extend",
        "internal",
        "Relayed extend (served here)",
        body=queue.ExtendBody,
        ok=S.Extended,
        errors=(*BODY, "NotInFlight", "Unavailable"),
        access=Need("queue", "write"),
    ),
    raft_rpc("/request_vote", "votes"),
    raft_rpc("/append_entries", "log replication"),
    raft_rpc("/install_snapshot", "snapshots"),
    Endpoint(
        "GET",
        "/openapi.json",
        "docs",
        "This document",
        responses={"200": {"description": "The document.", "content": {JSON: {"schema": {"type": "object"}}}}},
        access=OPEN,
    ),
    Endpoint(
        "GET",
        "/docs/openapi-3.0.json",
        "docs",
        "This document in OpenAPI 3.0",
        responses={"200": {"description": "The document.", "content": {JSON: {"schema": {"type": "object"}}}}},
        access=OPEN,
    ),
    Endpoint(
        "GET",
        "/docs",
        "docs",
        "API reference (HTML)",
        responses={"200": {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}}},
        access=OPEN,
    ),
)
