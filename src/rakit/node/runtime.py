"""One node's parts, wired: metrics, state machines, Raft driver, transport, HTTP session."""

from __future__ import annotations

import asyncio

import aiohttp

from rakit.config import NodeConfig
from rakit.metrics import NodeMetrics
from rakit.node.driver import RaftDriver
from rakit.raft.config import RaftConfig
from rakit.node.leases import LeaseKeeper
from rakit.node.lock_service import LockService
from rakit.statemachines.kv import KvMachine
from rakit.statemachines.locks import LockTable
from rakit.statemachines.registry import Registry
from rakit.storage.datadir import DataDir
from rakit.transport.http import HttpTransport


class NodeRuntime:
    def __init__(self, config: NodeConfig, data_dir: DataDir) -> None:
        self.config = config
        self.node_id = config.node_id
        self.data_dir = data_dir
        self.metrics = NodeMetrics(config.node_id)
        self.kv = KvMachine()
        self.lock_table = LockTable()
        self.machines = Registry([self.lock_table, self.kv])
        self._session: aiohttp.ClientSession | None = None
        self._driver: RaftDriver | None = None
        self._locks: LockService | None = None
        self._leases: LeaseKeeper | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "runtime not started"
        return self._session

    @property
    def driver(self) -> RaftDriver:
        assert self._driver is not None, "runtime not started"
        return self._driver

    @property
    def locks(self) -> LockService:
        assert self._locks is not None, "runtime not started"
        return self._locks

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=64, keepalive_timeout=30)
        self._session = aiohttp.ClientSession(connector=connector)
        c = self.config
        transport = HttpTransport(c.node_id, c.peers, self._session, self.metrics,
                                  deliver=lambda messages: self.driver.receive(messages))
        self._driver = RaftDriver(
            c.node_id, c.peer_ids,
            store=self.data_dir.log_store(),
            machine=self.machines,
            transport=transport,
            metrics=self.metrics,
            config=RaftConfig(election_ticks=c.election_ticks, heartbeat_ticks=c.heartbeat_ticks),
            tick_seconds=c.tick_ms / 1000.0,
            snapshot_entries=c.snapshot_entries,
        )
        self._locks = LockService(self._driver, self.lock_table, self.machines, self.metrics)
        self._leases = LeaseKeeper(self._driver, self.lock_table, self.machines)

    async def run(self) -> None:
        """Every background task of the node, supervised together."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.driver.run(), name="raft-driver")
            group.create_task(self.driver.transport.run(), name="raft-transport")  # type: ignore[attr-defined]
            assert self._leases is not None
            group.create_task(self._leases.run(), name="lock-leases")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self.data_dir.close()
