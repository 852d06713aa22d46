"""Prometheus metrics of one node, in a registry of its own (tests run many nodes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

ROLES = ("follower", "pre_candidate", "candidate", "leader")
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class NodeMetrics:
    def __init__(self, node_id: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.term = Gauge("rakit_raft_term", "Current Raft term.", registry=r)
        self.role = Gauge("rakit_raft_role", "1 for this node's current role.", ["role"], registry=r)
        self.is_leader = Gauge("rakit_raft_is_leader", "1 while this node is the leader.", registry=r)
        self.commit_index = Gauge("rakit_raft_commit_index", "Highest committed log index.", registry=r)
        self.applied_index = Gauge("rakit_raft_applied_index", "Highest applied log index.", registry=r)
        self.last_log_index = Gauge("rakit_raft_last_log_index", "Last index in the log.", registry=r)
        self.log_entries = Gauge("rakit_raft_log_entries", "Entries kept in the log (after the snapshot).", registry=r)
        self.snapshot_index = Gauge("rakit_raft_snapshot_index", "Index of the latest snapshot.", registry=r)
        self.voters = Gauge("rakit_raft_voters", "Voting members in the configuration in force here.", registry=r)
        self.learners = Gauge("rakit_raft_learners", "Learners (non-voting members) in the configuration.", registry=r)
        self.leader_changes = Counter("rakit_raft_leader_changes", "Times the known leader changed.", registry=r)
        self.replicas_diverged = Gauge(
            "rakit_replicas_diverged",
            "Members whose log chain differs from the other members' at the last check (leader only; "
            "GET /cluster/consistency).",
            registry=r,
        )
        self.follower_regressions = Gauge(
            "rakit_raft_follower_regressions",
            "Times, as leader, a follower was found to have lost log entries it had acknowledged (a damaged or "
            "replaced disk); the leader then repairs it.",
            registry=r,
        )
        self.proposals = Counter("rakit_raft_proposals", "Commands proposed by this node as leader.", registry=r)
        self.proposal_seconds = Histogram(
            "rakit_raft_proposal_seconds",
            "From propose to applied, on the leader.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.persist_seconds = Histogram(
            "rakit_raft_persist_seconds",
            "Time to persist one Ready (fsync included).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.persist_entries = Histogram(
            "rakit_raft_persist_batch_entries",
            "Entries persisted per Ready.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
            registry=r,
        )
        self.rpc_seconds = Histogram(
            "rakit_raft_rpc_seconds",
            "Node-to-node Raft RPC latency.",
            ["peer", "rpc"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rpc_serve_seconds = Histogram(
            "rakit_raft_rpc_serve_seconds",
            "Serving one Raft RPC batch (step, persist, answer).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rpc_failures = Counter("rakit_raft_rpc_failures", "Failed Raft RPCs.", ["peer"], registry=r)
        self.snapshots_installed = Counter(
            "rakit_raft_snapshots_installed", "Snapshots received from a leader and restored.", registry=r
        )
        self.snapshots_taken = Counter("rakit_raft_snapshots_taken", "Local snapshots taken.", registry=r)
        self.forwarded = Counter("rakit_forwarded_requests", "Requests forwarded to the leader.", registry=r)
        self.lock_waiting = Gauge("rakit_lock_waiting_requests", "Acquire requests waiting here.", registry=r)
        self.lock_watchers = Gauge("rakit_lock_watchers", "Watch requests waiting here.", registry=r)
        self.lock_grants = Counter("rakit_lock_grants", "Lock grants answered by this node.", registry=r)
        self.coordination_expiries = Counter(
            "rakit_coordination_expiries",
            "Lease expiries this node proposed as leader (sessions, semaphore holds, leaderships).",
            ["kind"],
            registry=r,
        )
        self.queue_pushes = Counter("rakit_queue_pushes", "Messages enqueued by this node.", registry=r)
        self.queue_pops = Counter("rakit_queue_pops", "Messages delivered by this node.", registry=r)
        self.queue_acks = Counter("rakit_queue_acks", "Messages acknowledged through this node.", registry=r)
        self.queue_nacks = Counter("rakit_queue_nacks", "Messages nacked through this node.", registry=r)
        self.queue_requeued = Counter(
            "rakit_queue_requeued", "Messages requeued by this node's monitor (visibility timeout).", registry=r
        )
        self.queue_dead_lettered = Counter(
            "rakit_queue_dead_lettered", "Messages moved to dead letters by this node's monitor.", registry=r
        )
        self.queue_forwarded = Counter("rakit_queue_forwarded", "Queue calls relayed to a topic's owner.", registry=r)
        self.node_info = Gauge("rakit_node_info", "Node identity.", ["node_id"], registry=r)
        self.node_info.labels(node_id=node_id).set(1)

    def set_role(self, role: str) -> None:
        for name in ROLES:
            self.role.labels(role=name).set(1 if name == role else 0)
        self.is_leader.set(1 if role == "leader" else 0)

    def watch_cache(self, stats: Callable[[], dict[str, Any]]) -> None:
        """Export the cache's statistics (read at each scrape) as ``rakit_cache_*``."""
        self.registry.register(CacheCollector(stats))

    def watch_coordination(self, totals: Callable[[], dict[str, int]]) -> None:
        """Export the coordination machine's totals (read at each scrape) as ``rakit_*`` gauges."""
        self.registry.register(CoordinationCollector(totals))

    def watch_kv(self, store: Any, hub: Any) -> None:
        """Export the KV store's revision and history and the watch hub's watchers (read at each scrape)."""
        self.registry.register(KvCollector(store, hub))

    def render(self) -> bytes:
        return generate_latest(self.registry)


