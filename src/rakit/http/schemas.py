"""Response shapes of the HTTP API, as msgspec Structs: what the handlers answer.

The request Structs live in ``rakit.http.bodies`` (they validate the bodies); the
handlers still build most answers as dicts, and these Structs describe them
for the OpenAPI document (``rakit.http.openapi``).  The integration test
``tests/integration/test_openapi_cluster.py`` checks real answers against
them, so a handler that changes its answer must change its Struct too.

Answers may gain fields (docs/api.md: "extend it freely"), so no Struct forbids
unknown fields: clients should ignore what they do not know.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

AnyJson = Annotated[Any, Meta(description="Any JSON value, returned exactly as it was written.")]
NodeId = Annotated[str, Meta(description="A node id, as listed in `--peers`.")]
LogIndex = Annotated[int, Meta(ge=0)]
FencingToken = Annotated[
    int,
    Meta(
        ge=0,
        description=(
            "The Raft log index of the grant: strictly greater than every token granted before it "
            "for this resource. Hand it to the storage you protect; it rejects smaller ones."
        ),
    ),
]
LockMode = Literal["exclusive", "shared"]
Count = Annotated[int, Meta(ge=0)]
CacheVersion = Annotated[
    str, Meta(description=("Opaque version of one write (`<counter>.<node>`), the same on every node for that write."))
]


# -- errors ---------------------------------------------------------------------------


class Error(Struct):
    """The shape of every error answer: a stable code and a human-readable detail.

    Anything more (e.g. the offending `field`) comes in further fields.
    """

    error: Annotated[str, Meta(description="Stable machine-readable code, e.g. `invalid_request`.")]
    detail: Annotated[str, Meta(description="Human-readable explanation.")]


class InvalidRequestError(Struct):
    """Malformed JSON, a missing field, a field of the wrong type, a name outside its allowed form
    (in the body, the path or the query), or a number out of range."""

    error: Literal["invalid_request"]
    detail: str
    field: Annotated[str, Meta(description="The offending field, when one is known.")] | UnsetType = UNSET


class TooLargeError(Struct):
    """A value or message over 1 MiB once encoded, or a request body over its limit."""

    error: Literal["too_large"]
    detail: str


class NotFoundError(Struct):
    """Nothing under that name (also the answer to an unknown path)."""

    error: Literal["not_found"]
    detail: str


class NotInFlightError(Struct):
    """The message is not in flight for that consumer (never delivered to it, acked already,
    or its visibility timeout ran out)."""

    error: Literal["not_in_flight"]
    detail: str


class LeaderUnavailableError(Struct):
    """No leader could serve the request in time.

    `no_leader`: no leader is known right now (an election is under way); `not_leader`: the
    leader kept changing until the deadline; `unavailable`: the leader could not be reached,
    or went away while answering (outcome unknown), or this node is shutting down.
    Sent with `Retry-After`.
    """

    error: Literal["no_leader", "not_leader", "unavailable"]
    detail: str


class UnavailableError(Struct):
    """A dependency did not serve the request: Redis is down (queue), the topic's owner went away,
    or this node's cache is not serving (cut off from a majority, or just started).
    Nothing was half-done. Sent with `Retry-After`."""

    error: Literal["unavailable"]
    detail: str


class LockRefusedError(Struct):
    """The lock was not granted. `conflict`: unavailable and `timeout` was 0; `timeout`: not granted
    within `timeout` seconds (the waiter was removed); `deadlock`: waiting would close a cycle in the
    wait-for graph (`cycle` lists the clients on it, the requester first)."""

    error: Literal["conflict", "timeout", "deadlock"]
    detail: str
    acquired: Literal[False]
    cycle: Annotated[list[str], Meta(description="With `deadlock`: the clients on the cycle.")] | UnsetType = UNSET


class NotHolderError(Struct):
    """The client does not hold the lock (never did, released it, or its lease expired)."""

    error: Literal["not_holder"]
    detail: str


class ReleaseRefusedError(Struct):
    """`not_holder`: the client does not hold the lock; `token_mismatch`: the `fencing_token` given
    is not the one of the client's current hold (`current`)."""

    error: Literal["not_holder", "token_mismatch"]
    detail: str
    current: Annotated[int, Meta(description="With `token_mismatch`: the current token.")] | UnsetType = UNSET


class UnauthorizedError(Struct):
    """No API token, a malformed `Authorization` header, or an unknown token (only when the node
    runs with `--auth-tokens`). Sent with `WWW-Authenticate: Bearer`."""

    error: Literal["unauthorized"]
    detail: str


class ForbiddenError(Struct):
    """A valid API token whose grants do not cover this operation on this name."""

    error: Literal["forbidden"]
    detail: str


class TooManyWaitersError(Struct):
    """The resource's wait list is full (at most 1000 waiters per resource); nothing changed."""

    error: Literal["too_many_waiters"]
    detail: str
    acquired: Literal[False]


class TooManyInFlightError(Struct):
    """The consumer already holds the most messages of the topic in flight (1000): ack or nack some
    first; nothing changed."""

    error: Literal["too_many_in_flight"]
    detail: str


