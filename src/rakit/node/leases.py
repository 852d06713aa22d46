"""Lock leases, wait timeouts and lock delays, timed by the leader's monotonic clock.

The lock table never reads a clock; this keeper does, on the leader only,
and turns "time is up" into commands: ``Expire`` (a lease ran out
unrenewed), ``CancelWait`` (a waiter's timeout passed with nobody left to
cancel it) and ``DelayEnd`` (a lock delay is over).

- When this node becomes leader, every hold's lease restarts at its full ttl,
  every waiter's timeout at its full wait and every delay at its full
  length (as etcd does for leases): a new leader never expires early.
- While leader, each applied command updates the timers (a grant or renew
  sets a lease; a hold that ended drops it; a waiter sets a timeout).
- On losing leadership every timer is dropped.

Waiter timeouts carry WAIT_GRACE on top: the HTTP request that is waiting
cancels itself on time; the keeper only cleans up waiters whose request is
gone (a forwarding node died, a leader changed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from rakit.node.coordination_results import lock_results
from rakit.node.deadlines import Deadlines
from rakit.raft.messages import Entry
from rakit.statemachines import locks as L

if TYPE_CHECKING:
    from rakit.node.driver import RaftDriver
    from rakit.statemachines.registry import Registry

log = logging.getLogger(__name__)

WAIT_GRACE = 1.0
RETRY_AFTER = 0.5
IDLE_CHECK = 1.0


class LeaseKeeper:
    def __init__(self, driver: RaftDriver, table: L.LockTable, machines: Registry) -> None:
        self.driver = driver
        self.table = table
        self.machines = machines
        self.timers = Deadlines()
        self._wake = asyncio.Event()
        self._leading = False
        self._inflight: set[asyncio.Task[Any]] = set()
        driver.add_role_listener(self.on_role)
        driver.add_apply_listener(self.on_applied)

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    # -- listeners (called by the driver, in its loop) -----------------------------

    def on_role(self, role: str, leader_id: str | None) -> None:
        leading = role == "leader"
        if leading and not self._leading:
            self._restart_all()
        elif not leading:
            self.timers.clear()
        self._leading = leading
        self._wake.set()

    def on_applied(self, entry: Entry, result: Any) -> None:
        if not self._leading:
            return
        for inner in lock_results(result):  # a lock result, or one nested in a session's end
            self._on_result(inner)

    def _on_result(self, result: Any) -> None:
        now = self.now()
        match result:
            case L.Granted() | L.Renewed():
                if getattr(result, "session_id", None) is None:  # a session's lock has no lease of its own
                    self._hold(now, result.resource, result.client_id, result.ttl, result.lease)
                self.timers.cancel(("wait", result.resource, result.client_id))
            case L.Waiting():
                wait = next(
                    (w for r, c, w in self.table.waiters() if r == result.resource and c == result.client_id), 0.0
                )
                self._wait(now, result.resource, result.client_id, wait)
            case L.Cancelled():
                self.timers.cancel(("wait", result.resource, result.client_id))
            case L.Expired() if result.delay_since is not None:
                self._delay(now, result.resource)
            case L.SessionLocksEnded():  # its waits' timers fire as no-ops; its delays need ending
                for resource, _, _ in result.delayed:
                    self._delay(now, resource)
        for grant in getattr(result, "grants", ()):
            if grant.session_id is None:
                self._hold(now, grant.resource, grant.client_id, grant.ttl, grant.lease)
            self.timers.cancel(("wait", grant.resource, grant.client_id))
        for ended in getattr(result, "removed_holds", ()):
            self.timers.cancel(("hold", ended.resource, ended.client_id))
        self._wake.set()

    def _restart_all(self) -> None:
        now = self.now()
        self.timers.clear()
        for resource, client_id, ttl, lease in self.table.holds():
            self._hold(now, resource, client_id, ttl, lease)
        for resource, client_id, wait in self.table.waiters():
            self._wait(now, resource, client_id, wait)
        for resource, _ in self.table.delayed():
            self._delay(now, resource)

    # Each timer's payload is the command to propose when it fires.

    def _hold(self, now: float, resource: str, client_id: str, ttl: float, lease: int) -> None:
        self.timers.set(("hold", resource, client_id), now + ttl, L.Expire(resource, client_id, lease))

    def _wait(self, now: float, resource: str, client_id: str, wait: float) -> None:
        self.timers.set(("wait", resource, client_id), now + wait + WAIT_GRACE, L.CancelWait(resource, client_id))

    def _delay(self, now: float, resource: str) -> None:
        delay = next((d for r, d in self.table.delayed() if r == resource), 0.0)
        self.timers.set(("delay", resource), now + delay, L.DelayEnd(resource, self.table.delay_since(resource)))

    # -- the timer loop ------------------------------------------------------------

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
                    for name, command in self.timers.pop_due(self.now()):
                        self._propose(name, command)
        finally:
            for task in self._inflight:
                task.cancel()

    def _propose(self, name: Any, command: Any) -> None:
        async def propose() -> None:
            try:
                await self.driver.propose(self.machines.encode(command))
            except Exception as exc:
                if self._leading and name not in self.timers:
                    self.timers.set(name, self.now() + RETRY_AFTER, command)
                log.debug("timer command %s failed: %s", command, exc)

        task = asyncio.create_task(propose())
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