# (stats field, metric suffix, help); gauges first, then counters.
_CACHE_GAUGES = (
    ("size", "entries", "Entries held in this node's cache."),
    ("bytes", "bytes", "Bytes charged for the entries held."),
    ("capacity", "capacity_entries", "Entry bound of the LRU."),
    ("max_bytes", "capacity_bytes", "Byte bound of the LRU."),
    ("serving", "serving", "1 while this node holds leases on a majority and serves its cache."),
    ("epoch", "epoch", "Times the whole cache was dropped (each starts an epoch)."),
    ("tombstones", "tombstones", "Keys whose latest write or invalidation is remembered."),
)
_CACHE_COUNTERS = (
    ("hits", "hits", "Reads answered from this node's copy."),
    ("misses", "misses", "Reads that found no local copy."),
    ("peer_fetches", "peer_fetches", "Misses that asked the peers for a copy."),
    ("peer_fetches_kept", "peer_fetches_kept", "Peer fetches whose answer was kept here."),
    ("peer_fetches_refused", "peer_fetches_refused", "Peer answers refused as possibly stale."),
    ("fetches_served", "fetches_served", "Copies this node handed to peers."),
    ("evictions", "evictions", "Entries evicted by the LRU bounds."),
    ("expirations", "expirations", "Entries removed when their TTL passed."),
    ("sets", "sets", "Writes made at this node."),
    ("deletes", "deletes", "Deletes made at this node."),
    ("invalidations_sent", "invalidations_sent", "Invalidations this node's writes had acknowledged."),
    ("invalidations_received", "invalidations_received", "Invalidations received from peers."),
    ("invalidations_dropped", "invalidations_dropped", "Copies an invalidation removed here."),
    ("writes_failed", "writes_failed", "Writes answered 503: a peer could neither ack nor be fenced."),
    ("peers_skipped", "peers_skipped", "Invalidations a write skipped because the peer was fenced."),
    ("fences_won", "fences_won", "Fences this node obtained on a cut-off peer."),
    ("drops", "drops", "Times this node dropped its whole cache."),
)


class CacheCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self.stats()
        for field, suffix, text in _CACHE_GAUGES:
            yield GaugeMetricFamily(f"rakit_cache_{suffix}", text, value=float(s[field]))
        for field, suffix, text in _CACHE_COUNTERS:
            yield CounterMetricFamily(f"rakit_cache_{suffix}", text, value=float(s[field]))


# (totals field, metric name, help): the replicated state as this node has applied it.
_COORDINATION_GAUGES = (
    ("sessions", "rakit_sessions", "Live sessions."),
    ("semaphores", "rakit_semaphores", "Semaphores with a holder or a waiter."),
    ("permits_held", "rakit_semaphore_permits_held", "Permits held, over all semaphores."),
    ("permits_limit", "rakit_semaphore_permits_limit", "Sum of the limits of the semaphores in use."),
    ("semaphore_waiters", "rakit_semaphore_waiters", "Acquires waiting for permits, over all semaphores."),
    ("elections", "rakit_elections", "Elections with a leader or a candidate."),
    ("elections_led", "rakit_elections_led", "Elections that have a leader."),
    ("candidates_waiting", "rakit_election_candidates_waiting", "Candidates waiting to be elected."),
)


class CoordinationCollector(Collector):
    def __init__(self, totals: Callable[[], dict[str, int]]) -> None:
        self.totals = totals

    def collect(self) -> Iterator[Metric]:
        t = self.totals()
        for field, name, text in _COORDINATION_GAUGES:
            yield GaugeMetricFamily(name, text, value=float(t[field]))


class KvCollector(Collector):
    def __init__(self, store: Any, hub: Any) -> None:
        self.store, self.hub = store, hub

    def collect(self) -> Iterator[Metric]:
        store, hub = self.store, self.hub
        yield GaugeMetricFamily("rakit_kv_revision", "The KV map's revision at this node.", value=store.revision)
        yield GaugeMetricFamily("rakit_kv_keys", "Keys in the KV map.", value=len(store.records))
        yield GaugeMetricFamily("rakit_kv_history_events", "Changes kept for watches.", value=len(store.history))
        yield GaugeMetricFamily(
            "rakit_kv_history_bytes", "Bytes of keys and values kept for watches.", value=store.history.size_bytes
        )
        yield GaugeMetricFamily(
            "rakit_kv_compact_revision",
            "The oldest revision a watch may start from.",
            value=store.history.compact_revision,
        )
        yield GaugeMetricFamily("rakit_kv_watchers", "Open KV watches on this node.", value=hub.watchers)
        yield CounterMetricFamily(
            "rakit_kv_watch_events_sent", "KV events sent to watchers by this node.", value=hub.events_sent
        )