# -- cluster --------------------------------------------------------------------------


class QueueAvailability(Struct):
    """Whether this node's Redis serves the queue, as its latest calls found (null: not known yet)."""

    available: bool | None


class QueueState(Struct):
    """``QueueAvailability`` with the reason (``/status`` only: ``/health`` is open without a token)."""

    available: bool | None
    detail: Annotated[
        str | None,
        Meta(
            description=(
                "What Redis said when it stopped serving, e.g. `Redis refused the node: NOAUTH ...`; "
                "null while available."
            )
        ),
    ]
    since: Annotated[float | None, Meta(description="Epoch seconds of the last change of `available`.")]


class Health(Struct):
    """The process serves (``200`` whatever Redis does; ``queue`` says whether Redis serves it)."""

    status: Literal["ok"]
    node_id: NodeId
    queue: QueueAvailability


class NodeStatus(Struct):
    """This node's view of the Raft cluster."""

    node_id: NodeId
    role: Literal["leader", "follower", "candidate"]
    term: Annotated[int, Meta(ge=0)]
    leader_id: Annotated[str | None, Meta(description="The leader this node knows of; null if none.")]
    commit_index: LogIndex
    last_applied: LogIndex
    last_log_index: LogIndex
    first_log_index: Annotated[int, Meta(ge=1, description="First entry still in the log (after snapshots).")]
    snapshot_index: Annotated[int, Meta(ge=0, description="Last entry covered by the snapshot.")]
    peers: Annotated[list[str], Meta(description="Every voting member, this node included.")]
    learners: Annotated[list[str], Meta(description="Non-voting members catching up.")]
    queue: QueueState


class Member(Struct):
    """One member: its id and the URL it serves at (null when this node has not learned it)."""

    id: NodeId
    url: str | None
    caught_up: Annotated[bool, Meta(description="Learners, asked at the leader: may be promoted now.")] | UnsetType = (
        UNSET
    )


class Members(Struct):
    """This node's view of the configuration (it takes effect on each node when appended)."""

    node_id: NodeId
    leader: Annotated[str | None, Meta(description="The leader this node knows of; null if none.")]
    voters: list[Member]
    learners: list[Member]
    pending_change: Annotated[bool, Meta(description="A configuration change is not committed yet.")]


class MembershipChanged(Struct):
    """The change is committed; the configuration after it."""

    id: NodeId
    voters: list[str]
    learners: list[str]
    index: LogIndex


class ConfChangeRefusedError(Struct):
    """The membership change was refused; nothing changed."""

    error: Literal[
        "member_exists",
        "unknown_member",
        "last_voter",
        "conf_change_in_progress",
        "learner_not_caught_up",
        "already_voter",
    ]
    detail: str


class LeaderTransferred(Struct):
    """`leader` leads now; `previous` led when the transfer began."""

    leader: NodeId
    previous: NodeId
    took_ms: Annotated[float, Meta(ge=0, description="From the request reaching the leader to the hand-over.")]


class NotAVoterError(Struct):
    """The transfer's target is not a voting member (unknown, or a learner)."""

    error: Literal["not_a_voter"]
    detail: str


Chain = Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$(?!\n)", description="BLAKE2b-128 of the log chain.")]


class Checkpoint(Struct):
    index: Annotated[LogIndex, Meta(description="A boundary (a multiple of 256).")]
    chain: Chain


class LogChain(Struct):
    """Every applied entry folded into one hash (``rakit.statemachines.registry``)."""

    base: Annotated[int, Meta(ge=-1, description="The chain covers the entries after this index (-1: none yet).")]
    index: Annotated[LogIndex, Meta(description="The last entry folded in.")]
    checkpoints: Annotated[list[Checkpoint], Meta(description="At each boundary crossed, oldest first.")]


class Digest(Struct):
    """Diagnostic: replicas that applied the same index show the same digest."""

    node_id: NodeId
    applied: LogIndex
    digest: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$(?!\n)", description="SHA-256 of the state machines' state.")]
    log_chain: LogChain


class ConsistencyNode(Struct):
    reachable: bool
    error: str | None = None
    applied: LogIndex | None = None
    base: int | None = None
    chain: Chain | None = None
    comparable: bool | None = None


class Consistency(Struct):
    """Whether every member's log chain agrees at the highest boundary they all kept."""

    checked: Annotated[LogIndex | None, Meta(description="The boundary compared; null if none is shared yet.")]
    consistent: bool | None
    diverged: Annotated[list[NodeId], Meta(description="Members whose chain differs from the majority's.")]
    unreachable: list[NodeId]
    nodes: dict[str, ConsistencyNode]


# -- locks ----------------------------------------------------------------------------


class LockGrant(Struct):
    """The lock is held by `client_id` in `mode` until its lease (`ttl` seconds) runs out."""

    acquired: Literal[True]
    resource: str
    client_id: str
    mode: LockMode
    fencing_token: FencingToken
    ttl: Annotated[float, Meta(description="Lease, in seconds.")]
    again: Annotated[bool, Meta(description="Re-acquired in the same mode: same token, lease restarted.")]
    upgraded: Annotated[bool, Meta(description="The sole shared holder was upgraded to exclusive.")]


