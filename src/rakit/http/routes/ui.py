"""The live dashboard (``/ui``) and the read-only aggregate endpoints it polls.

The browser talks only to the node that served the page; that node gathers
the rest:

``GET /ui`` (also ``/ui/``) -> the dashboard page; ``GET /ui/{app.js,kv.js,style.css,index.html}`` its files
    (package data under ``rakit/http/static/ui``; plain JS, no external URL);
``GET /cluster/overview?timeout=0.5`` -> ``ClusterOverview``: every node's ``/status``,
    ``/cache/stats`` and KV gauges (``rakit.http.routes.ui_kv``), asked in parallel (this node
    answers for itself directly); a node that does not answer within ``timeout`` seconds (0.05-5)
    is listed with ``up: false`` and its error;
``GET /lock/table?limit=500`` -> ``LockTableView``: the replicated lock table read on the leader
    after a ReadIndex barrier (forwarded like the other lock calls), busy resources first, at most
    ``limit`` (1-5000) with a ``truncated`` flag, and the wait-for edges;
``GET /coordination/table?limit=500`` -> ``CoordinationTableView``: sessions (ids shortened),
    semaphores (holders, waiters, available) and elections (leader, term, candidates) read on the
    leader after a ReadIndex barrier, at most ``limit`` of each, with the machine's totals;
``GET /queue/topics?limit=500`` -> ``QueueTopicsView``: topics known in Redis (bounded SCAN),
    their ready / in-flight / dead counts and current owner; Redis down -> 503 ``unavailable``.

Bad query parameters -> 422 ``invalid_request``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from rakit.errors import InvalidRequest, NotFound
from rakit.http.forward import identity_headers, on_leader
from rakit.http.identity import identity_of
from rakit.http.json import json_response, query_number
from rakit.http.routes.ui_kv import METRICS_PATH, KvNodeView, kv_from_metrics, local_kv
from rakit.security.tokens import SYSTEM
from rakit.statemachines.coordination_overview import overview as coordination_overview

if TYPE_CHECKING:
    from rakit.node.runtime import NodeRuntime

DEFAULT_PEER_TIMEOUT = 0.5
DEFAULT_LIMIT = 500
MAX_LIMIT = 5000

# -- answer shapes (also what /openapi.json documents) --------------------------------


class CacheView(msgspec.Struct, kw_only=True):
    """One node's cache counters (a subset of ``GET /cache/stats``)."""

    serving: bool = False
    size: int = 0
    capacity: int = 0
    bytes: int = 0
    max_bytes: int = 0
    hits: int = 0
    misses: int = 0
    peer_fetches: int = 0
    evictions: int = 0
    invalidations_sent: int = 0
    invalidations_received: int = 0


class NodeView(msgspec.Struct, kw_only=True):
    """One node as this node sees it.

    ``local``: the answering node itself; ``up``: its ``/status`` answered; ``error``: why not.  ``kv``: its KV
    counters (null if its ``/metrics`` did not answer in time).  ``health``: "ok";
    "degraded" (up, but knows no leader or its cache does not serve / did not
    answer); "down".  Raft fields are null while down.
    """

    node_id: str
    url: str
    local: bool
    up: bool
    health: Literal["ok", "degraded", "down"]
    error: str | None = None
    latency_ms: float | None = None
    role: str | None = None
    term: int | None = None
    leader_id: str | None = None
    commit_index: int | None = None
    last_applied: int | None = None
    last_log_index: int | None = None
    cache: CacheView | None = None
    cache_error: str | None = None
    kv: KvNodeView | None = None


class ClusterOverview(msgspec.Struct, kw_only=True):
    """``GET /cluster/overview``.

    ``node``: the node that answered; ``leader``: the leader of the highest
    term seen (a node saying it leads, else the leader_id the others report;
    null if none); ``leaders``: every node that says it leads (more than one
    only while a deposed leader has not heard of the new term); ``term``: the
    highest term seen; ``generated_at``: epoch seconds.
    """

    node: str
    leader: str | None
    term: int | None
    leaders: list[str]
    nodes: list[NodeView]
    generated_at: float


