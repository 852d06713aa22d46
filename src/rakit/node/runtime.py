"""One node's parts, wired: metrics, state machines, Raft driver, transport, HTTP session."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from redis.exceptions import RedisError

from rakit.cache.service import CacheService, CacheSettings
from rakit.config import NodeConfig
from rakit.metrics import NodeMetrics
from rakit.node import consistency
from rakit.node.coordination_leases import CoordinationKeeper
from rakit.node.coordination_service import CoordinationService
from rakit.node.driver import RaftDriver
from rakit.node.inbound import ReplyFilter
from rakit.node.kv_leases import KvLeaseKeeper
from rakit.node.kv_watch import KvWatchHub
from rakit.node.leases import LeaseKeeper
from rakit.node.lock_service import LockService
from rakit.queue.redis_store import RedisQueueStore, connect
from rakit.queue.ring import ConsistentHashRing
from rakit.queue.service import QueueService
from rakit.raft.config import RaftConfig
from rakit.relay import HttpRelay
from rakit.security.internal import InternalAuth
from rakit.security.tls import client_context
from rakit.statemachines.coordination import CoordinationMachine
from rakit.statemachines.coordination_overview import totals as coordination_totals
from rakit.statemachines.kv import KvStore
from rakit.statemachines.kv.store import KvSessionKeys
from rakit.statemachines.locks import LockTable
from rakit.statemachines.members import MembersMachine
from rakit.statemachines.registry import Registry
from rakit.storage.datadir import DataDir
from rakit.transport.http import HttpTransport

log = logging.getLogger(__name__)


class NodeRuntime:
    def __init__(self, config: NodeConfig, data_dir: DataDir) -> None:
        self.config = config
        self.node_id = config.node_id
        self.data_dir = data_dir
        self.metrics = NodeMetrics(config.node_id)
        self.kv = KvStore()
        self.lock_table = LockTable()
        self.members = MembersMachine()
        # Sessions, semaphores and elections; a session's end also ends its locks and keys (one entry).
        self.coordination_machine = CoordinationMachine([self.lock_table, KvSessionKeys(self.kv)])
        self.machines = Registry([self.lock_table, self.kv, self.members, self.coordination_machine])
        self.metrics.watch_coordination(lambda: coordination_totals(self.coordination_machine))
        # Signs every node-to-node call with the cluster secret (a no-op without one).
        self.internal_auth = InternalAuth(config.cluster_secret, config.node_id)
        self._session: aiohttp.ClientSession | None = None
        self._relay: HttpRelay | None = None
        self._driver: RaftDriver | None = None
        self._locks: LockService | None = None
        self._leases: LeaseKeeper | None = None
        self._coordination: CoordinationService | None = None
        self._coordination_leases: CoordinationKeeper | None = None
        self._kv_leases: KvLeaseKeeper | None = None
        self._kv_watch: KvWatchHub | None = None
        self._redis: Any = None
        self._queue: QueueService | None = None
        self._cache: CacheService | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "runtime not started"
        return self._session

    @property
    def relay(self) -> HttpRelay:
        """One hop to the leader or an owner (``rakit.relay``), on this node's session."""
        assert self._relay is not None, "runtime not started"
        return self._relay

    @property
    def driver(self) -> RaftDriver:
        assert self._driver is not None, "runtime not started"
        return self._driver

    @property
    def locks(self) -> LockService:
        assert self._locks is not None, "runtime not started"
        return self._locks

    @property
    def coordination(self) -> CoordinationService:
        assert self._coordination is not None, "runtime not started"
        return self._coordination

    @property
    def kv_watch(self) -> KvWatchHub:
        assert self._kv_watch is not None, "runtime not started"
        return self._kv_watch

    @property
    def queue(self) -> QueueService:
        assert self._queue is not None, "runtime not started"
        return self._queue

    @property
    def cache(self) -> CacheService:
        assert self._cache is not None, "runtime not started"
        return self._cache

    async def start(self) -> None:
        # With TLS, every node-to-node call (Raft and cache WebSockets, forwarding, queue calls)
        # verifies the peer and, with --tls-ca, presents this node's certificate (mutual TLS).
        ssl_context = client_context(self.config)
        connector = aiohttp.TCPConnector(
            limit=256, limit_per_host=64, keepalive_timeout=30, ssl=ssl_context if ssl_context is not None else True
        )
        self._session = aiohttp.ClientSession(connector=connector)
        self._relay = HttpRelay(self._session)
        c = self.config
        transport = HttpTransport(
            c.node_id, c.peers, self._session, self.metrics, deliver=ReplyFilter(self), auth=self.internal_auth
        )
        self._driver = RaftDriver(
            c.node_id,
            list(c.initial_voters),
            store=self.data_dir.log_store(),
            machine=self.machines,
            transport=transport,
            metrics=self.metrics,
            config=RaftConfig(election_ticks=c.election_ticks, heartbeat_ticks=c.heartbeat_ticks),
            tick_seconds=c.tick_ms / 1000.0,
            snapshot_entries=c.snapshot_entries,
            addresses=dict(c.peers),
            members=self.members,
        )
        self._locks = LockService(self._driver, self.lock_table, self.machines, self.metrics)
        self._leases = LeaseKeeper(self._driver, self.lock_table, self.machines)
        self._coordination_leases = CoordinationKeeper(
            self._driver, self.coordination_machine, self.machines, self.metrics
        )
        self._coordination = CoordinationService(
            self._driver, self.coordination_machine, self.machines, self._coordination_leases
        )
        self._kv_leases = KvLeaseKeeper(self._driver, self.kv, self.machines)
        self._kv_watch = KvWatchHub(self.kv)
        self._driver.add_apply_listener(self._kv_watch.on_applied)
        self.metrics.watch_kv(self.kv, self._kv_watch)
        # The Redis client connects lazily (no PING here): the node starts and
        # serves locks and kv while Redis is down; queue calls then answer 503.
        self._redis = connect(c.redis_url)
        store = RedisQueueStore(
            self._redis, max_deliveries=c.max_deliveries, dedup_window=c.dedup_window, op_timeout=3.0
        )
        conf = self._driver.core.conf_state
        self._queue = QueueService(
            c.node_id,
            self._member_urls(conf, self._driver.addresses),
            ConsistentHashRing(conf.voters),
            store,
            self._session,
            self.metrics,
            auth=self.internal_auth,
            relay=self._relay,
        )
        transport.set_peers(self._member_urls(conf, self._driver.addresses))
        self._driver.add_membership_listener(self._follow_membership)
        generation, cache_members = self._cache_members()
        self._cache = CacheService(
            c.node_id,
            {n: self._driver.addresses[n] for n in cache_members},
            self._session,
            CacheSettings(capacity=c.cache_capacity, max_bytes=c.cache_max_bytes),
            auth=self.internal_auth,
            generation=generation,
            first_run=self._driver.first_run,
            leader_contact_age=self._driver.leader_contact_age,
            known_nodes=lambda: self.driver.addresses,
        )
        self._driver.add_committed_membership_listener(self._follow_committed_membership)
        self.metrics.watch_cache(self._cache.stats)

    def _cache_members(self) -> tuple[int, tuple[str, ...]]:
        """The cache's starting membership: the committed one, else the ``--peers`` start's
        (generation 0); none (generation -1) on a node that joined and has not learnt one
        naming it, or whose log holds configuration entries not applied yet (the book may be
        several changes behind: the cache waits for them, see ``rakit.cache.service``)."""
        book, core = self.members, self.driver.core
        if core.pending_conf_index > core.applied_index:
            return -1, ()
        if book.members is not None:
            members = book.members
            generation = book.generation
        elif self.config.join is None:
            members, generation = tuple(self.config.initial_voters), 0
        else:
            members, generation = (), -1
        return generation, tuple(n for n in members if n in self.driver.addresses)

    def _follow_committed_membership(
        self, generation: int, members: tuple[str, ...], addresses: dict[str, str]
    ) -> None:
        """A committed configuration changed the member set: the cache follows it."""
        if self._cache is not None:
            self._cache.set_members(generation, {n: addresses[n] for n in members if n in addresses})

    def _member_urls(self, conf: Any, addresses: dict[str, str]) -> dict[str, str]:
        return {n: addresses[n] for n in conf.members if n in addresses}

    def _follow_membership(self, conf: Any, addresses: dict[str, str]) -> None:
        """A configuration took effect here: Raft sends to its members, the queue's ring is its voters.

        (The cache follows committed configurations only: ``_follow_committed_membership``.)
        """
        urls = self._member_urls(conf, addresses)
        self.driver.transport.set_peers(urls)  # type: ignore[attr-defined]
        if self._queue is not None:
            self._queue.set_members(urls, conf.voters)
        log.warning(
            "%s: configuration now voters %s, learners %s", self.node_id, list(conf.voters), list(conf.learners)
        )

    async def run(self) -> None:
        """Every background task of the node, supervised together."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.driver.run(), name="raft-driver")
            group.create_task(self.driver.transport.run(), name="raft-transport")
            assert self._leases is not None
            group.create_task(self._leases.run(), name="lock-leases")
            assert self._coordination_leases is not None
            group.create_task(self._coordination_leases.run(), name="coordination-leases")
            assert self._kv_leases is not None
            group.create_task(self._kv_leases.run(), name="kv-leases")
            group.create_task(self.queue.run(), name="queue")
            group.create_task(self.cache.run(), name="cache")
            group.create_task(consistency.run(self), name="consistency")

    async def close(self) -> None:
        if self._cache is not None:
            await self._cache.close()
        if self._redis is not None:
            try:
                await self._redis.aclose()
            except (OSError, RedisError) as exc:  # a Redis that is gone must not block shutdown
                log.debug("closing the Redis client: %s", exc)
        if self._session is not None:
            await self._session.close()
        self.data_dir.close()
