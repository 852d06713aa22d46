"""The node's OpenAPI 3.1 document, built from the endpoint declarations and the msgspec Structs.

``OPERATIONS`` is one operation per declared endpoint (``rakit.http.endpoints.ENDPOINTS``:
path, method, summary, parameters, request and answer Structs, errors,
token access) with its description from ``DESCRIPTIONS``, plus the
dashboard's (``_ui_operations``).  The error answers (``ERRORS``) take their
status and ``Retry-After`` from the error tree (``rakit.errors``).  The
schemas come from ``msgspec.json.schema_components`` over the very Structs
that validate requests (``rakit.http.routes.*``) and describe answers
(``rakit.http.schemas``).  ``document()`` builds it once; ``GET
/openapi.json`` serves it (``rakit.http.routes.docs``).

``tests/unit/test_openapi.py`` fails when a route of the app has no entry
here, so a new endpoint cannot ship undocumented.

``GET /docs`` is Swagger UI from the ``swagger_ui_bundle`` package, served by
the node itself (``rakit.http.openapi30``).  The bundled Swagger UI (4.x)
reads OpenAPI 3.0 only, so the page loads ``/docs/openapi-3.0.json``
(``build_document_30``), a mechanical 3.0 translation of the same document;
with a Swagger UI of 5 or later it loads ``/openapi.json`` itself.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from rakit import errors as E
from rakit.http import bodies as B
from rakit.http import coordination_schemas as C
from rakit.http import kv_bodies as KB
from rakit.http import kv_schemas as KS
from rakit.http import schemas as S
from rakit.http.endpoints import ENDPOINTS, JSON, Endpoint, Param, dashboard
from rakit.http.json import MAX_BODY_BYTES, MAX_VALUE_BYTES
from rakit.http.openapi30 import DOCS_STATIC as DOCS_STATIC
from rakit.http.openapi30 import build_document_30 as build_document_30
from rakit.http.openapi30 import docs_html as docs_html
from rakit.http.openapi30 import schema_30 as schema_30
from rakit.http.openapi30 import swagger_ui_dir as swagger_ui_dir
from rakit.http.openapi30 import swagger_ui_major as swagger_ui_major

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{name}"

# -- parameters and operations ---------------------------------------------------------


@dataclass(frozen=True)
class Op:
    method: str
    path: str  # OpenAPI form: /lock/status/{resource}
    tag: str
    summary: str
    description: str
    body: type | None = None  # request Struct (JSON)
    ok: type | None = None  # 200 answer Struct (JSON)
    ok_description: str = "Done."
    params: tuple[Param, ...] = ()
    errors: tuple[str, ...] = ()  # names in ERRORS
    responses: Mapping[str, Any] = field(default_factory=dict)  # further literal responses
    request: Mapping[str, Any] | None = None  # a literal requestBody (non-JSON bodies)
    needs_token: bool | None = None  # None: as the dashboard's declaration says (rakit.http.endpoints.dashboard)

    @property
    def operation_id(self) -> str:
        words = re.sub(r"[{}]", "", self.path).strip("/").replace(".", "_").replace("-", "_").split("/")
        return "_".join([self.method.lower(), *words, *(["slash"] if self.path.endswith("/") else [])])


# name -> (the error class of rakit.errors: its status and Retry-After, the answer's Struct, description)
ERRORS: dict[str, tuple[type[E.RakitError], type, str]] = {
    "InvalidRequest": (E.InvalidRequest, S.InvalidRequestError, "`invalid_request`: malformed or out-of-range input."),
    "TooLarge": (
        E.TooLarge,
        S.TooLargeError,
        "`too_large`: a value over 1 MiB once encoded, or a body over its limit.",
    ),
    "NotFound": (E.NotFound, S.NotFoundError, "`not_found`."),
    "NoRoute": (
        E.NotFound,
        S.NotFoundError,
        "`not_found`: a path parameter that does not fit the route (a `/` or a "
        "line break in it) leaves no such endpoint.",
    ),
    "NotInFlight": (
        E.NotInFlight,
        S.NotInFlightError,
        "`not_in_flight`: the message is not in flight for that consumer.",
    ),
    "LeaderUnavailable": (
        E.NotLeader,
        S.LeaderUnavailableError,
        "`no_leader` / `not_leader` / `unavailable`: no leader served the request in time.",
    ),
    "Unavailable": (
        E.Unavailable,
        S.UnavailableError,
        "`unavailable`: a dependency did not answer; nothing was half-done.",
    ),
    "ConfChangeRefused": (
        E.ConfChangeRefused,
        S.ConfChangeRefusedError,
        "`member_exists` / `unknown_member` / `last_voter` / "
        "`conf_change_in_progress` / `learner_not_caught_up` / `already_voter`.",
    ),
    "NotAVoter": (E.NotAVoter, S.NotAVoterError, "`not_a_voter`: the target is not a voting member."),
    "RevisionMismatch": (
        E.RevisionMismatch,
        KS.KvMismatch,
        "`revision_mismatch`: the key's `mod_revision` was not `if_revision` (`current_revision`: what it is, "
        "null if absent); nothing changed.",
    ),
    "LockRefused": (E.Conflict, S.LockRefusedError, "`conflict` / `timeout` / `deadlock`: not granted."),
    "NotHolder": (E.Conflict, S.NotHolderError, "`not_holder`: the client does not hold the lock."),
    "ReleaseRefused": (E.Conflict, S.ReleaseRefusedError, "`not_holder` / `token_mismatch`."),
    "SessionNotFound": (E.SessionNotFound, C.SessionNotFoundError, "`session_not_found`: no such session."),
    "SemaphoreRefused": (
        E.Conflict,
        C.SemaphoreRefusedError,
        "`conflict` / `timeout` / `limit_mismatch` / `already_holder`: not granted.",
    ),
    "SemaphoreNotHolder": (E.Conflict, C.SemaphoreNotHolderError, "`not_holder`: the client holds no permit."),
    "ElectionRefused": (E.Conflict, C.ElectionRefusedError, "`conflict` / `timeout` / `already_holder`: not elected."),
    "NotElected": (E.NotElected, C.NotElectedError, "`not_leader`: the candidate does not lead the election."),
    "TooManyInFlight": (
        E.TooManyInFlight,
        S.TooManyInFlightError,
        "`too_many_in_flight`: the consumer already holds 1000 messages of the topic in flight; nothing changed.",
    ),
    "TooManyWaiters": (
        E.TooManyWaiters,
        S.TooManyWaitersError,
        "`too_many_waiters`: the resource's wait list is full; nothing changed.",
    ),
    # Only with client tokens (`--auth-tokens`); added to every operation that needs a token (`_operation`).
    "Unauthorized": (
        E.Unauthorized,
        S.UnauthorizedError,
        "`unauthorized`: no API token, a malformed `Authorization` header, or an unknown token.",
    ),
    "Forbidden": (E.Forbidden, S.ForbiddenError, "`forbidden`: the token's grants do not cover this."),
}
# Further headers of some error answers: name in ERRORS -> {header: components/headers entry}.
ERROR_HEADERS: dict[str, dict[str, str]] = {"Unauthorized": {"WWW-Authenticate": "WWWAuthenticate"}}
TOKEN = ("Unauthorized", "Forbidden")
BEARER = "bearerAuth"

BODY = ("InvalidRequest", "TooLarge")  # every JSON body: decoding and size
LEADER = ("LeaderUnavailable",)

RAFT_RPC = (
    "Node to node. The body is a msgpack `rakit.raft.messages.Batch` from a peer; the answer is a "
    "`Batch` of this node's messages for that peer, sent once this node has persisted what the batch "
    "implies (empty after 2 s). All three paths do the same exchange; the nodes themselves use the "
    "`/raft/stream` WebSocket. A batch that does not decode, or whose sender is not a member, is "
    "refused with 422 and changes nothing."
)

# (method, path) of rakit.http.endpoints.ENDPOINTS -> description, or (description, 200 answer description)
DESCRIPTIONS: dict[tuple[str, str], str | tuple[str, str]] = {
    ("GET", "/health"): ("`200` while the process serves.", "The node serves."),
    ("GET", "/status"): (
        "This node's role, term, the leader it knows of and its log indexes. Not forwarded: every node "
        "answers for itself.",
        "This node's view.",
    ),
    ("GET", "/metrics"): ("Prometheus text exposition format (`rakit_*`)."),
    ("GET", "/debug/digest"): (
        "This replica's applied index and a SHA-256 of its state machines; replicas that applied the same "
        "index show the same digest.",
        "This replica's digest.",
    ),
    ("GET", "/cluster/consistency"): (
        "Compares every member's log chain at the highest checkpoint they all kept; members whose chain "
        "differs from the majority's are `diverged` (a damaged or replaced disk). The leader runs the same "
        "check every 30 s and exports `rakit_replicas_diverged`.",
        "The comparison.",
    ),
    ("POST", "/lock/acquire"): (
        "Exclusive excludes everyone; shared is compatible with shared. Granted at once only if compatible "
        "with the holders and nobody waits ahead (a new shared request never overtakes a waiting exclusive "
        "one); otherwise the request waits in a FIFO wait list up to `timeout` seconds, or gets `409 "
        "conflict` at once with `timeout: 0`. Re-acquiring in the same mode is idempotent (same token, lease "
        "restarted at `ttl`); the sole shared holder asking for exclusive is upgraded (new, greater token). "
        "A request whose wait would close a cycle in the wait-for graph gets `409 deadlock` with the cycle. "
        "Served by the Raft leader; any node forwards.",
        "Granted.",
    ),
    ("POST", "/lock/release"): (
        "Ends the client's hold; the head of the wait list is granted. With `fencing_token`, only the hold "
        "with that token is released.",
        "Released.",
    ),
    ("POST", "/lock/renew"): (
        "Restarts the lease of the client's hold at `ttl` (default: the hold's current ttl).",
        "Renewed.",
    ),
    ("GET", "/lock/status/{resource}"): (
        "Holders, waiters (in arrival order) and the highest fencing token of a resource; a linearizable "
        "read (ReadIndex on the leader).",
        "The resource's state.",
    ),
    ("GET", "/lock/watch/{resource}"): (
        "Answers when `client_id`'s hold on the resource ends (released or expired), at once if there is "
        "none, or after `timeout` seconds with `held: true`.",
        "The hold ended, there was none, or the timeout ran out.",
    ),
    ("GET", "/cluster/members"): (
        "This node's view of the configuration: voters and learners with their URLs (asked at the leader, "
        "learners also say whether they are caught up).",
        "The configuration.",
    ),
    ("POST", "/cluster/members"): (
        "Adds the node as a non-voting learner: it receives the log (or a snapshot) without counting toward "
        "commit or elections, so adding it never lowers availability. Promote it once caught up. One "
        "configuration change at a time; answered once committed.",
        "Committed.",
    ),
    ("POST", "/cluster/members/{id}/promote"): (
        "Refused (`learner_not_caught_up`) unless the learner's log is within one batch of the leader's.",
        "Committed.",
    ),
    ("DELETE", "/cluster/members/{id}"): (
        "Removes a voter or learner. A removed leader keeps leading until its removal is committed, then "
        "steps down; stop the removed node's process afterwards.",
        "Committed.",
    ),
    ("POST", "/cluster/transfer-leader"): (
        "Hands leadership to `to` (default: the most caught-up other voter) with TimeoutNow (Raft thesis "
        "3.10): the leader stops taking proposals, brings the target up to date and tells it to start an "
        "election at once. Answered once the target leads; 503 if it has not within 2 s (the old leader "
        "then leads again). Use it before restarting or removing the leader.",
        "The target leads.",
    ),
    ("POST", "/kv/put"): (
        "Writes through Raft (one revision per change: the entry's index); answered once committed and "
        "applied. `if_revision`: only if the key's `mod_revision` is that (0: absent; `if_absent` is the same). "
        "`ttl`: deleted that many seconds after the put (timed by the leader; a new leader restarts it). "
        "`session_id`: deleted when the session ends (its `ttl` is then ignored).",
        "Committed and applied.",
    ),
    ("POST", "/kv/delete"): (
        "Deletes `key` (with `if_revision`: only if it is at that revision), or every key starting with `prefix`, "
        "in one entry.",
        "Committed and applied.",
    ),
    ("POST", "/kv/incr"): (
        "Adds `delta` to the key's integer value (a missing key counts as 0); 422 when the value is not an integer.",
        "The new value.",
    ),
    ("POST", "/kv/txn"): (
        "Compares on the map before the txn, then the `success` ops (all compares hold) or the `failure` ops, "
        "in order, as one Raft entry: atomic and isolated. A get sees the txn's earlier writes.",
        "Committed and applied.",
    ),
    ("GET", "/kv/get/{key}"): (
        "Linearizable by default (ReadIndex: a follower asks the leader for a read index and answers from its own "
        "state once applied). `consistency=serializable`: this node's state as it is, possibly stale (`revision` "
        "says how fresh).",
        "The value.",
    ),
    ("GET", "/kv/range"): (
        "Keys starting with `prefix`, in key order, after `after`, at most `limit`: one consistent cut at "
        "`revision`. Linearizable unless `consistency=serializable`.",
        "A page of keys.",
    ),
    ("GET", "/kv/watch"): (
        "The changes of `key` or under `prefix` from `from_revision` (default: the next), in revision order, "
        "none skipped, none twice: a `text/event-stream` (one `data:` event per change, `id:` its revision, a "
        "comment at least every 5 s), or with `format=json` a long poll answered as soon as there is an event or "
        "after `wait` s. History older than the node keeps: one `compacted` event (the stream then ends).",
        "The events.",
    ),
    ("GET", "/kv/internal/read_index"): (
        "The leader's read index (its leadership confirmed by a quorum), for a follower's linearizable read.",
        "The index.",
    ),
    ("POST", "/cache/set"): (
        "Stores the value on this node with a version above every version it has seen, and answers once "
        "every peer has dropped (or replaced) its older copy, or has been fenced out of serving. From then "
        "on no node answers an older value of that key.",
        "Written.",
    ),
    ("GET", "/cache/get/{key}"): (
        "A local hit, or a miss served by whichever peer holds the newest copy (which this node then keeps).",
        "The current value.",
    ),
    ("POST", "/cache/delete"): ("Drops the key everywhere; answered like a set.", "Deleted."),
    ("GET", "/cache/stats"): (
        "This node's cache: occupancy, counters, serving state and contact with each peer.",
        "Statistics.",
    ),
    ("POST", "/cache/invalidate"): (
        "One invalidation as JSON, as if sent by node `src`: drops this node's copy of `key` if older than "
        "`version`. The nodes themselves batch theirs on `/cache/stream`.",
        "What the invalidation did.",
    ),
    ("POST", "/cache/internal/batch"): (
        "One msgpack `rakit.cache.rules.messages.Batch` (invalidations, fetches, heartbeats) answered by a "
        "`BatchReply`; what the nodes send each other on `/cache/stream`, one batch per request."
    ),
    ("POST", "/queue/push"): (
        "Answered once the message is durable in Redis. The topic is served by its ring owner (the next "
        "live node while the owner is down); any node forwards. A `message_id` seen on the topic within the "
        "dedup window is not enqueued twice (same answer again).",
        "Durable.",
    ),
    ("GET", "/queue/pop/{topic}/{consumer_id}"): (
        "Moves the topic's next message atomically to the consumer's processing list. Not acked within "
        "`visibility_timeout` seconds it becomes ready again at the head of the topic (`delivery_count` + 1); "
        "after `max_deliveries` it goes to the dead-letter list instead. With `wait`, long-polls up to that "
        "many seconds for a message. A consumer holds at most 1000 messages of a topic in flight: one more "
        "pop gets `429 too_many_in_flight` and changes nothing.",
        "A message, now in flight for the consumer.",
    ),
    ("POST", "/queue/ack"): ("The message is done: removed for good.", "Acked."),
    ("POST", "/queue/nack"): ("The message becomes ready again at once, at the head of the topic.", "Nacked."),
    ("POST", "/queue/extend"): ("The message stays in flight `visibility_timeout` seconds from now.", "Extended."),
    ("GET", "/queue/stats/{topic}"): (
        "Ready, in-flight and dead counts (read atomically), and the node serving the topic now.",
        "Counts.",
    ),
    ("GET", "/queue/dead/{topic}"): ("The topic's dead letters, oldest first.", "Dead letters."),
    ("POST", "/queue/redrive"): (
        "Moves up to `limit` dead letters back to the head of the topic, with a fresh delivery count.",
        "Redriven.",
    ),
    ("POST", "/queue/internal/push"): (
        "A push relayed by another node to the topic's owner: served by this node whatever the ring says. "
        "`message_id` is required (the relaying node generates it).",
        "Durable.",
    ),
    ("POST", "/queue/internal/pop"): (
        "A pop relayed to the topic's owner, its query parameters in the body.",
        "A message, now in flight for the consumer.",
    ),
    ("POST", "/queue/internal/ack"): ("An ack relayed to the topic's owner.", "Acked."),
    ("POST", "/queue/internal/nack"): ("A nack relayed to the topic's owner.", "Nacked."),
    ("POST", "/queue/internal/extend"): ("An extend relayed to the topic's owner.", "Extended."),
    ("POST", "/request_vote"): RAFT_RPC,
    ("POST", "/append_entries"): RAFT_RPC,
    ("POST", "/install_snapshot"): RAFT_RPC,
    ("GET", "/openapi.json"): ("The OpenAPI 3.1 description of this node's API."),
    ("GET", "/docs/openapi-3.0.json"): (
        "The same document translated to OpenAPI 3.0, for the bundled Swagger UI (4.x reads 3.0 only)."
    ),
    ("GET", "/docs"): ("A browsable reference of this document (Swagger UI, served by the node: no external assets)."),
}


DESCRIPTIONS.update(C.DESCRIPTIONS)


def _documented(ep: Endpoint) -> Op:
    about = DESCRIPTIONS[(ep.method, ep.path)]  # KeyError: an endpoint without a description
    description, ok_description = (about, "Done.") if isinstance(about, str) else about
    return Op(
        ep.method,
        ep.path,
        ep.tag,
        ep.summary,
        description,
        body=ep.body,
        ok=ep.ok,
        ok_description=ok_description,
        params=ep.params,
        errors=ep.answers,
        responses=ep.responses,
        request=ep.request,
        needs_token=ep.needs_token,
    )


CORE_OPERATIONS: tuple[Op, ...] = tuple(_documented(ep) for ep in ENDPOINTS)
# Does a dashboard path need an API token (when tokens are on)?  As declared.
_DASHBOARD_TOKENS = {ep.path: ep.needs_token for ep in dashboard()}


def _ui_operations() -> tuple[Op, ...]:
    """The dashboard's page and read-only endpoints (``rakit.http.routes.ui``), when it is there.

    Their answer Structs and query parameters come from ``ui.SCHEMAS``; the bounds below are the
    ones its handlers check.
    """
    try:
        from rakit.http.routes import ui
    except ModuleNotFoundError:
        return ()
    query: dict[str, tuple[Any, Any]] = {
        "timeout": (Annotated[float, msgspec.Meta(ge=0.05, le=5.0)], ui.DEFAULT_PEER_TIMEOUT),
        "limit": (Annotated[int, msgspec.Meta(ge=1, le=ui.MAX_LIMIT)], ui.DEFAULT_LIMIT),
    }
    about: dict[str, tuple[str, str, tuple[str, ...]]] = {
        "/cluster/overview": (
            "Cluster overview (dashboard)",
            (
                "Every node's Raft status and cache counters, gathered by this node in parallel (it answers "
                "for itself directly); a node that does not answer within `timeout` seconds is listed with "
                "`up: false` and its error."
            ),
            ("InvalidRequest",),
        ),
        "/lock/table": (
            "The lock table (dashboard)",
            (
                "The replicated lock table read on the leader after a ReadIndex barrier (forwarded like the "
                "other lock calls): busy resources first, at most `limit`, with the wait-for edges."
            ),
            ("InvalidRequest", *LEADER),
        ),
        "/coordination/table": (
            "Sessions, semaphores and elections (dashboard)",
            (
                "The coordination machine read on the leader after a ReadIndex barrier: sessions (ids shortened "
                "to 8 characters: an id is the session's capability), semaphores in use with holders, waiters "
                "and available permits, elections in use with leader, term and candidates; at most `limit` of "
                "each kind, and totals over all."
            ),
            ("InvalidRequest", *LEADER),
        ),
        "/queue/topics": (
            "Queue topics (dashboard)",
            ("Topics known in Redis (a bounded scan) with their ready / in-flight / dead counts and current owner."),
            ("InvalidRequest", "Unavailable"),
        ),
    }
    ops = []
    for path, (struct, params) in ui.SCHEMAS.items():
        summary, description, errors = about[path]  # KeyError: a dashboard endpoint not described here
        ops.append(
            Op(
                "GET",
                path,
                "ui",
                summary,
                description,
                ok=struct,
                ok_description="The view.",
                params=tuple(
                    Param(name, "query", query[name][0], text, required=False, default=query[name][1])
                    for name, text in params.items()
                ),
                errors=errors,
            )
        )
    page = {"200": {"description": "The dashboard page.", "content": {"text/html": {"schema": {"type": "string"}}}}}
    asset = {
        "200": {
            "description": "The file.",
            "content": {media.split(";")[0]: {"schema": {"type": "string"}} for media in ui.ASSETS.values()},
        }
    }
    ops += [
        Op(
            "GET",
            "/ui",
            "ui",
            "Live dashboard (HTML)",
            "Cluster, locks, queue and cache at a glance; the "
            "page polls the endpoints tagged `ui` on this node. No external assets.",
            responses=page,
        ),
        Op("GET", "/ui/", "ui", "Live dashboard (HTML)", "Same as `/ui`.", responses=page),
        Op(
            "GET",
            "/ui/{name}",
            "ui",
            "A file of the dashboard",
            "The page's HTML, script and style sheet.",
            params=(Param("name", "path", Literal[tuple(sorted(ui.ASSETS))], "The file."),),
            responses=asset,
            errors=("NotFound",),
        ),
    ]
    return tuple(ops)


OPERATIONS: tuple[Op, ...] = CORE_OPERATIONS + _ui_operations()


# Descriptions of the request Structs (and of a few answer Structs) that live beside their routes:
# Struct -> (description, {field: description or extra schema keywords}).
NOTES: dict[type, tuple[str, Mapping[str, str | Mapping[str, Any]]]] = {
    B.PromoteBody: ("An empty object (the body may also be left out).", {}),
    B.AddMemberBody: (
        "A node to add as a learner.",
        {"id": "Its node id (as its `--id`).", "url": "Where it serves, e.g. `http://10.0.0.4:8001`."},
    ),
    B.TransferBody: (
        "Where leadership should go.",
        {"to": "The voter to hand leadership to; default: the most caught-up other voter."},
    ),
    B.AcquireBody: (
        "A lock request.",
        {
            "resource": "The resource to lock.",
            "client_id": "Who will hold it.",
            "mode": "`exclusive` excludes everyone; `shared` is compatible with `shared`.",
            "timeout": "Seconds to wait in the FIFO wait list; 0: `409 conflict` at once when unavailable.",
            "ttl": "Lease in seconds: the hold ends unless renewed within it.",
            "lock_delay": "Sets the resource's option: seconds the lock stays ungranted after an expiry "
            "(not after a release). Absent: unchanged (default 0).",
        },
    ),
    B.ReleaseBody: (
        "Ends a hold.",
        {
            "fencing_token": "When given, must be the token of the client's current hold, else `409 token_mismatch`.",
        },
    ),
    B.RenewBody: ("Restarts a lease.", {"ttl": "The new lease in seconds; absent: the hold's current ttl."}),
    KB.KvPutBody: (
        "A KV write.",
        {
            "value": f"Any JSON, at most {MAX_VALUE_BYTES} bytes encoded, kept as it is (no base64).",
            "if_revision": "Put only if the key's `mod_revision` is this (0: only if absent).",
            "if_absent": "The same as `if_revision: 0`.",
            "ttl": "Seconds until the key is deleted (the leader times it).",
            "session_id": "Attach the key to this session: it is deleted when the session ends.",
            "client_id": "If given, must be the session's client.",
        },
    ),
    KB.KvDeleteBody: ("A KV delete: `key` or `prefix`, not both.", {}),
    KB.IncrBody: ("A KV increment.", {"delta": "Added to the key's integer value."}),
    KB.TxnBody: ("A KV transaction: at most 64 compares and 64 ops per branch.", {}),
    B.SetBody: (
        "A cache write.",
        {
            "value": f"Any JSON, at most {MAX_VALUE_BYTES} bytes encoded.",
            "ttl": "Seconds the entry lives; absent or null: no expiry.",
        },
    ),
    B.CacheKeyBody: ("A cache key.", {}),
    B.InvalidateBody: (
        "One invalidation, as if sent by node `src`.",
        {
            "src": "The node the invalidation comes from (a member of the cluster).",
            "version": "The version written: copies older than it are dropped.",
        },
    ),
    B.GetAnswer: (
        "A cache hit.",
        {
            "version": "Opaque version of the write (`<counter>.<node>`), the same on every node.",
            "node": "The answering node.",
            "source": {
                "enum": ["local", "peer"],
                "description": "`local`: this node's copy; `peer`: fetched from a peer (and now kept here).",
            },
            "value": "Any JSON value, exactly as it was written.",
        },
    ),
    B.PushBody: (
        "A message for a topic.",
        {
            "message": f"Any JSON, at most {MAX_VALUE_BYTES} bytes encoded.",
            "message_id": "Deduplication id (the form of a key); one is generated when absent.",
        },
    ),
    B.InternalPushBody: ("A relayed push.", {}),
    B.PopBody: ("A relayed pop: the query parameters of `GET /queue/pop/{topic}/{consumer_id}`.", {}),
    B.MessageBody: ("A message in flight for a consumer.", {}),
    B.ExtendBody: (
        "A new visibility timeout for a message in flight.",
        {
            "visibility_timeout": "Seconds from now.",
        },
    ),
    B.RedriveBody: ("Dead letters to move back.", {"limit": "At most this many."}),
}

TAGS = [
    {
        "name": "locks",
        "description": "Distributed locks (Raft state machine): shared/exclusive, FIFO "
        "waiting, leases, fencing tokens, deadlock detection.",
    },
    {
        "name": "queue",
        "description": "Topic queues in Redis, each topic served by its ring owner: "
        "at-least-once delivery, visibility timeouts, dead letters.",
    },
    {"name": "cache", "description": "Each node's LRU cache, kept coherent by write-invalidate."},
    {
        "name": "kv",
        "description": "A linearizable key-value store on Raft: revisions, compare-and-set, transactions, TTL and "
        "session keys, resumable watches.",
    },
    {"name": "cluster", "description": "Health, Raft status and metrics of one node."},
    {"name": "internal", "description": "Node to node (and tools). Body formats may change between versions."},
    {"name": "docs", "description": "This document and its browsable reference."},
    {"name": "ui", "description": "The live dashboard and the read-only views it polls."},
]

DESCRIPTION = f"""The HTTP API of one **rakit** node: distributed locks (Raft), a distributed queue (Redis) and a
coherent distributed cache. The contract is `docs/api.md`; this document is built from the same msgspec
Structs that validate the requests.