class LockHolderView(msgspec.Struct, kw_only=True):
    """``owner``: the API token's name the hold was taken under (null without client tokens)."""

    client_id: str
    mode: Literal["exclusive", "shared"]
    fencing_token: int
    ttl: float
    lease: int
    owner: str | None = None


class LockWaiterView(msgspec.Struct, kw_only=True):
    """``owner``: the API token's name the request came under (null without client tokens)."""

    client_id: str
    mode: Literal["exclusive", "shared"]
    upgrade: bool
    wait: float
    owner: str | None = None


class LockResourceView(msgspec.Struct, kw_only=True):
    """One resource: ``mode`` null when free; ``fencing_token``: highest token ever granted."""

    resource: str
    mode: Literal["exclusive", "shared"] | None
    holders: list[LockHolderView]
    waiters: list[LockWaiterView]
    fencing_token: int | None
    lock_delay: float
    delayed: bool


class WaitEdge(msgspec.Struct, kw_only=True, rename={"from_": "from"}):
    """``from`` waits on ``resource`` for ``to``: a holder, or an incompatible waiter queued ahead."""

    from_: str
    to: str
    resource: str
    kind: Literal["holder", "queued"]


class LockTableView(msgspec.Struct, kw_only=True):
    """``GET /lock/table``: read on the leader ``node`` at applied ``index``."""

    node: str
    index: int
    count: int
    active: int
    truncated: bool
    resources: list[LockResourceView]
    edges: list[WaitEdge]


class TopicView(msgspec.Struct, kw_only=True):
    topic: str
    ready: int
    in_flight: int
    dead: int
    owner: str


class QueueTopicsView(msgspec.Struct, kw_only=True):
    """``GET /queue/topics``: ``truncated`` when more topics may exist than listed."""

    node: str
    topics: list[TopicView]
    truncated: bool


class SessionRow(msgspec.Struct, kw_only=True):
    """``session_id``: its first 8 characters only (the id is the session's capability); ``holds``: attached."""

    session_id: str
    client_id: str
    ttl: float
    lock_delay: float
    holds: int


class PermitHolderView(msgspec.Struct, kw_only=True):
    client_id: str
    permits: int
    fencing_token: int


class PermitWaiterView(msgspec.Struct, kw_only=True):
    client_id: str
    permits: int


class SemaphoreRow(msgspec.Struct, kw_only=True):
    name: str
    limit: int
    available: int
    holders: list[PermitHolderView]
    waiters: list[PermitWaiterView]


class ElectionRow(msgspec.Struct, kw_only=True):
    name: str
    leader: str | None
    term: int | None
    candidates: list[str]


class CoordinationTruncated(msgspec.Struct, kw_only=True):
    sessions: bool
    semaphores: bool
    elections: bool


class CoordinationTotals(msgspec.Struct, kw_only=True):
    sessions: int
    semaphores: int
    permits_held: int
    permits_limit: int
    semaphore_waiters: int
    elections: int
    elections_led: int
    candidates_waiting: int


class CoordinationTableView(msgspec.Struct, kw_only=True):
    """``GET /coordination/table``: read on the leader ``node`` at applied ``index``; at most ``limit`` per kind."""

    node: str
    index: int
    sessions: list[SessionRow]
    semaphores: list[SemaphoreRow]
    elections: list[ElectionRow]
    truncated: CoordinationTruncated
    totals: CoordinationTotals


#: For /openapi.json: path -> (answer Struct, query parameters).
SCHEMAS: dict[str, tuple[type[msgspec.Struct], dict[str, str]]] = {
    "/cluster/overview": (ClusterOverview, {"timeout": "seconds per peer, 0.05-5 (default 0.5)"}),
    "/lock/table": (LockTableView, {"limit": f"resources listed, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT})"}),
    "/coordination/table": (
        CoordinationTableView,
        {"limit": f"rows listed per kind, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT})"},
    ),
    "/queue/topics": (QueueTopicsView, {"limit": f"topics listed, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT})"}),
}

# -- query parameters ------------------------------------------------------------------


def _query_limit(request: Request) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}, got {text!r}", field="limit")
    return int(text)


# -- /cluster/overview -------------------------------------------------------------------