class LockReleased(Struct):
    released: Literal[True]


class LockRenewed(Struct):
    """The lease restarted at `ttl` seconds."""

    renewed: Literal[True]
    ttl: float
    fencing_token: FencingToken


class LockWaiter(Struct):
    client_id: str
    mode: LockMode


class LockStatus(Struct):
    """Holders and waiters of a resource (a linearizable read)."""

    resource: str
    mode: Annotated[LockMode | None, Meta(description="The holders' mode; null when free.")]
    holders: list[str]
    waiters: Annotated[list[LockWaiter], Meta(description="In arrival order.")]
    fencing_token: Annotated[
        int | None, Meta(description="The highest token ever granted for the resource; null if none.")
    ]


class LockWatch(Struct):
    """`held: false` with `reason`: the hold ended (`released`, `expired`) or there was none
    (`not_holder`); `held: true`: still held when `timeout` ran out."""

    resource: str
    client_id: str
    held: bool
    reason: Literal["not_holder", "released", "expired"] | UnsetType = UNSET
    fencing_token: Annotated[int, Meta(description="The token of the hold watched.")] | UnsetType = UNSET


# -- cache ----------------------------------------------------------------------------


class CacheSet(Struct):
    """Stored; every reachable peer has dropped (or replaced) its older copy."""

    key: str
    version: CacheVersion


class CacheDeleted(Struct):
    deleted: Annotated[bool, Meta(description="Whether any node held the key.")]


class PeerContact(Struct):
    """This node's contact with one peer (cache leases and fences); times in seconds."""

    in_contact: bool
    lease_left: float | None
    acked_ago: float
    fenced_left: float | None
    skip_left: float | None


class CacheStats(Struct):
    """Occupancy, counters, serving state and per-peer contact of this node's cache."""

    node: NodeId
    serving: Annotated[bool, Meta(description="Whether this node's cache serves requests now.")]
    generation: Annotated[
        int,
        Meta(
            ge=-1,
            description=(
                "The cache's membership generation: the log index of the configuration entry that last "
                "changed the member set (0: the --peers start; -1: not a member yet)."
            ),
        ),
    ]
    members: Annotated[list[NodeId], Meta(description="The members of this generation.")]
    reconfigurations: Annotated[int, Meta(ge=0, description="Generations adopted since start.")]
    size: Annotated[int, Meta(ge=0, description="Entries held.")]
    bytes: Count
    capacity: Annotated[int, Meta(ge=0, description="Maximum entries.")]
    max_bytes: Count
    hits: Count
    misses: Count
    peer_fetches: Count
    peer_fetches_kept: Count
    peer_fetches_refused: Count
    peer_fetch_failures: Count
    fetches_served: Count
    evictions: Count
    expirations: Count
    sets: Count
    deletes: Count
    invalidations_sent: Count
    invalidations_received: Count
    invalidations_dropped: Count
    writes_failed: Count
    peers_skipped: Count
    fences_won: Count
    fences_lost: Count
    fences_granted: Count
    drops: Annotated[int, Meta(ge=0, description="Times this node dropped its whole cache.")]
    last_drop_reason: str | None
    epoch: Count
    tombstones: Count
    tombstone_capacity: Count
    floor: Annotated[str, Meta(description="Fetched copies older than this version are refused.")]
    clock: Annotated[int, Meta(description="The version clock's last counter.")]
    peers: dict[str, PeerContact]


class CacheInvalidated(Struct):
    """What the invalidation did here."""

    dropped: Annotated[bool, Meta(description="A live copy older than the invalidation was dropped.")]
    held: Annotated[str | None, Meta(description="The version held now (newer than the invalidation), if any.")]
    acked: bool


# -- queue ----------------------------------------------------------------------------


class QueuePushed(Struct):
    """Durable in Redis (or a duplicate of a push within the dedup window: same answer)."""

    topic: str
    message_id: str
    node: Annotated[str, Meta(description="The node that served the topic (its ring owner, or the next live node).")]


class Delivery(Struct):
    """The message is in flight for the consumer until acked or its visibility timeout runs out."""

    topic: str
    message_id: str
    message: AnyJson
    delivery_count: Annotated[int, Meta(ge=1)]


class Acked(Struct):
    acked: Literal[True]


class Nacked(Struct):
    nacked: Literal[True]


class Extended(Struct):
    extended: Literal[True]


class QueueStats(Struct):
    topic: str
    ready: Count
    in_flight: Count
    dead: Count
    owner: Annotated[str, Meta(description="The node serving the topic now.")]


class DeadLetter(Struct):
    message_id: str
    message: AnyJson
    delivery_count: Count


class DeadLetters(Struct):
    """Dead letters of the topic, oldest first."""

    topic: str
    messages: list[DeadLetter]


class Redriven(Struct):
    redriven: Annotated[int, Meta(ge=0, description="Dead letters moved back to the head of the topic.")]
