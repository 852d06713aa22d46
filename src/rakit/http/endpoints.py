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

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
from starlette.routing import BaseRoute

from rakit.http import bodies as B
from rakit.http import coordination_schemas as C
from rakit.http import schemas as S
from rakit.http.json import Key, Name
from rakit.http.openapi30 import DOCS_STATIC
from rakit.http.prologue import Call, Handler, endpoint_route, plain
from rakit.http.routes import cache, cluster, docs, kv, locks, members, queue, raft_rpc
from rakit.http.routes import coordination as coord
from rakit.security.permissions import Permissions
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
    handler: Handler | None = None  # what serves it, after the prologue (rakit.http.prologue)
    idempotent: bool = False  # repeating it is harmless: a forward that broke after sending is retried
    wait: str | float | None = None  # the body field or query parameter (seconds) it may wait, or fixed seconds
    admit: Callable[[Call[Any]], None] | None = None  # checked where it came in, before any forwarding

    @property
    def body_fields(self) -> frozenset[str]:
        return frozenset(f.name for f in msgspec.structs.fields(self.body)) if self.body is not None else frozenset()

    @property
    def whole_params(self) -> frozenset[str]:
        """The path parameters that are keys: they may hold ``:`` and take the rest of the path."""
        return frozenset(p.name for p in self.params if p.where == "path" and p.type is Key)

    @property
    def route_path(self) -> str:
        """The path in Starlette's form (``/lock/status/{resource:whole}``)."""
        return re.sub(r"{([^}]+)}", lambda m: f"{{{m[1]}:whole}}" if m[1] in self.whole_params else m[0], self.path)

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
        "/kv/put",
        "kv",
        "Put a value (demo map)",
        body=B.PutBody,
        ok=S.KvPut,
        errors=BODY,
        leader=True,
        access=Need("kv", "write", "key"),
        handler=kv.put,
    ),
    Endpoint(
        "POST",
        "/kv/delete",
        "kv",
        "Delete a key (demo map)",
        body=B.KvKeyBody,
        ok=S.KvDeleted,
        errors=BODY,
        leader=True,
        access=Need("kv", "write", "key"),
        handler=kv.delete,
    ),
    Endpoint(
        "POST",
        "/kv/incr",
        "kv",
        "Increment an integer (demo map)",
        body=B.IncrBody,
        ok=S.KvValue,
        errors=BODY,
        leader=True,
        access=Need("kv", "write", "key"),
        handler=kv.incr,
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
        handler=kv.get,
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

ENDPOINTS = (*ENDPOINTS, *COORDINATION)


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