_status_decoder = msgspec.json.Decoder(dict[str, Any])
_cache_decoder = msgspec.json.Decoder(CacheView)


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    return f"{type(exc).__name__}: {exc}"[:200]


async def _fetch(runtime: NodeRuntime, url: str, timeout: float, headers: dict[str, str] | None = None) -> bytes:
    async with runtime.session.get(url, timeout=aiohttp.ClientTimeout(total=timeout), headers=headers) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {body[:120].decode(errors='replace')}")
        return body


def _raft_fields(status: dict[str, Any]) -> dict[str, Any]:
    def number(name: str) -> int | None:
        value = status.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def text(name: str) -> str | None:
        value = status.get(name)
        return value if isinstance(value, str) else None

    return {
        "role": text("role"),
        "term": number("term"),
        "leader_id": text("leader_id"),
        "commit_index": number("commit_index"),
        "last_applied": number("last_applied"),
        "last_log_index": number("last_log_index"),
    }


def _health(up: bool, leader_id: str | None, cache: CacheView | None) -> Literal["ok", "degraded", "down"]:
    if not up:
        return "down"
    return "ok" if leader_id is not None and cache is not None and cache.serving else "degraded"


async def _local_view(runtime: NodeRuntime, url: str) -> NodeView:
    fields = _raft_fields(runtime.driver.status())
    cache: CacheView | None = None
    cache_error = None
    try:
        cache = msgspec.convert(runtime.cache.stats(), CacheView, strict=False)
    except (msgspec.ValidationError, RuntimeError) as exc:
        cache_error = f"{type(exc).__name__}: {exc}"[:200]
    return NodeView(
        node_id=runtime.node_id,
        url=url,
        local=True,
        up=True,
        latency_ms=0.0,
        health=_health(True, fields["leader_id"], cache),
        cache=cache,
        cache_error=cache_error,
        kv=local_kv(runtime),
        **fields,
    )


