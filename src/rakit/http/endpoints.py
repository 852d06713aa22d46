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

from typing import Annotated, Any

import msgspec
from starlette.routing import BaseRoute

from rakit.http import bodies as B
from rakit.http import schemas as S
from rakit.http.coordination_endpoints import COORDINATION
from rakit.http.declare import BODY, JSON, MSGPACK, Endpoint, Param, key_param, name_param
from rakit.http.kv_endpoints import KV
from rakit.http.openapi30 import DOCS_STATIC
from rakit.http.prologue import endpoint_route, plain
from rakit.http.routes import cache, cluster, docs, locks, members, queue, raft_rpc
from rakit.security.permissions import Permissions
from rakit.security.tokens import OPEN, Need

__all__ = ["ALL_ENDPOINTS", "ENDPOINTS", "JSON", "PERMISSIONS", "Endpoint", "Param", "dashboard", "routes"]


RESOURCE = key_param("resource", "The lock's resource name")
NODE_ID = name_param("id", "A member's node id")
TOPIC = name_param("topic", "The topic")
CONSUMER = name_param("consumer_id", "The consumer")
CACHE_KEY = key_param("key", "The cache key")

# The query parameters that handlers parse by hand, with the bounds they check.
DeadLimit = Annotated[int, msgspec.Meta(ge=1, le=B.MAX_DEAD_LIMIT)]

NO_MESSAGE = {"204": {"description": "Nothing ready on the topic (within `wait` seconds)."}}


def _msgpack_request(what: str, limit: int) -> dict[str, Any]:
    return {
        "required": True,
        "description": f"{what} Internal binary format (msgpack); at most {limit} bytes.",
        "content": {MSGPACK: {}},
    }


def _msgpack_answer(what: str) -> dict[str, Any]:
    return {"200": {"description": what, "content": {MSGPACK: {}}}}


