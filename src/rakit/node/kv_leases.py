"""TTL keys' leases, timed by the leader's monotonic clock.

The KV store never reads a clock; this keeper does, on the leader only:

1. When this node becomes leader, every key with a ttl restarts at its full
   ttl (a new leader never deletes a key early).
2. While leader, each change the store applies (its history's new events)
   updates the timers: a key put with a ttl (a new lease) starts its timer,
   a key put without one or deleted drops it; an ``incr`` keeps the lease
   and the timer.
3. Keys whose timers fall due together are deleted by one
   ``KvExpireBatch`` (one Raft entry); an expiry naming an old lease is
   stale in the store and deletes nothing.  A proposal that fails is retried
   after ``RETRY_AFTER`` while still leader.
4. On losing leadership every timer is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from rakit.node.deadlines import Deadlines
from rakit.raft.messages import Entry
from rakit.statemachines.kv import KvExpire, KvExpireBatch, KvStore

if TYPE_CHECKING:
    from rakit.node.driver import RaftDriver
    from rakit.statemachines.registry import Registry

log = logging.getLogger(__name__)

RETRY_AFTER = 0.5
IDLE_CHECK = 1.0
MAX_BATCH = 1000


class KvLeaseKeeper:
    def __init__(self, driver: RaftDriver, store: KvStore, machines: Registry) -> None:
        self.driver = driver
        self.store = store
        self.machines = machines
        self.timers = Deadlines()
        self._leases: dict[str, int] = {}  # key -> the lease its timer is for
        self._following = store.revision + 1  # the next history revision to look at
        self._wake = asyncio.Event()
        self._leading = False
        self._inflight: set[asyncio.Task[Any]] = set()
        self.expired = 0
        driver.add_role_listener(self.on_role)
        driver.add_apply_listener(self.on_applied)

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    def on_role(self, role: str, leader_id: str | None) -> None:
        leading = role == "leader"
        if leading and not self._leading:
            self._restart_all()  # rule 1
        elif not leading:
            self.timers.clear()  # rule 4
            self._leases.clear()
        self._leading = leading
        self._wake.set()

    def _restart_all(self) -> None:
        now = self.now()
        self.timers.clear()
        self._leases.clear()
        for key, ttl, lease in self.store.leases():
            self._start(now, key, ttl, lease)
        self._following = self.store.revision + 1

    def _start(self, now: float, key: str, ttl: float, lease: int) -> None:
        self.timers.set(key, now + ttl, KvExpire(key, lease))
        self._leases[key] = lease

    def on_applied(self, entry: Entry, result: Any) -> None:
        if not self._leading or self.store.revision < self._following:
            return
        scanned = self.store.scan_events(self._following)
        if scanned is None:  # the history lost events this keeper had not seen: look at every key
            self._restart_all()
            return
        events, self._following = scanned
        now = self.now()
        for key in dict.fromkeys(e.key for e in events):  # rule 2
            record = self.store.get(key)
            if record is not None and record.ttl is not None:
                if self._leases.get(key) != record.lease:
                    self._start(now, key, record.ttl, record.lease)
            elif key in self._leases:
                self.timers.cancel(key)
                del self._leases[key]
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                next_at = self.timers.next_deadline()
                timeout = IDLE_CHECK if next_at is None else min(IDLE_CHECK, max(0.0, next_at - self.now()))
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    pass
                if self._leading:
                    due = self.timers.pop_due(self.now())
                    for start in range(0, len(due), MAX_BATCH):  # rule 3
                        self._propose([cmd for _, cmd in due[start : start + MAX_BATCH]])
        finally:
            for task in self._inflight:
                task.cancel()

    def _propose(self, items: list[KvExpire]) -> None:
        async def propose() -> None:
            try:
                await self.driver.propose(self.machines.encode(KvExpireBatch(items, time.time())))
                self.expired += len(items)
            except Exception as exc:
                for item in items:
                    if self._leading and item.key not in self.timers and self._leases.get(item.key) == item.lease:
                        self.timers.set(item.key, self.now() + RETRY_AFTER, item)
                log.debug("kv expiry of %d keys failed: %s", len(items), exc)

        task = asyncio.create_task(propose())
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