**Any node accepts any request.** A node that needs the Raft leader (locks, kv) forwards the request
to it; a queue request goes to its topic's ring owner. Only while no leader is known does a node
answer `503 no_leader`, with `Retry-After`.

**JSON in, JSON out.** Unknown extra fields in a body are ignored. Names: `resource` and `key` are
1-128 characters of `[A-Za-z0-9_.:-]`; `topic`, `consumer_id` and `client_id` 1-128 characters of
`[A-Za-z0-9_.-]`. Times are seconds as JSON numbers (fractions allowed). A JSON body is at most
{MAX_BODY_BYTES} bytes; a value or message at most {MAX_VALUE_BYTES} bytes once encoded.

**Errors** are JSON objects `{{"error": code, "detail": text, ...}}` (schema `Error`): `422
invalid_request`, `413 too_large`, `404 not_found` (also for an unknown path), `404 not_in_flight`,
`405 method_not_allowed` (a known path with another method), `409` with a specific code (`conflict`,
`timeout`, `deadlock`, `not_holder`, `token_mismatch`), `503 no_leader` / `not_leader` /
`unavailable` (with `Retry-After`), `429 too_many_waiters` (a lock's wait list is full). No request,
however malformed, gets a 500.

**Limits** on every request: a head (request line and headers) of at most 64 KiB and 100 header
fields (`431 too_large`), complete within 10 s of its first byte (`408 request_timeout`); a body
within its size limit (`413 too_large`, checked before it is parsed, chunked bodies included) and
arrived within 10 s of the head, plus 1 s per MiB it declares (`408 request_timeout`); the
connection is closed after a 408 or 431. At most 2048 connections or requests in progress per node
(`503 unavailable`). A consumer holds at most 1000 messages of one topic
in flight (`429 too_many_in_flight`). A waiting request (`timeout`, `wait`) is answered within its
stated time plus 10 s (`503 unavailable` if it could not finish by then).

**API tokens** (only when the node runs with `--auth-tokens`): send `Authorization: Bearer <token>`.
No token, a malformed header or an unknown token: `401 unauthorized` (with `WWW-Authenticate:
Bearer`); a token whose grants do not cover the operation on that name: `403 forbidden`. Grants name
an operation family and a glob over names: `locks:orders.*`, `queue:read:emails`,
`queue:write:emails`, `cache:*`, `kv:read:*`, `status` (`GET /status`), `admin` (`/metrics`,
`/debug/digest`, the dashboard's data), `*` (everything). Open without a token: `/health`, `/docs`,
`/openapi.json` and the dashboard's static files under `/ui`. A lock is released or renewed only
under the token that took it (`409 not_holder` otherwise).

**Waiting requests** (`/lock/acquire` with `timeout`, `/lock/watch`, `/queue/pop` with `wait`) are
cancelled when the client disconnects (a waiting acquire leaves the wait list).

**WebSockets** (not expressible in OpenAPI), node to node: `/raft/stream` carries Raft batches
(binary msgpack `rakit.raft.messages.Batch` frames, each answered in order by a `Batch` frame once
persisted) and `/cache/stream` carries cache batches (msgpack `rakit.cache.rules.messages.Batch` frames
answered in order by `BatchReply` frames). A frame that does not decode closes the stream (1003).
Relayed HTTP requests carry `x-rakit-hops` (and `x-rakit-remaining`, the seconds the original caller
still waits).
"""


# -- building ---------------------------------------------------------------------------


def _structs() -> list[type]:
    seen: dict[type, None] = {S.Error: None}
    for op in OPERATIONS:
        for t in (op.body, op.ok):
            if t is not None:
                seen[t] = None
    for _, struct, _ in ERRORS.values():
        seen[struct] = None
    return list(seen)


def _component_name(qualified: str) -> str:
    # msgspec names a Struct by its module path when two share a name (cache.KeyBody, kv.KeyBody).
    if "." not in qualified:
        return qualified
    module, _, name = qualified.rpartition(".")
    return module.rpartition(".")[2].capitalize() + name


def _rename_refs(node: Any, names: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out[k] = REF_TEMPLATE.format(name=names[v.rpartition("/")[2]])
            else:
                out[k] = _rename_refs(v, names)
        return out
    if isinstance(node, list):
        return [_rename_refs(v, names) for v in node]
    return node


def _apply_notes(components: dict[str, Any], names: Mapping[type, str]) -> None:
    for schema in components.values():  # msgspec keeps docstrings' indentation
        if "description" in schema:
            schema["description"] = inspect.cleandoc(schema["description"])
    for struct, (description, fields) in NOTES.items():
        schema = components[names[struct]]
        if description:
            schema["description"] = description
        for name, note in fields.items():
            prop = schema["properties"][name]  # KeyError: a note on a field that is gone
            prop.update({"description": note} if isinstance(note, str) else note)


def schema_components() -> tuple[dict[type, str], dict[str, Any]]:
    """(Struct -> component name, components/schemas)."""
    structs = _structs()
    refs, raw = msgspec.json.schema_components(structs, ref_template=REF_TEMPLATE)
    renames = {name: _component_name(name) for name in raw}
    if len(set(renames.values())) != len(renames):
        raise ValueError(f"two Structs would share a component name: {sorted(renames)}")
    components = {renames[name]: _rename_refs(schema, renames) for name, schema in raw.items()}
    names = {struct: renames[ref["$ref"].rpartition("/")[2]] for struct, ref in zip(structs, refs, strict=True)}
    _apply_notes(components, names)
    return names, dict(sorted(components.items()))


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(name=name)}


def _operation(op: Op, names: Mapping[type, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tags": [op.tag],
        "summary": op.summary,
        "description": op.description,
        "operationId": op.operation_id,
    }
    if op.params:
        out["parameters"] = [p.render() for p in op.params]
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(names[op.body])}}}
    elif op.request is not None:
        out["requestBody"] = dict(op.request)
    responses: dict[str, Any] = {}
    errors = op.errors
    token = op.needs_token if op.needs_token is not None else _DASHBOARD_TOKENS.get(op.path, True)
    if token:  # needs an API token when tokens are on
        errors = (*errors, *TOKEN)
        out["security"] = [{BEARER: []}]
    if op.ok is not None:
        responses["200"] = {"description": op.ok_description, "content": {JSON: {"schema": _ref(names[op.ok])}}}
    responses.update(copy.deepcopy(dict(op.responses)))
    for error in errors:
        status = str(ERRORS[error][0].status)
        if status in responses:
            raise ValueError(f"{op.method} {op.path}: two answers for {status}")
        responses[status] = {"$ref": f"#/components/responses/{error}"}
    if "200" not in responses and "204" not in responses:
        raise ValueError(f"{op.method} {op.path}: no success answer")
    out["responses"] = dict(sorted(responses.items()))
    return out


def build_document() -> dict[str, Any]:
    names, components = schema_components()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        item = paths.setdefault(op.path, {})
        method = op.method.lower()
        if method in item:
            raise ValueError(f"{op.method} {op.path} is listed twice")
        item[method] = _operation(op, names)
        declared = {p.name for p in op.params if p.where == "path"}
        if declared != set(re.findall(r"{([^}]+)}", op.path)):
            raise ValueError(f"{op.method} {op.path}: path parameters {sorted(declared)} do not match")
    responses = {}
    for name, (error, struct, description) in ERRORS.items():
        response: dict[str, Any] = {
            "description": f"{error.status}: {description}",
            "content": {JSON: {"schema": _ref(names[struct])}},
        }
        if error.retry_after:
            response["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
        for header, ref in ERROR_HEADERS.get(name, {}).items():
            response.setdefault("headers", {})[header] = {"$ref": f"#/components/headers/{ref}"}
        responses[name] = response
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "rakit node API", "version": _version(), "description": DESCRIPTION},
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": responses,
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before trying again.",
                    "schema": {"type": "integer", "minimum": 0},
                },
                "WWWAuthenticate": {
                    "description": '`Bearer realm="rakit"`: send an API token.',
                    "schema": {"type": "string"},
                },
            },
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token of the node's `--auth-tokens` file (only when it has one).",
                }
            },
        },
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rakit")
    except PackageNotFoundError:  # a source checkout on sys.path, not installed
        return "0"


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document, built once. Callers must not change it."""
    return build_document()


@functools.cache
def document_json() -> bytes:
    return msgspec.json.encode(document())


@functools.cache
def document_30_json() -> bytes:
    return msgspec.json.encode(build_document_30(document()))