def raft_rpc_endpoint(path: str, what: str) -> Endpoint:
    return Endpoint(
        "POST",
        path,
        "internal",
        f"Raft RPC: {what}",
        request=_msgpack_request("A `rakit.raft.messages.Batch`.", 256 * 1024 * 1024),
        responses=_msgpack_answer("A `rakit.raft.messages.Batch` for the sender."),
        errors=BODY,
        handler=plain(raft_rpc.raft_messages),
    )


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/health", "cluster", "Liveness", ok=S.Health, access=OPEN, handler=plain(cluster.health)),
    Endpoint(
        "GET",
        "/status",
        "cluster",
        "Raft status of this node",
        ok=S.NodeStatus,
        access=Need("status"),
        handler=plain(cluster.status),
    ),
    Endpoint(
        "GET",
        "/metrics",
        "cluster",
        "Prometheus metrics",
        responses={"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        access=Need("admin"),
        handler=plain(cluster.metrics),
    ),
    Endpoint(
        "GET",
        "/debug/digest",
        "cluster",
        "Diagnostic: digest of the replicated state",
        ok=S.Digest,
        access=Need("admin"),
        handler=plain(cluster.digest),
    ),
    Endpoint(
        "GET",
        "/cluster/consistency",
        "cluster",
        "Do the replicas' logs agree?",
        ok=S.Consistency,
        access=Need("admin"),
        handler=plain(cluster.cluster_consistency),
    ),
    Endpoint(
        "POST",
        "/lock/acquire",
        "locks",
        "Acquire a lock",
        body=B.AcquireBody,
        ok=S.LockGrant,
        errors=(
            *BODY,
            "LockRefused",
            "SessionNotFound",
            "TooManyWaiters",
        ),
        leader=True,
        access=Need("locks", "write", "resource"),
        handler=locks.acquire,
        wait="timeout",
        idempotent=True,
    ),
    Endpoint(
        "POST",
        "/lock/release",
        "locks",
        "Release a lock",
        body=B.ReleaseBody,
        ok=S.LockReleased,
        errors=(
            *BODY,
            "ReleaseRefused",
        ),
        leader=True,
        access=Need("locks", "write", "resource"),
        handler=locks.release,
    ),
    Endpoint(
        "POST",
        "/lock/renew",
        "locks",
        "Renew a lock's lease",
        body=B.RenewBody,
        ok=S.LockRenewed,
        errors=(
            *BODY,
            "NotHolder",
        ),
        leader=True,
        access=Need("locks", "write", "resource"),
        handler=locks.renew,
        idempotent=True,
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
        handler=locks.status,
        idempotent=True,
    ),
    Endpoint(
        "GET",
        "/lock/watch/{resource}",
        "locks",
        "Wait for a hold to end",
        params=(
            RESOURCE,
            name_param("client_id", "The holder to watch", "query"),
            Param("timeout", "query", B.Timeout, "Seconds to wait.", required=False, default=30.0),
        ),
        ok=S.LockWatch,
        errors=(
            "InvalidRequest",
            "NoRoute",
        ),
        leader=True,
        access=Need("locks", "read", "resource"),
        handler=locks.watch,
        wait="timeout",
        idempotent=True,
    ),
    Endpoint(
        "GET",
        "/cluster/members",
        "cluster",
        "List the members",
        ok=S.Members,
        access=Need("admin"),
        handler=members.list_members,
    ),
    Endpoint(
        "POST",
        "/cluster/members",
        "cluster",
        "Add a member (as a learner)",
        body=B.AddMemberBody,
        ok=S.MembershipChanged,
        errors=(
            *BODY,
            "ConfChangeRefused",
        ),
        leader=True,
        access=Need("admin"),
        handler=members.add_member,
        admit=members.only_itself,
        wait=members.CHANGE_TIMEOUT,
    ),
    Endpoint(
        "POST",
        "/cluster/members/{id}/promote",
        "cluster",
        "Promote a learner to voter",
        params=(NODE_ID,),
        body=B.PromoteBody,
        ok=S.MembershipChanged,
        errors=(
            *BODY,
            "ConfChangeRefused",
        ),
        leader=True,
        access=Need("admin"),
        handler=members.promote_member,
        wait=members.CHANGE_TIMEOUT,
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
        handler=members.remove_member,
        wait=members.CHANGE_TIMEOUT,
    ),
    Endpoint(
        "POST",
        "/cluster/transfer-leader",
        "cluster",
        "Transfer Raft leadership",
        body=B.TransferBody,
        ok=S.LeaderTransferred,
        errors=(
            *BODY,
            "NotAVoter",
        ),
        leader=True,
        access=Need("admin"),
        handler=members.transfer_leader,
        wait=members.TRANSFER_TIMEOUT,
    ),
    Endpoint(
        "POST",
        "/cache/set",
        "cache",
        "Set a cache entry",
        body=B.SetBody,
        ok=S.CacheSet,
        errors=(*BODY, "Unavailable"),
        access=Need("cache", "write", "key"),
        handler=cache.cache_set,
        admit=cache.checked_value,
    ),
    Endpoint(
        "GET",
        "/cache/get/{key}",
        "cache",
        "Get a cache entry",
        params=(CACHE_KEY,),
        ok=B.GetAnswer,
        errors=("InvalidRequest", "NotFound", "Unavailable"),
        access=Need("cache", "read", "key"),
        handler=cache.cache_get,
    ),
    Endpoint(
        "POST",
        "/cache/delete",
        "cache",
        "Delete a cache entry",
        body=B.CacheKeyBody,
        ok=S.CacheDeleted,
        errors=(*BODY, "Unavailable"),
        access=Need("cache", "write", "key"),
        handler=cache.cache_delete,
    ),
    Endpoint(
        "GET",
        "/cache/stats",
        "cache",
        "Cache statistics",
        ok=S.CacheStats,
        access=Need("cache", "read"),
        handler=cache.cache_stats,
    ),
    Endpoint(
        "POST",
        "/cache/invalidate",
        "internal",
        "Apply one invalidation (tools)",
        body=B.InvalidateBody,
        ok=S.CacheInvalidated,
        errors=BODY,
        access=Need("cache", "write"),
        handler=cache.cache_invalidate,
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
        handler=plain(cache.cache_batch),
    ),
    Endpoint(
        "POST",
        "/queue/push",
        "queue",
        "Push a message",
        body=B.PushBody,
        ok=S.QueuePushed,
        errors=(*BODY, "Unavailable"),
        access=Need("queue", "write", "topic"),
        handler=queue.push,
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
                B.VisibilityTimeout,
                "Seconds the message stays in flight before it is delivered again.",
                required=False,
                default=B.DEFAULT_VISIBILITY,
            ),
            Param(
                "wait",
                "query",
                B.Wait,
                "Seconds to wait for a message when none is ready.",
                required=False,
                default=0.0,
            ),
        ),
        ok=S.Delivery,
        responses=NO_MESSAGE,
        errors=("InvalidRequest", "NoRoute", "TooManyInFlight", "Unavailable"),
        access=Need("queue", "read", "topic"),
        handler=queue.pop,
    ),
    Endpoint(
        "POST",
        "/queue/ack",
        "queue",
        "Acknowledge a message",
        body=B.MessageBody,
        ok=S.Acked,
        errors=(*BODY, "NotInFlight", "Unavailable"),
        access=Need("queue", "write", "topic"),
        handler=queue.ack,
    ),
    Endpoint(
        "POST",
        "/queue/nack",
        "queue",
        "Give a message back",
        body=B.MessageBody,
        ok=S.Nacked,
        errors=(*BODY, "NotInFlight", "Unavailable"),
        access=Need("queue", "write", "topic"),
        handler=queue.nack,
    ),
    Endpoint(
        "POST",
        "/queue/extend",
        "queue",
        "Extend a message's visibility timeout",
        body=B.ExtendBody,
        ok=S.Extended,
        errors=(*BODY, "NotInFlight", "Unavailable"),
        access=Need("queue", "write", "topic"),
        handler=queue.extend,
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
        handler=queue.stats,
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
        handler=queue.dead,
    ),
    Endpoint(
        "POST",
        "/queue/redrive",
        "queue",
        "Redrive dead letters",
        body=B.RedriveBody,
        ok=S.Redriven,
        errors=(*BODY, "Unavailable"),
        access=Need("queue", "write", "topic"),
        handler=queue.redrive,
    ),
    Endpoint(
        "POST",
        "/queue/internal/push",
        "internal",
        "Relayed push (served here)",
        body=B.InternalPushBody,
        ok=S.QueuePushed,
        errors=(*BODY, "Unavailable"),
        access=Need("queue", "write"),
        handler=queue.internal_push,
    ),
    Endpoint(
        "POST",
        "/queue/internal/pop",
        "internal",
        "Relayed pop (served here)",
        body=B.PopBody,
        ok=S.Delivery,
        responses=NO_MESSAGE,
        errors=(*BODY, "TooManyInFlight", "Unavailable"),
        access=Need("queue", "write"),
        handler=queue.internal_pop,
    ),
    Endpoint(
        "POST",
        "/queue/internal/ack",
        "internal",
        "Relayed ack (served here)",
        body=B.MessageBody,
        ok=S.Acked,
        errors=(*BODY, "NotInFlight", "Unavailable"),
        access=Need("queue", "write"),
        handler=queue.internal_ack,
    ),
    Endpoint(
        "POST",
        "/queue/internal/nack",
        "internal",
        "Relayed nack (served here)",
        body=B.MessageBody,
        ok=S.Nacked,
        errors=(*BODY, "NotInFlight", "Unavailable"),
        access=Need("queue", "write"),
        handler=queue.internal_nack,
    ),
    Endpoint(
        "POST",
        "/queue/internal/extend",
        "internal",
        "Relayed extend (served here)",
        body=B.ExtendBody,
        ok=S.Extended,
        errors=(*BODY, "NotInFlight", "Unavailable"),
        access=Need("queue", "write"),
        handler=queue.internal_extend,
    ),
    raft_rpc_endpoint("/request_vote", "votes"),
    raft_rpc_endpoint("/append_entries", "log replication"),
    raft_rpc_endpoint("/install_snapshot", "snapshots"),
    Endpoint(
        "GET",
        "/openapi.json",
        "docs",
        "This document",
        responses={"200": {"description": "The document.", "content": {JSON: {"schema": {"type": "object"}}}}},
        access=OPEN,
        handler=plain(docs.openapi_json),
    ),
    Endpoint(
        "GET",
        "/docs/openapi-3.0.json",
        "docs",
        "This document in OpenAPI 3.0",
        responses={"200": {"description": "The document.", "content": {JSON: {"schema": {"type": "object"}}}}},
        access=OPEN,
        handler=plain(docs.openapi_30_json),
    ),
    Endpoint(
        "GET",
        "/docs",
        "docs",
        "API reference (HTML)",
        responses={"200": {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}}},
        access=OPEN,
        handler=plain(docs.docs),
    ),
)