async def _peer_view(
    runtime: NodeRuntime, node_id: str, url: str, timeout: float, sign: Callable[[str], dict[str, str]] | None = None
) -> NodeView:
    started = time.perf_counter()
    status_task = _fetch(runtime, url + "/status", timeout, sign("/status") if sign else None)
    cache_task = _fetch(runtime, url + "/cache/stats", timeout, sign("/cache/stats") if sign else None)
    metrics_task = _fetch(runtime, url + METRICS_PATH, timeout, sign(METRICS_PATH) if sign else None)
    status_raw, cache_raw, metrics_raw = await asyncio.gather(
        status_task, cache_task, metrics_task, return_exceptions=True
    )
    latency = round((time.perf_counter() - started) * 1000, 2)
    if isinstance(status_raw, BaseException):
        if not isinstance(status_raw, Exception):
            raise status_raw
        return NodeView(
            node_id=node_id, url=url, local=False, up=False, health="down", error=_describe(status_raw, timeout)
        )
    try:
        fields = _raft_fields(_status_decoder.decode(status_raw))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return NodeView(
            node_id=node_id, url=url, local=False, up=False, health="down", error=f"bad /status answer: {exc}"[:200]
        )
    cache: CacheView | None = None
    cache_error = None
    if isinstance(cache_raw, BaseException):
        if not isinstance(cache_raw, Exception):
            raise cache_raw
        cache_error = _describe(cache_raw, timeout)
    else:
        try:
            cache = _cache_decoder.decode(cache_raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            cache_error = f"bad /cache/stats answer: {exc}"[:200]
    if isinstance(metrics_raw, BaseException) and not isinstance(metrics_raw, Exception):
        raise metrics_raw
    return NodeView(
        node_id=node_id,
        url=url,
        local=False,
        up=True,
        latency_ms=latency,
        health=_health(True, fields["leader_id"], cache),
        cache=cache,
        cache_error=cache_error,
        kv=None if isinstance(metrics_raw, BaseException) else kv_from_metrics(metrics_raw),
        **fields,
    )


def _pick_leader(nodes: list[NodeView]) -> tuple[str | None, int | None, list[str]]:
    up = [n for n in nodes if n.up and n.term is not None]
    term = max((n.term for n in up if n.term is not None), default=None)
    leaders = [n.node_id for n in up if n.role == "leader"]
    current = [n for n in up if n.term == term]
    leader = next((n.node_id for n in current if n.role == "leader"), None)
    if leader is None:
        leader = next((n.leader_id for n in current if n.leader_id is not None), None)
    return leader, term, leaders


def _members(runtime: NodeRuntime) -> dict[str, str]:
    """The voters and learners of the configuration in force here, with their URLs (membership changes)."""
    driver = runtime.driver
    urls = {n: driver.addresses[n] for n in driver.core.conf_state.members if n in driver.addresses}
    urls.setdefault(runtime.node_id, runtime.config.url)
    return urls


async def cluster_overview(request: Request) -> Response:
    """Every node's Raft status, cache counters and KV counters, gathered by this node in parallel."""
    runtime: NodeRuntime = request.app.state.runtime
    timeout = query_number(request, "timeout", DEFAULT_PEER_TIMEOUT, 0.05, 5.0)

    def signer(peer: str) -> Callable[[str], dict[str, str]] | None:
        # With client tokens the peers want one too: this node asks as itself, signed with the cluster secret.
        if identity_of(request) is None:
            return None
        return lambda path: identity_headers(request, peer, b"", method="GET", target=path, identity=SYSTEM)

    views = await asyncio.gather(
        *(
            _local_view(runtime, url)
            if node_id == runtime.node_id
            else _peer_view(runtime, node_id, url, timeout, signer(node_id))
            for node_id, url in _members(runtime).items()
        )
    )
    leader, term, leaders = _pick_leader(list(views))
    return json_response(
        ClusterOverview(
            node=runtime.node_id, leader=leader, term=term, leaders=leaders, nodes=list(views), generated_at=time.time()
        )
    )


# -- /lock/table -----------------------------------------------------------------------------


async def lock_table(request: Request) -> Response:
    """The replicated lock table, read on the leader (linearizable: ReadIndex barrier)."""
    runtime: NodeRuntime = request.app.state.runtime
    limit = _query_limit(request)

    async def leader() -> Response:
        await runtime.driver.read_barrier()
        table = runtime.lock_table.table(limit)
        index = runtime.driver.core.applied_index
        return json_response({"node": runtime.node_id, "index": index, **table})

    return await on_leader(runtime, request, b"", leader, idempotent=True)


# -- /coordination/table --------------------------------------------------------------------


async def coordination_table(request: Request) -> Response:
    """Sessions, semaphores and elections, read on the leader (linearizable: ReadIndex barrier)."""
    runtime: NodeRuntime = request.app.state.runtime
    limit = _query_limit(request)

    async def leader() -> Response:
        await runtime.driver.read_barrier()
        table = coordination_overview(runtime.coordination_machine, limit)
        index = runtime.driver.core.applied_index
        return json_response({"node": runtime.node_id, "index": index, **table})

    return await on_leader(runtime, request, b"", leader, idempotent=True)


# -- /queue/topics ---------------------------------------------------------------------------


async def queue_topics(request: Request) -> Response:
    """Topics known in Redis with their counts and current owner (bounded SCAN)."""
    runtime: NodeRuntime = request.app.state.runtime
    limit = _query_limit(request)
    topics, truncated = await runtime.queue.topics(limit)
    return json_response({"node": runtime.node_id, "topics": topics, "truncated": truncated})


# -- the page --------------------------------------------------------------------------------

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "kv.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def _asset(name: str) -> bytes:
    return (resources.files("rakit") / "http" / "static" / "ui" / name).read_bytes()


def _asset_response(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no dashboard file {name!r}")
    try:
        content = _asset(name)
    except OSError:
        raise NotFound(f"dashboard file {name!r} is not installed") from None
    return Response(
        content, media_type=media_type, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    )


async def ui_page(request: Request) -> Response:
    """The dashboard page (HTML)."""
    return _asset_response("index.html")


async def ui_asset(request: Request) -> Response:
    """A file of the dashboard: index.html, app.js, kv.js or style.css."""
    return _asset_response(request.path_params["name"])