ENDPOINTS = (*ENDPOINTS, *KV, *COORDINATION)


def dashboard() -> tuple[Endpoint, ...]:
    """The dashboard's page, files and read-only views (``rakit.http.routes.ui``), when it is installed.

    Their descriptions, query parameters and answers are in ``rakit.http.openapi`` (built from ``ui.SCHEMAS``).
    """
    try:
        from rakit.http.routes import ui
    except ModuleNotFoundError:
        return ()
    page = plain(ui.ui_page)
    admin = Need("admin")
    return (
        Endpoint("GET", "/ui", "ui", "Live dashboard (HTML)", access=OPEN, handler=page),
        Endpoint("GET", "/ui/", "ui", "Live dashboard (HTML)", access=OPEN, handler=page),
        Endpoint("GET", "/ui/{name}", "ui", "A file of the dashboard", access=OPEN, handler=plain(ui.ui_asset)),
        Endpoint(
            "GET",
            "/cluster/overview",
            "ui",
            "Cluster overview (dashboard)",
            access=admin,
            handler=plain(ui.cluster_overview),
        ),
        Endpoint("GET", "/lock/table", "ui", "The lock table (dashboard)", access=admin, handler=plain(ui.lock_table)),
        Endpoint(
            "GET",
            "/coordination/table",
            "ui",
            "Sessions, semaphores and elections (dashboard)",
            access=admin,
            handler=plain(ui.coordination_table),
        ),
        Endpoint(
            "GET", "/queue/topics", "ui", "Queue topics (dashboard)", access=admin, handler=plain(ui.queue_topics)
        ),
    )


ALL_ENDPOINTS: tuple[Endpoint, ...] = (*ENDPOINTS, *dashboard())

# What each path asks of an API token (rakit.security.tokens.ClientAuth reads it); the Swagger UI's
# files, served beside the endpoints, are open like the page that loads them.
PERMISSIONS = Permissions(
    [
        *((ep.path, ep.access, ep.whole_params) for ep in ALL_ENDPOINTS),
        (DOCS_STATIC + "/{file}", OPEN, frozenset({"file"})),
    ]
)


def routes() -> list[BaseRoute]:
    """The node's routes: every declared endpoint behind its prologue, and the peers' streams and static files."""
    return [
        *raft_rpc.undeclared,
        *cache.undeclared,
        *(endpoint_route(ep) for ep in ALL_ENDPOINTS),
        *docs.undeclared(),
    ]
